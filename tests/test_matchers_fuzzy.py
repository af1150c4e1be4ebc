"""fuzzy (ours): protocol-aware normalisation, rapidfuzz similarity, used calls preferred last."""

from __future__ import annotations

import pytest
from matchers_fixtures import call, http, mysql_query, redis, session_calls

import matchers
from matchers.normalize import DEFAULT_VOLATILE_HEADERS, Normalizer, mask_volatile, mysql_handshake, normalize_sql

normalize = Normalizer()

# --- normalisation: HTTP ---------------------------------------------------------------------------


def test_http_keeps_method_path_sorted_query_stable_headers_and_body():
    n = normalize(
        http(
            "POST",
            "/v1/order?city=1&a=2&city=0",
            [("Host", "10.0.0.5:8000"), ("X-Request-Id", "r1"), ("Accept", "json"), ("Content-Type", "application/json")],
            b'{"b": 1, "a": [2, 3]}',
        )
    )
    assert n.protocol == "http" and n.kind == "POST" and not n.expect
    # Sorted by name, repeated names in their order; volatile headers gone; JSON keys sorted.
    assert n.detail == "POST /v1/order\n?a=2\n?city=1\n?city=0\naccept: json\ncontent-type: application/json\n\n" + '{"a":[2,3],"b":1}'


def test_http_drift_in_volatile_headers_and_query_order_normalises_away():
    recorded = http(
        "GET",
        "/v1/user?uid=42&fields=name",
        [
            ("Host", "10.0.0.5:8000"),
            ("Date", "Tue, 22 Jan 2019 10:28:33 GMT"),
            ("X-Request-Id", "3f1c2e3a-1b2c-4d5e-8f90-0123456789ab"),
            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("User-Agent", "svc/1.0"),
        ],
    )
    live = http(
        "GET",
        "/v1/user?fields=name&uid=42",
        [
            ("Host", "127.0.0.1:18000"),
            ("Date", "Sat, 13 Jul 2019 18:40:00 GMT"),
            ("X-Request-Id", "9e8d7c6b-1111-4222-8333-444455556666"),
            ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            ("User-Agent", "svc/1.1"),
        ],
    )
    assert normalize(recorded) == normalize(live)


def test_volatile_headers_are_configurable():
    a = http("GET", "/x", [("X-Sign", "abc")])
    b = http("GET", "/x", [("X-Sign", "def")])
    assert normalize(a).key != normalize(b).key
    custom = Normalizer(volatile_headers=DEFAULT_VOLATILE_HEADERS | {"X-Sign"})
    assert custom(a) == custom(b)


def test_http_form_body_sorted_and_expect_flag():
    n = normalize(http("POST", "/f", [("Content-Type", "application/x-www-form-urlencoded"), ("Expect", "100-continue")], b"b=2&a=1"))
    assert n.detail.endswith("\n\na=1&b=2")
    assert n.expect


def test_masking_of_ids_and_clocks():
    text = (
        "id=3f1c2e3a-1b2c-4d5e-8f90-0123456789ab at=2019-01-22T10:28:33.120Z day=20190122 d=2019-01-22 "
        "ts=1548160113 ms=1548160113000 sf=1087688471344082945 trace=0af7651916cd43dd8448eb211c80319c "
        "date=Tue, 22 Jan 2019 10:28:33 GMT keep=12345 word=deadbeefdeadbeef sku=SKU0012 x_1548160113"
    )
    assert mask_volatile(text) == (
        "id=<uuid> at=<time> day=<date> d=<date> ts=<num> ms=<num> sf=<num> trace=<hex> date=<time> keep=12345 word=deadbeefdeadbeef sku=SKU0012 x_<num>"
    )


# --- normalisation: Redis, MySQL, other -----------------------------------------------------------------


