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
from ..wire import http1
from .mock import SESSION_HEADER
from .targets import Address

READ_SIZE = 1 << 16
NON_HTTP_IDLE_S = 0.05


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


def prepare_request(raw: bytes, target: Address, edits: RequestEdits, session_key: str | None) -> bytes:
    """The recorded request as it goes to the target (non-HTTP requests go unchanged)."""
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
        replace["traceparent"] = f"00-{session_key}-{session_key[:16]}-01"
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


def request_path(raw: bytes) -> str | None:
    head = http1.parse_request_head(raw)
    return head.target if head else None


class InboundClient:
    """Keep-alive connections to the target, one request at a time per connection."""

    def __init__(self, target: Address, *, timeout: float = 5.0):
        self.target = target
        self.timeout = timeout
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def send(self, request: bytes) -> InboundResult:
        started = time.perf_counter()
        method = (http1.request_line(request) or ("", ""))[0]
        for attempt in range(2):
            reused = bool(self._idle)
            try:
                reader, writer = self._idle.pop() if reused else await asyncio.wait_for(
                    asyncio.open_connection(self.target.host, self.target.port), self.timeout
                )
            except (OSError, asyncio.TimeoutError) as exc:
                return InboundResult(error=f"cannot connect to the target {self.target}: {_why(exc)}")
            try:
                async with asyncio.timeout(self.timeout):  # no extra task per request, unlike wait_for
                    writer.write(request)
                    await writer.drain()
                    response, keep = await self._read_response(reader, method)
            except TimeoutError:
                _close(writer)
                return InboundResult(latency_ms=_ms(started), error=f"the target {self.target} did not answer within {self.timeout:g} s")
            except (ConnectionError, OSError) as exc:
                _close(writer)
                if reused and attempt == 0:
                    continue  # a kept-alive connection the target had closed: try a new one
                return InboundResult(latency_ms=_ms(started), error=f"the target {self.target} dropped the connection: {_why(exc)}")
            if not response:
                _close(writer)
                if reused and attempt == 0:
                    continue
                return InboundResult(latency_ms=_ms(started), error=f"the target {self.target} closed the connection without answering")
            if keep:
                self._idle.append((reader, writer))
            else:
                _close(writer)
            return InboundResult(response=response, latency_ms=_ms(started))
        return InboundResult(latency_ms=_ms(started), error=f"the target {self.target} closed the connection without answering")

    @staticmethod
    async def _read_response(reader: asyncio.StreamReader, method: str) -> tuple[bytes, bool]:
        """The response bytes, and whether the connection may be reused."""
        buffer = bytearray()
        while True:
            if buffer and not method:
                # Not HTTP: the answer is the burst that ends with an idle gap.
                try:
                    chunk = await asyncio.wait_for(reader.read(READ_SIZE), NON_HTTP_IDLE_S)
                except asyncio.TimeoutError:
                    return bytes(buffer), False
            else:
                chunk = await reader.read(READ_SIZE)
            if not chunk:
                return bytes(buffer), False  # closed: the response ends here
            buffer += chunk
            end = http1.message_length(bytes(buffer), is_response=True, request_method=method) if method else None
            if end is not None:
                head = http1.parse_response_head(bytes(buffer))
                keep = head is not None and head.version != "1.0" and (head.header("Connection") or "").lower() != "close"
                return bytes(buffer[:end]), keep and end == len(buffer)

    async def close(self) -> None:
        while self._idle:
            _, writer = self._idle.pop()
            _close(writer)


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _why(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    return exc.strerror or type(exc).__name__ if isinstance(exc, OSError) else str(exc) or type(exc).__name__
