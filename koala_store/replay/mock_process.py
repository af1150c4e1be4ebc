"""The outbound mock in a process of its own, so a replay uses two cores.

With several sessions in flight, one replayer process is bound by one core: about half its
work is the mock's (reading, attributing and matching the service's outbound talks and
writing the recorded answers), the other half sending inbound requests and comparing. Here
the mock (koala_store.replay.mock, unchanged) runs in a child process and the runner talks
to it through `RemoteMock`, which offers the runner the same calls as `OutboundMock`.

Two Unix socket pairs join them, each carrying length-prefixed msgpack messages: the runner
sends Start, Begin (a session's key and recorded calls), Finish (settle, then the talks),
Drop, Collect and Stop; the child answers Started, Finished and Tallies.

Ordering is what makes attribution sound. The runner writes a session's Begin completely
into its socket before it sends the inbound request, so Begin is in the child's receive
queue before the service can make the session's first outbound call; the child reads every
pending control message before it attributes a talk. Only header attribution (concurrency
above 1) runs here; one session at a time stays in-process, where each talk goes to the one
session in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import resource
import signal
import socket
import sys
from typing import Any

import msgspec

import matchers

from ..diff import Talk
from ..errors import KoalaError
from ..model import CallOutbound, Session
from ..wire.setup import opening_positions
from .ipc import LENGTH, frame, spawn, take_frames, with_own_calls, without_own_calls
from .mock import OutboundMock, SessionContext, UnattributedTalk
from .openings import Opening, OpeningLibrary
from .targets import Address, OutboundMapping

STOP_WAIT_S = 5.0


# --- messages ------------------------------------------------------------------------------


class Start(msgspec.Struct, tag=True):
    mappings: list[OutboundMapping]
    matcher: str
    matcher_options: dict[str, Any]
    bypass: list[Address]
    openings: list[Opening]


class Begin(msgspec.Struct, tag=True):
    key: str
    calls: list[CallOutbound]


class Finish(msgspec.Struct, tag=True):
    key: str
    grace: float


class Drop(msgspec.Struct, tag=True):
    key: str


class Collect(msgspec.Struct, tag=True):
    pass


class Stop(msgspec.Struct, tag=True):
    pass


class Started(msgspec.Struct, tag=True):
    error: str | None = None


class Finished(msgspec.Struct, tag=True):
    key: str
    talks: list[Talk]
    # Per talk: its match's call was the session's own at `position`, sent without it (the
    # runner has the session; the bytes need not cross twice).
    own: list[bool]
    by_header: int
    without_header: list[str]
    bypassed: int


class Tallies(msgspec.Struct, tag=True):
    unattributed: list[UnattributedTalk]
    setup_answered: int
    refused: int
    cpu_seconds: float  # the child's own CPU time so far (user + system)


ToChild = Start | Begin | Finish | Drop | Collect | Stop
ToRunner = Started | Finished | Tallies


# When `auto` gives the mock a process of its own: with a core each for the runner, the child
# and the service, from 2 sessions in flight. On 2 or 3 cores never: the service under test
# shares them, and the runner waits on the child's round trips. Measured on 2 cores beside the
# Go service (bench/bench_replay.py, fuzzy, 5,000 sessions, --mock-process on against off,
# alternated): 2,070-2,161 against 2,274-2,350 sessions/s at 32 in flight, 2,285-2,342 against
# 2,607-2,795 at 16, 2,019-2,581 against 2,687-3,597 at 64. (Before the replayer's connections
# were compiled, replay/streams.py, the child won from 16 up.)
AUTO_CORES = 4


def use_process(concurrency: int, setting: str = "auto", cores: int | None = None) -> bool:
    """Whether the mock gets a process of its own: `on`, `off`, or `auto` (header attribution
    with a core each for the runner, the mock and the service)."""
    if concurrency < 2:
        return False  # one session at a time is attributed by elimination, in-process
    if setting != "auto":
        return setting == "on"
    if cores is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cores = os.cpu_count() or 1
    return cores >= AUTO_CORES


# --- the runner's side ---------------------------------------------------------------------


class RemoteContext:
    """A session being replayed, as the runner sees it when the mock is in the child."""

    def __init__(self, calls: list[CallOutbound], key: str):
        self.calls = calls
        self.key = key
        self.by_header = 0
        self.without_header: list[str] = []
        self.bypassed = 0

    @functools.cached_property
    def openings(self) -> frozenset[int]:
        """Positions of the calls that opened a connection when recorded (wire.setup)."""
        return opening_positions(self.calls)


class RemoteMock:
    """Starts the mock's process and speaks for it: begin, finish, end, collect, stop."""

    def __init__(self, mappings: list[OutboundMapping], matcher: str, matcher_options: dict[str, Any], *, bypass: list[Address]):
        self.mappings = mappings
        self.matcher = matcher
        self.matcher_options = matcher_options
        self.bypass = bypass
        self.openings = OpeningLibrary()  # loaded by the runner, sent with Start
        self.unattributed: list[UnattributedTalk] = []
        self.setup_answered = 0
        self.refused = 0
        self.cpu_seconds = 0.0
        self._process: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._waiting: dict[str, tuple[RemoteContext, asyncio.Future[list[Talk]]]] = {}
        self._tallies: asyncio.Future[Tallies] | None = None
        self._started: asyncio.Future[Started] | None = None
        self._failure: KoalaError | None = None
        self._decoder = msgspec.msgpack.Decoder(ToRunner)
        self._unused: asyncio.StreamWriter | None = None

    # --- lifecycle ---------------------------------------------------------------------

    async def launch(self) -> None:
        """Start the mock's process. Python takes ~0.2 s to start it and import the mock, so
        the runner launches it first and loads what Start carries meanwhile."""
        if self._process is not None:
            return
        self._process, to_child, from_child = await spawn(__name__)
        _, self._writer = await asyncio.open_unix_connection(sock=to_child)
        reader, unused = await asyncio.open_unix_connection(sock=from_child)
        self._unused = unused  # a StreamWriter closes its transport when collected
        self._reader_task = asyncio.create_task(self._read_replies(reader))

    async def start(self) -> None:
        await self.launch()
        self._started = asyncio.get_running_loop().create_future()
        self._send(Start(self.mappings, self.matcher, self.matcher_options, self.bypass, self.openings.all()))
        started = await self._await(self._started)
        if started.error is not None:
            await self._reap()
            raise OSError(started.error)

    async def stop(self) -> None:
        if self._process is None:
            return
        try:
            # Launched but never started (the pre-flight failed): closing its sockets ends it.
            if self._failure is None and self._writer is not None and self._started is not None:
                self._tallies = asyncio.get_running_loop().create_future()
                self._send(Stop())
                with contextlib.suppress(KoalaError, TimeoutError):
                    async with asyncio.timeout(STOP_WAIT_S):
                        self._take(await self._await(self._tallies))
        finally:
            await self._reap()

    async def _reap(self) -> None:
        process, self._process = self._process, None
        for writer in (self._writer, self._unused):
            if writer is not None:
                writer.close()
        if process is not None:
            try:
                async with asyncio.timeout(STOP_WAIT_S):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task

    # --- sessions ----------------------------------------------------------------------

    async def start_session(self, session: Session, key: str) -> RemoteContext:
        """Begin attributing talks to the session; returns once the child will see it first."""
        self._check()
        calls = session.outbound_calls
        context = RemoteContext(calls, key)
        self._send(Begin(key, calls))
        assert self._writer is not None
        if self._writer.transport.get_write_buffer_size():
            await self._writer.drain()  # Begin must be in the child's queue before the request goes
        return context

    async def finish(self, context: RemoteContext, grace: float) -> list[Talk]:
        """The session's talks, once the child let it settle (see OutboundMock.settle)."""
        self._check()
        future: asyncio.Future[list[Talk]] = asyncio.get_running_loop().create_future()
        self._waiting[context.key] = (context, future)
        self._send(Finish(context.key, grace))
        return await self._await(future)

    def end(self, context: RemoteContext) -> list[Talk]:
        """Stop attributing to the session without waiting for its talks (it failed)."""
        if self._failure is None and self._writer is not None:
            self._send(Drop(context.key))
        return []

    async def collect(self) -> None:
        """Fetch the child's tallies: talks it could not attribute, refused connections."""
        self._check()
        self._tallies = asyncio.get_running_loop().create_future()
        self._send(Collect())
        self._take(await self._await(self._tallies))

    # --- plumbing ----------------------------------------------------------------------

    def _take(self, tallies: Tallies) -> None:
        self.unattributed = tallies.unattributed
        self.setup_answered = tallies.setup_answered
        self.refused = tallies.refused
        self.cpu_seconds = tallies.cpu_seconds

    def _send(self, message: msgspec.Struct) -> None:
        assert self._writer is not None
        self._writer.write(frame(message))

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def _await(self, future: asyncio.Future[Any]) -> Any:
        """A reply, or the failure that means none will come."""
        self._check()
        return await future

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(LENGTH), "big")
                self._dispatch(self._decoder.decode(await reader.readexactly(size)))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        code = self._process.returncode if self._process is not None else None
        if code is None and self._process is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1):
                    code = await self._process.wait()
        self._fail(
            KoalaError(
                f"the outbound mock's process ended unexpectedly (exit status {code}); its error, if any, is printed above. "
                "Replay with --mock-process off to keep the mock in the replayer's own process"
            )
        )

    def _dispatch(self, message: ToRunner) -> None:
        if isinstance(message, Finished):
            waiting = self._waiting.pop(message.key, None)
            if waiting is None:
                return
            context, future = waiting
            context.by_header, context.without_header, context.bypassed = message.by_header, message.without_header, message.bypassed
            talks = with_own_calls(message.talks, message.own, context.calls)
            if not future.done():
                future.set_result(talks)
        elif isinstance(message, Tallies):
            if self._tallies is not None and not self._tallies.done():
                self._tallies.set_result(message)
        elif isinstance(message, Started):
            if self._started is not None and not self._started.done():
                self._started.set_result(message)

    def _fail(self, failure: KoalaError) -> None:
        self._failure = failure
        pending = [f for _, f in self._waiting.values()] + [f for f in (self._tallies, self._started) if f is not None]
        self._waiting.clear()
        for future in pending:
            if not future.done():
                future.set_exception(failure)


