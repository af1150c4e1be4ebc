"""Derived fields and the protocol knowledge behind them."""

from __future__ import annotations

from factories import http_call, mysql_select, redis_get, varied_sessions
from koala_store.formats import koala
from koala_store.summary import summarize
from koala_store.wire import guess_protocol, http1, mysql, resp


def test_example_session_summary(example_bytes: bytes) -> None:
    [session] = koala.loads(example_bytes)
    s = summarize(session)
    assert (s.method, s.path, s.query, s.host, s.status, s.content_type) == ("POST", "/v1/order", "city=1", "10.0.0.5:8000", 200, "application/json")
    assert s.latency_ms == 9.0
    assert [(o.peer, o.protocol, o.method, o.path) for o in s.outbound] == [
        ("10.0.0.7:3306", "mysql", "", ""),  # the greeting
        ("10.0.0.7:3306", "mysql", "SELECT", ""),
        ("10.0.0.8:6379", "redis", "GET", "user:42"),
    ]


def test_outbound_http_call_summary() -> None:
    [o] = summarize(varied_sessions(3)[2]).outbound
    assert (o.protocol, o.method, o.path, o.peer) == ("http", "GET", o.path, "10.0.0.9:8080")
    assert o.path.startswith("/inventory/")


def test_protocol_guesses() -> None:
    assert guess_protocol(b"GET / HTTP/1.1\r\n\r\n") == "http"
    assert guess_protocol(b"*1\r\n$4\r\nPING\r\n") == "redis"
    assert guess_protocol(b"PING\r\n") == "redis"
    assert guess_protocol(mysql_select(0, 0, b"SELECT 1").request, b"", 3306) == "mysql"
    assert guess_protocol(b"\x00\x01garbage") == "unknown"
    assert guess_protocol(b"") == "unknown"


def test_non_http_inbound_has_no_http_fields() -> None:
    session = varied_sessions(1)[0]
    session.call_from_inbound.request = b"\x00\x01\x02binary rpc"
    session.return_inbound.response = b"\x05"
    s = summarize(session)
    assert (s.method, s.path, s.status, s.content_type) == ("", "", None, "")


def test_http_head_parsing_and_framing() -> None:
    request = b"POST /a/b?x=1&y=2 HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbodyEXTRA"
    head = http1.parse_request_head(request)
    assert (head.method, head.path, head.query, head.header("host")) == ("POST", "/a/b", "x=1&y=2", "h")
    assert http1.message_length(request) == len(request) - 5
    assert http1.message_length(request[:-8]) is None
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"
    assert http1.message_length(chunked, is_response=True) == len(chunked)
    assert http1.message_body(chunked, http1.parse_response_head(chunked)) == b"Wikipedia"
    assert http1.message_length(b"HTTP/1.1 204 No Content\r\n\r\n", is_response=True) == 27
    assert http1.split_target("http://example.com:8080/x?y=1") == ("/x", "y=1")


def test_resp_and_mysql_framing() -> None:
    assert resp.parse_command(b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n") == [b"GET", b"key"]
    assert resp.complete_values(b"+OK\r\n$3\r\nabc\r\n*2\r\n:1\r\n$-1\r\n") == 3
    assert resp.complete_values(b"$10\r\nabc") == -1
    packet = mysql_select(0, 0, b"SELECT 1").request
    assert mysql.query_text(packet) == b"SELECT 1"
    assert mysql.complete_packets_length(packet + b"\x05\x00") == len(packet)
    assert redis_get(0, 0, b"k", b"v").response == b"$1\r\nv\r\n"
    assert http_call(0, 0, "GET", "/x", 200, b"{}").request.startswith(b"GET /x HTTP/1.1")
