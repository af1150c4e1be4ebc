"""The example Koala session of ../shared/examples, replayed through every strategy.

`example_path` (tests/conftest.py) is the repo's copy in examples/sessions/.
"""

from __future__ import annotations

import pytest
from matchers_fixtures import http, mysql_query, redis

import matchers
from koala_store.formats import koala

STRATEGIES = ["chunk", "sim", "fuzzy"]


@pytest.fixture
def session(example_path):
    (recorded,) = koala.loads(example_path.read_bytes())
    return recorded


def test_example_has_a_greeting_a_query_and_a_redis_get(session):
    calls = session.outbound_calls
    assert [c.action_index for c in calls] == [1, 2, 3]
    assert calls[0].request == b""
    assert calls[1].request == mysql_query("SELECT name FROM user WHERE uid=42")
    assert calls[2].request == redis("GET", "user:42")


@pytest.mark.parametrize("use_peer", [False, True])
@pytest.mark.parametrize("name", STRATEGIES)
def test_replaying_the_example(session, name, use_peer):
    calls = session.outbound_calls
    matcher = matchers.get(name).for_session(calls)
    mysql_conn, redis_conn = matcher.connection(), matcher.connection()
    mysql_peer = "10.0.0.7:3306" if use_peer else None
    redis_peer = "10.0.0.8:6379" if use_peer else None

    # The MySQL client waits for the server's greeting first.
    greeting = matcher.greeting(mysql_conn, peer=mysql_peer)
    assert greeting.call.action_index == 1
    assert greeting.call.response.startswith(b"N\x00\x00\x00\n5.7.16-log")

    query = matcher.match(mysql_query("SELECT name FROM user WHERE uid=42"), mysql_conn, peer=mysql_peer)
    assert query.call.action_index == 2
    assert query.call.response == b"\x07\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00"

    get = matcher.match(redis("GET", "user:42"), redis_conn, peer=redis_peer)
    assert get.call.action_index == 3
    assert get.call.response == b"$5\r\nalice\r\n"

    assert matcher.missed() == []
    assert (mysql_conn.last, redis_conn.last, matcher.outs_last) == (1, 2, 2)
    assert mysql_conn.identity_counts == {"10.0.0.7:3306#9": 2}

    # A call the recording never saw is reported, not answered.
    unknown = matcher.match(http("POST", "/v1/pay", [("Host", "10.0.0.9:8080")], b'{"uid":42}'), matcher.connection())
    assert not unknown.matched
    assert unknown.strategy == name
    assert unknown.reason


def test_fuzzy_answers_the_example_despite_drift(session):
    matcher = matchers.get("fuzzy").for_session(session.outbound_calls)
    conn = matcher.connection()
    matcher.greeting(conn)
    drifted = mysql_query("SELECT  name\n FROM user WHERE uid=42 /* request 7f3c */")
    result = matcher.match(drifted, conn)
    assert result.call.action_index == 2 and result.score == 1.0
    other_user = matcher.match(mysql_query("SELECT name FROM user WHERE uid=43"), matcher.connection())
    # Literals are masked in the key: same statement, so it matches with score 1.0 ...
    assert other_user.call.action_index == 2 and other_user.score == 1.0
    # ... unless literal masking is off.
    strict = matchers.get("fuzzy", mask_literals=False).for_session(session.outbound_calls)
    result = strict.match(mysql_query("SELECT name FROM user WHERE uid=43"), strict.connection())
    assert result.score < 1.0