# --- the child's side ----------------------------------------------------------------------


class ChildMock(OutboundMock):
    """The mock as it runs in the child: before a talk names an unknown session, or is
    attributed for want of a header, it reads the pending control messages, so a session
    begun before its request was sent is always known."""

    def __init__(self, control: Control, **kwargs: Any):
        super().__init__(**kwargs)
        self.control = control

    def _catch_up(self) -> None:
        self.control.read_pending()


class Control:
    """The child's end: control messages in (read without waiting, also between talks),
    replies out."""

    def __init__(self, sock: socket.socket, replies: asyncio.StreamWriter):
        sock.setblocking(False)
        self.sock = sock
        self.replies = replies
        self.buffer = bytearray()
        self.mock: ChildMock | None = None
        self.closed = asyncio.get_running_loop().create_future()  # set at Stop or when the runner goes
        self.started: asyncio.Future[Start] = asyncio.get_running_loop().create_future()
        self._decoder = msgspec.msgpack.Decoder(ToChild)
        self._tasks: set[asyncio.Task[None]] = set()

    def read_pending(self) -> None:
        while True:
            try:
                chunk = self.sock.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                chunk = b""
            if not chunk:
                if not self.closed.done():
                    self.closed.set_result(None)  # the runner went away: the child ends too
                break
            self.buffer += chunk
        for message in take_frames(self.buffer, self._decoder):
            self._dispatch(message)

    def reply(self, message: msgspec.Struct) -> None:
        self.replies.write(frame(message))

    def _dispatch(self, message: ToChild) -> None:
        mock = self.mock
        if isinstance(message, (Begin, Finish, Drop)):
            assert mock is not None  # Start came first: the runner waits for Started
            context = mock.context(message.key)
            if isinstance(message, Begin):
                mock.begin_calls(message.calls, message.key)
            elif context is None:  # a Finish or Drop for no session in flight: nothing to end
                if isinstance(message, Finish):
                    self.reply(Finished(message.key, [], [], 0, [], 0))
            elif isinstance(message, Drop):
                mock.end(context)
            elif context.settled():  # what settle would find at once: answered without a task
                self._finished(message.key, context, mock.end(context))
            else:
                self._spawn(self._finish(message.key, context, message.grace))
        elif isinstance(message, Collect):
            self.reply(self.tallies())
        elif isinstance(message, Stop):
            if not self.closed.done():
                self.closed.set_result(None)
        elif isinstance(message, Start) and not self.started.done():
            self.started.set_result(message)

    def tallies(self) -> Tallies:
        mock = self.mock
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime
        if mock is None:
            return Tallies([], 0, 0, cpu)
        return Tallies(list(mock.unattributed), mock.setup_answered, mock.refused, cpu)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish(self, key: str, context: SessionContext, grace: float) -> None:
        assert self.mock is not None
        self._finished(key, context, await self.mock.finish(context, grace))

    def _finished(self, key: str, context: SessionContext, talks: list[Talk]) -> None:
        sent, own = without_own_calls(talks, context.calls)
        self.reply(Finished(key, sent, own, context.by_header, list(context.without_header), context.bypassed))


