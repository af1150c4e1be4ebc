"""The outbound mock: stands in for every dependency of the system under test during replay.

One listener per `--outbound LISTEN=RECORDED_PEER` mapping. Each talk the SUT sends on a
connection is read (protocol-aware framing, else Koala's idle gap), attributed to the session
being replayed, matched against that session's recorded calls for the peer, and answered
with the recorded response. A client that sends nothing within 20 ms of connecting gets the
recorded greeting (MySQL). Fail closed: a talk that matches nothing gets its connection
closed and is reported; it reaches a real dependency only when that peer is in --bypass.

Long-lived connections the SUT keeps open across sessions work: each talk goes to the session
current when it arrives, and the connection's matching state carries over between sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import time
from collections.abc import Iterable
from typing import Literal

import msgspec

import matchers
from matchers import ConnectionState, SessionMatcher

from ..diff import Talk
from ..model import CallOutbound, Session
from ..wire import FASTCGI, HTTP, UNKNOWN, http1, parse_talk
from ..wire.setup import is_setup_request, opening_positions, peer_protocols
from ..wire.framing import GREETING_WAIT_S, IDLE_GAP_S, INCOMPLETE_GAP_S, RequestFramer, guess_live_protocol, whole_http_request
from .openings import LiveOpening, OpeningLibrary
from .sockets import quickack
from .streams import Stream, open_connection, start_server
from .targets import Address, OutboundMapping

SESSION_HEADER = "X-Koala-Session"
PROPAGATION_HEADERS = (b"x-koala-session", b"traceparent")
# What one local client may cost the mock (a hostile or broken one included): connections
# open at once, bytes in one talk, and how long a connection may stay silent between talks.
MAX_CONNECTIONS = 1024
MAX_TALK_BYTES = 16 * 1024 * 1024
IDLE_TIMEOUT_S = 120.0
# Set-up talks are matched protocol-aware whatever strategy the run uses (see openings.py).
OPENING_STRATEGY = matchers.get("fuzzy")
READ_SIZE = 1 << 16
EXCERPT = 4096  # bytes of an unattributed talk kept for the report
Attribution = Literal["single", "header"]


def _speaks(request: bytes, protocol: str, request_line: bool | None = None) -> bool:
    """Whether a talk is in the protocol its dependency speaks, as parse_talk tells it. An HTTP
    request is told by its request line alone (parse_talk's first test, and nothing else it
    tries reads HTTP), so that one regex is the whole check for an HTTP dependency.
    `request_line`: http1.looks_like_request(request), when the caller has it."""
    if protocol == HTTP:
        return http1.looks_like_request(request) if request_line is None else request_line
    return parse_talk(request, hint=protocol).protocol == protocol


class UnattributedTalk(msgspec.Struct):
    peer: str
    connection: int
    request: bytes
    reason: str


class Opening:
    """A live connection still in its opening: the library's state for it and the state of
    each session's own opening matcher."""

    def __init__(self, live: LiveOpening):
        self.live = live
        self.states: dict[str, ConnectionState] = {}


class SessionContext:
    """A session being replayed: its matcher and the talks attributed to it."""

    # Slots: the compiled hot path reads these attributes through the generic lookup, which
    # finds a slot without searching an instance dictionary.
    __slots__ = (
        "calls",
        "matcher",
        "key",
        "talks",
        "_openings",
        "_expected",
        "_opening_positions",
        "bypassed",
        "by_header",
        "without_header",
        "busy",
        "last_talk_at",
        "began_at",
    )

    def __init__(self, calls: list[CallOutbound], matcher: SessionMatcher, key: str):
        self.calls = calls  # the session's recorded outbound calls
        self.matcher = matcher
        self.key = key  # what the SUT propagates (X-Koala-Session value or trace id)
        self.talks: list[Talk] = []
        self._openings: tuple[SessionMatcher, list[int]] | None = None
        self._expected: list[int] | None = None  # positions a faithful replay makes
        self._opening_positions: frozenset[int] | None = None
        self.bypassed = 0  # unmatched talks let through to the real dependency (--bypass)
        # How talks were attributed: by the propagated header, or only because this was the
        # one session in flight (what a SUT that does not pass the header on looks like).
        self.by_header = 0
        self.without_header: list[str] = []  # "peer (protocol)" of each such talk
        self.busy = 0  # talks read and not yet answered
        self.last_talk_at = 0.0
        self.began_at = time.monotonic()

    @property
    def openings(self) -> frozenset[int]:
        """Positions of the calls that opened a connection when recorded (wire.setup)."""
        # Computed once, by hand: functools.cached_property is pure Python, a call a session.
        if self._opening_positions is None:
            self._opening_positions = opening_positions(self.calls)
        return self._opening_positions

    def settled(self) -> bool:
        """Whether there is nothing left to wait for: no talk being answered, and every
        recorded call made (see OutboundMock.settle)."""
        return not self.busy and self.all_made()

    def all_made(self) -> bool:
        """Whether every recorded call (but connection set-up, which a pooled connection need
        not repeat) has answered a live talk."""
        if self._expected is None:
            openings = self.openings
            self._expected = [p for p in range(len(self.matcher.calls)) if p not in openings]
        counts = self.matcher.use_counts
        for p in self._expected:  # a loop, not all(<generator>): asked once or more a session
            if not counts[p]:
                return False
        return True

    def opening_matcher(self) -> tuple[SessionMatcher, list[int]]:
        """A matcher over this session's own connection-opening calls (protocol-aware, as the
        library's), and their positions among the session's calls."""
        if self._openings is None:
            calls = self.calls
            positions = sorted(self.openings)
            self._openings = (OPENING_STRATEGY.for_session([calls[p] for p in positions]), positions)
        return self._openings


