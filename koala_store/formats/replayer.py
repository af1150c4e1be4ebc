"""The body Koala's replayer takes on `POST /json` (default :2514): byte fields in base64.

Writing it lets a user drive a real Koala replayer with sessions from our store; reading it
lets a captured replayer request come back in as a session.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..errors import FormatError
from ..model import CallFromInbound, CallOutbound, Peer, Redaction, ReturnInbound, Session, UnixAddr
from .koala import PeerW, RedactionW, UnixAddrW, peer_from_wire, unix_from_wire


class _CallFromInboundW(msgspec.Struct):
    ActionIndex: int = 0
    OccurredAt: int = 0
    ActionType: str = "CallFromInbound"
    Peer: PeerW | None = None
    UnixAddr: UnixAddrW | None = None
    Request: bytes | None = None


class _ReturnInboundW(msgspec.Struct):
    ActionIndex: int = 0
    OccurredAt: int = 0
    ActionType: str = "ReturnInbound"
    Response: bytes | None = None


class _CallOutboundW(msgspec.Struct):
    ActionIndex: int = 0
    OccurredAt: int = 0
    ActionType: str = "CallOutbound"
    SocketFD: int = 0
    Peer: PeerW | None = None
    ResponseTime: int = 0
    UnixAddr: UnixAddrW | None = None
    Request: bytes | None = None
    Response: bytes | None = None
    CSpanId: str = ""


class _ReplayingSessionW(msgspec.Struct, omit_defaults=True):
    SessionId: str
    CallFromInbound: _CallFromInboundW
    ReturnInbound: _ReturnInboundW
    CallOutbounds: list[_CallOutboundW] | None = None
    MockFiles: dict[str, bytes] | None = None
    RedirectDirs: dict[str, str] | None = None
    TracePaths: list[str] | None = None
    # koala-store's own (model.Session); Koala's replayer ignores keys it does not know.
    Incomplete: str = ""
    Redactions: list[RedactionW] | None = None


def _peer(p: Peer) -> PeerW:
    return PeerW(p.ip, p.port, p.zone)


def _unix(u: UnixAddr) -> UnixAddrW:
    return UnixAddrW(u.name, u.net)


def to_replayer(
    session: Session,
    mock_files: dict[str, bytes] | None = None,
    redirect_dirs: dict[str, str] | None = None,
    trace_paths: list[str] | None = None,
) -> bytes:
    """The JSON body to POST to a Koala replayer for this session."""
    cfi, ri = session.call_from_inbound, session.return_inbound
    if ri is None:
        # The replayer requires a ReturnInbound; an unanswered session sends an empty one.
        ri = ReturnInbound(len(session.actions), 0)
    body = _ReplayingSessionW(
        SessionId=session.session_id,
        CallFromInbound=_CallFromInboundW(cfi.action_index, cfi.occurred_at, Peer=_peer(cfi.peer), UnixAddr=_unix(cfi.unix_addr), Request=cfi.request),
        ReturnInbound=_ReturnInboundW(ri.action_index, ri.occurred_at, Response=ri.response),
        CallOutbounds=[
            _CallOutboundW(
                c.action_index,
                c.occurred_at,
                SocketFD=c.socket_fd,
                Peer=_peer(c.peer),
                ResponseTime=c.response_time,
                UnixAddr=_unix(c.unix_addr),
                Request=c.request,
                Response=c.response,
                CSpanId=c.cspan_id,
            )
            for c in session.outbound_calls
        ],
        MockFiles=mock_files or {},
        RedirectDirs=redirect_dirs or {},
        TracePaths=trace_paths or [],
        Incomplete=session.incomplete,
        Redactions=[RedactionW(r.where, r.header, r.body, r.count) for r in session.redactions] or None,
    )
    return msgspec.json.encode(body)


def from_replayer(data: bytes | str) -> Session:
    """A session from a replayer request body (its mock files and redirects are not kept)."""
    try:
        w = msgspec.json.decode(data, type=_ReplayingSessionW)
    except msgspec.ValidationError as exc:
        raise FormatError(f"not a Koala replayer request: {exc}") from None
    except msgspec.DecodeError as exc:
        raise FormatError(f"not valid JSON: {exc}") from None
    if not w.SessionId:
        raise FormatError("not a Koala replayer request: SessionId is empty - at `$.SessionId`")
    cfi, ri = w.CallFromInbound, w.ReturnInbound
    calls: list[Any] = [
        CallOutbound(
            c.ActionIndex,
            c.OccurredAt,
            request=c.Request or b"",
            response=c.Response or b"",
            peer=peer_from_wire(c.Peer),
            socket_fd=c.SocketFD,
            response_time=c.ResponseTime,
            unix_addr=unix_from_wire(c.UnixAddr),
            cspan_id=c.CSpanId,
        )
        for c in w.CallOutbounds or []
    ]
    ret = ReturnInbound(ri.ActionIndex, ri.OccurredAt, response=ri.Response or b"")
    return Session(
        session_id=w.SessionId,
        call_from_inbound=CallFromInbound(cfi.ActionIndex, cfi.OccurredAt, request=cfi.Request or b"", peer=peer_from_wire(cfi.Peer), unix_addr=unix_from_wire(cfi.UnixAddr)),
        return_inbound=ret,
        actions=[*calls, ret],
        incomplete=w.Incomplete,
        redactions=[Redaction(r.Where, r.Header, r.Body, r.Count) for r in w.Redactions or ()],
    )


def looks_like_replayer(obj: dict[str, Any]) -> bool:
    """Replayer bodies list their calls in CallOutbounds; recorded sessions use Actions."""
    return "CallOutbounds" in obj and "Actions" not in obj
