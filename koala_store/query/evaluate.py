"""Evaluate a query tree against one Session in Python, with the backends' exact semantics.

Backends answer queries themselves; this is for what a backend cannot index, such as the
derived fields on a Koala recorder's own Elasticsearch index, where koala-store filters what
it fetched.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from ..model import Session, SessionSummary
from ..summary import summarize
from . import ir, regex
from .fields import Field, Kind
from .text import field_texts, searchable_text, tokenize


@lru_cache(maxsize=512)
def wildcard_regex(pattern: str) -> re.Pattern[str]:
    """A wildcard pattern (`*`, `?`, backslash escapes) as an anchored regular expression."""
    out = []
    for escaped, char in re.findall(r"(\\)?(.)", pattern, re.S):
        if escaped:
            out.append(re.escape(char))
        elif char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        else:
            out.append(re.escape(char))
    return re.compile("".join(out), re.S)


class _Facts:
    """A session's values per field, computed once per evaluation."""

    def __init__(self, session: Session):
        self.session = session
        self.summary: SessionSummary = summarize(session)

    def values(self, field: Field) -> list[Any]:
        """Every value the field holds (several for per-call fields); empty means absent."""
        s, summary = self.session, self.summary
        name = field.name
        if field.per_outbound_call:
            calls = s.outbound_calls
            if name == "outbound.request":
                return [len(c.request) for c in calls if c.request]
            if name == "outbound.response":
                return [len(c.response) for c in calls if c.response]
            attribute = name.split(".", 1)[1]
            return [v for o in summary.outbound if (v := getattr(o, attribute))]
        value: Any = {
            "session_id": s.session_id,
            "recorded_at": summary.recorded_at,
            "thread_id": s.thread_id,
            "trace_id": s.trace_id,
            "inbound.method": summary.method,
            "inbound.path": summary.path,
            "inbound.query": summary.query,
            "inbound.host": summary.host,
            "inbound.status": summary.status,
            "inbound.content_type": summary.content_type,
            "inbound.latency_ms": summary.latency_ms,
            "inbound.request": len(s.call_from_inbound.request),
            "inbound.response": len(s.response),
            "outbound.count": len(summary.outbound),
        }[name]
        absent = value is None or value == "" or (field.kind is Kind.TEXT and value == 0)
        return [] if absent else [value]

    def texts(self, field: Field) -> list[bytes]:
        return field_texts(self.session, field.name)


def _has_phrase(data: bytes, words: tuple[str, ...], prefix: bool) -> bool:
    tokens = tokenize(searchable_text(data))
    n = len(words)
    for i in range(len(tokens) - n + 1):
        if tokens[i : i + n - 1] == list(words[:-1]):
            last = tokens[i + n - 1]
            if last.startswith(words[-1]) if prefix else last == words[-1]:
                return True
    return False


def _leaf(node: Any, facts: _Facts) -> bool:
    if isinstance(node, ir.Text):
        return any(_has_phrase(data, node.tokens, node.prefix) for field in node.fields for data in facts.texts(field))
    values = facts.values(node.field)
    if isinstance(node, ir.Exists):
        return bool(values)
    if isinstance(node, ir.Term):
        return any(v == node.value for v in values)
    if isinstance(node, ir.Wildcard):
        pattern = wildcard_regex(node.pattern)
        return any(pattern.fullmatch(str(v)) for v in values)
    if isinstance(node, ir.Regexp):
        return any(regex.fullmatch(node.pattern, str(v)) for v in values)
    if isinstance(node, ir.Range):
        return any(
            (node.gt is None or v > node.gt)
            and (node.gte is None or v >= node.gte)
            and (node.lt is None or v < node.lt)
            and (node.lte is None or v <= node.lte)
            for v in values
        )
    raise TypeError(f"cannot evaluate {node!r}")


def _evaluate(node: ir.Node, facts: _Facts) -> bool:
    if isinstance(node, ir.MatchAll):
        return True
    if isinstance(node, ir.And):
        return all(_evaluate(item, facts) for item in node.items)
    if isinstance(node, ir.Or):
        return any(_evaluate(item, facts) for item in node.items)
    if isinstance(node, ir.Not):
        return not _evaluate(node.item, facts)
    return _leaf(node, facts)


def matches(node: ir.Node, session: Session) -> bool:
    """Whether the session satisfies the query tree."""
    return _evaluate(node, _Facts(session))