class OutboundMock:
    # Slots: see SessionContext.
    __slots__ = (
        "_connections",
        "_contexts",
        "_current",
        "_open",
        "_protocols",
        "_servers",
        "_sessions",
        "_sweeper",
        "attribution",
        "bypass",
        "mappings",
        "openings",
        "refused",
        "setup_answered",
        "strategy",
        "unattributed",
        "__weakref__",
    )

    def __init__(
        self,
        mappings: Iterable[OutboundMapping],
        strategy: matchers.Strategy,
        *,
        attribution: Attribution = "single",
        bypass: Iterable[Address] = (),
        openings: OpeningLibrary | None = None,
    ):
        self.mappings = list(mappings)
        self.strategy = strategy
        # Recorded connection openings of every dependency, for the set-up of new connections.
        self.openings = openings or OpeningLibrary()
        self.setup_answered = 0  # set-up talks answered from the library, attributed or not
        self.attribution = attribution
        self.bypass = {str(a) for a in bypass}
        self.unattributed: list[UnattributedTalk] = []
        self._servers: list[asyncio.base_events.Server] = []
        self._contexts: dict[str, SessionContext] = {}
        self._current: SessionContext | None = None
        self._connections = itertools.count(1)
        self._sessions = itertools.count(1)
        self._protocols: dict[str, str] = {}
        # Live connections (closed at stop()) and when each last finished a talk; one timer
        # closes those silent for IDLE_TIMEOUT_S, rather than a timeout around every read.
        self._open: dict[Stream, float] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self.refused = 0  # connections closed at once: MAX_CONNECTIONS were open

    # --- lifecycle ---------------------------------------------------------------------

    async def launch(self) -> None:
        """Nothing to do ahead of `start` here (a mock in its own process starts that process)."""

    async def start(self) -> None:
        self._learn_protocols(self.openings.protocols())
        for mapping in self.mappings:
            try:
                server = await start_server(functools.partial(self._serve, mapping), mapping.listen.host, mapping.listen.port)
            except OSError as exc:
                await self.stop()
                raise OSError(f"cannot listen on {mapping.listen} for {mapping.recorded_peer}: {exc.strerror}; pick a free address") from None
            self._servers.append(server)
        self._sweeper = asyncio.create_task(self._close_idle())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for server in self._servers:
            server.close()
        # Connections the SUT keeps open (pools) end here, so their handlers finish cleanly.
        for writer in list(self._open):
            writer.close()
        await asyncio.sleep(0)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1)
        self._servers = []

    # --- sessions ----------------------------------------------------------------------

    async def start_session(self, session: Session, key: str) -> SessionContext:
        """`begin`, as the runner calls it (a mock in another process needs to await)."""
        return self.begin(session, key)

    def begin(self, session: Session, key: str | None = None) -> SessionContext:
        """Start attributing talks to this session."""
        return self.begin_calls(session.outbound_calls, key)

    def begin_calls(self, calls: list[CallOutbound], key: str | None = None) -> SessionContext:
        """Start attributing talks to the session that recorded these outbound calls."""
        matcher = self.strategy.for_session(calls)
        matcher.explain_matches = False  # only unmatched talks' near misses are reported
        context = SessionContext(calls, matcher, key or f"s{next(self._sessions)}")
        self._contexts[context.key] = context
        self._current = context
        if any(self._protocols.get(call.peer.address, UNKNOWN) == UNKNOWN for call in calls):
            self._learn_protocols(peer_protocols(calls))
        return context

    def _learn_protocols(self, protocols: dict[str, str]) -> None:
        """What each dependency speaks, as far as the recordings tell (the first that does)."""
        for peer, protocol in protocols.items():
            if self._protocols.get(peer, UNKNOWN) == UNKNOWN:
                self._protocols[peer] = protocol

    async def settle(self, context: SessionContext, grace: float = 0.002, limit: float = 0.5) -> None:
        """Wait until the session's talks are answered and, while some recorded call has not
        been made yet, `grace` passed since the response and its last talk (calls a SUT makes
        just after answering still count). Once every recorded call was made there is nothing
        left to wait for."""
        answered = time.monotonic()
        deadline = answered + limit
        while (now := time.monotonic()) < deadline:
            if context.settled():
                return
            if context.busy:
                await asyncio.sleep(0.001)  # a talk is being answered
                continue
            quiet_until = max(answered, context.last_talk_at) + grace
            if now >= quiet_until:
                return
            await asyncio.sleep(quiet_until - now)

    async def finish(self, context: SessionContext, grace: float) -> list[Talk]:
        """`settle`, then `end`: the session's talks once it had its grace."""
        try:
            await self.settle(context, grace=grace)
        finally:
            talks = self.end(context)
        return talks

    async def collect(self) -> None:
        """Bring `unattributed` up to date (already so here; a mock in another process is not)."""

    def context(self, key: str) -> SessionContext | None:
        """The session being replayed under this key, if it still is."""
        return self._contexts.get(key)

    def end(self, context: SessionContext) -> list[Talk]:
        """Stop attributing to the session; return its talks in the order they were answered.
        A talk arriving later is reported as unattributed, never added to a finished session."""
        self._contexts.pop(context.key, None)
        if self._current is context:
            self._current = None
        return context.talks

    def _attribute(self, request: bytes, protocol: str, *, count: bool = True, propagated: list[str | None] | None = None) -> tuple[SessionContext | None, str]:
        """The session a talk belongs to, or None and why. `count=False` asks without noting
        a talk that came without the session header (set-up talks need no attribution);
        `propagated`: the talk's session header and traceparent, when the caller has them."""
        if self.attribution == "single":
            if self._current is None:
                return None, "no session was being replayed (a call made after its session's response and grace period?)"
            return self._current, ""
        if protocol in (HTTP, FASTCGI):
            key, parent = propagated if propagated is not None else self._propagated(request, protocol)
            if key is None and parent:
                key = parent.split("-")[1] if parent.count("-") >= 3 else None
            if key is not None:
                context = self._contexts.get(key)
                if context is None:
                    self._catch_up()
                    context = self._contexts.get(key)
                if context is None:
                    return None, f"{SESSION_HEADER}/traceparent {key!r} names no session being replayed"
                context.by_header += 1
                return context, ""
        self._catch_up()
        if len(self._contexts) == 1:
            context = next(iter(self._contexts.values()))
            if count:
                context.without_header.append(protocol)
            return context, ""
        return None, f"{len(self._contexts)} sessions were in flight and the talk carried no {SESSION_HEADER} or traceparent header"

    def _catch_up(self) -> None:
        """Learn of sessions begun elsewhere before attributing by elimination (a mock in
        another process reads its pending messages here; in-process, nothing is pending)."""

    @staticmethod
    def _propagated(request: bytes, protocol: str) -> tuple[str | None, str | None]:
        """The session header and traceparent a talk carries (found, not parsed: per talk)."""
        if protocol == HTTP:
            key, parent = http1.find_headers(request, PROPAGATION_HEADERS)
            return key, parent
        view = parse_talk(request).http  # FastCGI carries headers as HTTP_* params
        return (view.header(SESSION_HEADER), view.header("traceparent")) if view else (None, None)

    # --- connections -------------------------------------------------------------------

    async def _serve(self, mapping: OutboundMapping, reader: Stream, writer: Stream) -> None:
        peer = str(mapping.recorded_peer)
        # `Host: <the mock's address>` as the service sends it, and as it sent it when recorded.
        host_line = (f"\r\nHost: {mapping.listen}\r\n".encode(), f"\r\nHost: {peer}\r\n".encode())
        if len(self._open) >= MAX_CONNECTIONS:
            self.refused += 1
            writer.close()
            return
        connection = next(self._connections)
        opened_at = time.monotonic()
        self._open[writer] = opened_at
        states: dict[str, ConnectionState] = {}
        previous: ConnectionState | None = None
        fresh = True
        # A new connection starts with its set-up (greeting, authentication, session
        # variables): those talks are answered from any recorded opening (see openings.py).
        opening: Opening | None = Opening(self.openings.connection(peer))
        try:
            while True:
                self._open[writer] = time.monotonic()
                data = await self._first_read(reader, fresh)
                fresh = False
                if data is None:  # silent new connection: a greeting may be due
                    context, _ = self._attribute(b"", self._protocols.get(peer, UNKNOWN), count=False)
                    talk = self._greeting(peer, connection, context, states, previous, opening)
                    if talk is not None:
                        await self._answer(writer, context, talk)
                        if context is not None and not talk.answered_from:
                            previous = states.get(context.key, previous)
                    continue
                if not data:
                    return  # the SUT closed the connection
                dependency = self._protocols.get(peer, UNKNOWN)
                # Whether the talk starts with an HTTP request line: asked once, told to
                # what would ask again.
                request_line = http1.looks_like_request(data)
                protocol = guess_live_protocol(data, dependency, request_line=request_line)
                request, whole = await self._rest_of_talk(reader, data, protocol, writer, request_line=request_line)
                if not whole:
                    why = f"a request over {MAX_TALK_BYTES >> 20} MiB; the connection was closed"
                    self.unattributed.append(UnattributedTalk(peer, connection, request[:EXCERPT], why))
                    return
                if opening is not None and not is_setup_request(request, dependency):
                    opening = None  # the connection's own work has begun
                if opening is not None:
                    context, _ = self._attribute(request, protocol, count=False)
                    talk = self._setup_talk(peer, connection, request, context, opening)
                    if talk is not None:
                        await self._answer(writer, context, talk)
                        continue
                if dependency != UNKNOWN and not _speaks(request, dependency, request_line if request is data else None):
                    # Not what this dependency speaks: no session's call (a stray or hostile
                    # client), so it is reported, not pinned on the session being replayed.
                    why = f"not {dependency}: not a talk of the service's; the connection was closed"
                    self.unattributed.append(UnattributedTalk(peer, connection, request[:EXCERPT], why))
                    return
                # The session header and traceparent, and the request without them, found in
                # one pass over its head (only header attribution reads them).
                propagated, stripped = None, request
                if protocol == HTTP and self.attribution == "header":
                    propagated, stripped = http1.take_headers(request, PROPAGATION_HEADERS)
                context, why = self._attribute(request, protocol, propagated=propagated)
                if context is None:
                    self.unattributed.append(UnattributedTalk(peer, connection, request[:EXCERPT], why))
                    return  # fail closed
                if protocol == HTTP:
                    # The session header and the mock's own address are the replay's plumbing,
                    # not the service's request: without them an unchanged request is byte for
                    # byte the recorded one (so it is matched and compared at once).
                    if context.by_header:  # the talk carried them (else nothing to take out)
                        request = stripped
                    # find, not `in`: `in` on bytes first tries its operand as an int, and raises
                    # and clears a TypeError every time (~1,700 instructions).
                    request = request.replace(host_line[0], host_line[1], 1) if request.find(host_line[0]) >= 0 else request
                context.busy += 1
                try:
                    state = self._state(context, states, previous)
                    previous = state
                    result = context.matcher.match(request, state, peer=peer)
                    talk = Talk(peer, connection, request, result, note=self._attribution_note(context, opened_at))
                    context.talks.append(talk)
                    if result.matched:
                        assert result.call is not None
                        writer.write(result.call.response)
                        await writer.drain()
                        continue
                    if str(mapping.recorded_peer) in self.bypass:
                        context.bypassed += 1
                        self._open[writer] = float("inf")  # a pipe now: its silences are the real dependency's
                        await self._pass_through(mapping, request, reader, writer)
                    return  # fail closed: the connection goes, unanswered
                finally:
                    context.busy -= 1
                    context.last_talk_at = time.monotonic()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return  # the SUT hung up, or the replay is over
        finally:
            self._open.pop(writer, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    async def _answer(writer: Stream, context: SessionContext | None, talk: Talk) -> None:
        """Send a set-up talk's recorded answer; the talk goes to its session, if any."""
        assert talk.match.call is not None
        writer.write(talk.match.call.response)
        await writer.drain()
        if context is not None:
            context.talks.append(talk)
            context.last_talk_at = time.monotonic()

    def _greeting(
        self,
        peer: str,
        connection: int,
        context: SessionContext | None,
        states: dict[str, ConnectionState],
        previous: ConnectionState | None,
        opening: Opening | None,
    ) -> Talk | None:
        """The greeting for a silent new connection: the session's own recording of it, else
        one from the library of recorded openings."""
        if context is not None:
            state = self._state(context, states, previous)
            result = context.matcher.greeting(state, peer=peer)
            if result.matched:
                return Talk(peer, connection, b"", result, opening=True)
        answer = opening.live.greeting() if opening is not None else None
        if answer is None:
            return None
        self.setup_answered += 1
        return Talk(peer, connection, b"", answer.result, opening=True, answered_from=answer.session_id)

    def _setup_talk(self, peer: str, connection: int, request: bytes, context: SessionContext | None, opening: Opening) -> Talk | None:
        """A set-up talk on a new connection, answered from the session's own recording of
        the connection's opening when it has one, else from the library; None when neither
        knows it (it is then matched as any other talk)."""
        if context is not None:
            matcher, positions = context.opening_matcher()
            state = opening.states.get(context.key)
            if state is None:
                state = opening.states[context.key] = matcher.connection()
            result = matcher.match(request, state, peer=peer)
            if result.matched and result.position is not None:
                # Positions among the session's calls, as the diff attributes talks.
                session_result = msgspec.structs.replace(result, position=positions[result.position], near_misses=())
                return Talk(peer, connection, request, session_result, opening=True)
        answer = opening.live.match(request)
        if answer is None:
            return None
        self.setup_answered += 1
        return Talk(peer, connection, request, answer.result, opening=True, answered_from=answer.session_id)

    def _state(self, context: SessionContext, states: dict[str, ConnectionState], previous: ConnectionState | None) -> ConnectionState:
        state = states.get(context.key)
        if state is None:
            # A connection kept open across sessions carries its state into the next one.
            state = context.matcher.connection(previous)
            states.clear()
            states[context.key] = state
        return state

    def _attribution_note(self, context: SessionContext, opened_at: float) -> str:
        """Why a talk went to this session when no header said so (shown in the report)."""
        if self.attribution == "single" and opened_at < context.began_at:
            return "on a connection the service opened before this session began (kept open across sessions); the one session being replayed"
        return ""

    async def _close_idle(self) -> None:
        """Close connections silent for IDLE_TIMEOUT_S between talks (their reads return b"")."""
        while True:
            await asyncio.sleep(IDLE_TIMEOUT_S / 4)
            silent_since = time.monotonic() - IDLE_TIMEOUT_S
            for writer, last in list(self._open.items()):
                if last < silent_since:
                    writer.close()

    @staticmethod
    async def _first_read(reader: Stream, fresh: bool) -> bytes | None:
        """The first bytes of a talk; None when a new connection stays silent for 20 ms."""
        if not fresh:
            return await reader.read(READ_SIZE)
        try:
            async with asyncio.timeout(GREETING_WAIT_S):  # a timer, no extra task
                return await reader.read(READ_SIZE)
        except TimeoutError:
            return None

    @staticmethod
    async def _rest_of_talk(
        reader: Stream, data: bytes, protocol: str, writer: Stream | None = None, *, request_line: bool | None = None
    ) -> tuple[bytes, bool]:
        """Read until the request is complete: by the protocol when it is known, else until
        Koala's 3 ms idle gap. Also whether it stayed within MAX_TALK_BYTES. `request_line`:
        http1.looks_like_request(data), when the caller has it."""
        if protocol == HTTP and whole_http_request(data, request_line=request_line):
            return data, True  # the usual talk: one read, nothing more to wait for
        framer = RequestFramer(protocol)
        complete = framer.feed(data)
        if not complete:
            # The client may hold the rest until we acknowledge this part (Nagle against
            # delayed ACK, sockets.py): acknowledge now. A whole talk needs no such call.
            quickack(writer)
        while not complete:
            if len(framer.buffer) > MAX_TALK_BYTES:
                return bytes(framer.buffer), False
            gap = IDLE_GAP_S if complete is None else INCOMPLETE_GAP_S
            try:
                async with asyncio.timeout(gap):
                    more = await reader.read(READ_SIZE)
            except TimeoutError:
                break
            if not more:
                break
            complete = framer.feed(more)
        return bytes(framer.buffer), True

    @staticmethod
    async def _pass_through(mapping: OutboundMapping, request: bytes, reader: Stream, writer: Stream) -> None:
        """--bypass: from this talk on, the connection goes to the real dependency."""
        real = mapping.recorded_peer
        upstream_reader, upstream_writer = await open_connection(real.host, real.port)
        upstream_writer.write(request)
        await upstream_writer.drain()

        async def pipe(source: Stream, sink: Stream) -> None:
            with contextlib.suppress(ConnectionError):
                while chunk := await source.read(READ_SIZE):
                    sink.write(chunk)
                    await sink.drain()
            with contextlib.suppress(Exception):
                sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
