"""FastCGI records as recorded bytes: the parser, the HTTP views, framing, and round trips."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from koala_store.wire import FASTCGI, fastcgi, parse_request, parse_talk

PARAMS = [
    ("SCRIPT_FILENAME", "/srv/www/index.php"),
    ("QUERY_STRING", "uid=42&lang=en"),
    ("REQUEST_METHOD", "POST"),
    ("CONTENT_TYPE", "application/json"),
    ("CONTENT_LENGTH", "13"),
    ("SCRIPT_NAME", "/index.php"),
    ("REQUEST_URI", "/index.php?uid=42&lang=en"),
    ("SERVER_PROTOCOL", "HTTP/1.1"),
    ("REMOTE_ADDR", "10.0.0.2"),
    ("REMOTE_PORT", "51234"),
    ("HTTP_HOST", "shop.example"),
    ("HTTP_X_FORWARDED_FOR", "10.9.9.9"),
    ("HTTP_ACCEPT", "application/json"),
]
BODY = b'{"sku":"A-17"}'[:13]
STDOUT = b'X-Powered-By: PHP/8.2\r\nStatus: 201 Created\r\nContent-type: application/json\r\n\r\n{"ok":true,"id":7}'


def record(kind: int, request_id: int, content: bytes, padding: int = 0, reserved: int = 0) -> bytes:
    """A record written by hand (not by the module under test), reserved byte included."""
    return struct.pack(">BBHHBB", 1, kind, request_id, len(content), padding, reserved) + content + b"\xee" * padding


def pair(name: bytes, value: bytes) -> bytes:
    def length(n: int) -> bytes:
        return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)

    return length(len(name)) + length(len(value)) + name + value


def handmade_request(padding: int = 0, reserved: int = 0) -> bytes:
    params = b"".join(pair(n.encode(), v.encode()) for n, v in PARAMS)
    return (
        record(fastcgi.BEGIN_REQUEST, 1, struct.pack(">HB5x", fastcgi.RESPONDER, 0), padding, reserved)
        + record(fastcgi.PARAMS, 1, params[:100], padding, reserved)
        + record(fastcgi.PARAMS, 1, params[100:], padding, reserved)
        + record(fastcgi.PARAMS, 1, b"", padding, reserved)
        + record(fastcgi.STDIN, 1, BODY[:5], padding, reserved)
        + record(fastcgi.STDIN, 1, BODY[5:], padding, reserved)
        + record(fastcgi.STDIN, 1, b"", padding, reserved)
    )


def test_request_params_split_over_records_and_the_http_view() -> None:
    request = fastcgi.parse_request(handmade_request())
    assert request is not None and request.complete and request.role == fastcgi.RESPONDER and not request.keep_conn
    assert request.params == PARAMS
    assert request.stdin == BODY
    view = request.http()
    assert (view.method, view.target, view.path, view.query) == ("POST", "/index.php?uid=42&lang=en", "/index.php", "uid=42&lang=en")
    assert view.headers == [
        ("Content-Type", "application/json"),
        ("Content-Length", "13"),
        ("Host", "shop.example"),
        ("X-Forwarded-For", "10.9.9.9"),
        ("Accept", "application/json"),
    ]
    assert view.header("host") == "shop.example" and view.body == BODY


def test_padding_and_reserved_bytes_mean_nothing() -> None:
    plain = fastcgi.parse_request(handmade_request())
    assert fastcgi.parse_request(handmade_request(padding=7, reserved=0x5A)) == plain
    assert parse_talk(handmade_request(padding=3, reserved=1)).http == parse_talk(handmade_request()).http


def test_target_without_request_uri_is_script_name_and_query_string() -> None:
    params = [("REQUEST_METHOD", "GET"), ("SCRIPT_NAME", "/index.php"), ("QUERY_STRING", "a=1")]
    assert fastcgi.parse_request(fastcgi.encode_request(params)).http().target == "/index.php?a=1"
    assert fastcgi.parse_request(fastcgi.encode_request(params[:2])).http().target == "/index.php"


def test_long_names_and_values_use_four_byte_lengths() -> None:
    pairs = [("HTTP_COOKIE", "c" * 300), ("X" * 200, ""), ("", "v")]
    encoded = fastcgi.encode_params(pairs)
    assert encoded[:1] == b"\x0b" and encoded[1:5] == (300 | 0x80000000).to_bytes(4, "big")
    assert fastcgi.decode_params(encoded) == pairs
    assert fastcgi.decode_params(encoded[:-1]) == pairs[:2]  # a pair cut short ends the list


def test_response_cgi_headers_status_and_stderr_aside() -> None:
    data = record(fastcgi.STDERR, 1, b"PHP Notice: x") + record(fastcgi.STDOUT, 1, STDOUT[:30], 2) + record(fastcgi.STDOUT, 1, STDOUT[30:])
    data += record(fastcgi.STDOUT, 1, b"") + record(fastcgi.END_REQUEST, 1, struct.pack(">IB3x", 0, 0))
    response = fastcgi.parse_response(data)
    assert response is not None and response.complete and response.app_status == 0
    assert response.stdout == STDOUT and response.stderr == b"PHP Notice: x"
    view = response.http()
    assert (view.status, view.reason, view.content_type, view.body) == (201, "Created", "application/json", b'{"ok":true,"id":7}')
    assert view.headers == [("X-Powered-By", "PHP/8.2"), ("Content-type", "application/json")]


def test_cgi_status_defaults() -> None:
    assert fastcgi.cgi_response(b"Content-Type: text/html\r\n\r\nhi").status == 200
    assert fastcgi.cgi_response(b"Location: /login\r\n\r\n").status == 302
    assert fastcgi.cgi_response(b"Status: 404\nContent-Type: text/plain\n\nnope").status == 404
    assert fastcgi.cgi_response(b"Status: 404\nContent-Type: text/plain\n\nnope").body == b"nope"


def test_framing_lengths() -> None:
    request = handmade_request(padding=5)
    assert fastcgi.is_request(request) and fastcgi.is_request(request[:8]) and not fastcgi.is_request(request[:7])
    assert fastcgi.request_length(request + b"next") == len(request)
    assert all(fastcgi.request_length(request[:cut]) is None for cut in range(len(request)))
    response = fastcgi.encode_response(STDOUT, b"warn")
    assert fastcgi.response_length(response + b"\x01\x06") == len(response)
    assert all(fastcgi.response_length(response[:cut]) is None for cut in range(len(response)))
    assert not fastcgi.is_request(b"GET / HTTP/1.1\r\n\r\n") and fastcgi.response_length(b"HTTP/1.1 200 OK\r\n\r\n") is None


def test_cut_short_recordings_keep_what_complete_records_say() -> None:
    request = handmade_request()
    cut = fastcgi.parse_request(request[: len(request) - 20])
    assert cut is not None and not cut.complete and cut.params == PARAMS
    response = fastcgi.encode_response(STDOUT)
    partial = fastcgi.parse_response(response[:-8])
    assert partial is not None and not partial.complete and partial.http().status == 201


def test_other_request_ids_are_left_out() -> None:
    data = fastcgi.encode_request([("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/a")], request_id=3)
    other = record(fastcgi.PARAMS, 4, pair(b"REQUEST_URI", b"/b")) + record(fastcgi.STDIN, 4, b"x")
    mixed = data[:16] + other + data[16:]  # records of request 4 slipped in after BEGIN_REQUEST
    assert fastcgi.parse_request(mixed).http().line == "GET /a"


def test_not_fastcgi() -> None:
    for data in (b"", b"\x01", b"GET / HTTP/1.1\r\n\r\n", b"*1\r\n$4\r\nPING\r\n", b"\x02\x01\x00\x01\x00\x08\x00\x00" + bytes(8)):
        assert fastcgi.parse_request(data) is None
        assert fastcgi.parse_response(data) is None
    assert fastcgi.records(b"\x01\x06\x00\x01\x00\x05\x00\x00abc") is None  # content cut short


def test_the_talk_is_fastcgi_and_reads_as_http() -> None:
    talk = parse_talk(handmade_request(padding=3), fastcgi.encode_response(STDOUT))
    assert talk.protocol == FASTCGI == "fastcgi"
    assert (talk.verb, talk.resource, talk.host, talk.status, talk.content_type) == ("POST", "/index.php", "shop.example", 201, "application/json")
    assert talk.readable() == "POST /index.php?uid=42&lang=en"
    assert talk.http_response.body == b'{"ok":true,"id":7}'
    assert isinstance(parse_request(handmade_request()), fastcgi.Request)


# --- round trips -----------------------------------------------------------------------

latin1 = st.text(alphabet=st.characters(max_codepoint=255), max_size=300)
params = st.lists(st.tuples(latin1, latin1), max_size=12)
chunks = st.integers(min_value=1, max_value=400)
aligns = st.sampled_from([0, 1, 8, 16])


@settings(max_examples=200, deadline=None)
@given(params)
def test_params_round_trip(pairs: list[tuple[str, str]]) -> None:
    assert fastcgi.decode_params(fastcgi.encode_params(pairs)) == pairs


@settings(max_examples=200, deadline=None)
@given(params, st.binary(max_size=2000), st.integers(min_value=1, max_value=0xFFFF), st.booleans(), chunks, aligns)
def test_request_round_trip(pairs: list[tuple[str, str]], stdin: bytes, request_id: int, keep: bool, chunk: int, align: int) -> None:
    data = fastcgi.encode_request(pairs, stdin, request_id=request_id, keep_conn=keep, chunk=chunk, align=align)
    assert fastcgi.records(data) is not None
    request = fastcgi.parse_request(data)
    assert request is not None
    assert (request.params, request.stdin, request.request_id, request.keep_conn, request.complete) == (pairs, stdin, request_id, keep, True)
    assert fastcgi.request_length(data) == len(data)
    # Another split and other padding: the same request.
    assert fastcgi.parse_request(fastcgi.encode_request(pairs, stdin, request_id=request_id, keep_conn=keep)) == request


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.binary(max_size=300), st.integers(min_value=0, max_value=2**32 - 1), chunks, aligns)
def test_response_round_trip(stdout: bytes, stderr: bytes, app_status: int, chunk: int, align: int) -> None:
    data = fastcgi.encode_response(stdout, stderr, app_status=app_status, chunk=chunk, align=align)
    response = fastcgi.parse_response(data)
    assert response is not None
    assert (response.stdout, response.stderr, response.app_status, response.complete) == (stdout, stderr, app_status, True)
    assert fastcgi.response_length(data) == len(data)
    assert response.http() == fastcgi.parse_response(fastcgi.encode_response(stdout, app_status=app_status)).http()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_parse_without_raising(data: bytes) -> None:
    for parsed in (fastcgi.parse_request(data), fastcgi.parse_response(data)):
        if parsed is not None:
            parsed.http()
    fastcgi.request_length(data)
    fastcgi.response_length(data)
    fastcgi.decode_params(data)
    parse_talk(b"\x01\x01\x00\x01\x00\x08\x00\x00" + data, data)
