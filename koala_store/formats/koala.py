"""Koala's recorded-session JSON: what its recorder writes to files and posts to Elasticsearch.

Byte fields use the escaped-text encoding (koala_store.formats.escaped). Reading validates
every field's type and names the JSON path of the first problem; writing reproduces the
recorder's key order and indentation, so files look as Koala's own.
"""

from __future__ import annotations

from typing import Any, Union

import msgspec
import orjson

from ..errors import FormatError
from ..model import (
    AppendFile,
    CallFromInbound,
    CallOutbound,
    Peer,
    ReadStorage,
    ReturnInbound,
    SendUDP,
    Redaction,
    Session,
    UnixAddr,
)
from . import escaped

# --- the wire shape, validated by msgspec (attribute names are the JSON keys) -------------


class PeerW(msgspec.Struct):
    IP: str = ""
    Port: int = 0
    Zone: str = ""


class UnixAddrW(msgspec.Struct):
    Name: str = ""
    Net: str = ""


class _ActionW(msgspec.Struct, tag_field="ActionType"):
    ActionIndex: int = 0
    OccurredAt: int = 0


class _CallFromInboundW(_ActionW, tag="CallFromInbound"):
    Peer: PeerW | None = None
    UnixAddr: UnixAddrW | None = None
    Request: str | None = None


class _ReturnInboundW(_ActionW, tag="ReturnInbound"):
    Response: str | None = None


class _CallOutboundW(_ActionW, tag="CallOutbound"):
    SocketFD: int = 0
    Peer: PeerW | None = None
    ResponseTime: int = 0
    UnixAddr: UnixAddrW | None = None
    Request: str | None = None
    Response: str | None = None
    CSpanId: str = ""


class _AppendFileW(_ActionW, tag="AppendFile"):
    FileName: str = ""
    Content: str | None = None


class _SendUDPW(_ActionW, tag="SendUDP"):
    Peer: PeerW | None = None
    Content: str | None = None


class _ReadStorageW(_ActionW, tag="ReadStorage"):
    Content: str | None = None


_AnyActionW = Union[_CallFromInboundW, _ReturnInboundW, _CallOutboundW, _AppendFileW, _SendUDPW, _ReadStorageW]


class RedactionW(msgspec.Struct, omit_defaults=True):
    Where: str
    Header: str = ""
    Body: str = ""
    Count: int = 1


class _SessionW(msgspec.Struct):
    SessionId: str
    CallFromInbound: _CallFromInboundW
    # null in Koala's files when the request was never answered (see model.Session).
    ReturnInbound: _ReturnInboundW | None
    Context: str = ""
    ThreadId: int = 0
    TraceHeader: dict[str, Any] | None = None
    NextSessionId: str = ""
    Actions: list[_AnyActionW] | None = None
    TraceId: str = ""
    SpanId: str = ""
    # koala-store's own keys (see model.Session), present only when set.
    Incomplete: str = ""
    Redactions: list[RedactionW] | None = None


KNOWN_KEYS = frozenset(_SessionW.__struct_fields__)
_CFI_TAG = {"ActionType": "CallFromInbound"}
_RI_TAG = {"ActionType": "ReturnInbound"}

# --- reading -------------------------------------------------------------------------------


def peer_from_wire(w: PeerW | None) -> Peer:
    return Peer(w.IP, w.Port, w.Zone) if w is not None else Peer()


def unix_from_wire(w: UnixAddrW | None) -> UnixAddr:
    return UnixAddr(w.Name, w.Net) if w is not None else UnixAddr()


def _bytes(text: str | None) -> bytes:
    return escaped.decode(text) if text else b""


