"""The replayer's connections as byte streams: what the mock and the inbound client use of
asyncio's StreamReader and StreamWriter, in one protocol object compiled with the hot path.

Why not asyncio's own: asyncio/streams.py is pure Python, and every talk passes through it
(read -> _wait_for_data -> feed_data -> _wakeup_waiter, then write -> drain -> _drain_helper)
on both sides of a replayed session. Here a read that waits is handed the arriving bytes
themselves (no copy into a buffer and out again), a drain returns at once unless the
transport asked the writer to pause, and the module is compiled by Cython with the rest of the
hot path (koala_store/_compiled.py).

The same object is a connection's reader and its writer: `open_connection` and `start_server`
hand it over twice, as asyncio's functions of those names hand over the pair.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

# The bytes held for a reader that is not reading before the socket stops being read, and the
# level it resumes at (asyncio's StreamReader: 2 x and 1 x its 64 KiB limit).
PAUSE_ABOVE = 1 << 17
RESUME_AT = 1 << 16

Handler = Callable[["Stream", "Stream"], Awaitable[None]]


class Stream(asyncio.Protocol):
    """One TCP connection: `await read(n)`, `write(data)`, `await drain()`, `close()`,
    `await wait_closed()`, `is_closing()`, `get_extra_info(name)`.

    Reads return up to n bytes, b"" at the end of the stream; once the connection is lost
    with an error, reads and drains raise it. A server's connection starts its handler when
    it is made."""

    # Slots: the compiled code reads these through the generic attribute lookup, which finds
    # a slot without searching an instance dictionary.
    __slots__ = (
        "_loop",
        "_handler",
        "_task",
        "transport",
        "_buffer",
        "_waiter",
        "_wanted",
        "_eof",
        "_error",
        "_lost",
        "_reading_paused",
        "_writing_paused",
        "_drain_waiter",
        "_limit",
        "_timed_out",
        "_closed",
        "__weakref__",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, handler: Handler | None = None) -> None:
        self._loop = loop
        self._handler = handler
        self._task: asyncio.Task[None] | None = None  # the handler's (a task needs a reference)
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()  # arrived and not yet read
        self._waiter: asyncio.Future[bytes | None] | None = None  # a read waiting for bytes
        self._wanted = 0  # how many bytes that read takes
        self._eof = False
        self._error: BaseException | None = None
        self._lost = False
        self._reading_paused = False
        self._writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._limit: asyncio.TimerHandle | None = None  # time_limit's timer
        self._timed_out = False
        self._closed: asyncio.Future[None] = loop.create_future()

    # --- protocol callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self._handler is not None:
            self._task = self._loop.create_task(self._handler(self, self))
            self._task.add_done_callback(self._handler_done)

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        # A handler that failed leaves no half-served connection behind.
        if not task.cancelled() and task.exception() is not None:
            self.close()

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done() and not self._buffer:
            # The usual case: a read is waiting and nothing is buffered; it takes the bytes.
            self._waiter = None
            if len(data) <= self._wanted:
                waiter.set_result(data)
                return
            waiter.set_result(data[: self._wanted])
            data = data[self._wanted :]
        else:
            self._wake()
        self._buffer += data
        if not self._reading_paused and len(self._buffer) > PAUSE_ABOVE:
            self._reading_paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return True  # the peer stopped writing; this side may still write (asyncio's choice)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if exc is None:
            self._eof = True
        else:
            self._error = exc
        self._wake()
        self._wake_drain()  # the drain then says the connection was lost
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_drain()

    def _wake_drain(self) -> None:
        drain = self._drain_waiter
        if drain is not None and not drain.done():
            drain.set_result(None)

    def _time_up(self) -> None:
        self._limit = None
        self._timed_out = True
        for waiter in (self._waiter, self._drain_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_exception(TimeoutError())

    def _wake(self) -> None:
        """A waiting read looks again (at the buffer, the end of the stream or the error)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
            waiter.set_result(None)

    # --- the reader -----------------------------------------------------------------------

    async def read(self, n: int) -> bytes:
        """Up to n (> 0) bytes, as soon as any are there; b"" at the end of the stream."""
        if not self._buffer:
            if self._error is not None:
                raise self._error
            if self._eof:
                return b""
            if self._timed_out:
                raise TimeoutError()
            self._wanted = n
            waiter = self._waiter = self._loop.create_future()
            try:
                data = await waiter
            except asyncio.CancelledError:
                # Cancelled (a timeout) after bytes were handed to this read, before it ran:
                # they go back in front of the buffer for the next read, not lost.
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None and waiter.result():
                    self._buffer[0:0] = waiter.result()
                raise
            finally:
                if self._waiter is waiter:
                    self._waiter = None  # cancelled: bytes that come now are buffered
            if data is not None:
                return data
            if not self._buffer:
                if self._error is not None:
                    raise self._error
                return b""
        if n >= len(self._buffer):
            data = bytes(self._buffer)
            self._buffer.clear()
        else:
            data = bytes(self._buffer[:n])
            del self._buffer[:n]
        if self._reading_paused and len(self._buffer) <= RESUME_AT:
            self._reading_paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]
        return data

    def time_limit(self, seconds: float | None) -> None:
        """From now, a read or drain still waiting `seconds` later raises TimeoutError, as do
        those that would wait after that; None lifts the limit. One timer a request, where
        asyncio.timeout is a pure-Python context manager and cancels the whole task."""
        if self._limit is not None:
            self._limit.cancel()
            self._limit = None
        self._timed_out = False
        if seconds is not None:
            self._limit = self._loop.call_later(seconds, self._time_up)

    @property
    def timed_out(self) -> bool:
        """Whether the time limit ran out (see time_limit)."""
        return self._timed_out

    # --- the writer -----------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send data; after the connection is lost, nothing (the drain that follows says so:
        uvloop's transport would raise RuntimeError here)."""
        if not self._lost:
            self.transport.write(data)  # type: ignore[union-attr]

    async def drain(self) -> None:
        """Wait while the transport holds more than its high-water mark; raise once the
        connection is lost."""
        if self._error is not None:
            raise self._error
        if self.transport is not None and self.transport.is_closing():
            await asyncio.sleep(0)  # a reset is reported on the next loop turn: let it come
        if self._lost:
            raise ConnectionResetError("Connection lost")
        while self._writing_paused:
            if self._timed_out:
                raise TimeoutError()
            waiter = self._drain_waiter = self._loop.create_future()
            await waiter
            if self._lost:
                raise ConnectionResetError("Connection lost")

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def is_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default) if self.transport is not None else default


async def open_connection(host: str, port: int) -> tuple[Stream, Stream]:
    """A connection to host:port, as (reader, writer): the same Stream twice."""
    loop = asyncio.get_running_loop()
    _, stream = await loop.create_connection(lambda: Stream(loop), host, port)
    return stream, stream


async def start_server(handler: Handler, host: str, port: int, *, reuse_address: bool = True) -> asyncio.Server:
    """Listen on host:port; each connection runs `handler(reader, writer)` (one Stream twice)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: Stream(loop, handler), host, port, reuse_address=reuse_address)
