"""HTTP/1.x messages as recorded bytes: tolerant parsing of the head, and framing.

Recordings hold whatever crossed the wire, sometimes cut short, so nothing here raises on
odd input: a parse that fails returns None and callers fall back to treating bytes as bytes.
"""

from __future__ import annotations

import re

from msgspec import Struct

from .http import HttpRequest, HttpResponse, find, split_target

HEAD_END = b"\r\n\r\n"
# A request line, matched in place: up to its CRLF, or the end of the first 8200 bytes.
_REQUEST_LINE = re.compile(rb"([A-Z][A-Z0-9_-]{0,19}) (\S+) HTTP/(\d)\.(\d)\r?\n?(?:\r\n|\Z)")
_LINE_LIMIT = 8200
_STATUS_LINE = re.compile(rb"^HTTP/(\d)\.(\d) (\d{3})(?: (.*))?\r?$")
# The same, for the start line once decoded as Latin-1 (the same matches: ASCII digits).
_STATUS_TEXT = re.compile(_STATUS_LINE.pattern.decode(), re.ASCII)


class Head(Struct):
    """The start line and headers of a request or a response."""

    start_line: str
    headers: list[tuple[str, str]]  # in wire order, names as sent
    body_offset: int  # where the body starts in the message bytes
    method: str = ""
    target: str = ""  # request target as sent, e.g. /v1/order?city=1
    status: int = 0
    reason: str = ""
    version: str = "1.1"

    def header(self, name: str) -> str | None:
        """The first header with this name, case-insensitive."""
        return find(self.headers, name)

    @property
    def path(self) -> str:
        return split_target(self.target)[0]

    @property
    def query(self) -> str:
        return split_target(self.target)[1]


def _request_line(data: bytes) -> tuple[str, str] | None:
    """(method, target) of an HTTP/1.x request, without parsing the headers (the reference
    for _http1head.request_line)."""
    match = _REQUEST_LINE.match(data, 0, _LINE_LIMIT)
    return (match.group(1).decode("latin-1"), match.group(2).decode("latin-1")) if match else None


def _status_code(data: bytes) -> int | None:
    """The status of an HTTP/1.x response, without parsing the headers (the reference for
    _http1head.status_code)."""
    if not data.startswith(b"HTTP/"):
        return None
    match = _STATUS_LINE.match(_first_line(data))
    return int(match.group(3)) if match else None


def _first_line(data: bytes) -> bytes:
    end = data.find(b"\n")
    return data if end < 0 else data[:end]


def find_header(data: bytes, name: bytes) -> str | None:
    """The first value of one header (name in lower case), found without a full parse."""
    return find_headers(data, (name,))[0]


def find_headers(data: bytes, names: tuple[bytes, ...]) -> list[str | None]:
    """The first value of each header named (lower case), the head lowered once for all."""
    return _scan(data, names, False)[0]


def _scan(data: bytes, names: tuple[bytes, ...], strip: bool) -> tuple[list[str | None], bytes]:
    """`_scan_headers`, in C where it built (for bytes and a tuple of bytes names)."""
    if _compiled_scan is not None:
        scanned = _compiled_scan(data, names, strip)
        if scanned is not NotImplemented:
            return scanned
    return _scan_headers(data, names, strip)


def _scan_headers(data: bytes, names: tuple[bytes, ...], strip: bool) -> tuple[list[str | None], bytes]:
    """The first value of each header named and, with `strip` and a name found, the message
    without the head lines so named (else `data` itself): the reference for
    _http1head.scan_headers."""
    end, values, found = _found_headers(data, names)
    # Found in data[:end] exactly when in without_headers' data[:end + 2]: the two bytes
    # more are CRLF, and what is searched for ends with ':'.
    return values, (_drop_lines(data, end, names) if strip and found and end >= 0 else data)


def _found_headers(data: bytes, names: tuple[bytes, ...]) -> tuple[int, list[str | None], bool]:
    """Where the head ends (-1: no end), `find_headers`, and whether any header was found."""
    end = data.find(HEAD_END)
    head = data[:end] if end >= 0 else data
    lowered = head.lower()
    out: list[str | None] = []
    found = False
    for name in names:
        at = lowered.find(b"\r\n" + name + b":")
        if at < 0:
            out.append(None)
            continue
        found = True
        start = at + len(name) + 3
        stop = head.find(b"\r\n", start)
        out.append(head[start : stop if stop >= 0 else len(head)].strip().decode("latin-1"))
    return end, out, found