def _action(w: _ActionW) -> Any:
    if isinstance(w, _CallOutboundW):
        return CallOutbound(
            action_index=w.ActionIndex,
            occurred_at=w.OccurredAt,
            socket_fd=w.SocketFD,
            peer=peer_from_wire(w.Peer),
            response_time=w.ResponseTime,
            unix_addr=unix_from_wire(w.UnixAddr),
            request=_bytes(w.Request),
            response=_bytes(w.Response),
            cspan_id=w.CSpanId,
        )
    if isinstance(w, _ReturnInboundW):
        return ReturnInbound(w.ActionIndex, w.OccurredAt, response=_bytes(w.Response))
    if isinstance(w, _AppendFileW):
        return AppendFile(w.ActionIndex, w.OccurredAt, file_name=w.FileName, content=_bytes(w.Content))
    if isinstance(w, _SendUDPW):
        return SendUDP(w.ActionIndex, w.OccurredAt, peer=peer_from_wire(w.Peer), content=_bytes(w.Content))
    if isinstance(w, _ReadStorageW):
        return ReadStorage(w.ActionIndex, w.OccurredAt, content=_bytes(w.Content))
    if isinstance(w, _CallFromInboundW):
        raise FormatError("a CallFromInbound action inside Actions (Koala keeps it only at top level)")
    raise AssertionError(f"unhandled wire action {type(w).__name__}")


def from_dict(obj: Any) -> Session:
    """Build a Session from a decoded Koala recorded-session JSON object."""
    if not isinstance(obj, dict):
        raise FormatError(f"expected a JSON object with a SessionId, got a JSON {type(obj).__name__}")
    # The top-level actions carry no ActionType tag in some recorders; supply it.
    for key, tag in (("CallFromInbound", _CFI_TAG), ("ReturnInbound", _RI_TAG)):
        value = obj.get(key)
        if isinstance(value, dict) and "ActionType" not in value:
            obj = {**obj, key: {**value, **tag}}
    try:
        w = msgspec.convert(obj, _SessionW)
    except msgspec.ValidationError as exc:
        raise FormatError(f"not a Koala session: {exc}") from None
    if not w.SessionId:
        raise FormatError("not a Koala session: SessionId is empty - at `$.SessionId`")
    cfi = w.CallFromInbound
    try:
        actions = [_action(a) for a in (w.Actions or [])]
    except FormatError as exc:
        raise FormatError(f"not a Koala session: {exc}") from None
    ri = w.ReturnInbound
    return Session(
        session_id=w.SessionId,
        call_from_inbound=CallFromInbound(
            cfi.ActionIndex, cfi.OccurredAt, request=_bytes(cfi.Request), peer=peer_from_wire(cfi.Peer), unix_addr=unix_from_wire(cfi.UnixAddr)
        ),
        return_inbound=None if ri is None else ReturnInbound(ri.ActionIndex, ri.OccurredAt, _bytes(ri.Response)),
        actions=actions,
        actions_null=w.Actions is None,
        context=w.Context,
        thread_id=w.ThreadId,
        trace_header=w.TraceHeader,
        next_session_id=w.NextSessionId,
        trace_id=w.TraceId,
        span_id=w.SpanId,
        extra={k: v for k, v in obj.items() if k not in KNOWN_KEYS},
        incomplete=w.Incomplete,
        redactions=[Redaction(r.Where, r.Header, r.Body, r.Count) for r in w.Redactions or ()],
    )


