"""Koala's `chunk` strategy (its default): ordered 16-byte chunk hits, with Koala's exact rules.

See ../shared/spec/koala-matching.md. In short: cut the request into chunks (a readable
prefix first when it is over 256 bytes), look for each chunk in order in every candidate
after the connection's last match, score hits, pick the best (ties: first after the
session's last match, else first to reach the best score), and require a mark of 0.85 on a
connection that already matched (0.1 on a fresh one), retrying once as fresh.

Speed, with the same decisions: matchers/chunk_scan.py finds where the chunks hit (in C
when built: each recorded request is read once per live request), identical recorded
requests are searched once, and a fresh pass skips the calls without chunk 0 when they
provably can be neither the winner nor a near miss. tests/chunk_reference.py is the spec
read literally; the differential tests hold this module to it.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence

from koala_store.model import CallOutbound

from .base import NEAR_MISSES, ConnectionState, MatchResult, SessionMatcher, Strategy, check_options, fmt
from .chunk_scan import Hit, Scanner, scanner_for

UNIT = 16  # chunk size
LONG = 256  # requests longer than this get the readable-prefix chunk
FRESH_MARK = 0.1
MATCHED_MARK = 0.85

# The first run of printable ASCII longer than 8 bytes: a regex finds the start of the
# first maximal run of 9+ bytes, since a shorter run cannot hold 9 printable bytes.
_READABLE_RUN = re.compile(rb"[\x20-\x7e]{9,}")
# Case-insensitive, in the head only: header names are case-insensitive in HTTP.
_EXPECT_100 = re.compile(rb"(?im)^expect[ \t]*:[ \t]*100-continue")
_HEAD_END = b"\r\n\r\n"


def cut_chunks(request: bytes) -> list[bytes]:
    """Koala's chunks: readable-prefix chunk 0 for requests over 256 bytes, then 16-byte pieces."""
    chunks: list[bytes] = []
    rest = request
    if len(request) > LONG:
        run = _READABLE_RUN.search(request)
        if run is not None:
            end = run.start() + min(UNIT, run.end() - run.start())
            chunks.append(request[run.start() : end])
            # Everything up to the end of chunk 0 is dropped.
            rest = request[end:]
    chunks.extend(rest[i : i + UNIT] for i in range(0, len(rest), UNIT))
    return chunks


def has_expect_continue(request: bytes) -> bool:
    """Whether the request's head carries `Expect: 100-continue`."""
    end = request.find(_HEAD_END)
    head = request if end < 0 else request[:end]
    # "100-" has no case: without it the (slow, multi-line) regex cannot match.
    return b"100-" in head and _EXPECT_100.search(head) is not None


class _Pass:
    """Scores of one search pass over the candidates after `last`."""

    __slots__ = ("best", "fresh", "last", "mark", "n", "reached", "rule", "scores", "winner")

    def __init__(self, n: int, last: int):
        self.n = n
        self.last = last
        self.fresh = last < 0
        self.scores: dict[int, int] = {}
        self.reached: dict[int, int] = {}  # chunk index of each candidate's last hit
        self.best = 0
        self.winner: int | None = None
        self.rule = ""
        self.mark = 0.0

    @property
    def required(self) -> float:
        return FRESH_MARK if self.fresh else MATCHED_MARK

    @property
    def ok(self) -> bool:
        return self.winner is not None and self.best > 0 and self.mark >= self.required


class _Searches:
    """One live request's searches, shared by a pass and its retry: where the chunks hit
    does not depend on the pass, only what a hit scores. Keys are the first position of
    each distinct recorded request (identical requests hit identically)."""

    __slots__ = ("_found", "_heads", "_requests", "_scanner", "chunks")

    def __init__(self, chunks: list[bytes], requests: list[bytes], scanner: Scanner):
        self.chunks = chunks
        self._requests = requests
        self._scanner = scanner
        self._found: dict[int, Hit] = {}
        self._heads: dict[int, int] = {}

    def hits(self, keys: list[int]) -> dict[int, Hit]:
        found = self._found
        todo = [q for q in dict.fromkeys(keys) if q not in found]
        if todo:
            found.update(zip(todo, self._scanner.scan(self.chunks, todo), strict=True))
        return found

    def head(self, key: int) -> int:
        """Where chunk 0 is in that request (-1: missing), without searching the others."""
        hit = self._found.get(key)
        if hit is not None:
            return hit[0]
        at = self._heads.get(key)
        if at is None:
            at = self._heads[key] = self._requests[key].find(self.chunks[0])
        return at


