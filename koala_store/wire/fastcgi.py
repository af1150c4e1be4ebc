"""FastCGI 1.0 as recorded bytes: records, the request and response streams, and the HTTP they
carry (Koala's default inbound protocol is FastCGI, from a web server to PHP-FPM).

A stream is a run of records, each an 8-byte header (version 1, type, request id, content
length, padding length, a reserved byte), its content and its padding. A request is a
BEGIN_REQUEST record, PARAMS records (name-value pairs, ended by an empty PARAMS record) and
STDIN records (the body, ended by an empty STDIN record); the response is STDOUT records (a
CGI response: headers, a blank line, the body), STDERR records (PHP's log lines) and
END_REQUEST. Where a stream splits into records, the padding and the reserved bytes carry no
meaning, so everything here reads through them: two recordings that differ only in framing
give the same request and response.

As elsewhere in wire/, nothing raises on odd input: a recording cut short still yields what
its complete records say, and bytes that are not FastCGI give None.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import NamedTuple

from msgspec import Struct

from .http import HttpRequest, HttpResponse, find

VERSION = 1
BEGIN_REQUEST = 1
ABORT_REQUEST = 2
END_REQUEST = 3
PARAMS = 4
STDIN = 5
STDOUT = 6
STDERR = 7
DATA = 8
GET_VALUES = 9
GET_VALUES_RESULT = 10
UNKNOWN_TYPE = 11

RESPONDER, AUTHORIZER, FILTER = 1, 2, 3
KEEP_CONN = 1  # BEGIN_REQUEST flag: the server keeps the connection open after the request
REQUEST_COMPLETE = 0  # END_REQUEST protocol status

HEADER = struct.Struct(">BBHHBx")  # version, type, request id, content length, padding length, reserved
HEADER_SIZE = HEADER.size
MAX_CONTENT = 0xFFFF
_BEGIN_BODY = struct.Struct(">HB5x")  # role, flags, reserved
_END_BODY = struct.Struct(">IB3x")  # app status, protocol status, reserved


class Record(NamedTuple):
    type: int
    request_id: int
    content: bytes


def read_records(data: bytes, pos: int = 0) -> tuple[list[Record], int]:
    """The complete records from `pos` on, and the offset where they stop (the end of `data`,
    or the start of a record still arriving or of bytes that are not a record)."""
    out: list[Record] = []
    size = len(data)
    while pos + HEADER_SIZE <= size:
        version, kind, request_id, length, padding = HEADER.unpack_from(data, pos)
        end = pos + HEADER_SIZE + length + padding
        if version != VERSION or kind == 0 or end > size:
            break
        out.append(Record(kind, request_id, data[pos + HEADER_SIZE : pos + HEADER_SIZE + length]))
        pos = end
    return out, pos


def records(data: bytes) -> list[Record] | None:
    """Every record of `data`; None unless the bytes are whole records exactly."""
    found, end = read_records(data)
    return found if found and end == len(data) else None


# --- name-value pairs ------------------------------------------------------------------


def _length(data: bytes, pos: int) -> tuple[int, int] | None:
    # One byte below 128, else four bytes with the top bit set.
    if pos >= len(data):
        return None
    if data[pos] < 0x80:
        return data[pos], pos + 1
    if pos + 4 > len(data):
        return None
    return int.from_bytes(data[pos : pos + 4], "big") & 0x7FFFFFFF, pos + 4


def decode_params(data: bytes) -> list[tuple[str, str]]:
    """The name-value pairs of a PARAMS stream, in order (Latin-1, so no byte is lost); a pair
    cut short ends the list."""
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(data):
        name_len = _length(data, pos)
        value_len = _length(data, name_len[1]) if name_len else None
        if name_len is None or value_len is None:
            break
        start = value_len[1]
        end = start + name_len[0] + value_len[0]
        if end > len(data):
            break
        out.append((data[start : start + name_len[0]].decode("latin-1"), data[start + name_len[0] : end].decode("latin-1")))
        pos = end
    return out


def _encode_length(n: int) -> bytes:
    return bytes([n]) if n < 0x80 else (n | 0x80000000).to_bytes(4, "big")


def encode_params(pairs: Iterable[tuple[str, str]]) -> bytes:
    out = bytearray()
    for name, value in pairs:
        n, v = name.encode("latin-1"), value.encode("latin-1")
        out += _encode_length(len(n)) + _encode_length(len(v)) + n + v
    return bytes(out)


# --- writing records (the test client, and replay edits) --------------------------------


def encode_record(kind: int, request_id: int, content: bytes = b"", padding: int = 0) -> bytes:
    """One record; `content` must fit in 65535 bytes."""
    return HEADER.pack(VERSION, kind, request_id, len(content), padding) + content + bytes(padding)


def encode_stream(kind: int, request_id: int, data: bytes, *, chunk: int = MAX_CONTENT, align: int = 8) -> bytes:
    """`data` as records of at most `chunk` bytes, each padded to a multiple of `align` (as
    PHP-FPM writes them; 0 or 1: no padding), then the empty record that ends the stream."""
    chunk = max(1, min(chunk, MAX_CONTENT))
    out = bytearray()
    for start in range(0, len(data), chunk):
        piece = data[start : start + chunk]
        out += encode_record(kind, request_id, piece, (-len(piece)) % align if align > 1 else 0)
    return bytes(out + encode_record(kind, request_id))


def encode_request(
    params: Iterable[tuple[str, str]],
    stdin: bytes = b"",
    *,
    request_id: int = 1,
    keep_conn: bool = False,
    chunk: int = MAX_CONTENT,
    align: int = 8,
) -> bytes:
    """A responder request as a web server sends it: BEGIN_REQUEST, PARAMS, STDIN."""
    begin = encode_record(BEGIN_REQUEST, request_id, _BEGIN_BODY.pack(RESPONDER, KEEP_CONN if keep_conn else 0))
    return begin + encode_stream(PARAMS, request_id, encode_params(params), chunk=chunk, align=align) + encode_stream(STDIN, request_id, stdin, chunk=chunk, align=align)


def encode_response(stdout: bytes, stderr: bytes = b"", *, request_id: int = 1, app_status: int = 0, chunk: int = MAX_CONTENT, align: int = 8) -> bytes:
    """A response as PHP-FPM sends it: STDOUT (and STDERR when there is any), END_REQUEST."""
    out = b""
    if stderr:
        out += encode_stream(STDERR, request_id, stderr, chunk=chunk, align=align)
    out += encode_stream(STDOUT, request_id, stdout, chunk=chunk, align=align)
    return out + encode_record(END_REQUEST, request_id, _END_BODY.pack(app_status, REQUEST_COMPLETE))


# --- requests --------------------------------------------------------------------------


class Request(Struct):
    """One FastCGI request: what BEGIN_REQUEST, PARAMS and STDIN said."""

    request_id: int
    role: int
    flags: int
    params: list[tuple[str, str]]
    stdin: bytes = b""
    data: bytes = b""  # the FILTER role's DATA stream
    complete: bool = False  # the empty STDIN record (or ABORT_REQUEST) arrived

    def param(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None

    @property
    def keep_conn(self) -> bool:
        return bool(self.flags & KEEP_CONN)

    def http(self) -> HttpRequest:
        """The HTTP request the web server forwarded: method, target (REQUEST_URI, else
        SCRIPT_NAME and QUERY_STRING), headers (HTTP_* plus CONTENT_TYPE and CONTENT_LENGTH)
        and body (STDIN)."""
        params = dict(self.params)  # a repeated name: the last one counts, as in PHP's $_SERVER
        target = params.get("REQUEST_URI") or ""
        if not target:
            query = params.get("QUERY_STRING") or ""
            target = (params.get("SCRIPT_NAME") or "") + (f"?{query}" if query else "")
        headers = []
        for key, value in self.params:
            if key.startswith("HTTP_") and len(key) > 5:
                headers.append((header_name(key[5:]), value))
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
                headers.append((header_name(key), value))
        return HttpRequest(params.get("REQUEST_METHOD") or "", target, headers, self.stdin)


def header_name(cgi_name: str) -> str:
    """`X_FORWARDED_FOR` -> `X-Forwarded-For`: a CGI variable's HTTP header name."""
    return "-".join(part.capitalize() for part in cgi_name.split("_"))


