"""koala_store.diff on side effects: recorded outbound calls against the talks a replay made.

Talks are produced the way the replay runner produces them: the real matchers answer each
live request on a per-peer connection (greetings through `greeting()`), so every MatchResult
here is one a strategy really returned."""

from __future__ import annotations

import orjson
import pytest
from factories import BASE_NS, http_request, http_response, mysql_query, mysql_select, redis_get, redis_set, resp_command

import matchers
from koala_store import diff
from koala_store.diff import Talk, compare_outbound, options_from_cli
from koala_store.formats import koala
from koala_store.model import CallOutbound, Peer

AT = BASE_NS
REDIS = "10.0.0.8:6379"
MYSQL = "10.0.0.7:3306"
HTTP = "10.0.0.9:8080"


def replay(recorded: list[CallOutbound], live: list[tuple[str, bytes]], strategy: str = "chunk", **options) -> list[Talk]:
    """Match live (peer, request) talks in order, one live connection per peer."""
    session = matchers.get(strategy, **options).for_session(recorded)
    conns: dict[str, matchers.ConnectionState] = {}
    talks = []
    for peer, request in live:
        if peer not in conns:
            conns[peer] = session.connection()
        conn = conns[peer]
        result = session.match(request, conn, peer=peer) if request else session.greeting(conn, peer=peer)
        talks.append(Talk(peer=peer, connection=list(conns).index(peer), request=request, match=result))
    return talks


def http_post(index: int, target: str, body: dict, extra: str = "", response: bytes = b'{"errno":0}') -> CallOutbound:
    return CallOutbound(
        index,
        AT + index,
        request=http_request("POST", target, orjson.dumps(body), host=HTTP, extra=extra),
        response=http_response(200, response),
        peer=Peer("10.0.0.9", 8080),
        socket_fd=13,
    )


def same_calls(recorded: list[CallOutbound]) -> list[tuple[str, bytes]]:
    return [(c.peer.address, c.request) for c in recorded]


def summary(report: diff.OutboundReport) -> list[tuple[str, str]]:
    return [(d.path, d.kind) for d in report.differences]


# --- a faithful replay -------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["chunk", "sim", "fuzzy"])
def test_the_example_session_replayed_faithfully_has_no_side_effect_differences(example_bytes, strategy):
    (session,) = koala.loads(example_bytes)
    recorded = session.outbound_calls
    # The MySQL client waits for the greeting, then queries; then Redis.
    talks = replay(recorded, [(MYSQL, b""), (MYSQL, recorded[1].request), (REDIS, recorded[2].request)], strategy)
    report = compare_outbound(recorded, talks)
    assert report.differences == []
    assert (report.matched, report.unmatched, report.missed, report.reordered, report.request_changed) == (3, 0, 0, 0, 0)
    assert report.talks[0].greeting and report.talks[0].action_index == 1  # the greeting counts as used
    assert [t.action_index for t in report.talks] == [1, 2, 3]
    assert report.talks[1].strategy == strategy and report.talks[1].score > 0


def test_a_recorded_greeting_never_asked_for_is_not_a_side_effect(example_bytes):
    # The session opened the connection when recorded; at replay a pooled connection may
    # already be open, so its set-up is not made again: that is no difference.
    (session,) = koala.loads(example_bytes)
    recorded = session.outbound_calls
    talks = replay(recorded, [(MYSQL, recorded[1].request), (REDIS, recorded[2].request)])
    report = compare_outbound(recorded, talks)
    assert report.differences == [] and report.missed == 0 and report.matched == 2


# --- unmatched, missed, repeated, reordered ----------------------------------------------


def order_calls() -> list[CallOutbound]:
    return [
        mysql_select(1, AT + 1, b"SELECT name, tier FROM user WHERE uid=42"),
        redis_get(2, AT + 2, b"user:42:profile", b'{"name":"alice"}'),
        redis_get(3, AT + 3, b"user:42:cart", b"[1,2]"),
        redis_set(4, AT + 4, b"user:42:tier", b"gold"),
    ]


def test_a_call_that_matches_nothing_is_unmatched_with_its_near_misses():
    recorded = order_calls()
    live = [*same_calls(recorded), (REDIS, resp_command(b"GET", b"user:42:coupons:2025-11-22:region"))]
    report = compare_outbound(recorded, replay(recorded, live, "fuzzy"))
    assert summary(report) == [("outbound.unmatched[4]", "unmatched_call")]
    (talk,) = report.unmatched_talks
    assert talk.peer == REDIS and talk.protocol == "redis" and "user:42:coupons" in talk.request
    assert talk.near_misses and talk.near_misses[0].action_index in (2, 3, 4)
    assert "closest outbound[" in report.differences[0].note
    assert report.unmatched == 1 and report.matched == 4


