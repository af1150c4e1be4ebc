"""The one wire layer: one protocol rule, one parse per talk, used the same way by every consumer."""

from __future__ import annotations

import pytest
from factories import mysql_query, resp_command
from matchers_fixtures import session_calls

import matchers
from koala_store import diff, wire
from koala_store.diff import Talk, compare_outbound
from koala_store.model import CallOutbound, Peer
from koala_store.summary import summarize_outbound
from koala_store.wire import FASTCGI, HTTP, MYSQL, REDIS, UNKNOWN, Protocol, fastcgi, framing, mysql, parse_talk, resp

GREETING = b"\x0a\x00\x00\x00\x0a8.0.36\x00" + bytes(40)
GREETING = len(GREETING).to_bytes(3, "little") + b"\x00" + GREETING
OK = b"\x07\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00"


def handshake(user: bytes = b"app", db: bytes = b"orders") -> bytes:
    caps = 0x0008 | 0x0200 | 0x8000 | 0x80000
    payload = caps.to_bytes(4, "little") + bytes(4) + b"\x21" + bytes(23) + user + b"\x00"
    payload += b"\x14" + b"\x07" * 20 + db + b"\x00mysql_native_password\x00"
    return len(payload).to_bytes(3, "little") + b"\x01" + payload


def php_request(uri: str, body: bytes = b"", port: str = "51000", method: str = "POST") -> bytes:
    params = [("REQUEST_METHOD", method), ("REQUEST_URI", uri), ("SCRIPT_NAME", uri.split("?")[0]), ("REMOTE_PORT", port), ("HTTP_HOST", "php")]
    if body:
        params += [("CONTENT_TYPE", "application/json"), ("CONTENT_LENGTH", str(len(body)))]
    return fastcgi.encode_request(params, body)


def test_protocols_are_the_stored_strings() -> None:
    assert [p.value for p in Protocol] == ["http", "redis", "mysql", "fastcgi", "unknown"]
    assert wire.PROTOCOLS == tuple(Protocol) and HTTP == "http"