def test_redis_command_and_keys_values_in_detail():
    n = normalize(redis("set", "lock:order:1087688471344082945", "c9AUPRwJWvcxz7w0", "NX", "EX", "10"))
    assert (n.protocol, n.kind) == ("redis", "SET")
    assert n.key == "SET lock:order:<num>"
    assert n.detail == "SET lock:order:<num> c9AUPRwJWvcxz7w0 NX EX 10"


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (("MGET", "a", "b"), "MGET a b"),
        (("MSET", "a", "1", "b", "2"), "MSET a b"),
        (("HGET", "h", "f"), "HGET h f"),
        (("HSET", "h", "f1", "v1", "f2", "v2"), "HSET h f1 f2"),
        (("BLPOP", "q1", "q2", "5"), "BLPOP q1 q2"),
        (("EVALSHA", "abc", "2", "k1", "k2", "arg"), "EVALSHA abc k1 k2"),
        (("PING",), "PING"),
        (("EXPIRE", "k", "3600"), "EXPIRE k"),
    ],
)
def test_redis_key_positions(args, key):
    assert normalize(redis(*args)).key == key


def test_redis_pipeline_and_inline():
    n = normalize(redis("GET", "a") + redis("INCR", "b"))
    assert n.kind == "GET" and n.key == "GET a\nINCR b"
    assert normalize(b"PING\r\n").key == "PING"


def test_mysql_query_literals_masked_comments_dropped_lists_collapsed():
    sql = "SELECT /* trace */ id FROM t WHERE uid = 42 AND name = 'bob''s' AND id IN (1, 2, 3)  -- tail"
    n = normalize(mysql_query(sql))
    assert (n.protocol, n.kind) == ("mysql", "COM_QUERY SELECT")
    assert n.key == "SELECT id FROM t WHERE uid = ? AND name = ? AND id IN (?+)"
    assert n.detail == "SELECT id FROM t WHERE uid = 42 AND name = 'bob''s' AND id IN (1, 2, 3)"
    assert normalize_sql("INSERT INTO t VALUES (1, 'a'), (2, 'b')", mask_literals=True) == "INSERT INTO t VALUES (?+)"
    unmasked = Normalizer(mask_literals=False)(mysql_query(sql))
    assert unmasked.key == n.detail


def test_mysql_handshake_keeps_user_db_plugin_not_scramble():
    def handshake(scramble: bytes) -> bytes:
        caps = 0x0008 | 0x0200 | 0x8000 | 0x80000
        payload = caps.to_bytes(4, "little") + bytes(4) + b"\x21" + bytes(23) + b"app\x00"
        payload += bytes([len(scramble)]) + scramble + b"orders\x00mysql_native_password\x00"
        return len(payload).to_bytes(3, "little") + b"\x01" + payload

    a, b = handshake(b"\x01" * 20), handshake(b"\x99" * 20)
    assert mysql_handshake(a) == ("app", "orders", "mysql_native_password")
    assert normalize(a) == normalize(b)
    assert normalize(a).kind == "HANDSHAKE"


def test_other_bytes_are_latin1_text():
    n = normalize(b"\x80\x00hello 1548160113")
    assert (n.protocol, n.kind) == ("unknown", "")
    assert n.key == n.detail == "\x80\x00hello <num>"


# --- matching -----------------------------------------------------------------------------------------


def fuzzy(calls, **options):
    session = matchers.get("fuzzy", **options).for_session(calls)
    return session, session.connection()


def test_drifted_http_request_matches_with_similarity_1():
    recorded = http("GET", "/v1/user?uid=42&ts=1548160113", [("Host", "10.0.0.5:8000"), ("X-Request-Id", "a")])
    live = http("GET", "/v1/user?ts=1563000000&uid=42", [("Host", "10.0.0.5:18000"), ("X-Request-Id", "b")])
    other = http("GET", "/v1/user?uid=43&ts=1548160114", [("Host", "10.0.0.5:8000")])
    session, conn = fuzzy(session_calls(other, recorded))
    result = session.match(live, conn)
    assert result.position == 1 and result.score == 1.0
    assert result.near_misses[0].position == 0
    assert result.near_misses[0].reason.startswith("similarity 0.") and "below the winner's 1.00" in result.near_misses[0].reason


def test_a_different_kind_never_wins():
    get = http("GET", "/v1/order/7")
    session, conn = fuzzy(session_calls(http("POST", "/v1/order/7"), redis("GET", "x")))
    result = session.match(get, conn)
    assert not result.matched
    assert result.reason == "no recorded http call with method GET"
    reasons = {m.position: m.reason for m in result.near_misses}
    assert reasons[0] == "method POST differs from the request's GET"
    assert reasons[1] == "protocol redis differs from the request's http"