def test_a_recorded_call_never_made_is_missed():
    recorded = order_calls()
    report = compare_outbound(recorded, replay(recorded, same_calls(recorded)[:3]))
    assert summary(report) == [("outbound[4]", "missing_call")]
    (missed,) = report.missed_calls
    assert (missed.action_index, missed.peer, missed.protocol) == (4, REDIS, "redis")
    assert "SET" in missed.request and "user:42:tier" in missed.request
    assert report.differences[0].expected == missed.request


def test_a_write_made_twice_is_repeated():
    recorded = order_calls()
    report = compare_outbound(recorded, replay(recorded, [*same_calls(recorded), (REDIS, recorded[3].request)]))
    assert summary(report) == [("outbound[4]", "repeated_call")]
    assert report.repeated_calls[0].talks == [3, 4]
    assert (report.differences[0].expected, report.differences[0].actual) == (1, 2)


def test_calls_made_out_of_recorded_order_on_one_peer_are_reordered():
    recorded = order_calls()
    # Recorded: profile (2) then cart (3) on Redis; the new build asks for the cart first.
    live = [same_calls(recorded)[0], (REDIS, recorded[2].request), (REDIS, recorded[1].request), (REDIS, recorded[3].request)]
    report = compare_outbound(recorded, replay(recorded, live))
    assert summary(report) == [("outbound[2]", "reordered")]
    (entry,) = report.reordered_calls
    assert (entry.recorded_order, entry.replayed_order) == ([2, 3], [3, 2])
    assert report.talks[2].reordered and not report.talks[1].reordered


def test_interleaving_across_peers_is_not_reordering():
    recorded = order_calls()
    live = [same_calls(recorded)[1], same_calls(recorded)[0], *same_calls(recorded)[2:]]  # Redis before MySQL
    assert compare_outbound(recorded, replay(recorded, live)).differences == []


def test_identical_recorded_calls_are_attributed_in_order():
    # The same GET twice in the recording: whichever one the matcher picks, neither is
    # missed, repeated or reordered when the replay makes it twice.
    recorded = [redis_get(1, AT + 1, b"config:flags", b"on"), redis_get(2, AT + 2, b"config:flags", b"on")]
    talks = replay(recorded, same_calls(recorded), "sim")
    report = compare_outbound(recorded, talks)
    assert report.differences == []
    assert [t.action_index for t in report.talks] == [1, 2]


# --- meaningful request changes -----------------------------------------------------------


def test_a_redis_write_with_another_value_is_a_request_change():
    recorded = [redis_get(1, AT + 1, b"user:42", b"alice"), redis_set(2, AT + 2, b"user:42", b"alice")]
    live = [same_calls(recorded)[0], (REDIS, resp_command(b"SET", b"user:42", b"bob"))]
    report = compare_outbound(recorded, replay(recorded, live))
    (d,) = report.differences
    assert (d.path, d.kind, d.expected, d.actual) == ("outbound[2].request.args[2]", "changed", "alice", "bob")
    (change,) = report.request_changes
    assert (change.action_index, change.protocol, change.peer) == (2, "redis", REDIS)
    assert report.request_changed == 1 and report.talks[1].request_changed


def test_redis_command_case_and_timestamps_within_the_window_are_not_changes():
    recorded = [CallOutbound(1, AT, request=resp_command(b"ZADD", b"seen:42", b"1763780400", b"item:7"), response=b":1\r\n", peer=Peer("10.0.0.8", 6379))]
    live = [(REDIS, resp_command(b"zadd", b"seen:42", b"1763780455", b"item:7"))]
    assert compare_outbound(recorded, replay(recorded, live)).differences == []
    live = [(REDIS, resp_command(b"ZADD", b"seen:42", b"1763780455", b"item:8"))]
    assert summary(compare_outbound(recorded, replay(recorded, live))) == [("outbound[1].request.args[3]", "changed")]