def _looks_like_request(data: bytes) -> bool:
    """True when the bytes start with an HTTP/1.x request line (the reference for
    _http1head.looks_like_request)."""
    return _REQUEST_LINE.match(data, 0, _LINE_LIMIT) is not None


def looks_like_response(data: bytes) -> bool:
    return status_code(data) is not None


def _split_head(data: bytes) -> tuple[str, list[tuple[str, str]], int]:
    """(start line, headers, body offset): the reference for _http1head.split_head, which
    does exactly this in C where it built."""
    end = data.find(HEAD_END)
    if end < 0:
        # A head cut short still tells its start line and the headers seen so far.
        head, body_offset = data, len(data)
    else:
        head, body_offset = data[:end], end + len(HEAD_END)
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep and name and " " not in name:
            headers.append((name, value.strip()))
    return lines[0], headers, body_offset


try:  # optional compiled part (setup.py): the same split, ~3x faster
    from ._http1head import split_head as _parse_head
except ImportError:  # pragma: no cover - exercised where no C compiler is installed
    _parse_head = _split_head
try:  # and the request line told in one pass (asked several times a talk), ~4x faster
    from ._http1head import looks_like_request, request_line
except ImportError:  # pragma: no cover - exercised where no C compiler is installed
    looks_like_request, request_line = _looks_like_request, _request_line
try:  # and the status line read without the regex
    from ._http1head import status_code
except ImportError:  # pragma: no cover - exercised where no C compiler is installed
    status_code = _status_code
try:  # and the same header scan (_scan_headers), ~10x faster
    from ._http1head import scan_headers as _compiled_scan
except ImportError:  # pragma: no cover - exercised where no C compiler is installed
    _compiled_scan = None


def parse_request_head(data: bytes) -> Head | None:
    """Parse the head of an HTTP/1.x request, or None when the bytes are not one."""
    if not looks_like_request(data):
        return None
    start, headers, body_offset = _parse_head(data)
    method, target, version = start.split(" ", 2)
    return Head(
        start_line=start,
        headers=headers,
        body_offset=body_offset,
        method=method,
        target=target,
        version=version.removeprefix("HTTP/"),
    )


def parse_response_head(data: bytes) -> Head | None:
    """Parse the head of an HTTP/1.x response, or None when the bytes are not one."""
    if not data.startswith(b"HTTP/"):
        return None
    start, headers, body_offset = _parse_head(data)
    match = _STATUS_TEXT.match(start)
    if match is None:
        return None
    major, minor, status, reason = match.groups("")
    return Head(start_line=start, headers=headers, body_offset=body_offset, status=int(status), reason=reason, version=f"{major}.{minor}")


def alike_but_header_values(expected: bytes, actual: bytes, names: frozenset[str]) -> bool:
    """Whether two HTTP/1.x responses differ at most in the values of the headers named
    (lower case), told from their bytes: the same parsed status line, the same lines in the
    same order but for those values, the same bytes after the head. Then `response()` of
    each gives the same status, body and header names in the same order. False: not
    known to be so (interim 1xx responses are never looked into)."""
    end, other_end = expected.find(HEAD_END), actual.find(HEAD_END)
    if end < 0 or other_end < 0 or expected[end:] != actual[other_end:]:
        return False
    if expected.startswith(b"HTTP/1.") and expected[9:10] == b"1":
        return False
    lines, other_lines = expected[:end].split(b"\r\n"), actual[:other_end].split(b"\r\n")
    if len(lines) != len(other_lines) or lines[0] != other_lines[0] or _STATUS_TEXT.match(lines[0].decode("latin-1")) is None:
        return False
    for line, other in zip(lines, other_lines, strict=True):
        if line == other:
            continue
        # Both must parse as a header of one name (a name without spaces, as _split_head).
        name, sep, _ = line.partition(b":")
        # find, not `in` (bytes `in` pays for a TypeError first: see OutboundMock._serve).
        if not sep or not name or name.find(b" ") >= 0 or not other.startswith(name + b":"):
            return False
        if name.decode("latin-1").lower() not in names:
            return False
    return True


