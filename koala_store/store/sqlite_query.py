"""Compile a query tree (koala_store.query.ir) to a WHERE clause over the SQLite schema.

Every leaf yields 0 or 1, never NULL, so NOT behaves as Elasticsearch's must_not: a session
without a status is "not status 200". Conditions on per-call fields hold when any outbound
call satisfies them, as on Elasticsearch's flattened arrays.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import msgspec

from ..query import ir
from ..query.fields import Field, Kind

SESSION_COLUMNS = {
    "session_id": "session_id",
    "recorded_at": "recorded_at",
    "thread_id": "thread_id",
    "trace_id": "trace_id",
    "inbound.method": "method",
    "inbound.path": "path",
    "inbound.query": "query",
    "inbound.host": "host",
    "inbound.status": "status",
    "inbound.content_type": "content_type",
    "inbound.latency_ms": "latency_ms",
    "inbound.request": "request_size",  # only for _exists_; text goes through inbound_text
    "inbound.response": "response_size",
    "outbound.count": "outbound_count",
}
OUTBOUND_COLUMNS = {
    "outbound.peer": "peer",
    "outbound.protocol": "protocol",
    "outbound.method": "method",
    "outbound.path": "path",
    "outbound.request": "request_size",
    "outbound.response": "response_size",
}
_FLAT = 32  # terms chained at one level (depth 32 per level, log32 levels)
TEXT_COLUMNS = {
    "inbound.request": "request",
    "inbound.response": "response",
    "outbound.request": "request",
    "outbound.response": "response",
}


def glob_pattern(pattern: str) -> str:
    """A wildcard pattern (`*`, `?`, backslash escapes) as a SQLite GLOB pattern."""
    out = []
    for escaped, char in re.findall(r"(\\)?(.)", pattern, re.S):
        if escaped:
            out.append(f"[{char}]" if char in "*?[" else char)
        elif char == "[":
            out.append("[[]")
        else:
            out.append(char)
    return "".join(out)


def fts_phrase(node: ir.Text, columns: list[str]) -> str:
    """An FTS5 MATCH expression: the phrase, in these columns, last token a prefix if asked."""
    phrase = '"' + " ".join(node.tokens) + '"' + (" *" if node.prefix else "")
    return "{" + " ".join(columns) + "} : " + phrase


class SqlCompiler:
    def __init__(self, text_upto: int | None = None) -> None:
        self.params: list[Any] = []
        # Sessions above this row id are not in the full-text index yet: text conditions
        # check them in Python (koala_text) so that answers are complete without a refresh.
        self.text_upto = text_upto

    def compile(self, node: ir.Node) -> str:
        if isinstance(node, ir.MatchAll):
            return "1"
        if isinstance(node, ir.And):
            return self.balanced("AND", [self.compile(i) for i in node.items])
        if isinstance(node, ir.Or):
            return self.balanced("OR", [self.compile(i) for i in node.items])
        if isinstance(node, ir.Not):
            return f"NOT {self.compile(node.item)}"
        if isinstance(node, ir.Text):
            return self.text(node)
        return self.leaf(node)

    def balanced(self, operator: str, parts: list[str]) -> str:
        """`(a OP b OP c ...)` grouped as a balanced tree: SQLite limits an expression's depth
        to 1000 and reads a flat chain as one level per term, so 1001 OR-ed terms would fail."""
        while len(parts) > _FLAT:
            parts = ["(" + f" {operator} ".join(parts[i : i + _FLAT]) + ")" for i in range(0, len(parts), _FLAT)]
        return "(" + f" {operator} ".join(parts) + ")"

    def param(self, value: Any) -> str:
        self.params.append(value)
        return "?"

    def leaf(self, node: Any) -> str:
        field: Field = node.field
        if field.per_outbound_call:
            column = f"o.{OUTBOUND_COLUMNS[field.name]}"
            condition = self.condition(node, column, field)
            return f"EXISTS (SELECT 1 FROM outbound o WHERE o.session = s.id AND {condition})"
        return self.condition(node, f"s.{SESSION_COLUMNS[field.name]}", field)

    def condition(self, node: Any, column: str, field: Field) -> str:
        if isinstance(node, ir.Exists):
            return f"({column} IS NOT NULL AND {column} > 0)" if field.kind is Kind.TEXT else f"({column} IS NOT NULL)"
        if isinstance(node, ir.Term):
            return f"({column} IS NOT NULL AND {column} = {self.param(node.value)})"
        if isinstance(node, ir.Wildcard):
            return f"({column} IS NOT NULL AND {column} GLOB {self.param(glob_pattern(node.pattern))})"
        if isinstance(node, ir.Regexp):
            return f"koala_regexp({self.param(node.pattern)}, {column})"
        if isinstance(node, ir.Range):
            parts = [f"{column} IS NOT NULL"]
            for op, value in ((">", node.gt), (">=", node.gte), ("<", node.lt), ("<=", node.lte)):
                if value is not None:
                    parts.append(f"{column} {op} {self.param(value)}")
            return "(" + " AND ".join(parts) + ")"
        raise TypeError(f"cannot compile {node!r}")

    def text(self, node: ir.Text) -> str:
        """Row ids from the full-text indexes, and from the sessions not indexed yet (checked
        in Python), in one IN over a union: the plan stays an index lookup."""
        inbound = [TEXT_COLUMNS[f.name] for f in node.fields if not f.per_outbound_call]
        outbound = [TEXT_COLUMNS[f.name] for f in node.fields if f.per_outbound_call]
        sources = []
        if inbound:
            sources.append(f"SELECT rowid FROM inbound_text WHERE inbound_text MATCH {self.param(fts_phrase(node, inbound))}")
        if outbound:
            match = self.param(fts_phrase(node, outbound))
            sources.append(f"SELECT o.session FROM outbound o WHERE o.id IN (SELECT rowid FROM outbound_text WHERE outbound_text MATCH {match})")
        if self.text_upto is not None:
            sources.append(f"SELECT p.id FROM sessions p WHERE p.id > {self.param(self.text_upto)} AND koala_text({self.param(encode_text(node))}, p.body)")
        return f"s.id IN ({' UNION ALL '.join(sources)})"


def encode_text(node: ir.Text) -> bytes:
    return msgspec.json.encode(node)


@lru_cache(maxsize=256)
def decode_text(data: bytes) -> ir.Text:
    return msgspec.json.decode(data, type=ir.Text)


def compile_where(node: ir.Node, text_upto: int | None = None) -> tuple[str, list[Any]]:
    compiler = SqlCompiler(text_upto)
    return compiler.compile(node), compiler.params
