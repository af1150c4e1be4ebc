"""Our session document: Koala's recorded JSON plus the derived, queryable fields.

One document per session. It is what NDJSON export writes, what the Elasticsearch backend
indexes, and what Kibana shows, so the derived names match the query fields:
`recorded_at`, `inbound.method`, `inbound.path`, ..., `outbound.peer`, `outbound.protocol`,
`outbound_count`. Reading ignores the derived part and recomputes it: the Koala part is the
source of truth, so any Koala tool can read a document too.
"""

from __future__ import annotations

import time
from typing import Any

from ..model import Session, SessionSummary
from ..summary import summarize
from . import koala

DERIVED_KEYS = ("recorded_at", "inbound", "outbound", "outbound_count")


def ns_to_iso(ns: int) -> str:
    """Unix nanoseconds as an ISO-8601 UTC timestamp with all nine fraction digits."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{fraction:09d}Z"


def derived_fields(summary: SessionSummary) -> dict[str, Any]:
    """The derived fields; empty values are left out, so "exists" means "has a value"."""
    inbound: dict[str, Any] = {
        key: value
        for key, value in (
            ("method", summary.method),
            ("path", summary.path),
            ("query", summary.query),
            ("host", summary.host),
            ("status", summary.status),
            ("content_type", summary.content_type),
            ("latency_ms", summary.latency_ms),
        )
        if value not in (None, "")
    }
    return {
        "recorded_at": ns_to_iso(summary.recorded_at),
        "inbound": inbound,
        "outbound": [{k: v for k, v in (("peer", o.peer), ("protocol", o.protocol), ("method", o.method), ("path", o.path)) if v} for o in summary.outbound],
        "outbound_count": len(summary.outbound),
    }


def to_document(session: Session, summary: SessionSummary | None = None) -> dict[str, Any]:
    doc = koala.to_dict(session)
    doc.update(derived_fields(summary or summarize(session)))
    return doc


def from_document(doc: Any) -> Session:
    """A Session from a document (derived fields, if any, are ignored)."""
    if isinstance(doc, dict) and any(key in doc for key in DERIVED_KEYS):
        doc = {k: v for k, v in doc.items() if k not in DERIVED_KEYS}
    return koala.from_dict(doc)