@pytest.mark.parametrize(
    ("request_bytes", "response", "port", "hint", "protocol"),
    [
        (b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n", b"", 0, None, HTTP),
        (b"", b"HTTP/1.1 200 OK\r\n\r\n", 0, None, HTTP),
        (resp_command(b"GET", b"k"), b"$-1\r\n", 0, None, REDIS),
        (resp_command(b"MULTI") + resp_command(b"INCR", b"n") + resp_command(b"EXEC"), b"", 0, None, REDIS),
        (b"PING\r\n", b"+PONG\r\n", 0, None, REDIS),
        (resp_command(b"GET", b"k") + b"\x00junk", b"", 0, None, UNKNOWN),  # not every byte is a command
        (mysql_query(b"SELECT 1"), OK, 0, None, MYSQL),  # the answer is MySQL packets
        (mysql_query(b"SELECT 1"), b"", 3306, None, MYSQL),  # the port
        (mysql_query(b"SELECT 1"), b"", 0, MYSQL, MYSQL),  # what the peer is known to speak
        (mysql_query(b"SELECT 1"), b"", 0, None, UNKNOWN),  # one small packet alone proves nothing
        (handshake(), OK, 0, None, MYSQL),
        (b"", GREETING, 0, None, MYSQL),
        (php_request("/index.php"), b"", 0, None, FASTCGI),
        (b"", b"", 0, None, UNKNOWN),
        (b"\x00\x01garbage", b"", 0, None, UNKNOWN),
    ],
)
def test_one_protocol_rule(request_bytes: bytes, response: bytes, port: int, hint: str | None, protocol: Protocol) -> None:
    assert parse_talk(request_bytes, response, port, hint).protocol is protocol
    assert wire.guess_protocol(request_bytes, response, port, hint) is protocol
    if hint is None:
        assert diff.protocol_of(request_bytes, response, port) == protocol


def test_a_talk_is_parsed_once_into_what_each_consumer_reads() -> None:
    talk = parse_talk(resp_command(b"set", b"user:42", b"alice"), b"+OK\r\n", 6379)
    assert isinstance(talk.message, resp.Commands) and talk.message.commands == [[b"set", b"user:42", b"alice"]]
    assert (talk.verb, talk.resource, talk.readable()) == ("SET", "user:42", "set user:42 alice")
    assert (talk.normalized.protocol, talk.normalized.kind, talk.normalized.key) == (REDIS, "SET", "SET user:42")
    assert talk.http is None and talk.status is None

    sql = parse_talk(mysql_query(b"select * from t where id = 7"), OK, 3306)
    assert sql.message == mysql.Command(3, b"select * from t where id = 7") and sql.message.name == "COM_QUERY"
    assert (sql.verb, sql.resource, sql.readable()) == ("SELECT", "", "select * from t where id = 7")
    assert sql.normalized.key == "select * from t where id = ?"

    shake = parse_talk(handshake(), OK, 3306)
    assert shake.message == mysql.Handshake("app", "orders", "mysql_native_password") and shake.verb == ""
    assert shake.normalized.kind == "HANDSHAKE"

    http = parse_talk(b"POST /v1/order?b=2&a=1 HTTP/1.1\r\nHost: h\r\nUser-Agent: x\r\nContent-Length: 2\r\n\r\n{}", b"HTTP/1.1 201 Created\r\nContent-Type: application/json; charset=utf-8\r\n\r\n{}")
    assert (http.verb, http.resource, http.host, http.status, http.content_type) == ("POST", "/v1/order", "h", 201, "application/json")
    assert http.http.body == b"{}" and http.readable() == "POST /v1/order?b=2&a=1"
    assert http.normalized.key == "POST /v1/order\n?a=1\n?b=2\n\n{}"  # Host, User-Agent, Content-Length: volatile
    assert http.http_response.status == 201


def test_normalised_form_of_a_lone_packet_is_mysql_whatever_the_talk_says() -> None:
    # Matching sees only the live request's bytes: its shape decides, as it always has.
    talk = parse_talk(mysql_query(b"SELECT 1"))
    assert talk.protocol is UNKNOWN and talk.normalized.protocol is MYSQL


def test_one_volatile_header_list() -> None:
    assert set(diff.DEFAULT_IGNORED_HEADERS) == matchers.normalize.DEFAULT_VOLATILE_HEADERS == wire.VOLATILE_HEADERS
    assert {"host", "date", "server", "x-request-id", "traceparent", "x-koala-session", "user-agent"} <= wire.VOLATILE_HEADERS


def test_http_response_views_and_status() -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    view = wire.http_response(interim)
    assert (view.status, view.body) == (200, b"ok")
    php = fastcgi.encode_response(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\ngone", b"PHP Warning")
    assert (wire.http_response(php).status, wire.http_response(php).body) == (404, b"gone")
    assert wire.response_status(php) == 404 and wire.response_status(b"HTTP/1.1 503 x\r\n\r\n") == 503
    assert wire.http_response(b"+OK\r\n") is None and wire.response_status(b"\x05") is None


def test_live_framing_knows_fastcgi() -> None:
    request = php_request("/index.php", b'{"a":1}')
    assert framing.guess_live_protocol(request[:8], UNKNOWN) is FASTCGI
    assert framing.is_complete(request, FASTCGI) is True
    assert framing.is_complete(request[:-8], FASTCGI) is False  # the empty STDIN record is missing


def test_outbound_fastcgi_talks() -> None:
    """A service calling PHP-FPM: summarised, matched and diffed through the HTTP it carries."""
    answer = fastcgi.encode_response(b'Content-Type: application/json\r\n\r\n{"ok":true}')
    calls = [
        CallOutbound(1, 1, request=php_request("/cart.php", b'{"sku":"A","qty":1}'), response=answer, peer=Peer("10.0.0.6", 9000), socket_fd=5),
        CallOutbound(2, 2, request=php_request("/pay.php", b'{"amount":10}'), response=answer, peer=Peer("10.0.0.6", 9000), socket_fd=5),
    ]
    assert [(o.protocol, o.method, o.path) for o in map(summarize_outbound, calls)] == [("fastcgi", "POST", "/cart.php"), ("fastcgi", "POST", "/pay.php")]
    # Replayed: another client port, another padding and record split, one changed field.
    live = [
        fastcgi.encode_request(fastcgi.parse_request(php_request("/pay.php", b'{"amount":10}', port="40001")).params, b'{"amount":10}', chunk=5, align=0),
        php_request("/cart.php", b'{"sku":"A","qty":2}', port="40001"),
    ]
    session = matchers.get("fuzzy").for_session(session_calls(*calls))
    conn = session.connection()
    results = [session.match(request, conn) for request in live]
    assert [r.position for r in results] == [1, 0]
    report = compare_outbound(calls, [Talk("10.0.0.6:9000", 1, request, result) for request, result in zip(live, results, strict=True)])
    assert [(d.path, d.expected, d.actual) for d in report.differences] == [
        ("outbound[1]", [1, 2], [2, 1]),  # made in the other order
        ("outbound[1].request.body.qty", 1, 2),
    ]