def dechunk(body: bytes) -> bytes | None:
    """Decode a complete chunked body; None when it is malformed or incomplete."""
    out = bytearray()
    pos = 0
    while True:
        line_end = body.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size_text = body[pos:line_end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return None
        pos = line_end + 2
        if size == 0:
            return bytes(out)
        if pos + size > len(body):
            return None
        out += body[pos : pos + size]
        pos += size + 2


def message_body(data: bytes, head: Head) -> bytes:
    """The body of a message, with chunked transfer encoding undone when it is complete."""
    body = data[head.body_offset :]
    if "chunked" in (head.header("Transfer-Encoding") or "").lower():
        decoded = dechunk(body)
        if decoded is not None:
            return decoded
    return body


def request(data: bytes) -> HttpRequest | None:
    """The meaning of an HTTP/1.x request, or None when the bytes are not one."""
    head = parse_request_head(data)
    if head is None:
        return None
    return HttpRequest(head.method, head.target, head.headers, message_body(data, head))


def response(data: bytes) -> HttpResponse | None:
    """The meaning of an HTTP/1.x response (the final one after interim 1xx), or None."""
    data = final_response(data)
    head = parse_response_head(data)
    if head is None:
        return None
    return HttpResponse(head.status, head.reason, head.headers, message_body(data, head))


def render_request(view: HttpRequest) -> bytes:
    """A request view written as HTTP/1.1 (to show a FastCGI request the way people read HTTP)."""
    lines = [f"{view.method} {view.target} HTTP/1.1", *(f"{name}: {value}" for name, value in view.headers)]
    return "\r\n".join(lines).encode("latin-1", "replace") + HEAD_END + view.body


def render_response(view: HttpResponse) -> bytes:
    """A response view written as HTTP/1.1."""
    lines = [f"HTTP/1.1 {view.status} {view.reason}".rstrip(), *(f"{name}: {value}" for name, value in view.headers)]
    return "\r\n".join(lines).encode("latin-1", "replace") + HEAD_END + view.body


def final_response(data: bytes) -> bytes:
    """The response after any interim 1xx responses (`100 Continue` recorded before the answer)."""
    while data.startswith(b"HTTP/1.") and data[9:10] == b"1":
        status = status_code(data)
        end = data.find(HEAD_END)
        if status is None or not 100 <= status < 200 or status == 101 or end < 0 or not data.startswith(b"HTTP/", end + 4):
            break
        data = data[end + 4 :]
    return data


def message_length(data: bytes, *, is_response: bool = False, request_method: str = "") -> int | None:
    """How many bytes the first complete HTTP message in `data` spans, or None if incomplete.

    Used to frame talks without waiting for an idle gap. A response without Content-Length
    or chunked encoding runs until the connection closes, so it is never complete here.
    """
    end = data.find(HEAD_END)
    if end < 0:
        return None
    head = parse_response_head(data) if is_response else parse_request_head(data)
    if head is None:
        return None
    body_start = end + len(HEAD_END)
    if is_response and (request_method == "HEAD" or head.status in (204, 304) or 100 <= head.status < 200):
        return body_start
    if "chunked" in (head.header("Transfer-Encoding") or "").lower():
        pos = body_start
        while True:
            line_end = data.find(b"\r\n", pos)
            if line_end < 0:
                return None
            try:
                size = int(data[pos:line_end].split(b";", 1)[0].strip(), 16)
            except ValueError:
                return None
            pos = line_end + 2
            if size == 0:
                # Trailers end with an empty line.
                trailer_end = data.find(b"\r\n", pos)
                while trailer_end >= 0 and trailer_end != pos:
                    pos = trailer_end + 2
                    trailer_end = data.find(b"\r\n", pos)
                return pos + 2 if trailer_end >= 0 else None
            pos += size + 2
            if pos > len(data):
                return None
    length = head.header("Content-Length")
    if length is not None:
        try:
            total = body_start + int(length)
        except ValueError:
            return None
        return total if len(data) >= total else None
    if is_response:
        return None
    return body_start


def without_headers(data: bytes, names: tuple[bytes, ...]) -> bytes:
    """The message with every header line named in `names` (lower case) left out of its head;
    the same bytes object when none is there (the usual case costs one search per name)."""
    end = data.find(HEAD_END)
    if end < 0:
        return data
    head = data[: end + 2]
    lowered = head.lower()
    if not any(lowered.find(b"\r\n" + name + b":") >= 0 for name in names):
        return data
    return _drop_lines(data, end, names)


def take_headers(data: bytes, names: tuple[bytes, ...]) -> tuple[list[str | None], bytes]:
    """`find_headers(data, names)` and `without_headers(data, names)` at once, the head
    lowered once: what the replay mock does to every outbound HTTP talk."""
    return _scan(data, names, True)


def _drop_lines(data: bytes, end: int, names: tuple[bytes, ...]) -> bytes:
    """The message with the head's lines named in `names` left out (`end`: where its head ends)."""
    lines = data[: end + 2].split(b"\r\n")
    kept = [lines[0]] + [line for line in lines[1:] if line.split(b":", 1)[0].strip().lower() not in names]
    return b"\r\n".join(kept) + data[end + 2 :]