class ChunkSessionMatcher(SessionMatcher):
    strategy = "chunk"

    def __init__(self, calls: Sequence[CallOutbound], *, scanner: str | None = None):
        """`scanner`: "compiled" or "python" (see matchers.chunk_scan); the fastest by default."""
        super().__init__(calls)
        self._requests = [bytes(c.request) for c in self.calls]  # the C scanner reads bytes only
        self._expect = [has_expect_continue(r) for r in self._requests]
        # Identical recorded requests hit identically: each is searched once, under the
        # first position holding it.
        first: dict[bytes, int] = {}
        self._same = [first.setdefault(r, p) for p, r in enumerate(self._requests)]
        self._scanner = scanner_for(self._requests, scanner)

    def _match(self, request: bytes, conn: ConnectionState, eligible: tuple[int, ...]) -> MatchResult:
        expect = has_expect_continue(request)
        searches = _Searches(cut_chunks(request), self._requests, self._scanner)
        first = self._search(searches, conn.last, eligible, expect)
        if first.ok or first.fresh:
            return self._decide(conn, first, None, expect)
        # On a connection that already matched, a failure is retried once as fresh.
        retry = self._search(searches, -1, eligible, expect)
        return self._decide(conn, retry, first, expect)

    def _search(self, searches: _Searches, last: int, eligible: tuple[int, ...], expect: bool) -> _Pass:
        n = len(searches.chunks)
        result = _Pass(n, last)
        # Chunk 0 adds n on a fresh connection, max(n // 2, 2) at offset 0 on one that
        # already matched, and 1 elsewhere; any other hit adds 1.
        first_score = n if result.fresh else 1
        first_at_zero = n if result.fresh else max(n // 2, 2)
        positions = eligible[bisect.bisect_right(eligible, last) :]
        same = self._same
        groups = [positions]
        if result.fresh and len(positions) > NEAR_MISSES + 1:
            # On a fresh pass chunk 0 alone adds n, so a call without it (n - 1 at most) scores
            # below every call holding it: search those first, and the others only if they
            # may still win or be a near miss (see _settled).
            head = searches.head
            holding: list[int] = []
            lacking: list[int] = []
            for p in positions:
                (holding if head(same[p]) >= 0 else lacking).append(p)
            groups = [holding, lacking]
        scores, reached = result.scores, result.reached
        for k, group in enumerate(groups):
            if k and self._settled(scores, n - 1, expect):
                break
            hits = searches.hits([same[p] for p in group])
            for p in group:
                head_at, count, reached[p] = hits[same[p]]
                scores[p] = count + (0 if head_at < 0 else first_at_zero if head_at == 0 else first_score)
        # A candidate that disagrees on Expect: 100-continue can never win.
        contenders = [p for p in scores if self._expect[p] == expect and scores[p] > 0]
        if not contenders:
            return result
        best = max(scores[p] for p in contenders)
        tied = sorted(p for p in contenders if scores[p] == best)
        winner = next((p for p in tied if p > self.outs_last), None)
        if winner is not None:
            result.rule = "after-last"
        else:
            # Koala scans chunk by chunk, candidates in order: the first to reach the best
            # score is the one whose last hit came at the earliest chunk, then position.
            winner = min(tied, key=lambda p: (reached[p], p))
            result.rule = "first-to-reach"
        result.best, result.winner, result.mark = best, winner, best / n
        return result

    def _settled(self, scores: dict[int, int], bound: int, expect: bool) -> bool:
        """Whether a call scoring `bound` or less can no longer change the result: it cannot
        win or tie if a contender (agreeing on Expect) scored more, and it cannot be a near
        miss if the winner and NEAR_MISSES more calls did (ties between near misses go to
        the first position, but every score above `bound` beats it outright). When matches
        are not explained (the replay mock), a match's near misses are not wanted: the
        contender alone settles it. On a fresh pass, where this is asked, it then wins.

        That is what keeps a fresh request whose chunk 0 is in one call alone from reading
        every other call (500 x 8 KB: ~16 of its ~20 ms, bench/bench_matchers.py)."""
        above = [p for p, s in scores.items() if s > bound]
        wanted = NEAR_MISSES if self.explain_matches else 0
        return len(above) > wanted and any(self._expect[p] == expect for p in above)

    def _decide(self, conn: ConnectionState, final: _Pass, first: _Pass | None, expect: bool) -> MatchResult:
        n = final.n
        scores = final.scores
        winner = final.winner if final.ok else None
        losers = [(p, s / n) for p, s in scores.items() if p != winner]

        def why(p: int) -> str:
            mark = scores[p] / n
            if self._expect[p] != expect:
                return f"Expect: 100-continue differs (the request {'has' if expect else 'lacks'} it)"
            if not final.ok:
                state = "fresh connection" if final.fresh else "connection that already matched"
                return f"mark {fmt(mark)} below {fmt(final.required)} ({state})"
            if scores[p] < final.best:
                return f"mark {fmt(mark)} below the winner's {fmt(final.mark)}"
            if final.rule == "after-last":
                if p <= self.outs_last:
                    return f"tied with the winner but at or before the session's last match (position {self.outs_last})"
                return f"tied with the winner, the first tied call after the session's last match (position {self.outs_last})"
            return (
                "tied with the winner but reached that score later "
                f"(chunk {final.reached[p]} vs {final.reached[final.winner]})"  # type: ignore[index]
            )

        retried = ""
        if first is not None:
            retried = (
                f"mark {fmt(first.mark)} below {fmt(MATCHED_MARK)} after position {first.last}"
                if first.winner is not None
                else f"no chunk found after position {first.last}"
            ) + "; retried as a fresh connection: "
        if winner is not None:
            return self._accept(conn, winner, final.mark, losers, why, f"{retried}mark {fmt(final.mark)} over {n} chunks")
        if final.winner is None:
            reason = "no chunk of the request found in any candidate"
            if any(s > 0 for s in scores.values()):
                reason = "every candidate with a hit disagrees on Expect: 100-continue"
        else:
            reason = f"best mark {fmt(final.mark)} below {fmt(final.required)}"
        return self._reject(conn, final.mark, losers, why, retried + reason)


class ChunkStrategy(Strategy):
    """Koala's default strategy. It takes no options: its constants are Koala's."""

    name = "chunk"
    OPTIONS = ()

    def __init__(self, **options: object):
        check_options(self.name, options, self.OPTIONS)

    def for_session(self, calls: Sequence[CallOutbound]) -> ChunkSessionMatcher:
        return ChunkSessionMatcher(calls)
