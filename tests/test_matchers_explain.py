"""A matcher told not to explain matches (the replay mock: it reports only unmatched talks'
near misses) decides exactly as one that does: same winner, score, reason and state."""

from __future__ import annotations

import random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import matchers
from factories import varied_sessions

SESSIONS = [s for s in varied_sessions(60, seed=11) if len(s.outbound_calls) >= 2]


@pytest.mark.parametrize("name", ["fuzzy", "chunk", "sim"])
@given(seed=st.integers(0, 10_000), edits=st.integers(0, 3))
@settings(max_examples=60, deadline=None)
def test_not_explaining_matches_never_changes_a_decision(name: str, seed: int, edits: int) -> None:
    rng = random.Random(seed)
    session = rng.choice(SESSIONS)
    calls = session.outbound_calls * rng.randint(1, 2)  # twins: the tie rules decide
    requests = [c.request for c in calls if c.request]
    rng.shuffle(requests)
    for _ in range(edits):  # some live requests drift from the recording
        i = rng.randrange(len(requests))
        requests[i] = requests[i].replace(b"1", b"2", 1)
    strategy = matchers.get(name)
    full, quick = strategy.for_session(calls), strategy.for_session(calls)
    quick.explain_matches = False
    conns = [(full.connection(), quick.connection()) for _ in range(2)]
    # Talks to a named dependency too: a request byte for byte a call of another dependency
    # is not that call's to answer.
    peers = [None, *sorted({c.peer.address for c in calls})]
    for request in requests:
        cf, cq = rng.choice(conns)
        peer = rng.choice(peers)
        a, b = full.match(request, cf, peer=peer), quick.match(request, cq, peer=peer)
        assert (a.position, a.score, a.reason, a.strategy) == (b.position, b.score, b.reason, b.strategy)
        if not a.matched:
            assert a.near_misses == b.near_misses
        assert (cf.last, cf.identity_counts, cf.last_identity, cf.matches) == (cq.last, cq.identity_counts, cq.last_identity, cq.matches)
        assert (full.outs_last, full.use_counts) == (quick.outs_last, quick.use_counts)


class _CountingScanner:
    """The session's own scanner, counting the recorded calls it reads."""

    def __init__(self, inner):
        self.inner = inner
        self.read = 0

    def scan(self, chunks, positions):
        self.read += len(positions)
        return self.inner.scan(chunks, positions)


def test_chunk_not_explaining_a_match_skips_the_calls_that_cannot_change_it() -> None:
    """Chunk 0 of the live request is in one recorded call only: that call wins, and the others
    (which cannot score as much) are read only to name a match's near misses."""
    from factories import http_call

    body = b'{"items": [' + b", ".join(b'{"sku": "SKU%04d", "qty": %d}' % (i, i % 3) for i in range(40)) + b"]}"
    paths = ["/v1/orders/7", *(f"/v1/carts/{p}" for p in range(1, 10))]  # chunk 0 is the request line's start
    calls = [msgspec.structs.replace(c, request=c.request + body) for c in (http_call(p, p + 1, "POST", path, 200, b"{}") for p, path in enumerate(paths))]
    live = calls[0].request.replace(b'"qty": 1', b'"qty": 5', 1)
    strategy = matchers.get("chunk")
    full, quick = strategy.for_session(calls), strategy.for_session(calls)
    quick.explain_matches = False
    full._scanner, quick._scanner = _CountingScanner(full._scanner), _CountingScanner(quick._scanner)
    a, b = full.match(live, full.connection()), quick.match(live, quick.connection())
    assert (a.position, a.score, a.reason) == (b.position, b.score, b.reason) and a.position == 0
    assert len(a.near_misses) == 3 and b.near_misses == ()
    assert (full._scanner.read, quick._scanner.read) == (10, 1)