def test_a_redis_json_value_is_diffed_as_json():
    recorded = [redis_set(1, AT, b"user:42", b'{"name":"alice","tier":"gold","seen":1763780400}')]
    live = [(REDIS, resp_command(b"SET", b"user:42", b'{"seen":1763780410,"tier":"silver","name":"alice"}'))]
    (d,) = compare_outbound(recorded, replay(recorded, live)).differences
    assert (d.path, d.expected, d.actual) == ("outbound[1].request.args[2].tier", "gold", "silver")


def test_an_http_body_change_is_a_request_change_but_volatile_parts_are_not():
    recorded = [
        http_post(
            1, "/v1/pay?uid=42&city=1", {"uid": 42, "amount": 10, "ts": 1763780400}, extra="X-Request-Id: r1\r\nUser-Agent: svc/1.0\r\nX-Tenant: didi\r\n"
        )
    ]
    # Same meaning: query in another order, new request id and user agent, timestamp in window.
    same = http_request(
        "POST",
        "/v1/pay?city=1&uid=42",
        orjson.dumps({"ts": 1763780430, "amount": 10, "uid": 42}),
        host=HTTP,
        extra="X-Request-Id: r2\r\nUser-Agent: svc/2.0\r\nX-Tenant: didi\r\n",
    )
    assert compare_outbound(recorded, replay(recorded, [(HTTP, same)])).differences == []
    changed = http_request("POST", "/v1/pay?city=2&uid=42", orjson.dumps({"uid": 42, "amount": 12, "ts": 1763780400}), host=HTTP, extra="X-Tenant: kuaidi\r\n")
    report = compare_outbound(recorded, replay(recorded, [(HTTP, changed)]))
    # In request order: method, path, query, headers, body.
    assert [(d.path, d.expected, d.actual) for d in report.differences] == [
        ("outbound[1].request.query.city", "1", "2"),
        ("outbound[1].request.headers.x-tenant", "didi", "kuaidi"),
        ("outbound[1].request.body.amount", 10, 12),
    ]
    assert report.request_changes[0].protocol == "http"


def test_redis_pipelines_compare_command_by_command():
    recorded = [
        CallOutbound(
            1,
            AT,
            request=resp_command(b"MULTI") + resp_command(b"SET", b"stock:7", b"3") + resp_command(b"EXEC"),
            response=b"+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n",
            peer=Peer("10.0.0.8", 6379),
        )
    ]
    live = [(REDIS, resp_command(b"MULTI") + resp_command(b"SET", b"stock:7", b"2") + resp_command(b"EXEC"))]
    (d,) = compare_outbound(recorded, replay(recorded, live)).differences
    assert (d.path, d.expected, d.actual) == ("outbound[1].request.commands[1].args[2]", "3", "2")
    live = [(REDIS, resp_command(b"MULTI") + resp_command(b"SET", b"stock:7", b"3") + resp_command(b"EXPIRE", b"stock:7", b"60") + resp_command(b"EXEC"))]
    (d,) = compare_outbound(recorded, replay(recorded, live)).differences
    assert (d.path, d.kind, d.actual) == ("outbound[1].request.commands[2]", "added", "EXPIRE stock:7 60")


def test_form_bodies_compare_field_by_field():
    form = "application/x-www-form-urlencoded"
    recorded = [CallOutbound(1, AT, request=_form(b"uid=42&amount=10&sign=ab12"), response=http_response(200, b"{}"), peer=Peer("10.0.0.9", 8080))]
    live = [(HTTP, _form(b"sign=cd34&amount=12&uid=42"))]
    report = compare_outbound(recorded, replay(recorded, live, "fuzzy"), options_from_cli(["sign"]))
    assert [(d.path, d.expected, d.actual) for d in report.differences] == [("outbound[1].request.body.amount", "10", "12")]
    assert form in recorded[0].request.decode()


def _form(body: bytes) -> bytes:
    head = f"POST /v1/pay HTTP/1.1\r\nHost: {HTTP}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def test_http_method_and_path_changes():
    recorded = [CallOutbound(1, AT, request=http_request("GET", "/v1/user/42", host=HTTP), response=http_response(200, b"{}"), peer=Peer("10.0.0.9", 8080))]
    live = [(HTTP, http_request("DELETE", "/v1/user/42", host=HTTP))]
    report = compare_outbound(recorded, replay(recorded, live, "chunk"))
    assert [(d.path, d.expected, d.actual) for d in report.differences] == [("outbound[1].request.method", "GET", "DELETE")]
    live = [(HTTP, http_request("GET", "/v2/user/42", host=HTTP))]
    report = compare_outbound(recorded, replay(recorded, live, "chunk"))
    assert [(d.path, d.expected, d.actual) for d in report.differences] == [("outbound[1].request.path", "/v1/user/42", "/v2/user/42")]


