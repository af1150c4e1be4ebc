"""The recording proxies: a reverse proxy in front of the service (inbound) and TCP proxies in
front of its dependencies (outbound). Bytes pass through as they are; the proxies only
watch them, except that each inbound HTTP request gets the X-Koala-Session and traceparent
headers the service may pass on (what it receives; the recording keeps what the client sent).

Outbound talks are framed as Koala's recorder frames them: on one connection the bytes the
service sends form a talk's request and the bytes received after them its response; a send
after a receive starts the next talk; bytes received before anything was sent are a greeting
(empty request); a second send with no answer in between joins the request (one-way
messages). Inbound HTTP requests and responses are framed by HTTP (Content-Length, chunked,
interim 1xx, close-delimited); inbound traffic that is not HTTP falls back to the talk rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import re
import uuid
from collections import deque
from collections.abc import Callable, Sequence

from ..model import Peer
from ..wire import http1
from .attribution import SESSION_HEADER, Attribution, Connection, Exchange, Talk, now_ns

READ_SIZE = 1 << 16
MAX_HEAD = 1 << 20
RAW_IDLE_S = 0.1  # a non-HTTP inbound answer is complete after this long without bytes


class Admission:
    """Which inbound requests are recorded (sampling, URL filters) and, with --serial, one
    request at a time through the service."""

    def __init__(self, *, serial: bool = False, sample: float = 1.0, allow: Sequence[str] = (), disallow: Sequence[str] = ()):
        self.serial = asyncio.Semaphore(1) if serial else None
        self.sample = sample
        self.allow = [re.compile(p) for p in allow]
        self.disallow = [re.compile(p) for p in disallow]

    def wanted(self, target: str) -> bool:
        if self.allow and not any(p.search(target) for p in self.allow):
            return False
        if any(p.search(target) for p in self.disallow):
            return False
        return self.sample >= 1.0 or random.random() < self.sample


def inject(head: bytes, key: str, trace_id: str) -> bytes:
    """The request head with X-Koala-Session set and a traceparent added unless the client
    sent one (its trace is the client's to keep)."""
    lines = head[: -len(http1.HEAD_END)].split(b"\r\n")
    kept = [lines[0]] + [line for line in lines[1:] if not line.lower().startswith(b"x-koala-session:")]
    kept.append(f"{SESSION_HEADER}: {key}".encode())
    if not any(line.lower().startswith(b"traceparent:") for line in lines[1:]):
        kept.append(f"traceparent: 00-{trace_id}-{trace_id[:16]}-01".encode())
    return b"\r\n".join(kept) + http1.HEAD_END


def _client_trace(head: http1.Head) -> str | None:
    parent = head.header("traceparent")
    if parent and parent.count("-") >= 3:
        return parent.split("-")[1]
    return None


class Recorder:
    """Shared by all proxies: the attribution book, connection numbers, finished sessions."""

    def __init__(self, attribution: Attribution, admission: Admission, on_exchange_done: Callable[[Exchange], None], log: Callable[[str], None]):
        self.attribution = attribution
        self.admission = admission
        self.on_exchange_done = on_exchange_done
        self.log = log
        self.inbound_numbers = itertools.count(1)
        self.outbound_numbers = itertools.count(10)  # stand-in socket numbers, like a real process's
        self.servers: list[asyncio.Server] = []
        self.tasks: set[asyncio.Task] = set()
        self.writers: set[asyncio.StreamWriter] = set()

    def _track(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def listen(self, host: str, port: int, handler) -> None:
        try:
            server = await asyncio.start_server(handler, host, port, reuse_address=True)
        except OSError as exc:
            why = os.strerror(exc.errno) if exc.errno else str(exc)
            raise OSError(f"cannot listen on {host}:{port} ({why}); stop what listens there or pick another address") from None
        self.servers.append(server)

    async def stop_listening(self) -> None:
        for server in self.servers:
            server.close()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 0.5)

    async def wait_idle(self, timeout: float) -> None:
        """Let open connections finish what they are doing, then close them."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.attribution.in_flight and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        for writer in list(self.writers):
            with contextlib.suppress(Exception):
                writer.close()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=1)
        for task in list(self.tasks):
            task.cancel()

    # --- outbound ----------------------------------------------------------------------

    def outbound_handler(self, upstream: tuple[str, int], recorded_peer: Peer):
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._track()
            self.writers.add(writer)
            try:
                await self._outbound(reader, writer, upstream, recorded_peer)
            finally:
                self.writers.discard(writer)

        return handle

    async def _outbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: tuple[str, int], recorded_peer: Peer) -> None:
        host, port = writer.get_extra_info("peername")[:2]
        conn = Connection(next(self.outbound_numbers), Peer(host, port), recorded_peer)
        try:
            up_r, up_w = await asyncio.open_connection(*upstream)
        except OSError as exc:
            self.log(f"cannot reach the dependency {upstream[0]}:{upstream[1]} ({exc.strerror or exc}); the service's connection was closed")
            writer.close()
            return
        self.writers.add(up_w)
        book = self.attribution
        current: list[Talk] = []  # the connection's latest talk, shared by both directions

        def sent(data: bytes) -> None:
            if not current or current[0].response:  # a send after a receive: the next talk
                current[:] = [book.talk(conn, now_ns())]
            book.sent(current[0], data)  # a second send before any answer joins the request

        def received(data: bytes) -> None:
            now = now_ns()
            if not current:  # bytes before anything was sent: a greeting
                current[:] = [book.talk(conn, now)]
                book.greeting(current[0])
            talk = current[0]
            talk.response += data
            talk.response_time = now

        try:
            await asyncio.gather(_pump(reader, up_w, sent), _pump(up_r, writer, received))
        finally:
            self.writers.discard(up_w)
            up_w.close()
            writer.close()

    # --- inbound -----------------------------------------------------------------------

    def inbound_handler(self, target: tuple[str, int]):
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._track()
            self.writers.add(writer)
            try:
                await InboundConnection(self, reader, writer, target).run()
            finally:
                self.writers.discard(writer)

        return handle


class InboundConnection:
    """One client connection through the reverse proxy, to its own upstream connection."""

    def __init__(self, recorder: Recorder, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: tuple[str, int]):
        self.recorder = recorder
        self.reader = reader
        self.writer = writer
        self.target = target
        host, port = writer.get_extra_info("peername")[:2]
        self.conn = Connection(next(recorder.inbound_numbers), Peer(host, port), Peer())
        self.pending: deque[tuple[Exchange, str]] = deque()  # requests sent, awaiting answers (method)
        self.opaque = False  # tunnelled (upgrade) or unframeable: bytes pass, nothing recorded
        self.raw_mode = False  # the client does not speak HTTP: Koala's talk rule frames it
        self.raw: Exchange | None = None  # the current exchange of a non-HTTP connection
        self.raw_timer: asyncio.TimerHandle | None = None
        self.holding = False  # holds the --serial admission
        self.last_at = 0  # SessionIds of one connection stay distinct (<unix-nanos>-<thread>)

    async def run(self) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError as exc:
            self.recorder.log(f"cannot reach the service at {self.target[0]}:{self.target[1]} ({exc.strerror or exc}); closed a client connection")
            self.writer.close()
            return
        self.up_w = up_w
        self.recorder.writers.add(up_w)
        try:
            await asyncio.gather(self._requests(up_w), self._responses(up_r))
        finally:
            self.recorder.writers.discard(up_w)
            for exchange, _ in self.pending:
                self._done(exchange)  # unanswered: the session keeps a null ReturnInbound
            self.pending.clear()
            if self.raw is not None:
                self._done(self.raw)
            self._release()

    # --- client -> service ---------------------------------------------------------------

    async def _requests(self, up_w: asyncio.StreamWriter) -> None:
        buffer = bytearray()
        first_at = 0
        body_left = 0  # body bytes of the current request still to come
        streaming: Exchange | None = None
        try:
            while data := await self.reader.read(READ_SIZE):
                now = now_ns()
                if self.opaque:
                    up_w.write(data)
                    await up_w.drain()
                    continue
                if streaming is not None:
                    take = data[:body_left]
                    streaming.request += take
                    body_left -= len(take)
                    up_w.write(take)
                    data = data[len(take) :]
                    if body_left == 0:
                        streaming = None
                    if not data:
                        await up_w.drain()
                        continue
                if self.raw_mode or (not buffer and not _maybe_http(data)):
                    self.raw_mode = True
                    await self._raw_request(data, now, up_w)
                    continue
                if not buffer:
                    first_at = now
                buffer += data
                while buffer and streaming is None and not self.opaque:
                    end = buffer.find(http1.HEAD_END)
                    if end < 0:
                        if len(buffer) > MAX_HEAD or not _maybe_http(bytes(buffer[:24])):
                            self._give_up(up_w, buffer)
                            buffer.clear()
                        break
                    head_bytes = bytes(buffer[: end + 4])
                    head = http1.parse_request_head(head_bytes)
                    if head is None:
                        self._give_up(up_w, buffer)
                        buffer.clear()
                        break
                    length = _body_length(head)
                    if length is None:  # chunked: wait for the whole message
                        total = http1.message_length(bytes(buffer))
                        if total is None:
                            break
                        body = bytes(buffer[end + 4 : total])
                        del buffer[:total]
                        await self._begin(head, head_bytes, body, first_at, up_w)
                    else:
                        del buffer[: end + 4]
                        body = bytes(buffer[:length])
                        del buffer[: len(body)]
                        exchange = await self._begin(head, head_bytes, body, first_at, up_w)
                        if len(body) < length:
                            streaming, body_left = exchange, length - len(body)
                    first_at = now
                await up_w.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            up_w.close()

    async def _begin(self, head: http1.Head, head_bytes: bytes, body: bytes, at: int, up_w: asyncio.StreamWriter) -> Exchange:
        """A request head is in: admit it, put it in flight, pass it on with the headers."""
        admission = self.recorder.admission
        if admission.serial is not None and not self.holding:
            await up_w.drain()
            await admission.serial.acquire()
            self.holding = True
            at = now_ns()  # the service gets it now; the wait is the proxy's, not its
        at = self.last_at = max(at, self.last_at + 1)
        trace_id = uuid.uuid4().hex
        exchange = Exchange(
            key=f"{at}-{self.conn.number}",
            trace_id=_client_trace(head) or trace_id,
            connection=self.conn,
            occurred_at=at,
            recorded=admission.wanted(head.target),
        )
        exchange.request += head_bytes + body
        self.recorder.attribution.begin(exchange)
        self.pending.append((exchange, head.method))
        up_w.write(inject(head_bytes, exchange.key, trace_id) + body)
        return exchange

    async def _raw_request(self, data: bytes, now: int, up_w: asyncio.StreamWriter) -> None:
        """Not HTTP: Koala's talk rule, an answer complete after a short idle gap."""
        raw = self.raw
        if raw is None or raw.response:
            if raw is not None:
                self._done(raw)
            if self.recorder.admission.serial is not None and not self.holding:
                await self.recorder.admission.serial.acquire()
                self.holding = True
            now = self.last_at = max(now, self.last_at + 1)
            raw = self.raw = Exchange(f"{now}-{self.conn.number}", uuid.uuid4().hex, self.conn, now, self.recorder.admission.wanted(""))
            self.recorder.attribution.begin(raw)
        raw.request += data
        up_w.write(data)
        await up_w.drain()

    def _give_up(self, up_w: asyncio.StreamWriter, buffer: bytearray) -> None:
        """Bytes that do not frame as HTTP: pass everything on, record no more here."""
        self.recorder.log(f"client connection {self.conn.number} sent something that is not an HTTP request ({bytes(buffer[:40])!r}); passing it through unrecorded")
        self.opaque = True
        up_w.write(bytes(buffer))

    # --- service -> client ---------------------------------------------------------------

    async def _responses(self, up_r: asyncio.StreamReader) -> None:
        spill = bytearray()  # bytes of a response not matched to a request yet
        try:
            while data := await up_r.read(READ_SIZE):
                now = now_ns()
                self.writer.write(data)
                if self.raw_mode:
                    if self.raw is not None:
                        self._raw_response(data, now)
                elif not self.opaque:
                    spill += data
                    self._frame_responses(spill, now)
                await self.writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # A response that runs until the connection closes is complete now.
            if self.pending and not self.opaque:
                exchange, _ = self.pending.popleft()
                if spill:
                    if not exchange.response_started:
                        exchange.response_started = now_ns()
                    exchange.response += spill
                self._done(exchange)
            with contextlib.suppress(Exception):
                self.writer.close()

    def _frame_responses(self, spill: bytearray, now: int) -> None:
        while self.pending and spill:
            exchange, method = self.pending[0]
            if not exchange.response_started:
                exchange.response_started = now
            total = _response_length(bytes(spill), method)
            if total is None:
                return  # more to come
            exchange.response += spill[:total]
            del spill[:total]
            self.pending.popleft()
            upgraded = http1.status_code(bytes(exchange.response)) == 101
            self._done(exchange)
            if upgraded:
                self.opaque = True  # a tunnel from here on (WebSocket...)
                spill.clear()
                return

    def _raw_response(self, data: bytes, now: int) -> None:
        raw = self.raw
        assert raw is not None
        if not raw.response_started:
            raw.response_started = now
        raw.response += data
        if self.raw_timer is not None:
            self.raw_timer.cancel()
        self.raw_timer = asyncio.get_running_loop().call_later(RAW_IDLE_S, self._raw_idle, raw)

    def _raw_idle(self, exchange: Exchange) -> None:
        if self.raw is exchange:
            self.raw = None
            self._done(exchange)

    # --- bookkeeping -------------------------------------------------------------------

    def _done(self, exchange: Exchange) -> None:
        if exchange.finished:
            return
        self.recorder.attribution.end(exchange)
        self.recorder.on_exchange_done(exchange)
        if not self.pending or all(e.finished for e, _ in self.pending):
            self._release()

    def _release(self) -> None:
        if self.holding:
            self.holding = False
            assert self.recorder.admission.serial is not None
            self.recorder.admission.serial.release()


def _maybe_http(data: bytes) -> bool:
    return re.match(rb"^[A-Z][A-Z0-9_-]{0,19}(?: |$)", data[:24]) is not None


def _body_length(head: http1.Head) -> int | None:
    """Body bytes that follow the head; None for a chunked body (framed when complete)."""
    if "chunked" in (head.header("Transfer-Encoding") or "").lower():
        return None
    length = head.header("Content-Length")
    try:
        return int(length) if length is not None else 0
    except ValueError:
        return 0


def _response_length(data: bytes, method: str) -> int | None:
    """The bytes of the next whole response in `data`, interim 1xx answers included."""
    offset = 0
    while True:
        end = http1.message_length(data[offset:], is_response=True, request_method=method)
        if end is None:
            return None
        status = http1.status_code(data[offset:])
        if status is not None and 100 <= status < 200 and status != 101:
            offset += end  # 100 Continue: the final answer follows
            if offset >= len(data):
                return None
            continue
        return offset + end


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, record: Callable[[bytes], None]) -> None:
    """Copy one direction, noting each chunk before passing it on (so it is recorded before
    the other side can react); when the source closes, close the destination too."""
    try:
        while data := await src.read(READ_SIZE):
            record(data)
            dst.write(data)
            await dst.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        dst.close()


__all__ = ["Admission", "InboundConnection", "Recorder", "inject"]
