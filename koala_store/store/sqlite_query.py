"""Compile a query tree (koala_store.query.ir) to SQL over the SQLite schema.

Every leaf yields 0 or 1, never NULL, so NOT behaves as Elasticsearch's must_not: a session
without a status is "not status 200". Conditions on per-call fields hold when any outbound
call satisfies them, as on Elasticsearch's flattened arrays.

Plans, at a million sessions: every keyword column has an index (sqlite_schema), so a leaf is
written as a plain comparison on it, and per-call conditions as `s.id IN (SELECT o.session
FROM outbound o WHERE ...)`, which SQLite answers from the outbound column's index (an
`EXISTS` correlated on the session would visit every session). Wildcards become GLOB, which
SQLite turns into an index range when the pattern starts with literal characters.

Full text (schema 2) is one FTS5 row per session whose rowid is the session's row id, and row
ids follow recorded order (sqlite.SqliteStore assigns them so). A query whose top level ANDs
full text (phrases, and phrases joined by AND and OR: `order status` is an OR) with other
conditions can then be driven by the full-text index itself, in rowid order: `driven()`
builds that plan, which stops after the page it needs instead of collecting every match
first. Schema 1 stores (read-only) keep their per-call index and are compiled as
they were.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import cached_property, lru_cache
from typing import Any

import msgspec

from ..query import ir
from ..query.fields import Field, Kind
from .sqlite_schema import column_mask

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
    "inbound.request": "request_size",  # only for _exists_; text goes through the text index
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
# Schema 1: inbound_text (rowid = session) and outbound_text (rowid = call), two columns each.
PER_CALL_TEXT_COLUMNS = {
    "inbound.request": "request",
    "inbound.response": "response",
    "outbound.request": "request",
    "outbound.response": "response",
}
# Schema 2: session_text, one row per session (the calls' texts joined by CALL_SEPARATOR).
SESSION_TEXT_COLUMNS = {
    "inbound.request": "inbound_request",
    "inbound.response": "inbound_response",
    "outbound.request": "outbound_request",
    "outbound.response": "outbound_response",
}
# Between two calls' texts in one column: a private-use character, which FTS5's unicode61
# reads as a word of its own (category Co) and our tokenizer never produces, so a phrase can
# never run from one call into the next.
CALL_SEPARATOR = " \ue000 "


@dataclass(frozen=True)
class TextIndex:
    """Where a store's full text lives, and which sessions it does not hold yet (those are
    checked in Python by koala_text, so answers are complete without a refresh)."""

    per_session: bool = True  # schema 2 (session_text); False: schema 1 (inbound_text, outbound_text)
    pending: bool = False  # schema 2: text_pending holds sessions not indexed yet
    nothing_indexed: bool = False  # schema 2, read-only, an index of another text version
    upto: int | None = None  # schema 1: sessions above this row id are not indexed
    # Schema 2: the indexed terms starting with a prefix held in any of the columns (a mask:
    # sqlite_schema.column_mask); None when too many to name.
    prefix_terms: Callable[[str, int], tuple[str, ...] | None] | None = dataclass_field(default=None, compare=False)


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


def fts_phrase(node: ir.Text, columns: list[str], prefix_terms: tuple[str, ...] | None = None) -> str:
    """An FTS5 MATCH expression: the phrase, in these columns, last token a prefix if asked.
    Given the indexed terms that start with that prefix, the phrase is an OR of one phrase per
    term instead: the same matches, walked in rowid order without merging every term's list
    first (FTS5's way with `prefix*`). No terms (callers drop such a phrase: see _text_match)
    leaves the prefix to FTS5."""
    if node.prefix and prefix_terms:
        head = node.tokens[:-1]
        phrases = " OR ".join('"' + " ".join([*head, term]) + '"' for term in prefix_terms)
        return "{" + " ".join(columns) + "} : (" + phrases + ")"
    phrase = '"' + " ".join(node.tokens) + '"' + (" *" if node.prefix else "")
    return "{" + " ".join(columns) + "} : " + phrase


# A full-text condition the index answers alone: a phrase (ir.Text), or an AND or OR of such
# conditions (`order status` is an OR of two words); under an AND, some may be negated
# (`order AND NOT shipped`) as long as one is not: FTS5's NOT is "this, but not that".
TextCondition = ir.Node


def text_only(node: ir.Node) -> bool:
    """Whether `node` is a TextCondition."""
    if isinstance(node, ir.Text):
        return True
    if isinstance(node, ir.Or):
        return all(text_only(item) for item in node.items)
    if isinstance(node, ir.And):
        return all_text(node.items)
    return False


def _negated_text(node: ir.Node) -> bool:
    return isinstance(node, ir.Not) and text_only(node.item)


def all_text(items: Sequence[ir.Node]) -> bool:
    """Whether conditions that must all hold are TextConditions, some maybe negated, one not."""
    return any(text_only(i) for i in items) and all(text_only(i) or _negated_text(i) for i in items)


def text_leaves(nodes: Sequence[TextCondition]) -> Iterator[ir.Text]:
    """The phrases of text conditions."""
    for node in nodes:
        if isinstance(node, ir.Text):
            yield node
        elif isinstance(node, ir.Not):
            yield from text_leaves([node.item])
        else:
            yield from text_leaves(node.items)  # type: ignore[attr-defined]


Lookup = Callable[[str, int], tuple[str, ...] | None] | None


def text_columns(node: ir.Text) -> list[str]:
    """The session_text columns a phrase is searched in."""
    return [SESSION_TEXT_COLUMNS[f.name] for f in node.fields]


def _all_match(nodes: Sequence[TextCondition], lookup: Lookup) -> str | None:
    """Conditions that must all hold: `(a) AND (b) NOT (c)` for a, b and NOT c; None when
    one of a and b holds nowhere (a NOT of such a condition is left out)."""
    held = [_text_match(n, lookup) for n in nodes if not isinstance(n, ir.Not)]
    if None in held:
        return None
    negated = [f" NOT ({match})" for n in nodes if isinstance(n, ir.Not) and (match := _text_match(n.item, lookup)) is not None]
    parts = [f"({match})" for match in held]
    return ("(" + " AND ".join(parts) + ")" if negated and len(parts) > 1 else " AND ".join(parts)) + "".join(negated)


def _text_match(node: TextCondition, lookup: Lookup) -> str | None:
    """The MATCH expression of a condition; None when it holds in no session: a prefix
    that no indexed term of its fields starts (an OR drops it, an AND is None)."""
    if isinstance(node, ir.Text):
        columns = text_columns(node)
        prefix_terms = lookup(node.tokens[-1], column_mask(columns)) if lookup and node.prefix else None
        if prefix_terms == ():
            return None
        return fts_phrase(node, columns, prefix_terms)
    if isinstance(node, ir.And):
        return _all_match(node.items, lookup)
    parts = [f"({match})" for item in node.items if (match := _text_match(item, lookup)) is not None]  # type: ignore[attr-defined]
    return " OR ".join(parts) if parts else None


def session_match(nodes: Sequence[TextCondition], text: TextIndex | None = None) -> str | None:
    """One MATCH expression over session_text for full-text conditions that must all hold
    (some maybe negated, one not); None when they hold in no session (_text_match)."""
    lookup = text.prefix_terms if text is not None else None
    if len(nodes) == 1:
        return _text_match(nodes[0], lookup)
    return _all_match(nodes, lookup)


class SqlCompiler:
    def __init__(self, text: TextIndex | None = None) -> None:
        self.params: list[Any] = []
        self.text_index = text or TextIndex()

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
            if isinstance(node, (ir.Term, ir.Wildcard, ir.Range)):
                # From the column's index to the sessions holding such a call.
                return f"(s.id IN (SELECT o.session FROM outbound o WHERE {condition}))"
            # Regexps and _exists_ read every call anyway: look at this session's calls only.
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
        """Row ids from the full-text index, and from the sessions not indexed yet (checked
        in Python), in one IN over a union: the plan stays an index lookup."""
        if self.text_index.nothing_indexed:
            return f"koala_text({self.param(encode_text(node))}, s.body)"
        if self.text_index.per_session:
            match = session_match([node], self.text_index)
            sources = [] if match is None else [f"SELECT rowid FROM session_text WHERE session_text MATCH {self.param(match)}"]
            if self.text_index.pending:
                sources.append(f"SELECT p.id FROM text_pending p JOIN sessions q ON q.id = p.id WHERE koala_text({self.param(encode_text(node))}, q.body)")
            return f"s.id IN ({' UNION ALL '.join(sources)})" if sources else "0"
        return self.per_call_text(node)

    def per_call_text(self, node: ir.Text) -> str:
        inbound = [PER_CALL_TEXT_COLUMNS[f.name] for f in node.fields if not f.per_outbound_call]
        outbound = [PER_CALL_TEXT_COLUMNS[f.name] for f in node.fields if f.per_outbound_call]
        sources = []
        if inbound:
            sources.append(f"SELECT rowid FROM inbound_text WHERE inbound_text MATCH {self.param(fts_phrase(node, inbound))}")
        if outbound:
            match = self.param(fts_phrase(node, outbound))
            sources.append(f"SELECT o.session FROM outbound o WHERE o.id IN (SELECT rowid FROM outbound_text WHERE outbound_text MATCH {match})")
        if self.text_index.upto is not None:
            sources.append(
                f"SELECT p.id FROM sessions p WHERE p.id > {self.param(self.text_index.upto)} AND koala_text({self.param(encode_text(node))}, p.body)"
            )
        return f"s.id IN ({' UNION ALL '.join(sources)})"


def encode_text(node: ir.Text) -> bytes:
    return msgspec.json.encode(node)


@lru_cache(maxsize=256)
def decode_text(data: bytes) -> ir.Text:
    return msgspec.json.decode(data, type=ir.Text)


def compile_where(node: ir.Node, text: TextIndex | None = None) -> tuple[str, list[Any]]:
    compiler = SqlCompiler(text)
    return compiler.compile(node), compiler.params


@dataclass(frozen=True)
class Driven:
    """A plan that walks the full-text index in rowid (= recorded) order: `match` must hold
    in session_text, and `where` (over sessions `s`) too."""

    where: str
    params: list[Any]
    # The other conditions can use an index of their own (a keyword equality or range):
    # when it holds few sessions, start from it and check each session's text instead.
    keyword_first: bool
    texts: tuple[TextCondition, ...]  # the full-text conditions `match` holds
    text_index: TextIndex | None = None

    @cached_property
    def match(self) -> str | None:
        """Made when asked: naming a prefix's terms reads them from the store (2 ms for the
        761 of warehou* at 1M sessions), and a plan that checks the text on a scratch index
        of a rare keyword's sessions never asks. None: nothing can match."""
        return session_match(list(self.texts), self.text_index)


def driven(node: ir.Node, text: TextIndex | None = None) -> Driven | None:
    """The full-text-driven plan for a query that is full text (see TextCondition), or full
    text AND-ed with anything else; None for other shapes (text OR a keyword, NOT text alone)."""
    items = list(node.items) if isinstance(node, ir.And) else [node]
    texts = [i for i in items if text_only(i)]
    if not texts:
        return None
    texts += [i for i in items if _negated_text(i)]
    rest = [i for i in items if not (text_only(i) or _negated_text(i))]
    compiler = SqlCompiler(text)
    where = compiler.balanced("AND", [compiler.compile(i) for i in rest]) if rest else "1"
    keyword_first = any(_indexable(i) for i in rest)
    return Driven(where, compiler.params, keyword_first, tuple(texts), text)


def _indexable(node: ir.Node) -> bool:
    if isinstance(node, (ir.Term, ir.Range)):
        return True
    if isinstance(node, ir.Wildcard):
        return not node.pattern.startswith(("*", "?"))
    if isinstance(node, ir.And):
        return any(_indexable(i) for i in node.items)
    return False
