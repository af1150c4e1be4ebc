"""A slow, literal reading of Koala's `chunk` strategy (../shared/spec/koala-matching.md).

The differential tests hold matchers/chunk.py (both scanners, the index, the pruning) to
this. It does what the spec says, in the order it says it, the way Koala's Go loop does:
for each chunk, for each candidate after `last`, search the chunk in the candidate's
remaining bytes and cut them at the hit; the running scores give "the first to reach the
best score" as it happens. No index, no cache, no pruning. The cutting is written out again
and the Expect header test are written out again here; only the wording of reasons
(`_decide`, which turns the scores into a MatchResult and the state updates) comes from the
module under test.
"""

from __future__ import annotations

from matchers.chunk import ChunkSessionMatcher, _Pass

PRINTABLE = range(32, 127)


def reference_chunks(request: bytes) -> list[bytes]:
    """Step 1: over 256 bytes, the first printable run longer than 8 bytes gives chunk 0 (its
    first 16 bytes; everything up to their end is dropped); the rest in 16-byte pieces."""
    rest = request
    chunks = []
    if len(request) > 256:
        start = None
        for i in range(len(request) + 1):
            if i < len(request) and request[i] in PRINTABLE:
                start = i if start is None else start
                continue
            if start is not None and i - start > 8:
                chunks.append(request[start : min(i, start + 16)])
                rest = request[start + len(chunks[0]) :]
                break
            start = None
    while rest:
        chunks.append(rest[:16])
        rest = rest[16:]
    return chunks


def reference_expect(request: bytes) -> bool:
    """Step 2: a line of the head (up to the first blank line) reads, in any case,
    `Expect:` then `100-continue`, with spaces or tabs around the colon."""
    head = request.split(b"\r\n\r\n", 1)[0]
    for line in head.lower().split(b"\n"):
        if line.startswith(b"expect"):
            rest = line[len(b"expect") :].lstrip(b" \t")
            if rest.startswith(b":") and rest[1:].lstrip(b" \t").startswith(b"100-continue"):
                return True
    return False


class ReferenceChunkSessionMatcher(ChunkSessionMatcher):
    def _match(self, request, conn, eligible):
        chunks = reference_chunks(request)
        expect = reference_expect(request)
        first = self._scan(chunks, conn.last, eligible, expect)
        if first.ok or first.fresh:
            return self._decide(conn, first, None, expect)
        retry = self._scan(chunks, -1, eligible, expect)  # step 5: retry once as fresh
        return self._decide(conn, retry, first, expect)

    def _scan(self, chunks: list[bytes], last: int, eligible: tuple[int, ...], expect: bool) -> _Pass:
        n = len(chunks)
        result = _Pass(n, last)
        candidates = [p for p in eligible if p > last]
        remaining = {p: self.calls[p].request for p in candidates}
        scores = {p: 0 for p in candidates}
        reached = {p: -1 for p in candidates}
        reaching: list[tuple[int, int]] = []  # (position, score) each time a score grows, in scan order
        for i, chunk in enumerate(chunks):
            for p in candidates:
                if len(self.calls[p].request) < len(chunk):
                    continue
                at = remaining[p].find(chunk)
                if at < 0:
                    continue
                remaining[p] = remaining[p][at:]  # later chunks must follow; overlap allowed
                if i > 0:
                    scores[p] += 1
                elif result.fresh:
                    scores[p] += n
                else:
                    scores[p] += max(n // 2, 2) if at == 0 else 1
                reached[p] = i
                reaching.append((p, scores[p]))
        result.scores, result.reached = scores, reached
        contenders = [p for p in candidates if scores[p] > 0 and reference_expect(self.calls[p].request) == expect]
        if not contenders:
            return result
        best = max(scores[p] for p in contenders)
        tied = [p for p in contenders if scores[p] == best]
        after = [p for p in tied if p > self.outs_last]
        if after:
            result.winner, result.rule = after[0], "after-last"
        else:
            result.winner = next(p for p, score in reaching if p in tied and score == best)
            result.rule = "first-to-reach"
        result.best, result.mark = best, best / n
        return result