async def serve(control_fd: int, replies_fd: int) -> None:
    """The child's life: start the listeners, answer talks until Stop or the runner goes."""
    loop = asyncio.get_running_loop()
    _, replies = await asyncio.open_unix_connection(sock=socket.socket(fileno=replies_fd))
    control = Control(socket.socket(fileno=control_fd), replies)
    loop.add_reader(control.sock.fileno(), control.read_pending)
    await asyncio.wait({control.started, control.closed}, return_when=asyncio.FIRST_COMPLETED)
    if not control.started.done():
        return  # the runner went before it said how to start
    start = control.started.result()
    openings = OpeningLibrary()
    for opening in start.openings:
        openings.add_opening(opening)
    mock = ChildMock(
        control,
        mappings=start.mappings,
        strategy=matchers.get(start.matcher, **start.matcher_options),
        attribution="header",
        bypass=start.bypass,
        openings=openings,
    )
    control.mock = mock
    try:
        await mock.start()
    except OSError as exc:
        control.reply(Started(error=str(exc)))
        await replies.drain()
        return
    control.reply(Started())
    try:
        await control.closed
    finally:
        control.reply(control.tallies())
        with contextlib.suppress(ConnectionError):
            await replies.drain()
        loop.remove_reader(control.sock.fileno())
        await mock.stop()
        replies.close()


def main(argv: list[str]) -> None:
    # Ctrl-C reaches the whole process group; the runner stops this process itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from .heap import keep_freed_heap
    from .runner import run_loop

    keep_freed_heap()  # its matchers prepare session after session (see heap.py)

    run_loop(serve(int(argv[0]), int(argv[1])))


if __name__ == "__main__":
    main(sys.argv[1:])
