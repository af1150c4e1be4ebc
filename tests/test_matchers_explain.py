"""A matcher told not to explain matches (the replay mock: it reports only unmatched talks'
near misses) decides exactly as one that does: same winner, score, reason and state."""

from __future__ import annotations

import random

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
    for request in requests:
        cf, cq = rng.choice(conns)
        a, b = full.match(request, cf), quick.match(request, cq)
        assert (a.position, a.score, a.reason, a.strategy) == (b.position, b.score, b.reason, b.strategy)
        if not a.matched:
            assert a.near_misses == b.near_misses
        assert (cf.last, cf.identity_counts, cf.last_identity, cf.matches) == (cq.last, cq.identity_counts, cq.last_identity, cq.matches)
        assert (full.outs_last, full.use_counts) == (quick.outs_last, quick.use_counts)
