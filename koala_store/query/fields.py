"""The fields a query can name, and what kind of value each holds.

Every backend maps these logical names to its own columns or document paths; the kind
decides how a value is read (exact keyword, number, date, or full text).
"""

from __future__ import annotations

from enum import Enum

from msgspec import Struct


class Kind(str, Enum):
    KEYWORD = "keyword"  # exact, case-sensitive; wildcards and regexps allowed
    LONG = "long"
    DOUBLE = "double"
    DATE = "date"  # unix nanoseconds
    TEXT = "text"  # full text: lowercased letter/digit tokens, phrase matching


class Field(Struct, frozen=True):
    name: str
    kind: Kind
    description: str
    # Values are compared upper-cased (HTTP methods: `inbound.method:post` finds POST).
    upper: bool = False
    # Holds one value per outbound call; a condition holds when any call satisfies it.
    per_outbound_call: bool = False

    @property
    def numeric(self) -> bool:
        return self.kind in (Kind.LONG, Kind.DOUBLE)


_ALL = [
    Field("session_id", Kind.KEYWORD, "Koala SessionId"),
    Field("recorded_at", Kind.DATE, "when the inbound request arrived (UTC)"),
    Field("thread_id", Kind.LONG, "Koala ThreadId"),
    Field("trace_id", Kind.KEYWORD, "Koala TraceId"),
    Field("inbound.method", Kind.KEYWORD, "HTTP method of the inbound request", upper=True),
    Field("inbound.path", Kind.KEYWORD, "path of the inbound request, without the query string"),
    Field("inbound.query", Kind.KEYWORD, "query string of the inbound request, without '?'"),
    Field("inbound.host", Kind.KEYWORD, "Host header of the inbound request"),
    Field("inbound.status", Kind.LONG, "HTTP status the service answered"),
    Field("inbound.content_type", Kind.KEYWORD, "Content-Type of the response, without parameters"),
    Field("inbound.latency_ms", Kind.DOUBLE, "milliseconds from request to response"),
    Field("inbound.request", Kind.TEXT, "full text of the inbound request bytes"),
    Field("inbound.response", Kind.TEXT, "full text of the inbound response bytes"),
    Field("outbound.peer", Kind.KEYWORD, "ip:port of an outbound call", per_outbound_call=True),
    Field("outbound.protocol", Kind.KEYWORD, "http, redis, mysql or unknown", per_outbound_call=True),
    Field(
        "outbound.method",
        Kind.KEYWORD,
        "HTTP method, Redis command or SQL verb of an outbound call",
        upper=True,
        per_outbound_call=True,
    ),
    Field("outbound.path", Kind.KEYWORD, "HTTP path, or first Redis key, of an outbound call", per_outbound_call=True),
    Field("outbound.request", Kind.TEXT, "full text of an outbound request", per_outbound_call=True),
    Field("outbound.response", Kind.TEXT, "full text of an outbound response", per_outbound_call=True),
    Field("outbound.count", Kind.LONG, "number of outbound calls in the session"),
]

FIELDS: dict[str, Field] = {f.name: f for f in _ALL}
# Terms without a field search these.
DEFAULT_TEXT_FIELDS: tuple[Field, ...] = tuple(FIELDS[n] for n in ("inbound.request", "inbound.response", "outbound.request", "outbound.response"))
