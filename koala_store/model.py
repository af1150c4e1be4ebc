"""The session model: what a recorder captured while a service handled one inbound request.

Plain typed data with `bytes` payloads and no I/O. Every file format converts to and from
these types at the edge (koala_store.formats); nothing else sees Koala's escaped strings,
base64 or .gor separators. Field meanings follow Koala's recorder (../shared/spec).

The derived, queryable view of a session (method, path, peers, protocols, ...) lives in
`SessionSummary`, computed by koala_store.summary.
"""

from __future__ import annotations

from typing import Any, Union

import msgspec


class Peer(msgspec.Struct, frozen=True, omit_defaults=True):
    """A network address as Koala records it."""

    ip: str = ""
    port: int = 0
    zone: str = ""

    @property
    def address(self) -> str:
        """`ip:port`, the form users write (IPv6 addresses get brackets)."""
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{host}:{self.port}"


class UnixAddr(msgspec.Struct, frozen=True, omit_defaults=True):
    """A unix-socket address; empty for TCP."""

    name: str = ""
    net: str = ""


NO_PEER = Peer()
NO_UNIX_ADDR = UnixAddr()


class _Action(msgspec.Struct, tag_field="type", omit_defaults=True):
    # ActionIndex: the length of Actions when the action was created.
    action_index: int
    # Unix nanoseconds.
    occurred_at: int


class CallFromInbound(_Action, tag="CallFromInbound"):
    """The inbound request that started the session."""

    request: bytes = b""
    peer: Peer = NO_PEER
    unix_addr: UnixAddr = NO_UNIX_ADDR


class ReturnInbound(_Action, tag="ReturnInbound"):
    """The response the service sent back."""

    response: bytes = b""


class CallOutbound(_Action, tag="CallOutbound"):
    """One talk on an outbound connection: bytes sent, then bytes received."""

    request: bytes = b""
    response: bytes = b""
    peer: Peer = NO_PEER
    socket_fd: int = 0
    # Unix nanoseconds when the response arrived.
    response_time: int = 0
    unix_addr: UnixAddr = NO_UNIX_ADDR
    cspan_id: str = ""

    @property
    def connection(self) -> str:
        """Koala's identity of the connection a talk used: `ip:port#fd`."""
        return f"{self.peer.address}#{self.socket_fd}"


class AppendFile(_Action, tag="AppendFile"):
    """Everything the session appended to one file."""

    file_name: str = ""
    content: bytes = b""


class SendUDP(_Action, tag="SendUDP"):
    """One UDP datagram (metrics, logs)."""

    peer: Peer = NO_PEER
    content: bytes = b""


class ReadStorage(_Action, tag="ReadStorage"):
    """A read from process-local storage, such as an APCu fetch."""

    content: bytes = b""


Action = Union[CallFromInbound, ReturnInbound, CallOutbound, AppendFile, SendUDP, ReadStorage]
ACTION_TYPES: dict[str, type[_Action]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (CallFromInbound, ReturnInbound, CallOutbound, AppendFile, SendUDP, ReadStorage)
}


class Redaction(msgspec.Struct, frozen=True, omit_defaults=True):
    """Where a recorder or the ingest service masked values, so replay and diff know the
    recorded bytes there are not what crossed the wire (koala_store.redaction)."""

    where: str  # "inbound.request", "inbound.response", "outbound[3].request", ...
    header: str = ""  # a header whose value was masked (lower case)
    body: str = ""  # a regular expression whose matches in the body were masked
    count: int = 1  # how many values were masked there


class Session(msgspec.Struct, omit_defaults=True):
    """One recorded session: the inbound call, its response and everything done in between.

    `actions` keeps Koala's order, including the `ReturnInbound` that Koala repeats as the
    last action. `extra` keeps top-level keys this version does not know, so a file
    written by a newer recorder survives a round trip.

    Koala writes `"ReturnInbound": null` for a request the service never answered (it closed
    the connection, the thread shut down, the session was cut at 500 actions) and
    `"Actions": null` when nothing happened at all: `return_inbound` is then None, and
    `actions_null` remembers the null so the session writes back exactly as it was read.

    `incomplete` and `redactions` are koala-store's own: written to Koala JSON as the extra
    top-level keys `Incomplete` and `Redactions` only when set, so plain sessions stay byte
    for byte what Koala's recorder writes.
    """

    session_id: str
    call_from_inbound: CallFromInbound
    return_inbound: ReturnInbound | None
    actions: list[Action] = msgspec.field(default_factory=list)
    context: str = ""
    thread_id: int = 0
    trace_header: dict[str, Any] | None = None
    next_session_id: str = ""
    trace_id: str = ""
    span_id: str = ""
    extra: dict[str, Any] = msgspec.field(default_factory=dict)
    actions_null: bool = False
    # Set by `koala record` when outbound talks could not be attributed with certainty (the
    # reason names the talk): replay skips such sessions unless asked.
    incomplete: str = ""
    # Values masked at record or ingest time (Authorization, cookies, card numbers...).
    redactions: list[Redaction] = msgspec.field(default_factory=list)

    @property
    def response(self) -> bytes:
        """The recorded inbound response; empty when the service never answered."""
        return self.return_inbound.response if self.return_inbound is not None else b""

    @property
    def answered(self) -> bool:
        """Whether the recording holds a response (Koala's ReturnInbound is not null)."""
        return self.return_inbound is not None

    @property
    def outbound_calls(self) -> list[CallOutbound]:
        return [a for a in self.actions if isinstance(a, CallOutbound)]

    @property
    def recorded_at(self) -> int:
        """Unix nanoseconds when the inbound request arrived."""
        return self.call_from_inbound.occurred_at


class OutboundSummary(msgspec.Struct, omit_defaults=True):
    """The queryable facts of one outbound call."""

    peer: str
    protocol: str  # wire.Protocol: http | redis | mysql | fastcgi | unknown
    method: str = ""  # HTTP (FastCGI) method, Redis command or MySQL statement verb
    path: str = ""  # HTTP path; first key for Redis


class SessionSummary(msgspec.Struct, omit_defaults=True):
    """The derived fields that stores index and queries filter on."""

    session_id: str
    recorded_at: int  # unix nanoseconds
    method: str = ""
    path: str = ""
    query: str = ""
    host: str = ""
    status: int | None = None
    content_type: str = ""
    latency_ms: float | None = None
    outbound: list[OutboundSummary] = msgspec.field(default_factory=list)

    @property
    def outbound_count(self) -> int:
        return len(self.outbound)