def test_a_sql_write_with_another_literal_is_a_request_change():
    recorded = [mysql_select(1, AT, b"UPDATE user SET name='bob', seen=1763780400 WHERE uid=42")]
    live = [(MYSQL, mysql_query(b"UPDATE user SET name='carol', seen=1763780400 WHERE uid=42"))]
    (d,) = compare_outbound(recorded, replay(recorded, live)).differences
    assert (d.path, d.kind, d.expected, d.actual) == ("outbound[1].request.sql.literals[0]", "changed", "bob", "carol")
    assert "UPDATE user SET name='carol'" in d.note


def test_sql_comments_whitespace_and_timestamps_in_the_window_are_not_changes():
    recorded = [mysql_select(1, AT, b"/* trace=ab12 */ UPDATE user SET seen=1763780400, at='2025-11-22 03:00:00' WHERE uid=42")]
    live = [(MYSQL, mysql_query(b"/* trace=cd34 */ UPDATE user\n  SET seen=1763780460, at='2025-11-22 03:01:00'  WHERE uid=42"))]
    assert compare_outbound(recorded, replay(recorded, live, "fuzzy")).differences == []


def test_a_different_sql_statement_is_one_difference_at_sql():
    recorded = [mysql_select(1, AT, b"SELECT name FROM user WHERE uid IN (1, 2, 3)")]
    live = [(MYSQL, mysql_query(b"SELECT name FROM user WHERE uid IN (1, 2)"))]
    (d,) = compare_outbound(recorded, replay(recorded, live)).differences
    assert (d.path, d.expected, d.actual) == (
        "outbound[1].request.sql",
        "SELECT name FROM user WHERE uid IN (1, 2, 3)",
        "SELECT name FROM user WHERE uid IN (1, 2)",
    )


def handshake(user: bytes, db: bytes, attrs: bytes) -> bytes:
    caps = 0x8 | 0x200 | 0x8000 | 0x80000 | 0x100000  # CONNECT_WITH_DB, PROTOCOL_41, SECURE_CONNECTION, PLUGIN_AUTH, CONNECT_ATTRS
    scramble = bytes(range(20))
    payload = caps.to_bytes(4, "little") + (16 << 20).to_bytes(4, "little") + b"\x21" + bytes(23)
    payload += user + b"\0" + bytes([len(scramble)]) + scramble + db + b"\0" + b"mysql_native_password\0" + bytes([len(attrs)]) + attrs
    return len(payload).to_bytes(3, "little") + b"\x01" + payload


def test_mysql_handshake_compares_user_and_database_not_connection_attributes():
    recorded = [
        CallOutbound(
            1,
            AT,
            request=handshake(b"app", b"orders", b"\x04_pid\x041234"),
            response=b"\x07\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00",
            peer=Peer("10.0.0.7", 3306),
        )
    ]
    report = compare_outbound(recorded, replay(recorded, [(MYSQL, handshake(b"app", b"orders", b"\x04_pid\x045678"))]))
    assert report.differences == [] and report.matched == 1
    report = compare_outbound(recorded, replay(recorded, [(MYSQL, handshake(b"app", b"orders_v2", b"\x04_pid\x045678"))]))
    assert summary(report) == [("outbound[1].request.database", "changed")]


def test_unknown_protocols_compare_as_bytes():
    recorded = [CallOutbound(1, AT, request=b"\x00\x00\x00\x10THRIFT-ping-0001", response=b"\x00\x01", peer=Peer("10.0.0.6", 9090))]
    talks = replay(recorded, [("10.0.0.6:9090", b"\x00\x00\x00\x10THRIFT-ping-0002")])
    (d,) = compare_outbound(recorded, talks).differences
    assert d.path == "outbound[1].request" and d.expected.endswith("0001") and d.actual.endswith("0002")


# --- ignore rules reach side effects ---------------------------------------------------------


