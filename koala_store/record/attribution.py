"""Which inbound request an outbound talk belongs to, and the sessions that come out.

Every inbound request in flight (from its head arriving to its response's last byte) is an
`Exchange`. When an outbound talk starts, the set of exchanges in flight is noted. A talk
belongs to:

1. the exchange its X-Koala-Session (or W3C traceparent trace id) header names, when the
   service passed on the header the proxy injected; else
2. the one exchange in flight when it started; else
3. nobody: with several in flight, each of them is marked incomplete (the reason names the
   talk) and the talk goes into none of them; with none in flight (a pool's health check)
   it is counted as unattributed and logged.

Never a guess. Connection set-up talks follow the same rule, so a pooled connection's opening
lands in the session in flight when the connection opened, as replay's openings library
expects.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..model import CallFromInbound, CallOutbound, Peer, ReturnInbound, Session
from ..wire import http1

SESSION_HEADER = "X-Koala-Session"
EXCERPT = 60
# An HTTP method and a space (or the start of one): wait for the head before deciding.
_MAYBE_HTTP = re.compile(rb"^[A-Z][A-Z0-9_-]{0,19}(?: |$)")
_MAX_HEAD = 1 << 16


@dataclass(eq=False)
class Connection:
    """One proxied connection: its stand-in number (SocketFD of outbound talks, ThreadId of
    inbound ones) and the address its talks are recorded against."""

    number: int
    client: Peer
    recorded_peer: Peer


@dataclass(eq=False)
class Talk:
    """One outbound talk: bytes the service sent, then the bytes the dependency answered."""

    connection: Connection
    occurred_at: int
    in_flight: frozenset[str]  # keys of the exchanges in flight when it started
    index: int  # the recorder's running number, to name it in reasons
    request: bytearray = field(default_factory=bytearray)
    response: bytearray = field(default_factory=bytearray)
    response_time: int = 0
    owner: str | None = None  # the exchange a propagated header named
    header_checked: bool = False

    def describe(self) -> str:
        peer = self.connection.recorded_peer.address
        text = bytes(self.request[:EXCERPT]) if self.request else b"(greeting)"
        return f"talk #{self.index} to {peer} on connection {self.connection.number} {text!r}"


@dataclass(eq=False)
class Exchange:
    """One inbound request and its response, while in flight and until its session is built."""

    key: str  # the X-Koala-Session value the proxy injects (the SessionId)
    trace_id: str  # the traceparent trace id the service may pass on instead
    connection: Connection
    occurred_at: int
    recorded: bool  # False: proxied only (sampling or URL filters), no session emitted
    request: bytearray = field(default_factory=bytearray)
    response: bytearray = field(default_factory=bytearray)
    response_started: int = 0
    talks: list[Talk] = field(default_factory=list)  # candidates: started while in flight, or named by header
    finished: bool = False


@dataclass
class Counts:
    complete: int = 0
    incomplete: int = 0
    unattributed: int = 0
    skipped: int = 0


class Attribution:
    """The book of exchanges in flight and the talks made meanwhile."""

    def __init__(self, on_unattributed: Callable[[Talk], None] = lambda talk: None):
        self.in_flight: dict[str, Exchange] = {}
        self.by_trace: dict[str, Exchange] = {}
        self.pending: dict[str, Exchange] = {}  # finished or in flight, session not built yet
        self._talks = itertools.count(1)
        self.on_unattributed = on_unattributed
        self.counts = Counts()

    # --- inbound -----------------------------------------------------------------------

    def begin(self, exchange: Exchange) -> None:
        self.in_flight[exchange.key] = exchange
        self.by_trace[exchange.trace_id] = exchange
        self.pending[exchange.key] = exchange

    def end(self, exchange: Exchange) -> None:
        """The response is complete (or the connection went): out of flight."""
        exchange.finished = True
        self.in_flight.pop(exchange.key, None)

    # --- outbound ----------------------------------------------------------------------

    def talk(self, connection: Connection, occurred_at: int) -> Talk:
        """A talk starts: note who is in flight."""
        talk = Talk(connection, occurred_at, frozenset(self.in_flight), next(self._talks))
        for key in talk.in_flight:
            self.in_flight[key].talks.append(talk)
        return talk

    def sent(self, talk: Talk, data: bytes) -> None:
        talk.request += data
        if not talk.header_checked:
            self._check_header(talk)

    def _check_header(self, talk: Talk) -> None:
        """Once the request head is in, a propagated header names the owner."""
        request = talk.request
        if not _MAYBE_HTTP.match(request[:24]):
            talk.header_checked = True  # not HTTP: no header to find
        elif http1.HEAD_END in request or len(request) > _MAX_HEAD:
            talk.header_checked = True
            head = http1.parse_request_head(bytes(request))
            owner = self._named(head) if head is not None else None
            if owner is not None:
                talk.owner = owner.key
                if talk not in owner.talks:
                    owner.talks.append(talk)
        if talk.header_checked and talk.owner is None and not talk.in_flight:
            self.counts.unattributed += 1
            self.on_unattributed(talk)

    def greeting(self, talk: Talk) -> None:
        """A talk the dependency started (a greeting): no header can ever name its owner."""
        talk.header_checked = True
        if not talk.in_flight:
            self.counts.unattributed += 1
            self.on_unattributed(talk)

    def _named(self, head: http1.Head) -> Exchange | None:
        key = head.header(SESSION_HEADER)
        if key is not None and key in self.pending:
            return self.pending[key]
        parent = head.header("traceparent")
        if parent and parent.count("-") >= 3:
            return self.by_trace.get(parent.split("-")[1])
        return None

    # --- sessions ----------------------------------------------------------------------

    def build(self, exchange: Exchange) -> Session | None:
        """The session of a finished exchange (None when it is not recorded or empty)."""
        self.pending.pop(exchange.key, None)
        self.by_trace.pop(exchange.trace_id, None)
        self.in_flight.pop(exchange.key, None)
        if not exchange.recorded:
            self.counts.skipped += 1
            return None
        if not exchange.request:
            return None  # Koala drops sessions with an empty inbound request
        mine: list[Talk] = []
        ambiguous: list[Talk] = []
        for talk in exchange.talks:
            if talk.owner == exchange.key:
                mine.append(talk)
            elif talk.owner is not None:
                continue  # another exchange's header named it
            elif talk.in_flight == {exchange.key}:
                mine.append(talk)
            else:
                ambiguous.append(talk)
        mine.sort(key=lambda t: (t.occurred_at, t.index))
        session = build_session(exchange, mine)
        if ambiguous:
            others = sorted({k for t in ambiguous for k in t.in_flight} - {exchange.key})
            shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
            session.incomplete = (
                f"{ambiguous[0].describe()} started while {len(ambiguous[0].in_flight)} inbound requests were in flight "
                f"(this one and {shown}) and carried no {SESSION_HEADER} or traceparent header, so it was left out"
                + (f"; {len(ambiguous) - 1} more such talks" if len(ambiguous) > 1 else "")
                + "; record with --serial, or have the service pass the header on"
            )
            self.counts.incomplete += 1
        else:
            self.counts.complete += 1
        return session


def build_session(exchange: Exchange, talks: list[Talk]) -> Session:
    """A Koala session: the inbound call, the talks in order, ReturnInbound repeated last."""
    thread = exchange.connection.number
    actions: list = [
        CallOutbound(
            action_index=i,
            occurred_at=talk.occurred_at,
            request=bytes(talk.request),
            response=bytes(talk.response),
            peer=talk.connection.recorded_peer,
            socket_fd=talk.connection.number,
            response_time=talk.response_time or talk.occurred_at,
        )
        for i, talk in enumerate(talks)
    ]
    returned = None
    if exchange.response:
        returned = ReturnInbound(len(actions), exchange.response_started or exchange.occurred_at, bytes(exchange.response))
        actions.append(returned)
    return Session(
        session_id=exchange.key,
        call_from_inbound=CallFromInbound(0, exchange.occurred_at, request=bytes(exchange.request), peer=exchange.connection.client),
        return_inbound=returned,
        actions=actions,
        actions_null=not actions,
        thread_id=thread,
    )


def now_ns() -> int:
    return time.time_ns()


__all__ = ["Attribution", "Connection", "Counts", "Exchange", "SESSION_HEADER", "Talk", "build_session"]
