"""Compile a query tree (koala_store.query.ir) to Elasticsearch query DSL.

A field map says where each query field lives in the index. Fields an index does not hold
(a Koala recorder's own index has no derived fields) cannot be pushed down: the compiled
query then selects a superset and `residual` tells the store to finish the filtering in
Python (koala_store.query.evaluate), so answers stay exact either way.
"""

from __future__ import annotations

from typing import Any

from ..query import ir
from ..query.fields import Kind

MATCH_ALL: dict[str, Any] = {"match_all": {}}
MATCH_NONE: dict[str, Any] = {"match_none": {}}
# Koala's own keyword fields, indexed as Koala wrote them: an empty TraceId is "" in the
# document, which Elasticsearch counts as a value. koala-store's rule, the same on every
# backend: an empty value is no value (SQLite stores it as NULL; derived fields leave it out).
EMPTY_MEANS_ABSENT = frozenset({"session_id", "trace_id"})


class EsCompiler:
    def __init__(self, paths: dict[str, str], exists_paths: dict[str, str] | None = None):
        # query field name -> document path; for text fields, `exists_paths` names the size
        # field that "has a value" is tested on.
        self.paths = paths
        self.exists_paths = exists_paths or {}
        self.residual = False

    def compile(self, node: ir.Node) -> dict[str, Any]:
        query = self._node(node)
        return MATCH_ALL if query is None else query

    def _node(self, node: ir.Node) -> dict[str, Any] | None:
        """The DSL for a node, or None when the index cannot answer it (match everything)."""
        if isinstance(node, ir.MatchAll):
            return MATCH_ALL
        if isinstance(node, ir.And):
            parts = [self._node(item) for item in node.items]
            pushed = [p for p in parts if p is not None]
            if len(pushed) < len(parts):
                self.residual = True
            return {"bool": {"filter": pushed}} if pushed else None
        if isinstance(node, ir.Or):
            parts = [self._node(item) for item in node.items]
            if any(p is None for p in parts):
                self.residual = True
                return None
            return {"bool": {"should": parts, "minimum_should_match": 1}}
        if isinstance(node, ir.Not):
            inner = self._node(node.item)
            if inner is None:
                self.residual = True
                return None
            return {"bool": {"must_not": [inner]}}
        leaf = self._leaf(node)
        if leaf is None:
            self.residual = True
        return leaf

    def _leaf(self, node: Any) -> dict[str, Any] | None:
        if isinstance(node, ir.Text):
            paths = [self.paths.get(f.name) for f in node.fields]
            if any(p is None for p in paths):
                return None
            return _any_of([_phrase(path, node) for path in paths])  # type: ignore[arg-type]
        field = node.field
        if isinstance(node, ir.Exists) and field.kind is Kind.TEXT:
            path = self.exists_paths.get(field.name)
            return None if path is None else {"range": {path: {"gt": 0}}}
        path = self.paths.get(field.name)
        if path is None:
            return None
        if field.name in EMPTY_MEANS_ABSENT:
            if isinstance(node, ir.Term) and node.value == "":
                return MATCH_NONE
            return {"bool": {"filter": [self._value(node, path)], "must_not": [{"term": {path: ""}}]}}
        return self._value(node, path)

    def _value(self, node: Any, path: str) -> dict[str, Any]:
        if isinstance(node, ir.Exists):
            return {"exists": {"field": path}}
        if isinstance(node, ir.Term):
            return {"term": {path: node.value}}
        if isinstance(node, ir.Wildcard):
            return {"wildcard": {path: {"value": node.pattern}}}
        if isinstance(node, ir.Regexp):
            # flags NONE: no Lucene-only operators, so the pattern means what RE2 reads (query.regex)
            return {"regexp": {path: {"value": node.pattern, "flags": "NONE"}}}
        if isinstance(node, ir.Range):
            bounds = {op: v for op, v in (("gt", node.gt), ("gte", node.gte), ("lt", node.lt), ("lte", node.lte)) if v is not None}
            return {"range": {path: bounds}}
        raise TypeError(f"cannot compile {node!r}")


def _phrase(path: str, node: ir.Text) -> dict[str, Any]:
    text = " ".join(node.tokens)
    if not node.prefix:
        return {"match_phrase": {path: {"query": text}}}
    if len(node.tokens) == 1:
        return {"prefix": {path: {"value": node.tokens[0]}}}
    # A phrase whose last word is a prefix: spans, so no expansion limit applies.
    clauses: list[dict[str, Any]] = [{"span_term": {path: t}} for t in node.tokens[:-1]]
    clauses.append({"span_multi": {"match": {"prefix": {path: {"value": node.tokens[-1]}}}}})
    return {"span_near": {"clauses": clauses, "slop": 0, "in_order": True}}


def _any_of(queries: list[dict[str, Any]]) -> dict[str, Any]:
    return queries[0] if len(queries) == 1 else {"bool": {"should": queries, "minimum_should_match": 1}}


def compile_query(node: ir.Node, paths: dict[str, str], exists_paths: dict[str, str] | None = None) -> tuple[dict[str, Any], bool]:
    """(DSL query, whether the results still need filtering in Python)."""
    compiler = EsCompiler(paths, exists_paths)
    return compiler.compile(node), compiler.residual
