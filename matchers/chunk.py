"""Koala's `chunk` strategy (its default): ordered 16-byte chunk hits, with Koala's exact rules.

See ../shared/spec/koala-matching.md. In short: cut the request into chunks (a readable
prefix first when it is over 256 bytes), look for each chunk in order in every candidate
after the connection's last match, score hits, pick the best (ties: first after the
session's last match, else first to reach the best score), and require a mark of 0.85 on a
connection that already matched (0.1 on a fresh one), retrying once as fresh.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from koala_store.model import CallOutbound

from .base import ConnectionState, MatchResult, SessionMatcher, Strategy, check_options, fmt

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
_GRAM, _STRIDE = 13, 4  # the per-session index: 13-byte grams starting every 4 bytes
INDEX_BUDGET = 1024 * 1024  # request bytes indexed per session (about 13 MB of index)


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
    return _EXPECT_100.search(request if end < 0 else request[:end]) is not None


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


class ChunkSessionMatcher(SessionMatcher):
    strategy = "chunk"

    def __init__(self, calls: Sequence[CallOutbound]):
        super().__init__(calls)
        # Cached per session: the request bytes, their Expect flag, and an index of the
        # 13-byte grams starting every 4 bytes -> bitmask of the positions holding them.
        # A 16-byte chunk found anywhere in a request covers one indexed gram starting at one
        # of its first 4 offsets, so a candidate in none of those grams' masks cannot hold
        # it and its search (a scan of the whole request for nothing) is skipped. Requests
        # past a byte budget are not indexed (their bit is in every mask): memory stays
        # bounded on huge sessions, which then cost what Koala's plain scan costs.
        self._requests = [c.request for c in self.calls]
        self._expect = [has_expect_continue(r) for r in self._requests]
        # Keys are the grams' hashes (a collision only costs a useless search) and a gram held
        # by one request stores ~position instead of a bitmask: about 13 MB per MB indexed.
        grams: dict[int, int] = {}
        unindexed = 0
        budget = INDEX_BUDGET
        for p, data in enumerate(self._requests):
            if len(data) > budget:
                unindexed |= 1 << p
                continue
            budget -= len(data)
            for s in range(0, len(data) - _GRAM + 1, _STRIDE):
                h = hash(data[s : s + _GRAM])
                v = grams.get(h)
                if v is None:
                    grams[h] = ~p
                elif v < 0:
                    if v != ~p:
                        grams[h] = (1 << ~v) | (1 << p)
                else:
                    grams[h] = v | (1 << p)
        self._grams = grams
        self._unindexed = unindexed
        self._indexed = ((1 << len(self._requests)) - 1) & ~unindexed

    def _holders(self, chunk: bytes) -> int:
        """A bitmask of the positions that may hold `chunk` (all of them for short chunks)."""
        if len(chunk) < _GRAM + _STRIDE - 1:
            return -1
        get = self._grams.get
        mask = self._unindexed
        for d in range(_STRIDE):
            v = get(hash(chunk[d : d + _GRAM]))
            if v is not None:
                mask |= (1 << ~v) if v < 0 else v
        return mask

    def _match(self, request: bytes, conn: ConnectionState, eligible: tuple[int, ...]) -> MatchResult:
        chunks = cut_chunks(request)
        masks = [self._holders(c) for c in chunks]
        expect = has_expect_continue(request)
        # Where chunks hit does not depend on the pass, only what a hit scores: the retry
        # reuses the first pass's searches and searches only the positions it skipped.
        hits: dict[bytes, tuple[int, int, int]] = {}
        first = self._search(chunks, masks, conn.last, eligible, expect, hits)
        if first.ok or first.fresh:
            return self._decide(conn, first, None, expect)
        # On a connection that already matched, a failure is retried once as fresh.
        retry = self._search(chunks, masks, -1, eligible, expect, hits)
        return self._decide(conn, retry, first, expect)

    def _search(
        self,
        chunks: list[bytes],
        masks: list[int],
        last: int,
        eligible: tuple[int, ...],
        expect: bool,
        hits: dict[bytes, tuple[int, int, int]],
    ) -> _Pass:
        n = len(chunks)
        result = _Pass(n, last)
        # Chunk 0 adds n on a fresh connection, max(n // 2, 2) at offset 0 on one that
        # already matched, and 1 elsewhere; any other hit adds 1.
        first_score = n if result.fresh else 1
        first_at_zero = n if result.fresh else max(n // 2, 2)
        head, head_mask = chunks[0], masks[0]
        # Which of chunks 1.. each indexed position may hold: the masks turned inside out.
        # Unindexed positions (past the budget) are searched for every chunk.
        todo: list[list[int]] = [[] for _ in self._requests]
        indexed = self._indexed if last < 0 else self._indexed & ~((1 << (last + 1)) - 1)
        for i in range(1, n):
            m = masks[i]
            m = indexed if m == -1 else m & indexed
            while m:
                low = m & -m
                todo[low.bit_length() - 1].append(i)
                m ^= low
        every = range(1, n)
        unindexed = self._unindexed
        scores, reached = result.scores, result.reached
        for p in eligible:
            if p <= last:
                continue
            data = self._requests[p]
            hit = hits.get(data)
            if hit is None:
                # Identical recorded requests hit identically: search once.
                find = data.find
                head_at = -1  # offset of chunk 0, -1 when missing
                count = 0  # hits of the other chunks
                at = -1  # index of the last chunk hit
                off = 0
                if (head_mask >> p) & 1:
                    head_at = find(head)
                    if head_at >= 0:
                        off = head_at
                        at = 0
                # Only the chunks this request may hold (see _holders); the others miss.
                for i in every if (unindexed >> p) & 1 else todo[p]:
                    pos = find(chunks[i], off)
                    if pos >= 0:
                        # Later chunks must follow; overlap is allowed (search from the hit).
                        off = pos
                        count += 1
                        at = i
                hit = hits[data] = (head_at, count, at)
            head_at, count, reached[p] = hit
            scores[p] = count + (0 if head_at < 0 else first_at_zero if head_at == 0 else first_score)
        # A candidate that disagrees on Expect: 100-continue can never win.
        contenders = [p for p in scores if self._expect[p] == expect and scores[p] > 0]
        if not contenders:
            return result
        best = max(scores[p] for p in contenders)
        tied = [p for p in contenders if scores[p] == best]
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
