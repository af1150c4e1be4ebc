"""Derive the queryable facts of a session (SessionSummary) from its recorded bytes."""

from __future__ import annotations

from .model import CallOutbound, OutboundSummary, Session, SessionSummary
from .wire import HTTP, MYSQL, REDIS, http1, identify, mysql


def summarize(session: Session) -> SessionSummary:
    inbound = session.call_from_inbound
    summary = SessionSummary(
        session_id=session.session_id,
        recorded_at=inbound.occurred_at,
        outbound=[summarize_outbound(call) for call in session.outbound_calls],
    )
    # Only a few facts are needed, so read them without parsing whole heads (ingest hot path).
    line = http1.request_line(inbound.request)
    if line is not None:
        summary.method = line[0]
        summary.path, summary.query = http1.split_target(line[1])
        summary.host = http1.find_header(inbound.request, b"host") or ""
    response = session.response
    summary.status = http1.status_code(response)
    if summary.status is not None:
        summary.content_type = (http1.find_header(response, b"content-type") or "").split(";", 1)[0].strip()
    finished = session.return_inbound.occurred_at if session.return_inbound is not None else 0
    if finished and inbound.occurred_at and finished >= inbound.occurred_at:
        summary.latency_ms = (finished - inbound.occurred_at) / 1e6
    return summary


def summarize_outbound(call: CallOutbound) -> OutboundSummary:
    protocol, parsed = identify(call.request, call.response, call.peer.port)
    out = OutboundSummary(peer=call.peer.address, protocol=protocol)
    if protocol == HTTP and isinstance(parsed, tuple):
        out.method, out.path = parsed[0], http1.split_target(parsed[1])[0]
    elif protocol == REDIS and isinstance(parsed, list):
        out.method = parsed[0].decode("latin-1").upper()
        if len(parsed) > 1:
            out.path = parsed[1].decode("utf-8", "replace")
    elif protocol == MYSQL and isinstance(parsed, tuple) and parsed[0] == mysql.COM_QUERY:
        words = parsed[1].split(None, 1)
        if words:
            out.method = words[0].decode("latin-1").upper()
    return out