def test_ignore_rules_apply_to_outbound_paths_and_counts():
    recorded = order_calls()
    live = [same_calls(recorded)[0], (REDIS, recorded[2].request), (REDIS, recorded[1].request), (REDIS, resp_command(b"SET", b"user:42:tier", b"platinum"))]
    report = compare_outbound(recorded, replay(recorded, live))
    assert summary(report) == [("outbound[2]", "reordered"), ("outbound[4].request.args[2]", "changed")]
    quiet = compare_outbound(recorded, replay(recorded, live), options_from_cli(["outbound[*].request.args[2]", r"re:outbound\[2\]"]))
    assert quiet.differences == [] and quiet.reordered == 0 and quiet.request_changed == 0
    assert len(quiet.talks) == 4  # the facts stay


def test_a_bare_key_reaches_outbound_json_bodies_and_query_parameters():
    recorded = [http_post(1, "/v1/pay?nonce=1", {"uid": 42, "nonce": "a"})]
    live = [(HTTP, http_request("POST", "/v1/pay?nonce=2", orjson.dumps({"uid": 42, "nonce": "b"}), host=HTTP))]
    assert len(compare_outbound(recorded, replay(recorded, live)).differences) == 2
    assert compare_outbound(recorded, replay(recorded, live), options_from_cli(["nonce"])).differences == []


def test_the_report_encodes_to_json():
    recorded = order_calls()
    report = compare_outbound(recorded, replay(recorded, same_calls(recorded)[:2] + [(REDIS, resp_command(b"SET", b"user:42:tier", b"x"))]))
    import msgspec

    data = msgspec.json.decode(msgspec.json.encode(report))
    assert data["missed"] == 1 and data["differences"][0]["path"] == "outbound[3]"


# --- noise between two replays (compare_talks) ---------------------------------------------


def test_compare_talks_finds_what_varies_between_runs_and_suppression_keeps_the_rest():
    recorded = [redis_set(1, AT + 1, b"session:42", b"token-aaaa"), redis_set(2, AT + 2, b"user:42:tier", b"gold")]
    run1 = replay(recorded, [(REDIS, resp_command(b"SET", b"session:42", b"token-bbbb")), (REDIS, resp_command(b"SET", b"user:42:tier", b"platinum"))])
    run2 = replay(recorded, [(REDIS, resp_command(b"SET", b"session:42", b"token-cccc")), (REDIS, resp_command(b"SET", b"user:42:tier", b"platinum"))])
    primary = compare_outbound(recorded, run1)
    assert summary(primary) == [("outbound[1].request.args[2]", "changed"), ("outbound[2].request.args[2]", "changed")]
    among = diff.compare_talks(recorded, run1, run2)
    assert [d.path for d in among] == ["outbound[1].request.args[2]"]  # the token varies, the tier does not
    kept, suppressed = diff.suppress_repeated(primary.differences, [among])
    assert [d.path for d in kept] == ["outbound[2].request.args[2]"]
    assert [d.path for d in suppressed] == ["outbound[1].request.args[2]"]
    narrowed = primary.keep_only(kept)
    assert narrowed.request_changed == 1 and narrowed.request_changes[0].action_index == 2


def test_compare_talks_flags_calls_made_in_one_run_only_and_unstable_order():
    recorded = order_calls()
    calls = same_calls(recorded)
    run1 = replay(recorded, [calls[0], calls[2], calls[1]])  # reordered, SET missing
    run2 = replay(recorded, [calls[0], calls[1], calls[2], calls[3]])
    primary = compare_outbound(recorded, run1)
    assert summary(primary) == [("outbound[2]", "reordered"), ("outbound[4]", "missing_call")]
    among = diff.compare_talks(recorded, run1, run2)
    assert sorted(d.path for d in among) == ["outbound[2]", "outbound[3]", "outbound[4]"]
    kept, suppressed = diff.suppress_repeated(primary.differences, [among])
    assert kept == [] and len(suppressed) == 2
    assert diff.compare_talks(recorded, run1, run1) == []


def test_compare_talks_reports_an_unmatched_talk_that_matched_in_the_other_run():
    recorded = order_calls()
    calls = same_calls(recorded)
    odd = (REDIS, resp_command(b"GET", b"user:42:coupons:2025-11-22:region"))
    run1 = replay(recorded, [*calls, odd], "fuzzy")
    run2 = replay(recorded, [*calls, odd], "fuzzy")
    assert diff.compare_talks(recorded, run1, run2, None) == []  # consistently unmatched: real
    run3 = replay(recorded, calls, "fuzzy")
    assert [d.path for d in diff.compare_talks(recorded, run1, run3)] == ["outbound.unmatched[4]"]
