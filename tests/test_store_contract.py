"""The SessionStore contract: every backend passes this same suite.

Queries are checked against an oracle written in plain Python over the fixture sessions, so
each backend must give exactly the oracle's answer, and therefore the same as every other.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from factories import BASE_NS, http_call, make_session, mysql_select, redis_get, redis_set, varied_sessions
from koala_store.formats import koala
from koala_store.model import CallOutbound, Peer, Session
from koala_store.query.text import searchable_text, tokenize
from koala_store.store.base import SessionStore
from koala_store.summary import summarize
from stores import BACKENDS, open_test_store

pytestmark = pytest.mark.parametrize("backend", BACKENDS)


@pytest.fixture
def store(backend: str, tmp_path) -> SessionStore:
    with open_test_store(backend, tmp_path) as opened:
        yield opened


def fixture_sessions(example: Session) -> list[Session]:
    sessions = varied_sessions(40)
    at = BASE_NS + 100 * 1_000_000_000
    specials = [
        make_session(100, method="PUT", path="/v2/profile/é", query="b=2&a=1", response_body="{\"msg\":\"Grüße aus Köln\"}".encode(), at=at),
        make_session(
            101,
            path="/v1/search",
            query="q=timeout",
            outbound=[
                http_call(0, at + 1, "POST", "/v1/charge?currency=EUR", 502, b'{"error":"upstream timeout"}'),
                redis_get(1, at + 2, b"session:abc", b"token-123"),
                redis_set(2, at + 3, b"cart:9", b'{"items":[1,2]}'),
                mysql_select(3, at + 4, b"UPDATE stock SET n=n-1 WHERE id=7"),
            ],
            at=at + 1_000,
        ),
        make_session(102, path="/v1/[odd]*path?", at=at + 2_000),
        make_session(103, path="/v1/user", query="uid=1", at=at + 2_000, session_id=f"{at + 2_000}-0001"),  # same time: id decides order
    ]
    nonhttp = make_session(104, at=at + 3_000)
    nonhttp.call_from_inbound.request = b"\x00\x00\x00\x10thrift-call getUser"
    nonhttp.return_inbound.response = b"\x00\x01"
    nonhttp.actions[-1].response = b"\x00\x01"
    specials.append(nonhttp)
    traced = make_session(106, path="/v1/traced", at=at + 5_000)
    traced.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    specials.append(traced)
    unknown = make_session(105, path="/v1/raw", at=at + 4_000)
    unknown.actions.insert(0, CallOutbound(0, at + 4_001, request=b"\x13\x37binary-proto payload", response=b"\x01", peer=Peer("10.0.0.11", 7000), socket_fd=21))
    specials.append(unknown)
    return [example, *sessions, *specials]


# --- the oracle -------------------------------------------------------------------------------


def _tokens(data: bytes) -> list[str]:
    return tokenize(searchable_text(data))


def _has_phrase(data: bytes, phrase: list[str], prefix: bool = False) -> bool:
    tokens = _tokens(data)
    n = len(phrase)
    for i in range(len(tokens) - n + 1):
        head_ok = tokens[i : i + n - 1] == phrase[:-1]
        last = tokens[i + n - 1]
        if head_ok and (last.startswith(phrase[-1]) if prefix else last == phrase[-1]):
            return True
    return False


def text_anywhere(phrase: str, prefix: bool = False) -> Callable[[Session], bool]:
    words = tokenize(phrase)

    def check(s: Session) -> bool:
        blobs = [s.call_from_inbound.request, s.return_inbound.response]
        blobs += [b for c in s.outbound_calls for b in (c.request, c.response)]
        return any(_has_phrase(b, words, prefix) for b in blobs)

    return check


def S(s: Session):
    return summarize(s)


QUERIES: list[tuple[str, Callable[[Session], bool]]] = [
    ("*", lambda s: True),
    ("session_id:1548160113499755162-1158745", lambda s: s.session_id == "1548160113499755162-1158745"),
    ("inbound.method:POST", lambda s: S(s).method == "POST"),
    ("inbound.method:post", lambda s: S(s).method == "POST"),
    ("inbound.method:(GET OR DELETE)", lambda s: S(s).method in ("GET", "DELETE")),
    ("inbound.path:/v1/user", lambda s: S(s).path == "/v1/user"),
    ("inbound.path:/v1/item/*", lambda s: S(s).path.startswith("/v1/item/")),
    ("inbound.path:/v?/order", lambda s: re.fullmatch(r"/v./order", S(s).path) is not None),
    (r"inbound.path:\/v1\/\[odd\]\**", lambda s: S(s).path.startswith("/v1/[odd]*")),
    ('inbound.path:"/v2/profile/é"', lambda s: S(s).path == "/v2/profile/é"),
    ("inbound.query:uid=*", lambda s: S(s).query.startswith("uid=")),
    ("inbound.host:10.0.0.5\\:8000", lambda s: S(s).host == "10.0.0.5:8000"),
    ("inbound.status:200", lambda s: S(s).status == 200),
    ("inbound.status:[400 TO 599]", lambda s: S(s).status is not None and 400 <= S(s).status <= 599),
    ("inbound.status:{404 TO 500}", lambda s: S(s).status is not None and 404 < S(s).status < 500),
    ("inbound.status:>=500", lambda s: (S(s).status or 0) >= 500),
    ("NOT inbound.status:200", lambda s: S(s).status != 200),
    ("_exists_:inbound.status", lambda s: S(s).status is not None),
    ("NOT _exists_:inbound.method", lambda s: not S(s).method),
    ("inbound.content_type:application/json", lambda s: S(s).content_type == "application/json"),
    ("inbound.latency_ms:[5 TO 5]", lambda s: S(s).latency_ms == 5.0),
    ("inbound.latency_ms:>6", lambda s: (S(s).latency_ms or 0) > 6),
    ("thread_id:1003", lambda s: s.thread_id == 1003),
    ("recorded_at:[2025-11-22T03:00:10Z TO 2025-11-22T03:00:20Z]", lambda s: BASE_NS + 10 * 10**9 <= s.recorded_at <= BASE_NS + 20 * 10**9),
    ("recorded_at:<2025-11-22", lambda s: s.recorded_at < 1_763_769_600 * 10**9),
    ("recorded_at:2019-01-22", lambda s: s.recorded_at // (86_400 * 10**9) == 1548160113 // 86_400),
    ("recorded_at:{2025-11-22T03:00:05Z TO *]", lambda s: s.recorded_at > BASE_NS + 5 * 10**9 + 10**9 - 1),
    ("outbound.count:0", lambda s: len(s.outbound_calls) == 0),
    ("outbound.count:>=2", lambda s: len(s.outbound_calls) >= 2),
    ("outbound.protocol:redis", lambda s: any(o.protocol == "redis" for o in S(s).outbound)),
    ("outbound.protocol:mysql AND outbound.protocol:redis", lambda s: {"mysql", "redis"} <= {o.protocol for o in S(s).outbound}),
    ("NOT outbound.protocol:redis", lambda s: all(o.protocol != "redis" for o in S(s).outbound)),
    ("outbound.protocol:unknown", lambda s: any(o.protocol == "unknown" for o in S(s).outbound)),
    ("outbound.peer:10.0.0.7\\:3306", lambda s: any(o.peer == "10.0.0.7:3306" for o in S(s).outbound)),
    ('outbound.peer:"10.0.0.9:8080"', lambda s: any(o.peer == "10.0.0.9:8080" for o in S(s).outbound)),
    ("outbound.method:set", lambda s: any(o.method == "SET" for o in S(s).outbound)),
    ("outbound.method:UPDATE", lambda s: any(o.method == "UPDATE" for o in S(s).outbound)),
    ("outbound.path:/inventory/*", lambda s: any(o.path.startswith("/inventory/") for o in S(s).outbound)),
    ("outbound.path:user\\:*", lambda s: any(o.path.startswith("user:") for o in S(s).outbound)),
    ("_exists_:outbound.path", lambda s: any(o.path for o in S(s).outbound)),
    ("session_id:/1763780[0-9]+-100[13]/", lambda s: re.fullmatch(r"1763780[0-9]+-100[13]", s.session_id) is not None),
    ("timeout", text_anywhere("timeout")),
    ("TIMEOUT", text_anywhere("timeout")),
    ('"upstream timeout"', text_anywhere("upstream timeout")),
    ('"timeout upstream"', text_anywhere("timeout upstream")),
    ("time*", text_anywhere("time", prefix=True)),
    ('"user 42"', text_anywhere("user 42")),
    ("Köln", text_anywhere("köln")),
    ("grüße", text_anywhere("grüße")),
    ("thrift", text_anywhere("thrift")),
    ("inbound.request:thrift", lambda s: _has_phrase(s.call_from_inbound.request, ["thrift"])),
    ("inbound.response:alice", lambda s: _has_phrase(s.return_inbound.response, ["alice"])),
    ("outbound.request:charge", lambda s: any(_has_phrase(c.request, ["charge"]) for c in s.outbound_calls)),
    ("outbound.response:alice", lambda s: any(_has_phrase(c.response, ["alice"]) for c in s.outbound_calls)),
    ("outbound.response:token*", lambda s: any(_has_phrase(c.response, ["token"], True) for c in s.outbound_calls)),
    ('outbound.request:"stock set"', lambda s: any(_has_phrase(c.request, ["stock", "set"]) for c in s.outbound_calls)),
    ("_exists_:outbound.response", lambda s: any(c.response for c in s.outbound_calls)),
    ("inbound.method:GET AND (timeout OR alice)", lambda s: S(s).method == "GET" and (text_anywhere("timeout")(s) or text_anywhere("alice")(s))),
    ("+inbound.method:DELETE -inbound.status:200", lambda s: S(s).method == "DELETE" and S(s).status != 200),
    ("inbound.status:404 inbound.status:201", lambda s: S(s).status in (404, 201)),
    ("-outbound.count:0", lambda s: len(s.outbound_calls) != 0),
    ("inbound.path:/nothing/here", lambda s: False),
    # Koala writes "TraceId": "" when there is no trace: an empty value is no value, everywhere.
    ("_exists_:trace_id", lambda s: s.trace_id != ""),
    ("trace_id:*", lambda s: s.trace_id != ""),
    ('trace_id:""', lambda s: False),
    ("NOT _exists_:trace_id", lambda s: s.trace_id == ""),
    ("trace_id:4bf92f35*", lambda s: s.trace_id.startswith("4bf92f35")),
    ("trace_id:/.*/", lambda s: s.trace_id != ""),
]


@pytest.fixture
def loaded(store: SessionStore, example_bytes: bytes) -> list[Session]:
    [example] = koala.loads(example_bytes)
    sessions = fixture_sessions(example)
    result = store.put_many(sessions)
    assert (result.stored, result.rejected) == (len(sessions), [])
    store.refresh()
    return sessions


@pytest.mark.parametrize(("query", "oracle"), QUERIES, ids=[q for q, _ in QUERIES])
def test_query_answers_match_the_oracle(store: SessionStore, loaded: list[Session], query: str, oracle) -> None:
    expected = sorted((s.recorded_at, s.session_id) for s in loaded if oracle(s))
    got = [(s.recorded_at, s.session_id) for s in store.scan(query)]
    assert got == expected
    assert store.count(query) == len(expected)
    # Bounded: at_most + 1 says "more than at_most"; the count is exact up to the bound.
    for at_most in sorted({0, 1, max(len(expected) - 1, 0), len(expected), len(expected) + 3}):
        assert store.count(query, at_most=at_most) == min(len(expected), at_most + 1), at_most


def test_writes_are_idempotent_by_session_id(store: SessionStore) -> None:
    sessions = varied_sessions(12)
    assert store.put_many(sessions).stored == 12
    again = store.put_many(sessions)
    assert (again.stored, again.unchanged) == (0, 12)
    store.refresh()
    assert store.count() == 12
    # A changed session with a known id replaces the stored one.
    changed = varied_sessions(1)[0]
    changed.return_inbound.response = b"HTTP/1.1 500 Internal Server Error\r\n\r\nchanged-body"
    assert store.put_many([changed]).stored == 1
    store.refresh()
    assert store.count() == 12
    assert store.get(changed.session_id) == changed
    assert store.count("changed") == 1
    assert store.count("inbound.status:500 AND session_id:" + changed.session_id.replace("-", "\\-")) == 1


def test_duplicates_inside_one_batch_store_once(store: SessionStore) -> None:
    [session] = varied_sessions(1)
    assert store.put_many([session, session, session]).stored == 1
    store.refresh()
    assert store.count() == 1


def test_get_returns_the_session_exactly(store: SessionStore, example_bytes: bytes) -> None:
    [example] = koala.loads(example_bytes)
    store.put_many([example])
    store.refresh()
    assert store.get(example.session_id) == example
    assert store.get("no-such-session") is None


def test_scan_streams_in_recorded_order_across_pages(store: SessionStore) -> None:
    sessions = varied_sessions(1234)
    store.put_many(reversed(sessions))
    store.refresh()
    got = [s.session_id for s in store.scan("*")]
    assert got == [s.session_id for s in sorted(sessions, key=lambda s: (s.recorded_at, s.session_id))]
    assert [s.session_id for s in store.scan("*", limit=7)] == got[:7]
    assert len(list(store.scan("inbound.method:POST", limit=1000))) == len([s for s in sessions if summarize(s).method == "POST"])


def test_delete_by_query(store: SessionStore) -> None:
    sessions = varied_sessions(50)
    store.put_many(sessions)
    store.refresh()
    posts = store.count("inbound.method:POST")
    assert posts == 10
    assert store.delete("inbound.method:POST") == 10
    store.refresh()
    assert store.count() == 40
    assert store.count("inbound.method:POST") == 0
    # Text search still answers correctly after deleting text-indexed sessions.
    cache_misses = store.count("timeout")
    assert store.delete("timeout") == cache_misses
    store.refresh()
    assert store.count("timeout") == 0
    # Deleted sessions can come back.
    assert store.put_many(sessions).stored == 10 + cache_misses
    store.refresh()
    assert store.count() == 50
    assert store.count("timeout") == cache_misses


def test_text_search_sees_sessions_written_after_a_search(store: SessionStore) -> None:
    store.put_many(varied_sessions(5))
    store.refresh()
    assert store.count("alice") == 1
    store.put_many([make_session(200, response_body=b'{"name":"alice"}')])
    store.refresh()
    assert store.count("alice") == 2


def test_a_session_the_store_cannot_hold_is_rejected_by_name_and_the_rest_stored(store: SessionStore) -> None:
    sessions = varied_sessions(5)
    sessions[2].thread_id = 2**63 + 5  # valid in the model, too big for a 64-bit integer field
    result = store.put_many(sessions)
    assert result.stored == 4
    assert [r.session_id for r in result.rejected] == [sessions[2].session_id]
    assert "ThreadId" in result.rejected[0].reason or "9223372036854775813" in result.rejected[0].reason
    store.refresh()
    assert sorted(s.session_id for s in store.scan()) == sorted(s.session_id for i, s in enumerate(sessions) if i != 2)


@pytest.mark.parametrize("session_id", ["1763780400000000000-7", "order-service/custom-id"])
def test_a_session_rewritten_with_another_time_is_still_stored_once(store: SessionStore, session_id: str) -> None:
    first = make_session(1, session_id=session_id, at=BASE_NS)
    later = make_session(1, session_id=session_id, at=BASE_NS + 3 * 86_400 * 10**9, status=500)
    store.put_many([first])
    store.refresh()
    assert store.put_many([later]).stored == 1
    store.refresh()
    assert [s.session_id for s in store.scan()] == [session_id]
    assert store.get(session_id) == later
    assert store.count("inbound.status:500") == 1