def loads(data: bytes | str) -> list[Session]:
    """Sessions from one Koala file: a session object, or a JSON array of them."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise FormatError(f"not valid JSON: {exc}") from None
    if isinstance(obj, list):
        sessions = []
        for i, item in enumerate(obj):
            try:
                sessions.append(from_dict(item))
            except FormatError as exc:
                raise FormatError(f"session [{i}] of the array: {exc}") from None
        return sessions
    return [from_dict(obj)]


# --- writing -------------------------------------------------------------------------------


def _peer_dict(peer: Peer) -> dict[str, Any]:
    return {"IP": peer.ip, "Port": peer.port, "Zone": peer.zone}


def _unix_dict(addr: UnixAddr) -> dict[str, Any]:
    return {"Name": addr.name, "Net": addr.net}


def action_to_dict(action: Any) -> dict[str, Any]:
    """One action in Koala's key order."""
    out: dict[str, Any] = {"ActionIndex": action.action_index, "OccurredAt": action.occurred_at}
    if isinstance(action, CallOutbound):
        out |= {
            "ActionType": "CallOutbound",
            "SocketFD": action.socket_fd,
            "Peer": _peer_dict(action.peer),
            "ResponseTime": action.response_time,
            "UnixAddr": _unix_dict(action.unix_addr),
            "Request": escaped.encode(action.request),
            "Response": escaped.encode(action.response),
            "CSpanId": action.cspan_id,
        }
    elif isinstance(action, ReturnInbound):
        out |= {"ActionType": "ReturnInbound", "Response": escaped.encode(action.response)}
    elif isinstance(action, CallFromInbound):
        out |= {
            "ActionType": "CallFromInbound",
            "Peer": _peer_dict(action.peer),
            "UnixAddr": _unix_dict(action.unix_addr),
            "Request": escaped.encode(action.request),
        }
    elif isinstance(action, AppendFile):
        out |= {"ActionType": "AppendFile", "FileName": action.file_name, "Content": escaped.encode(action.content)}
    elif isinstance(action, SendUDP):
        out |= {"ActionType": "SendUDP", "Peer": _peer_dict(action.peer), "Content": escaped.encode(action.content)}
    elif isinstance(action, ReadStorage):
        out |= {"ActionType": "ReadStorage", "Content": escaped.encode(action.content)}
    else:
        raise TypeError(f"not a session action: {action!r}")
    return out


def to_dict(session: Session) -> dict[str, Any]:
    """The session as Koala's recorder shapes it, keys in its order."""
    returned = None if session.return_inbound is None else action_to_dict(session.return_inbound)
    actions = [
        # Koala repeats ReturnInbound as the last action: reuse its (escaped) rendering.
        returned if returned is not None and action == session.return_inbound else action_to_dict(action)
        for action in session.actions
    ]
    out = {
        "Context": session.context,
        "ThreadId": session.thread_id,
        "SessionId": session.session_id,
        "TraceHeader": session.trace_header,
        "NextSessionId": session.next_session_id,
        "CallFromInbound": action_to_dict(session.call_from_inbound),
        "ReturnInbound": returned,
        "Actions": None if session.actions_null and not actions else actions,
        "TraceId": session.trace_id,
        "SpanId": session.span_id,
    }
    out.update(session.extra)
    if session.incomplete:
        out["Incomplete"] = session.incomplete
    if session.redactions:
        out["Redactions"] = [redaction_to_dict(r) for r in session.redactions]
    return out


def redaction_to_dict(redaction: Redaction) -> dict[str, Any]:
    out: dict[str, Any] = {"Where": redaction.where}
    if redaction.header:
        out["Header"] = redaction.header
    if redaction.body:
        out["Body"] = redaction.body
    out["Count"] = redaction.count
    return out


# Go's encoder escapes these even inside json.RawMessage (its compact step runs with HTML
# escaping on), so Koala's files spell them so. They can only occur inside JSON strings,
# which makes a replacement over the whole text exact.
_GO_ESCAPES = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"), ("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029"))


def go_json(data: bytes) -> bytes:
    """orjson output re-spelled as Go's encoding/json writes it (HTML characters and the
    line/paragraph separators escaped; everything else orjson and Go already write alike)."""
    for raw, escape in _GO_ESCAPES:
        if raw in data:
            data = data.replace(raw, escape)
    return data


def dumps(session: Session) -> bytes:
    """One session byte for byte as Koala's recorder writes it to a file or posts it to
    Elasticsearch: Go's `json.MarshalIndent(session, "", "  ")` over its escaped bytes."""
    return go_json(orjson.dumps(to_dict(session), option=orjson.OPT_INDENT_2))
