"""State every strategy shares: connections, carrying them across sessions, greetings, peers."""

from __future__ import annotations

import pytest
from matchers_fixtures import call, http, mysql_query, redis, session_calls

import matchers
from matchers import ConnectionState, MatcherError

STRATEGIES = ["chunk", "sim", "fuzzy"]
GREETING = b"N\x00\x00\x00\n5.7.16-log\x00"


@pytest.mark.parametrize("name", STRATEGIES)
def test_connection_starts_fresh(name):
    session = matchers.get(name).for_session(session_calls(redis("GET", "a")))
    conn = session.connection()
    assert (conn.last, conn.fresh, conn.identity_counts, conn.matches) == (-1, True, {}, 0)
    assert session.outs_last == -1


@pytest.mark.parametrize("name", STRATEGIES)
def test_a_connection_of_another_session_is_refused(name):
    strategy = matchers.get(name)
    calls = session_calls(redis("GET", "a"))
    first, second = strategy.for_session(calls), strategy.for_session(calls)
    with pytest.raises(MatcherError, match=r"another session's matcher; carry .* session_matcher.connection\(previous_state\)"):
        second.match(redis("GET", "a"), first.connection())
    with pytest.raises(MatcherError, match="expected a ConnectionState"):
        second.match(redis("GET", "a"), object())  # type: ignore[arg-type]
    with pytest.raises(MatcherError, match="cannot carry"):
        second.connection("conn-1")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", STRATEGIES)
def test_long_lived_connection_carried_to_the_next_session(name):
    """Consecutive sessions share a pooled connection: its state is carried, positions are not."""
    strategy = matchers.get(name)
    get = redis("GET", "config:city:1")
    incr = redis("INCR", "stat:orders")
    one = strategy.for_session(session_calls(call(get, fd=9), call(incr, fd=9)))
    conn = one.connection()
    assert [one.match(r, conn).position for r in (get, incr)] == [0, 1]
    assert conn.last == 1

    # The next session recorded the same pooled connection (same identity), no greeting.
    two = strategy.for_session(session_calls(call(incr, fd=12), call(get, fd=9), call(get, fd=12)))
    carried = two.connection(conn)
    assert carried is not conn
    assert carried.last == -1  # positions index another session's calls
    assert carried.identity_counts == {"10.0.0.9:80#9": 2}
    assert carried.matches == 2
    # The old state is left alone, and cannot be used with the new session.
    assert conn.last == 1
    with pytest.raises(MatcherError):
        two.match(get, conn)
    if name == "chunk":
        assert two.match(get, carried).position == 1  # the first tie after outs_last = -1
    else:
        # sim (Koala's identity rule) and fuzzy (connection affinity) keep answering from
        # the recorded connection this live one was: fd 9.
        fresh_elsewhere = two.connection()
        two.match(incr, fresh_elsewhere)  # outs_last = 0
        two.use_counts[2] = 0
        assert two.match(get, carried).position == 1


@pytest.mark.parametrize("name", STRATEGIES)
def test_greeting_is_the_recorded_empty_request_for_the_peer(name):
    calls = session_calls(
        call(b"", GREETING, ip="10.0.0.7", port=3306, fd=9),
        call(mysql_query("SELECT 1"), ip="10.0.0.7", port=3306, fd=9),
        call(b"", b"+greeting-of-another-peer", ip="10.0.0.8", port=3307, fd=11),
    )
    session = matchers.get(name).for_session(calls)
    conn = session.connection()
    result = session.greeting(conn, peer="10.0.0.7:3306")
    assert result.position == 0 and result.call.response == GREETING
    assert result.score == 1.0 and result.reason == "recorded greeting"
    assert conn.last == 0 and session.outs_last == 0
    # The connection has matched: the query is searched after the greeting.
    assert session.match(mysql_query("SELECT 1"), conn).position == 1
    other = session.connection()
    assert session.greeting(other, peer="10.0.0.8:3307").position == 2

    none = session.connection()
    result = session.greeting(none, peer="10.0.0.5:8000")
    assert not result.matched
    assert result.reason == "no greeting recorded for peer 10.0.0.5:8000"
    assert none.last == -1


@pytest.mark.parametrize("name", STRATEGIES)
def test_greetings_of_several_connections_follow_the_session(name):
    calls = session_calls(
        call(b"", GREETING + b"1", port=3306, fd=9),
        call(mysql_query("SELECT 1"), port=3306, fd=9),
        call(b"", GREETING + b"2", port=3306, fd=10),
        call(mysql_query("SELECT 2"), port=3306, fd=10),
    )
    session = matchers.get(name).for_session(calls)
    first, second = session.connection(), session.connection()
    assert session.greeting(first).position == 0
    assert session.match(mysql_query("SELECT 1"), first).position == 1
    result = session.greeting(second)  # the first greeting after outs_last = 1
    assert result.position == 2
    assert result.near_misses[0].position == 0
    assert session.match(mysql_query("SELECT 2"), second).position == 3
    assert session.missed() == []


def test_fuzzy_greeting_prefers_an_unused_one():
    calls = session_calls(call(b"", GREETING + b"1", fd=9), call(b"", GREETING + b"2", fd=10))
    session = matchers.get("fuzzy").for_session(calls)
    assert session.greeting(session.connection()).position == 0
    result = session.greeting(session.connection())
    assert result.position == 1
    assert result.near_misses[0].reason == "already used; an unused call scored as well"


@pytest.mark.parametrize("name", STRATEGIES)
def test_empty_request_is_not_matched(name):
    session = matchers.get(name).for_session(session_calls(call(b"", GREETING), redis("GET", "a")))
    result = session.match(b"", session.connection())
    assert not result.matched
    assert result.reason == "empty request: use greeting() for a peer that speaks first"


@pytest.mark.parametrize("name", STRATEGIES)
def test_session_without_calls(name):
    session = matchers.get(name).for_session([])
    conn = session.connection()
    result = session.match(redis("GET", "a"), conn)
    assert not result.matched and result.reason == "no recorded call with a request in the session"
    assert not session.greeting(conn).matched
    assert session.missed() == []


@pytest.mark.parametrize("name", STRATEGIES)
def test_missed_lists_recorded_calls_never_used(name):
    get, post = http("GET", "/a"), http("POST", "/b", body=b"{}")
    session = matchers.get(name).for_session(session_calls(get, post, redis("DEL", "k")))
    session.match(get, session.connection())
    assert session.missed() == [1, 2]
    assert session.use_counts == [1, 0, 0]


@pytest.mark.parametrize("name", STRATEGIES)
def test_result_shape(name):
    calls = session_calls(redis("GET", "user:42"), redis("GET", "user:42") + redis("PING"), redis("SET", "k", "v"))
    session = matchers.get(name).for_session(calls)
    result = session.match(redis("GET", "user:42"), session.connection())
    assert result.matched and result.position == 0 and result.call is calls[0]
    assert result.strategy == name
    assert 0 < len(result.near_misses) <= 3
    for miss in result.near_misses:
        assert miss.position != 0
        assert miss.action_index == calls[miss.position].action_index
        assert 0 < miss.score and miss.reason
    scores = [m.score for m in result.near_misses]
    assert scores == sorted(scores, reverse=True)


def test_connection_state_is_plain_data():
    state = ConnectionState(owner=1)
    assert state.fresh
    state.last = 3
    assert not state.fresh
