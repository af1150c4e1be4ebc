"""Derive the queryable facts of a session (SessionSummary) from its recorded bytes."""

from __future__ import annotations

from .model import CallOutbound, OutboundSummary, Session, SessionSummary
from .wire import parse_talk
from .wire.http import split_target


def summarize(session: Session) -> SessionSummary:
    inbound = session.call_from_inbound
    summary = SessionSummary(
        session_id=session.session_id,
        recorded_at=inbound.occurred_at,
        outbound=[summarize_outbound(call) for call in session.outbound_calls],
    )
    # HTTP/1.x or FastCGI (PHP-FPM). Only a few facts are needed, and the talk parses no more
    # than they take (for HTTP/1.x: the request line and two headers; ingest hot path).
    talk = parse_talk(inbound.request, session.response)
    line = talk.line
    if line is not None:
        summary.method = line[0]
        summary.path, summary.query = split_target(line[1])
        summary.host = talk.host
    summary.status = talk.status
    if summary.status is not None:
        summary.content_type = talk.content_type
    finished = session.return_inbound.occurred_at if session.return_inbound is not None else 0
    if finished and inbound.occurred_at and finished >= inbound.occurred_at:
        summary.latency_ms = (finished - inbound.occurred_at) / 1e6
    return summary


def summarize_outbound(call: CallOutbound) -> OutboundSummary:
    talk = parse_talk(call.request, call.response, call.peer.port)
    return OutboundSummary(peer=call.peer.address, protocol=talk.protocol, method=talk.verb, path=talk.resource)