def test_expect_100_continue_must_agree():
    head = http("POST", "/upload", [("Expect", "100-continue")])
    session, conn = fuzzy(session_calls(http("POST", "/upload")))
    result = session.match(head, conn)
    assert not result.matched
    assert result.near_misses[0].reason == "Expect: 100-continue differs"


def test_threshold_defaults_to_0_8_and_is_inclusive():
    assert matchers.get("fuzzy").threshold == 0.8
    calls = session_calls(redis("GET", "user:42"))
    request = redis("GET", "user:43")
    session, conn = fuzzy(calls)
    score = session.scores(request)[0]
    assert score == pytest.approx(0.8)
    assert session.match(request, conn).matched
    strict, conn = fuzzy(calls, threshold=0.81)
    result = strict.match(request, conn)
    assert not result.matched
    assert result.reason == "best similarity 0.80 below threshold 0.81"
    assert result.near_misses[0].reason == "similarity 0.80 below threshold 0.81"
    assert conn.last == -1


def test_used_calls_are_preferred_last():
    # Two talks of the same shape; only volatile values differ.
    first = http("POST", "/v1/price", [("Host", "h")], b'{"sku":"S1","request_id":"3f1c2e3a-1b2c-4d5e-8f90-0123456789ab"}')
    second = http("POST", "/v1/price", [("Host", "h")], b'{"sku":"S1","request_id":"9e8d7c6b-1111-4222-8333-444455556666"}')
    live = http("POST", "/v1/price", [("Host", "h2")], b'{"sku":"S1","request_id":"0c0ffee0-5555-4666-8777-888899990000"}')
    session, _ = fuzzy(session_calls(first, second))
    assert session.match(live, session.connection()).position == 0
    result = session.match(live, session.connection())
    assert result.position == 1
    assert result.near_misses[0].position == 0
    assert result.near_misses[0].reason == "already used; an unused call scored as well"
    # Once both are used, the order rules decide again.
    assert session.match(live, session.connection()).position == 0


def test_byte_identical_call_wins_over_an_unused_equal_one():
    a = mysql_query("SELECT name FROM user WHERE uid = 42")
    b = mysql_query("SELECT name FROM user WHERE uid = 43")
    session, _ = fuzzy(session_calls(a, b))
    assert session.match(a, session.connection()).position == 0
    result = session.match(a, session.connection())  # 0 is used, 1 is not: identical still wins
    assert result.position == 0
    assert result.near_misses[0].reason == "tied on similarity; the winner is byte-identical to the request"


def test_values_break_ties_between_equal_keys():
    a = mysql_query("UPDATE user SET seen = '2019-01-22 10:00:00' WHERE uid = 42")
    b = mysql_query("UPDATE user SET seen = '2019-01-22 10:00:05' WHERE uid = 43")
    live = mysql_query("UPDATE user SET seen = '2019-07-13 18:40:00' WHERE uid = 43")
    session, conn = fuzzy(session_calls(a, b))
    # Keys mask every literal; details keep them (the clocks masked): uid = 43 decides.
    assert normalize(live).detail == "UPDATE user SET seen = '<time>' WHERE uid = 43"
    result = session.match(live, conn)
    assert result.position == 1 and result.score == 1.0
    assert result.near_misses[0].reason.startswith("tied on similarity; the winner's values are closer")


def test_ties_then_prefer_this_connections_recorded_connection_then_order():
    get = redis("GET", "config:1")
    calls = session_calls(call(get, fd=5), call(get, fd=6), call(redis("INCR", "n"), fd=6))
    session = matchers.get("fuzzy").for_session(calls)
    conn = session.connection()
    session.match(redis("INCR", "n"), conn)
    session.use_counts[:2] = [1, 1]  # both used: only connection affinity is left
    result = session.match(get, conn)
    assert result.position == 1
    assert result.near_misses[0].reason == "tied; the winner is on 10.0.0.9:80#6, the recorded connection this one matched last"