def is_request(data: bytes) -> bool:
    """True when `data` starts with a BEGIN_REQUEST record header: a FastCGI request (a few
    bytes are enough; the replay client and the mock decide on the first read)."""
    # Version 1, BEGIN_REQUEST, any request id, 8 bytes of content.
    return data[:2] == b"\x01\x01" and data[4:6] == b"\x00\x08" and len(data) >= HEADER_SIZE


def parse_request(data: bytes) -> Request | None:
    """The request that `data` starts with, or None when it does not start with BEGIN_REQUEST.
    Records of other request ids (multiplexing) are left out."""
    if not is_request(data):
        return None
    found, _ = read_records(data)
    if not found:
        return None
    begin = found[0]
    role, flags = _BEGIN_BODY.unpack(begin.content)
    params, stdin, extra = bytearray(), bytearray(), bytearray()
    complete = False
    for record in found[1:]:
        if record.request_id != begin.request_id:
            continue
        if record.type == PARAMS:
            params += record.content
        elif record.type == STDIN:
            if not record.content:
                complete = True
                break
            stdin += record.content
        elif record.type == DATA:
            extra += record.content
        elif record.type == ABORT_REQUEST:
            complete = True
            break
    return Request(begin.request_id, role, flags, decode_params(bytes(params)), bytes(stdin), bytes(extra), complete)


