"""The compiled head split (koala_store/wire/_http1head.c) does exactly what its Python
reference in http1.py does, on odd heads too: recordings hold whatever crossed the wire."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from koala_store.wire import http1

compiled = pytest.importorskip("koala_store.wire._http1head", reason="koala_store/wire/_http1head.c did not build")

# Bytes that decide the split: CR and LF alone and together, the colon, the space that makes a
# name no name, and what str.strip() calls whitespace in Latin-1 (tab, \x1c-\x1f, \x85, \xa0).
_DECIDING = [b"\r\n", b"\r", b"\n", b":", b" ", b"\t", b"\x0b", b"\x1c", b"\x1f", b"\x85", b"\xa0", b"\x00", b"\xff", b"\r\n\r\n"]
pieces = st.one_of(st.sampled_from(_DECIDING), st.binary(max_size=6), st.sampled_from([b"Content-Type", b"X-Id", b"HTTP/1.1 200 OK"]))
heads = st.lists(pieces, max_size=30).map(b"".join)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(heads)
def test_the_compiled_split_is_the_python_one(data: bytes) -> None:
    assert compiled.split_head(data) == http1._split_head(data)
    assert compiled.split_head(bytearray(data)) == http1._split_head(data)  # any bytes-like


def test_a_response_head_is_split_as_people_read_it() -> None:
    data = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nX-Empty:\r\nBad Name: x\r\n: no name\r\nX-Pad: \xa0 v\t \r\n\r\n{}"
    start, headers, offset = compiled.split_head(data)
    assert start == "HTTP/1.1 200 OK" and data[offset:] == b"{}"
    assert headers == [("Server", "nginx"), ("X-Empty", ""), ("X-Pad", "v")]
    # A head cut short keeps what was seen; its body starts at the end.
    cut = b"HTTP/1.1 200 OK\r\nA: 1\r\nB"
    assert compiled.split_head(cut) == ("HTTP/1.1 200 OK", [("A", "1")], len(cut))
    with pytest.raises(TypeError):
        compiled.split_head("not bytes")


def test_responses_parse_the_same_with_either_split(monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    fast = http1.response(data)
    monkeypatch.setattr(http1, "_parse_head", http1._split_head)
    assert http1.response(data) == fast
    assert (fast.status, fast.reason, fast.body) == (404, "Not Found", b"abc")
    assert http1.parse_response_head(b"HTTP/1.1 200\r\n\r\n").reason == ""  # no reason phrase
    assert http1.parse_response_head(b"HTTP/1.1 20x OK\r\n\r\n") is None


status_lines = st.lists(st.sampled_from([b"HTTP/", b"1", b".", b"1 ", b"200", b" ", b"OK", b"\r", b"\n", b"\xb2", b"\xa0", b"x"]), max_size=12).map(b"".join)


@settings(max_examples=1000, deadline=None)
@given(status_lines)
def test_the_status_line_reads_the_same_as_text_and_as_bytes(line: bytes) -> None:
    """parse_response_head matches the decoded start line: the same matches as the bytes pattern."""
    as_bytes = http1._STATUS_LINE.match(line)
    as_text = http1._STATUS_TEXT.match(line.decode("latin-1"))
    assert (as_bytes is None) == (as_text is None)
    if as_bytes is not None:
        assert as_text.groups() == tuple(g.decode("latin-1") if g is not None else None for g in as_bytes.groups())


# Names that decide a case-insensitive match: ASCII letters in both cases, the bytes next to
# them that differ by 0x20 without being letters (@ and `, [ and {), and names str.lower()
# changes beyond ASCII (the Kelvin sign lowers to k, dotted capital I to two characters).
_NAMES = ["Content-Type", "content-type", "CONTENT-TYPE", "X-Id", "x-id", "@", "`", "[", "{", "k", "K", "\u212a", "\u0130", "i\u0307", "\xc9", "\xe9", ""]
header_lists = st.lists(st.tuples(st.sampled_from(_NAMES), st.text(max_size=3)), max_size=6)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header_lists, st.sampled_from(_NAMES))
def test_the_compiled_find_is_the_python_one(headers: list[tuple[str, str]], name: str) -> None:
    from koala_store.wire import http

    assert http.find(headers, name) == http._find(headers, name)
    found = compiled.find_header(headers, name)
    assert found is NotImplemented or found == http._find(headers, name)


def test_find_leaves_other_shapes_to_the_python_one() -> None:
    from koala_store.wire import http

    assert compiled.find_header((("A", "1"),), "a") is NotImplemented  # a tuple of pairs
    assert compiled.find_header([("A", "1", "x")], "a") is NotImplemented
    assert http.find((("A", "1"),), "a") == "1"
    with pytest.raises(ValueError):
        http.find([("A", "1", "x")], "a")  # as the reference: not a (name, value) pair
    assert compiled.find_header([("K", "v")], "\u212a") == "v"  # both lower to k
    assert compiled.find_header([("\u0130", "v")], "i\u0307") is None  # lengths differ before lowering


# Header names as callers pass them (lower case) and as no caller should (upper case, empty,
# with a colon or a line end), for the compiled scan to match the reference on all of them.
scan_names = st.lists(
    st.one_of(st.sampled_from([b"x-koala-session", b"traceparent", b"content-length", b"X-Id", b"", b"a:b", b"\r\n", b" x"]), st.binary(max_size=3)),
    max_size=4,
).map(tuple)
scan_pieces = st.one_of(
    st.sampled_from(_DECIDING), st.binary(max_size=6), st.sampled_from([b"X-Koala-Session: s1", b"TRACEPARENT:00-a-b-01", b" traceparent : x", b"x-id:1"])
)
# Whitespace bytes.strip() takes off, and two it does not (\x1c, \xa0), around names and values.
_PADDING = st.lists(st.sampled_from([b" ", b"\t", b"\x0b", b"\x0c", b"\r", b"\n", b"\x1c", b"\xa0"]), max_size=2).map(b"".join)
_LINE_NAMES = st.sampled_from([b"X-Koala-Session", b"x-koala-session", b"Traceparent", b"content-length", b"Host", b"x-id", b""])
header_lines = st.builds(
    lambda a, n, b, sep, c, v, d: a + n + b + sep + c + v + d,
    _PADDING,
    _LINE_NAMES,
    _PADDING,
    st.sampled_from([b":", b""]),
    _PADDING,
    st.sampled_from([b"s1", b"", b"a b", b"00-x-y-01"]),
    _PADDING,
)
structured_messages = st.builds(
    lambda lines, end, body: b"\r\n".join([b"GET /a HTTP/1.1", *lines]) + end + body,
    st.lists(header_lines, max_size=6),
    st.sampled_from([b"\r\n\r\n", b"\r\n", b""]),
    st.sampled_from([b"", b"body", b"\r\nx-koala-session: late\r\n\r\n"]),
)
scanned_messages = st.one_of(st.lists(scan_pieces, max_size=30).map(b"".join), structured_messages)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scanned_messages, scan_names, st.booleans())
def test_the_compiled_header_scan_is_the_python_one(data: bytes, names: tuple[bytes, ...], strip: bool) -> None:
    assert compiled.scan_headers(data, names, strip) == http1._scan_headers(data, names, strip)


def test_the_header_scan_takes_the_session_header_out_and_declines_other_shapes() -> None:
    data = b"GET /a HTTP/1.1\r\nHost: a\r\nX-Koala-Session:  s1 \r\nx-koala-session: s2\r\n\r\nbody"
    values, message = compiled.scan_headers(data, (b"x-koala-session", b"traceparent"), True)
    assert values == ["s1", None] and message == b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nbody"
    assert compiled.scan_headers(data, (b"traceparent",), True)[1] is data  # nothing found: no copy
    # Other shapes go to the reference (bytearray data, a list of names, names not bytes).
    assert compiled.scan_headers(bytearray(data), (b"host",), False) is NotImplemented
    assert compiled.scan_headers(data, [b"host"], False) is NotImplemented
    assert compiled.scan_headers(data, ("host",), False) is NotImplemented
    assert http1.find_headers(bytearray(data), (b"host",)) == ["a"]


# Request lines and near misses: each part of the pattern bent one way (method length and
# bytes, the spaces, the target's whitespace, the version's digits, the CR/LF tail and what
# follows it), and lines that reach the 8,200-byte limit the pattern looks within.
_METHODS = st.one_of(st.sampled_from([b"GET", b"M-SEARCH", b"X_1", b"get", b"1GET", b"", b"A" * 20, b"A" * 21, b"G\xc9T"]), st.binary(max_size=4))
_TARGETS = st.one_of(st.sampled_from([b"/", b"/a?b=c", b"", b"/a b", b"/\t", b"/\x0b", b"/\x1c", b"/\xa0", b"*"]), st.binary(max_size=5))
_VERSIONS = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1", b"HTTP/a.1", b"HTTP/1.x", b"http/1.1", b"HTTP/11.1", b"HTTP /1.1"])
_TAILS = st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"x", b" ", b"Host: a"]), max_size=4).map(b"".join)
request_lines = st.builds(
    lambda m, s1, t, s2, v, tail, pad: m + s1 + t + s2 + v + tail if pad is None else m + s1 + b"/" + b"a" * pad + t + s2 + v + tail,
    _METHODS,
    st.sampled_from([b" ", b"  ", b"\t", b""]),
    _TARGETS,
    st.sampled_from([b" ", b"  ", b""]),
    _VERSIONS,
    _TAILS,
    st.one_of(st.none(), st.integers(8160, 8200)),
)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(request_lines, st.lists(pieces, max_size=12).map(b"".join)))
def test_the_compiled_request_line_is_the_python_one(data: bytes) -> None:
    assert compiled.looks_like_request(data) is http1._looks_like_request(data)
    assert compiled.request_line(data) == http1._request_line(data)
    assert compiled.looks_like_request(bytearray(data)) is http1._looks_like_request(data)  # any bytes-like


def test_a_request_line_is_told_as_the_pattern_tells_it() -> None:
    assert compiled.request_line(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n") == ("GET", "/a?b=1")
    assert compiled.request_line(b"M-SEARCH * HTTP/1.1") == ("M-SEARCH", "*")  # the end of the data ends the line
    assert compiled.request_line(b"GET / HTTP/1.1\nHost: x") is None  # a bare LF then more is no line end
    assert compiled.request_line(b"A" * 21 + b" / HTTP/1.1\r\n") is None  # methods are 1 to 20 bytes
    # The pattern looks at the first 8,200 bytes only: a line ending at the limit counts.
    line = b"GET /" + b"a" * (8200 - 14) + b" HTTP/1.1"
    assert len(line) == 8200 and compiled.looks_like_request(line + b"more")
    assert not compiled.looks_like_request(b"GET /" + b"a" * 8200 + b" HTTP/1.1\r\n")
    with pytest.raises(TypeError):
        compiled.looks_like_request("GET / HTTP/1.1")


# Status lines and near misses: the version's digits and dot, the spaces, two to four status
# digits, the reason, the CR/LF tail and what follows it.
_STATUS_VERSIONS = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1", b"HTTP/a.1", b"HTTP/1x1", b"http/1.1", b"HTTP/11.1", b"HTT"])
_CODES = st.one_of(st.sampled_from([b"200", b"404", b"999", b"000", b"20", b"2000", b"2a0", b"\xb2\xb2\xb2"]), st.binary(max_size=4))
_REASONS = st.one_of(st.sampled_from([b"", b" OK", b" Not Found", b"OK", b"  ", b" \r", b"\t OK"]), st.binary(max_size=4))
status_lines = st.builds(
    lambda v, s, code, reason, tail: v + s + code + reason + tail,
    _STATUS_VERSIONS,
    st.sampled_from([b" ", b"  ", b"", b"\t"]),
    _CODES,
    _REASONS,
    st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"x", b" ", b"Content-Length: 2"]), max_size=4).map(b"".join),
)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(status_lines, heads))
def test_the_compiled_status_code_is_the_python_one(data: bytes) -> None:
    assert compiled.status_code(data) == http1._status_code(data)
    assert compiled.status_code(bytearray(data)) == http1._status_code(data)  # any bytes-like


def test_a_status_line_is_read_as_the_pattern_reads_it() -> None:
    assert compiled.status_code(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") == 200
    assert compiled.status_code(b"HTTP/1.0 404") == 404  # no reason, no line end
    assert compiled.status_code(b"HTTP/1.1 503\r\n") == 503
    assert compiled.status_code(b"HTTP/1.1 200\r\r\n") is None  # one CR only, before the LF
    assert compiled.status_code(b"HTTP/1.1 2000 OK\r\n") is None
    assert compiled.status_code(b"HTTP/1.1 200OK\r\n") is None
    assert compiled.status_code(b"\nHTTP/1.1 200 OK") is None  # the first line is empty
    assert compiled.status_code(b"") is None
    with pytest.raises(TypeError):
        compiled.status_code("HTTP/1.1 200 OK")
