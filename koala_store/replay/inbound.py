"""Send a recorded inbound request to the system under test and read its answer.

HTTP-aware: the Host header is rewritten to the target, GoReplay-style URL rewrites and set
headers apply, and the session's key is injected (X-Koala-Session and traceparent) when the
replay attributes outbound talks by propagated header. Responses are framed by
Content-Length or chunked encoding (else by the connection closing), with a timeout.
Connections to the target are kept alive and reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time

from msgspec import Struct

from ..errors import KoalaError
from ..wire import fastcgi, http1, parse_talk
from .mock import SESSION_HEADER
from .sockets import quickack
from .streams import Stream, open_connection
from .targets import Address

READ_SIZE = 1 << 16
FASTCGI_READ = "<fastcgi>"  # marks a FastCGI exchange where an HTTP method would be
NON_HTTP_IDLE_S = 0.05
MAX_HEAD = 1 << 20  # a response head longer than this is not a working HTTP server


class Rewrite(Struct, frozen=True):
    pattern: re.Pattern[str]
    replacement: str


class RequestEdits(Struct):
    """GoReplay-style edits: --rewrite-url REGEX:REPLACEMENT and --set-header "Name: value"."""

    rewrites: list[Rewrite] = []
    headers: list[tuple[str, str]] = []

    @classmethod
    def parse(cls, rewrite_urls: list[str], set_headers: list[str]) -> "RequestEdits":
        rewrites = []
        for text in rewrite_urls:
            pattern, sep, replacement = text.partition(":")
            if not sep:
                raise KoalaError(f"--rewrite-url {text!r} is not REGEX:REPLACEMENT; write e.g. '^/v1/(.*):/v2/$1'")
            try:
                rewrites.append(Rewrite(re.compile(pattern), re.sub(r"\$(\d+)", r"\\\1", replacement)))
            except re.error as exc:
                raise KoalaError(f"--rewrite-url {text!r}: bad regular expression ({exc})") from None
        headers = []
        for text in set_headers:
            name, sep, value = text.partition(":")
            if not sep or not name.strip() or " " in name.strip():
                raise KoalaError(f"--set-header {text!r} is not 'Name: value'; write e.g. 'X-Env: replay'")
            headers.append((name.strip(), value.strip()))
        return cls(rewrites, headers)


class InboundResult(Struct):
    response: bytes = b""
    latency_ms: float = 0.0
    error: str | None = None


def trace_parent(session_key: str) -> str:
    """The W3C traceparent that carries a session key (its trace id) to the SUT."""
    return f"00-{session_key}-{session_key[:16]}-01"


def prepare_request(raw: bytes, target: Address, edits: RequestEdits, session_key: str | None) -> bytes:
    """The recorded request as it goes to the target (other protocols go unchanged)."""
    if fastcgi.is_request(raw):
        return _prepare_fastcgi(raw, edits, session_key)
    head = http1.parse_request_head(raw)
    if head is None:
        return raw
    path = head.target
    for rewrite in edits.rewrites:
        path = rewrite.pattern.sub(rewrite.replacement, path)
    replace = {"host": str(target)}
    replace.update({name.lower(): value for name, value in edits.headers})
    added = [(name, value) for name, value in edits.headers]
    if session_key is not None:
        replace[SESSION_HEADER.lower()] = session_key
        replace["traceparent"] = trace_parent(session_key)
        added += [(SESSION_HEADER, session_key), ("traceparent", replace["traceparent"])]
    lines = [f"{head.method} {path} HTTP/{head.version}"]
    seen = set()
    for name, value in head.headers:
        lower = name.lower()
        if lower in replace:
            if lower in seen:
                continue
            seen.add(lower)
            lines.append(f"{name}: {replace[lower]}")
        else:
            lines.append(f"{name}: {value}")
    if "host" not in seen:
        lines.insert(1, f"Host: {replace['host']}")
        seen.add("host")
    lines += [f"{name}: {value}" for name, value in added if name.lower() not in seen]
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + raw[head.body_offset :]


def _prepare_fastcgi(raw: bytes, edits: RequestEdits, session_key: str | None) -> bytes:
    """A FastCGI request (a web server talking to PHP-FPM) with the edits applied to what
    its params say: --rewrite-url on REQUEST_URI, headers as HTTP_* params, the session key as
    HTTP_X_KOALA_SESSION and HTTP_TRACEPARENT. Unedited, it goes byte for byte."""
    if not (edits.rewrites or edits.headers or session_key):
        return raw
    request = fastcgi.parse_request(raw)
    if request is None or not request.complete:
        return raw
    params = list(request.params)
    uri = request.param("REQUEST_URI")
    if edits.rewrites and uri is not None:
        for rewrite in edits.rewrites:
            uri = rewrite.pattern.sub(rewrite.replacement, uri)
        # What PHP reads the URL from follows: $_GET from QUERY_STRING, the path from DOCUMENT_URI.
        path, _, query = uri.partition("?")
        new = {"REQUEST_URI": uri, "QUERY_STRING": query, "DOCUMENT_URI": path}
        params = [(k, new[k] if k in new else v) for k, v in params]
    extra = list(edits.headers)
    if session_key is not None:
        extra += [(SESSION_HEADER, session_key), ("traceparent", trace_parent(session_key))]
    for name, value in extra:
        key = "HTTP_" + name.upper().replace("-", "_")
        params = [(k, v) for k, v in params if k != key] + [(key, value)]
    return fastcgi.encode_request(params, request.stdin, request_id=request.request_id, keep_conn=request.keep_conn)


def request_path(raw: bytes) -> str | None:
    """The request target (HTTP, or a FastCGI request's REQUEST_URI), for URL filters."""
    line = parse_talk(raw).line
    return line[1] if line else None


class InboundClient:
    """Keep-alive connections to the target, one request at a time per connection."""

    # Slots: the compiled code finds these without searching an instance dictionary.
    __slots__ = ("_idle", "target", "timeout")

    def __init__(self, target: Address, *, timeout: float = 5.0):
        self.target = target
        self.timeout = timeout
        self._idle: list[tuple[Stream, Stream]] = []

    async def send(self, request: bytes) -> InboundResult:
        started = time.perf_counter()
        if fastcgi.is_request(request):
            method, keep_conn = FASTCGI_READ, bool((parsed := fastcgi.parse_request(request)) and parsed.keep_conn)
        else:
            method, keep_conn = (http1.request_line(request) or ("", ""))[0], True
        for attempt in range(2):
            reused = bool(self._idle)
            try:
                if reused:
                    reader, writer = self._idle.pop()
                else:
                    reader, writer = await asyncio.wait_for(open_connection(self.target.host, self.target.port), self.timeout)
            except (OSError, asyncio.TimeoutError) as exc:
                return InboundResult(error=f"cannot connect to the target {self.target}: {_why(exc)}")
            try:
                writer.time_limit(self.timeout)  # a timer, no extra task (asyncio.wait_for) or cancellation
                writer.write(request)
                await writer.drain()
                response, keep = await self._read_response(_AckingReader(reader, writer), method)
            except TimeoutError:
                _close(writer)
                return InboundResult(latency_ms=_ms(started), error=f"the target {self.target} did not answer within {self.timeout:g} s")
            except (ConnectionError, OSError) as exc:
                _close(writer)
                if reused and attempt == 0:
                    continue  # a kept-alive connection the target had closed: try a new one
                return InboundResult(latency_ms=_ms(started), error=f"the target {self.target} dropped the connection: {_why(exc)}")
            except ResponseError as exc:
                _close(writer)
                return InboundResult(latency_ms=_ms(started), error=f"the target {self.target} {exc}")
            finally:
                writer.time_limit(None)
            if not response:
                _close(writer)
                if reused and attempt == 0:
                    continue
                return InboundResult(latency_ms=_ms(started), error=f"the target {self.target} closed the connection without answering")
            if keep and keep_conn:  # FastCGI: PHP-FPM closes unless the request kept it open
                self._idle.append((reader, writer))
            else:
                _close(writer)
            return InboundResult(response=response, latency_ms=_ms(started))
        return InboundResult(latency_ms=_ms(started), error=f"the target {self.target} closed the connection without answering")

    @staticmethod
    async def _read_response(reader: _AckingReader, method: str) -> tuple[bytes, bool]:
        """The response bytes, and whether the connection may be reused.

        Bytes are appended to one buffer and only the new part is examined, so a large
        answer costs linear time. A connection closed before the announced body is complete
        raises ResponseError (an error, not a difference)."""
        buffer = bytearray()
        if not method:
            return await _read_burst(reader, buffer), False
        if method == FASTCGI_READ:
            return await _read_fastcgi(reader, buffer), True
        end = -1
        while end < 0:
            chunk = await reader.read(READ_SIZE)
            if not chunk:
                if buffer:
                    raise ResponseError(f"closed the connection in the middle of the response head ({len(buffer)} bytes)")
                return b"", False
            searched = max(len(buffer) - 3, 0)
            buffer += chunk
            end = buffer.find(http1.HEAD_END, searched)
            if end < 0 and len(buffer) > MAX_HEAD:
                raise ResponseError(f"sent a response head longer than {MAX_HEAD} bytes")
        body_start = end + len(http1.HEAD_END)
        head = http1.parse_response_head(bytes(buffer[:body_start]))
        if head is None:
            raise ResponseError(f"answered with something that is not an HTTP response: {bytes(buffer[:60])!r}")
        keep = head.version != "1.0" and (head.header("Connection") or "").lower() != "close"
        if method == "HEAD" or head.status in (204, 304) or 100 <= head.status < 200:
            total = body_start
        elif "chunked" in (head.header("Transfer-Encoding") or "").lower():
            total = await _read_chunked(reader, buffer, body_start)
        elif (length := head.header("Content-Length")) is not None:
            try:
                total = body_start + int(length)
            except ValueError:
                raise ResponseError(f"sent Content-Length {length!r}, which is not a number") from None
            while len(buffer) < total:
                chunk = await reader.read(min(READ_SIZE, total - len(buffer)))
                if not chunk:
                    raise ResponseError(f"closed the connection after {len(buffer) - body_start} of {int(length)} body bytes")
                buffer += chunk
        else:
            while chunk := await reader.read(READ_SIZE):  # the body runs until the connection closes
                buffer += chunk
            return bytes(buffer), False
        return bytes(buffer[:total]), keep and total == len(buffer)

    async def close(self) -> None:
        while self._idle:
            _, writer = self._idle.pop()
            _close(writer)


async def _read_fastcgi(reader: _AckingReader, buffer: bytearray) -> bytes:
    """A FastCGI answer: records up to and including END_REQUEST."""
    while (end := fastcgi.response_length(bytes(buffer))) is None:
        chunk = await reader.read(READ_SIZE)
        if not chunk:
            if not buffer:
                return b""
            raise ResponseError(f"closed the connection after {len(buffer)} bytes of a FastCGI answer, before END_REQUEST")
        buffer += chunk
    return bytes(buffer[:end])


class _AckingReader:
    """A connection's reads, each after the first acknowledging what came before it at once:
    a target that writes its answer in parts may hold the rest until then (Nagle against
    delayed ACK, sockets.py). An answer that comes whole costs no extra call."""

    __slots__ = ("reader", "writer", "reads")

    def __init__(self, reader: Stream, writer: Stream):
        self.reader = reader
        self.writer = writer
        self.reads = 0

    @property
    def timed_out(self) -> bool:
        return self.reader.timed_out

    async def read(self, n: int) -> bytes:
        if self.reads:
            quickack(self.writer)
        self.reads += 1
        return await self.reader.read(n)


class ResponseError(Exception):
    """The target's answer is broken (cut short, not HTTP): the session is an error."""


async def _read_burst(reader: _AckingReader, buffer: bytearray) -> bytes:
    """Not HTTP: the answer is the burst that ends with an idle gap."""
    chunk = await reader.read(READ_SIZE)
    while chunk:
        buffer += chunk
        try:
            chunk = await asyncio.wait_for(reader.read(READ_SIZE), NON_HTTP_IDLE_S)
        except asyncio.TimeoutError:
            if reader.timed_out:
                raise  # the request's time limit, not an idle gap
            break
    return bytes(buffer)


async def _read_chunked(reader: _AckingReader, buffer: bytearray, pos: int) -> int:
    """Read a chunked body into `buffer` (from `pos`); the end offset of the message."""

    async def more() -> None:
        chunk = await reader.read(READ_SIZE)
        if not chunk:
            raise ResponseError("closed the connection in the middle of a chunked body")
        buffer.extend(chunk)

    while True:
        while (line_end := buffer.find(b"\r\n", pos)) < 0:
            await more()
        size_text = bytes(buffer[pos:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ResponseError(f"sent a chunk size {size_text[:20]!r} that is not hexadecimal") from None
        pos = line_end + 2
        if size == 0:
            # Trailers, then the empty line that ends the message.
            while True:
                while (line_end := buffer.find(b"\r\n", pos)) < 0:
                    await more()
                if line_end == pos:
                    return pos + 2
                pos = line_end + 2
        while len(buffer) < pos + size + 2:
            await more()
        pos += size + 2


def _close(writer: Stream) -> None:
    with contextlib.suppress(Exception):
        writer.close()


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _why(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    return exc.strerror or type(exc).__name__ if isinstance(exc, OSError) else str(exc) or type(exc).__name__