def test_state_over_a_long_lived_connection():
    get = http("GET", "/v1/config", [("Host", "h"), ("X-Request-Id", "a")])
    event = http("POST", "/v1/event", [("Host", "h")], b'{"at":1548160113000}')
    calls = session_calls(call(get, fd=4), call(event, fd=4), call(get, fd=4), call(event, fd=4))
    session = matchers.get("fuzzy").for_session(calls)
    conn = session.connection()
    live_get = http("GET", "/v1/config", [("Host", "h2"), ("X-Request-Id", "b")])
    live_event = http("POST", "/v1/event", [("Host", "h2")], b'{"at":1563000000000}')
    assert [session.match(r, conn).position for r in (live_get, live_event, live_get, live_event)] == [0, 1, 2, 3]
    assert session.missed() == []
    # All used: the first after the last match, else the first.
    assert session.match(live_get, conn).position == 0


# --- large sessions: calls normalised on demand, equal keys first ----------------------------------


def large(calls, **options):
    """A session matched as a large one is: nothing normalised up front, never "cheap enough"."""
    strategy = matchers.get("fuzzy", **options)
    return matchers.fuzzy.FuzzySessionMatcher(calls, strategy.threshold, strategy._normalizer, eager_bytes=0, full_scoring_budget_ns=0)


def test_large_session_normalises_only_the_calls_a_request_needs():
    calls = session_calls(
        http("GET", "/v1/user?uid=42", [("Host", "h"), ("X-Request-Id", "a")]),
        http("GET", "/v1/order?id=7", [("Host", "h")]),
        redis("GET", "user:42"),
        mysql_query("SELECT name FROM user WHERE uid = 42"),
    )
    session = large(calls)
    assert not session._ready  # nothing parsed before a request needs it
    result = session.match(http("GET", "/v1/user?uid=42", [("Host", "h2"), ("X-Request-Id", "b")]), session.connection())
    assert result.position == 0 and result.score == 1.0
    assert session._keys[1:] == [None, None, None]  # another path: another bucket, never normalised


def test_large_session_match_by_equal_key_lists_the_calls_it_tied_with():
    get = http("GET", "/v1/config", [("Host", "h"), ("X-Request-Id", "3f1c2e3a-1b2c-4d5e-8f90-0123456789ab")])
    other = http("GET", "/v1/configs", [("Host", "h")])
    live = http("GET", "/v1/config", [("Host", "h2"), ("X-Request-Id", "9e8d7c6b-1111-4222-8333-444455556666")])
    calls = session_calls(get, get, other)
    small = matchers.get("fuzzy").for_session(calls)
    result = small.match(live, small.connection())
    assert [m.position for m in result.near_misses] == [1, 2]  # every call scored
    session = large(calls)
    result = session.match(live, session.connection())
    assert (result.position, result.score) == (0, 1.0)
    # Only the call tied with the winner, with the reason a full scoring gives it.
    assert [(m.position, m.score, m.reason) for m in result.near_misses] == [(1, 1.0, "tied with the winner, which comes first")]


def test_large_session_without_an_equal_key_scores_the_calls_that_can_win():
    recorded = [mysql_query(f"SELECT name, mail FROM user WHERE uid = {n} AND city = 'c{n}'") for n in range(5)]
    session = large(session_calls(*recorded), mask_literals=False)
    reference = matchers.get("fuzzy", mask_literals=False).for_session(session_calls(*recorded))
    live = mysql_query("SELECT name, mail FROM user WHERE uid = 3 AND city = 'c9'")
    result, expected = session.match(live, session.connection()), reference.match(live, reference.connection())
    assert (result.position, result.score, result.reason) == (expected.position, expected.score, expected.reason) == (3, expected.score, expected.reason)
    assert result.score < 1.0 and result.near_misses == ()  # nothing tied with it


def test_large_session_request_matching_nothing_gets_the_near_misses_of_every_call():
    calls = session_calls(redis("GET", "user:42"), redis("GET", "order:7"), http("GET", "/x"))
    session = large(calls, threshold=0.95)
    small = matchers.get("fuzzy", threshold=0.95).for_session(calls)
    request = redis("GET", "user:43")
    result, expected = session.match(request, session.connection()), small.match(request, small.connection())
    assert not result.matched
    assert result.near_misses == expected.near_misses and result.near_misses[0].position == 0