def request_length(data: bytes) -> int | None:
    """How many bytes the request `data` starts with spans (up to and including its empty
    STDIN record), or None while it is incomplete or not a FastCGI request."""
    if not is_request(data):
        return None
    request_id = HEADER.unpack_from(data)[2]
    pos = 0
    while pos + HEADER_SIZE <= len(data):
        version, kind, rid, length, padding = HEADER.unpack_from(data, pos)
        end = pos + HEADER_SIZE + length + padding
        if version != VERSION or end > len(data):
            return None
        if rid == request_id and ((kind == STDIN and length == 0) or kind == ABORT_REQUEST):
            return end
        pos = end
    return None


# --- responses -------------------------------------------------------------------------


class Response(Struct):
    """One FastCGI response: the STDOUT and STDERR streams and how END_REQUEST ended it."""

    request_id: int
    stdout: bytes
    stderr: bytes = b""  # PHP's warnings and log lines: kept aside, not part of the HTTP answer
    app_status: int | None = None  # None until END_REQUEST arrived
    protocol_status: int | None = None

    @property
    def complete(self) -> bool:
        return self.app_status is not None

    def http(self) -> HttpResponse:
        """The HTTP response in STDOUT: the CGI headers (status from `Status:`, 302 for a bare
        `Location:`, else 200) and the body after the blank line."""
        return cgi_response(self.stdout)


_RESPONSE_TYPES = (STDOUT, STDERR, END_REQUEST)


def is_response(data: bytes) -> bool:
    """True when `data` starts with a record a FastCGI application answers with."""
    return len(data) >= HEADER_SIZE and data[0] == VERSION and data[1] in _RESPONSE_TYPES


def parse_response(data: bytes) -> Response | None:
    """The response `data` starts with, or None when it does not start with a response record."""
    if not is_response(data):
        return None
    found, _ = read_records(data)
    if not found:
        return None
    request_id = found[0].request_id
    stdout, stderr = bytearray(), bytearray()
    app_status = protocol_status = None
    for record in found:
        if record.request_id != request_id:
            continue
        if record.type == STDOUT:
            stdout += record.content
        elif record.type == STDERR:
            stderr += record.content
        elif record.type == END_REQUEST and len(record.content) == _END_BODY.size:
            app_status, protocol_status = _END_BODY.unpack(record.content)
            break
    return Response(request_id, bytes(stdout), bytes(stderr), app_status, protocol_status)


def response_length(data: bytes) -> int | None:
    """How many bytes the response `data` starts with spans (up to and including its
    END_REQUEST record), or None while it is incomplete or not a FastCGI response."""
    if not is_response(data):
        return None
    pos = 0
    while pos + HEADER_SIZE <= len(data):
        version, kind, _, length, padding = HEADER.unpack_from(data, pos)
        end = pos + HEADER_SIZE + length + padding
        if version != VERSION or end > len(data):
            return None
        if kind == END_REQUEST:
            return end
        pos = end
    return None


def cgi_response(stdout: bytes) -> HttpResponse:
    """A CGI response (RFC 3875 section 6) as HTTP: header lines, a blank line, the body."""
    crlf, lf = stdout.find(b"\r\n\r\n"), stdout.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        head, body = stdout[:crlf], stdout[crlf + 4 :]
    elif lf >= 0:
        head, body = stdout[:lf], stdout[lf + 2 :]
    else:
        head, body = stdout, b""  # cut short inside the headers
    headers: list[tuple[str, str]] = []
    status_line = None
    for line in head.decode("latin-1").splitlines():
        name, sep, value = line.partition(":")
        if not sep or not name or " " in name:
            continue
        if name.lower() == "status":
            status_line = value.strip()
        else:
            headers.append((name, value.strip()))
    status, reason = 200, "OK"
    if status_line:
        code, _, text = status_line.partition(" ")
        if code.isdigit() and len(code) == 3:
            status, reason = int(code), text.strip()
    elif find(headers, "Location") is not None:
        status, reason = 302, "Found"  # a CGI client redirect
    return HttpResponse(status, reason, headers, body)
