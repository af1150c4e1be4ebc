"""Property tests: identical requests always match; unmatched ones never return a call."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from matchers_fixtures import http, mysql_query, redis, session_calls

import matchers

STRATEGIES = ["chunk", "sim", "fuzzy"]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12)
http_requests = st.builds(
    lambda method, path, query, body: http(method, "/" + "/".join(path) + ("?" + "&".join(query) if query else ""), [("Host", "h:80")], body),
    st.sampled_from(["GET", "POST", "PUT"]),
    st.lists(words, min_size=1, max_size=4),
    st.lists(st.builds(lambda k, v: f"{k}={v}", words, words), max_size=4),
    st.binary(max_size=300),
)
redis_requests = st.lists(words, min_size=1, max_size=4).map(lambda args: redis("GET", *args))
sql_requests = st.builds(lambda col, n: mysql_query(f"SELECT {col} FROM t WHERE id = {n}"), words, st.integers(0, 10**12))
requests = st.one_of(st.binary(min_size=1, max_size=400), http_requests, redis_requests, sql_requests)


def replay_some(session, data, recorded, conns):
    """Random earlier traffic: recorded requests, mutated ones and junk, on random connections."""
    for _ in range(data.draw(st.integers(0, 6), label="earlier calls")):
        kind = data.draw(st.sampled_from(["recorded", "junk"]))
        if kind == "recorded":
            request = recorded[data.draw(st.integers(0, len(recorded) - 1))]
        else:
            request = data.draw(st.binary(min_size=1, max_size=80))
        session.match(request, conns[data.draw(st.integers(0, len(conns) - 1))])


@SETTINGS
@given(name=st.sampled_from(STRATEGIES), recorded=st.lists(requests, min_size=1, max_size=8), data=st.data())
def test_request_identical_to_a_recorded_call_always_matches(name, recorded, data):
    session = matchers.get(name).for_session(session_calls(*recorded))
    conns = [session.connection() for _ in range(3)]
    replay_some(session, data, recorded, conns)
    target = data.draw(st.integers(0, len(recorded) - 1), label="target")
    request = recorded[target]

    fresh = session.connection()
    conn = data.draw(st.sampled_from([*conns, fresh]), label="connection")
    result = session.match(request, conn)
    assert result.matched, result.reason
    assert conn.last == result.position
    if name == "fuzzy":
        # Ours answers with the identical call itself (or a byte-identical twin).
        assert result.call.request == request
        assert result.score == 1.0
    elif name == "sim":
        assert result.score == pytest.approx(1.0)
    elif conn is fresh:
        # chunk: the identical call scores the most any call can, (2n - 1) / n; Koala's tie
        # rules may prefer another call holding every chunk in order.
        n = len(matchers.chunk.cut_chunks(request))
        assert result.score == pytest.approx((2 * n - 1) / n)


lower = st.text(alphabet="abcdefghijklm ,;:", min_size=1, max_size=300).map(str.encode)
upper = st.text(alphabet="NOPQRSTUVWXYZ#@!", min_size=1, max_size=300).map(str.encode)


@SETTINGS
@given(name=st.sampled_from(STRATEGIES), recorded=st.lists(lower, min_size=1, max_size=8), live=upper, data=st.data())
def test_request_sharing_nothing_with_the_recording_never_returns_a_call(name, recorded, live, data):
    session = matchers.get(name).for_session(session_calls(*recorded))
    conns = [session.connection() for _ in range(2)]
    replay_some(session, data, recorded, conns)
    conn = data.draw(st.sampled_from(conns))
    result = session.match(live, conn)
    assert not result.matched
    assert result.call is None and result.position is None
    assert result.score == 0
    assert result.near_misses == ()
    assert conn.last == -1


@SETTINGS
@given(
    name=st.sampled_from(STRATEGIES),
    recorded=st.lists(requests, min_size=1, max_size=6),
    data=st.data(),
)
def test_state_invariants_over_a_sequence_of_calls(name, recorded, data):
    strategy = matchers.get(name)
    session = strategy.for_session(session_calls(*recorded))
    conns = [session.connection() for _ in range(3)]
    matched: list[int] = []
    for _ in range(data.draw(st.integers(1, 12), label="calls")):
        base = recorded[data.draw(st.integers(0, len(recorded) - 1))]
        edits = data.draw(st.lists(st.tuples(st.integers(0, len(base) - 1), st.integers(0, 255)), max_size=4))
        request = bytearray(base)
        for at, byte in edits:
            request[at] = byte
        conn = data.draw(st.sampled_from(conns))
        result = session.match(bytes(request), conn)

        assert len(result.near_misses) <= 3
        assert [m.score for m in result.near_misses] == sorted((m.score for m in result.near_misses), reverse=True)
        assert all(m.position != result.position and m.score > 0 and m.reason for m in result.near_misses)
        if result.matched:
            assert result.call is session.calls[result.position]
            assert conn.last == result.position
            matched.append(result.position)
            if name == "chunk":
                assert result.score >= 0.1
            else:
                assert result.score >= strategy.threshold
        else:
            assert result.call is None and result.position is None
            assert conn.last == -1
            if name != "chunk":
                assert result.score < strategy.threshold or result.score == 0
        assert session.outs_last == max(matched, default=-1)
        assert sum(session.use_counts) == len(matched)
