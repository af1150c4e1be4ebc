"""Lucene query syntax, parsed once with luqum, into the typed tree of koala_store.query.ir.

Semantics follow Lucene and Elasticsearch's query_string: terms without an operator are
OR-ed, `+term` must and `-term` must not match; `field:*` and `_exists_:field` test for a
value. Keyword fields match exactly (case-sensitive, `*`/`?` wildcards, `/regexp/`); full
text matches lowercased runs of letters and digits as a phrase; dates take date math.
Paths may be written unquoted (`inbound.path:/v1/order`): on path fields a leading slash
starts a value, not a regular expression.
"""

from __future__ import annotations

import difflib
import math
import re

from luqum import tree as lt
from luqum.exceptions import IllegalCharacterError, ParseError, ParseSyntaxError
from luqum.parser import parser

from ..errors import QueryError
from . import ir
from . import regex as regexes
from .dates import DateError, parse_date
from .fields import DEFAULT_TEXT_FIELDS, FIELDS, Field, Kind
from .text import tokenize

_PATH_VALUE = re.compile(r"(?:(?<=[\s(+\-!])|^)((?:inbound|outbound)\.path):(/[^\s()\"]*)")
_POSITION = re.compile(r"at position (\d+)")
_UNESCAPE = re.compile(r"\\(.)")
_WILDCARD = re.compile(r"(?<!\\)(?:\\\\)*[*?]")
_INT64 = (-(2**63), 2**63 - 1)
_MAX_NUMBER_TEXT = 400
# Deeper trees than this are refused: both backends compile recursively, Elasticsearch
# refuses deeply nested JSON, and no hand-written query needs more.
MAX_DEPTH = 100
# Conditions in one query, a word searched in several text fields counting once per field:
# Elasticsearch refuses a query with too many clauses (8192 on a 512 MB heap), SQLite would not,
# so the two would disagree; this bound keeps a margin below what Elasticsearch takes.
MAX_CONDITIONS = 4096


def _wildcard_pattern(raw: str) -> str:
    """Keep escapes only where they matter (before *, ? and backslash); drop the others."""
    return re.sub(r"\\(.)", lambda m: m.group() if m.group(1) in "*?\\" else m.group(1), raw)


def _escape_path_slashes(query: str) -> tuple[str, list[int]]:
    """Escape slashes in unquoted path values; return the text and where backslashes went in."""
    inserted: list[int] = []
    out = []
    last = 0
    for match in _PATH_VALUE.finditer(query):
        start = match.start(2)
        out.append(query[last:start])
        for i, char in enumerate(match.group(2)):
            if char == "/":
                inserted.append(start + i)
                out.append("\\/")
            else:
                out.append(char)
        last = match.end(2)
    out.append(query[last:])
    return "".join(out), inserted


class _Builder:
    def __init__(self, query: str, inserted: list[int]):
        self.query = query
        self.inserted = inserted
        self.depth = 0
        self.conditions = 0

    def position(self, node: lt.Item | int | None) -> int | None:
        pos = node if isinstance(node, int) or node is None else getattr(node, "pos", None)
        if pos is None:
            return None
        shift = 0
        for original in self.inserted:
            if original + shift < pos:
                shift += 1
        return max(pos - shift, 0)

    def fail(self, message: str, node: lt.Item | int | None = None) -> QueryError:
        return QueryError(message, self.query, self.position(node))

    # --- structure ---------------------------------------------------------------------

    def build(self, node: lt.Item, field: Field | None = None) -> ir.Node:
        # Unwrapped in a loop, not by recursion: 3000 parentheses or NOTs are still one term.
        negated = False
        while True:
            if isinstance(node, (lt.Group, lt.FieldGroup)):
                node = node.expr
            elif isinstance(node, (lt.Plus, lt.Boost)):
                node = node.a if isinstance(node, lt.Plus) else node.expr  # no scoring: a boost changes nothing
            elif isinstance(node, (lt.Not, lt.Prohibit)):
                node, negated = node.a, not negated
            else:
                break
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"the query nests more than {MAX_DEPTH} levels deep; write it with fewer nested groups", node)
        try:
            built = self.build_one(node, field)
        finally:
            self.depth -= 1
        return ir.Not(built) if negated else built

    def build_one(self, node: lt.Item, field: Field | None) -> ir.Node:
        if isinstance(node, lt.SearchField):
            return self.search_field(node, field)
        if isinstance(node, lt.AndOperation):
            return _and([self.build(c, field) for c in node.children])
        if isinstance(node, lt.OrOperation):
            return _or([self.build(c, field) for c in node.children])
        if isinstance(node, lt.UnknownOperation):
            return self.implicit(node, field)
        if isinstance(node, lt.Fuzzy):
            raise self.fail("fuzzy terms (term~N) are not supported; use a wildcard such as term*", node)
        if isinstance(node, lt.Proximity):
            raise self.fail('proximity phrases ("a b"~N) are not supported; search the exact phrase', node)
        if isinstance(node, (lt.Range, lt.From, lt.To)):
            if field is None:
                raise self.fail("a range needs a field, e.g. inbound.status:[500 TO 599]", node)
            return self.range(node, field)
        if isinstance(node, lt.Regex):
            if field is None:
                raise self.fail("a regular expression needs a keyword field, e.g. session_id:/1548.*/", node)
            return self.regex(node, field)
        if isinstance(node, lt.Phrase):
            return self.value(node.value[1:-1].replace('\\"', '"'), field, node, phrase=True)
        if isinstance(node, lt.Word):
            return self.value(node.value, field, node, phrase=False)
        raise self.fail(f"this part of the query is not supported: {node}", node)

    def implicit(self, node: lt.UnknownOperation, field: Field | None) -> ir.Node:
        """Lucene's default: +must, -must_not, and the rest OR-ed (optional when a must exists)."""
        musts, nots, shoulds = [], [], []
        for child in node.children:
            if isinstance(child, lt.Plus):
                musts.append(self.build(child.a, field))
            elif isinstance(child, lt.Prohibit):
                nots.append(ir.Not(self.build(child.a, field)))
            else:
                shoulds.append(self.build(child, field))
        parts = musts + nots
        if shoulds and not musts:
            parts.append(_or(shoulds))
        return _and(parts)

    def search_field(self, node: lt.SearchField, outer: Field | None) -> ir.Node:
        if outer is not None:
            raise self.fail(f"field {node.name} inside the value of {outer.name}", node)
        if node.name == "_exists_":
            if not isinstance(node.expr, lt.Word):
                raise self.fail("_exists_ takes a field name, e.g. _exists_:inbound.status", node)
            return ir.Exists(self.field(node.expr.value, node.expr))
        return self.build(node.expr, self.field(node.name, node))

    def field(self, name: str, node: lt.Item) -> Field:
        found = FIELDS.get(name)
        if found is not None:
            return found
        close = difflib.get_close_matches(name, FIELDS, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise self.fail(f"unknown field {name!r}; {hint}known fields: {', '.join(FIELDS)}", node)

    # --- values ------------------------------------------------------------------------

    def value(self, raw: str, field: Field | None, node: lt.Item, *, phrase: bool) -> ir.Node:
        if not phrase and raw == "*":
            return ir.MatchAll() if field is None else ir.Exists(field)
        if field is None or field.kind is Kind.TEXT:
            return self.text(raw, (field,) if field else DEFAULT_TEXT_FIELDS, node, phrase=phrase)
        if field.kind is Kind.KEYWORD:
            if not phrase and _WILDCARD.search(raw):
                pattern = _wildcard_pattern(raw.upper() if field.upper else raw)
                return ir.Wildcard(field, pattern)
            value = raw if phrase else _UNESCAPE.sub(r"\1", raw)
            return ir.Term(field, value.upper() if field.upper else value)
        value = raw if phrase else _UNESCAPE.sub(r"\1", raw)
        if field.kind is Kind.DATE:
            return ir.Range(field, gte=self.date(value, node), lte=self.date(value, node, round_up=True))
        return ir.Term(field, self.number(value, field, node))

    def text(self, raw: str, fields: tuple[Field, ...], node: lt.Item, *, phrase: bool) -> ir.Node:
        prefix = False
        if not phrase:
            wildcards = _WILDCARD.findall(raw)
            if wildcards:
                if raw.endswith("*") and len(wildcards) == 1:
                    prefix = True
                else:
                    raise self.fail(f"in full-text terms a wildcard may only end the term ({raw!r}); e.g. time*", node)
            raw = _UNESCAPE.sub(r"\1", raw)
        tokens = tokenize(raw)
        if not tokens:
            raise self.fail(f"{raw!r} has no letters or digits to search for; quote it for a keyword field, e.g. inbound.path:\"{raw}\"", node)
        return ir.Text(fields, tuple(tokens), prefix)

    def number(self, raw: str, field: Field, node: lt.Item) -> int | float:
        shown = raw if len(raw) <= 40 else f"{raw[:20]}...({len(raw)} characters)"
        if len(raw) > _MAX_NUMBER_TEXT:
            raise self.fail(f"{field.name}: {shown} is too long to be a number any store holds", node)
        try:
            value: int | float = int(raw) if field.kind is Kind.LONG else float(raw)
        except ValueError:
            try:
                as_float = float(raw)
            except ValueError:
                raise self.fail(f"{field.name} holds numbers; {shown!r} is not one", node) from None
            if field.kind is not Kind.LONG or not as_float.is_integer():
                raise self.fail(f"{field.name} holds whole numbers; {shown!r} is not one", node) from None
            value = int(as_float)
        # Both stores hold 64-bit integers and finite doubles; beyond that a query would
        # overflow (SQLite) or be refused (Elasticsearch), so say it here, once, for both.
        if isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
            raise self.fail(f"{field.name} holds 64-bit whole numbers; {shown} is out of range ({_INT64[0]} to {_INT64[1]})", node)
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(f"{field.name} holds finite numbers; {shown} is not one", node)
        return value

    def date(self, raw: str, node: lt.Item, *, round_up: bool = False) -> int:
        try:
            return parse_date(raw, round_up=round_up)
        except DateError as exc:
            raise self.fail(str(exc), node) from None

    def bound(self, term: lt.Item, field: Field, *, round_up: bool) -> ir.Value | None:
        if isinstance(term, lt.Word) and term.value == "*":
            return None
        if isinstance(term, lt.Phrase):
            raw = term.value[1:-1]
        elif isinstance(term, lt.Word):
            raw = _UNESCAPE.sub(r"\1", term.value)
        else:
            raise self.fail("a range bound must be a single value", term)
        if field.kind is Kind.DATE:
            return self.date(raw, term, round_up=round_up)
        if field.numeric:
            return self.number(raw, field, term)
        if field.kind is Kind.KEYWORD:
            return raw.upper() if field.upper else raw
        raise self.fail(f"{field.name} is full text; ranges need a keyword, number or date field", term)

    def range(self, node: lt.Item, field: Field) -> ir.Node:
        if field.kind is Kind.TEXT:
            raise self.fail(f"{field.name} is full text; ranges need a keyword, number or date field", node)
        gt = gte = lt_ = lte = None
        if isinstance(node, lt.Range):
            low, high = node.low, node.high
            if node.include_low:
                gte = self.bound(low, field, round_up=False)
            else:
                gt = self.bound(low, field, round_up=True)
            if node.include_high:
                lte = self.bound(high, field, round_up=True)
            else:
                lt_ = self.bound(high, field, round_up=False)
        elif isinstance(node, lt.From):
            if node.include:
                gte = self.bound(node.a, field, round_up=False)
            else:
                gt = self.bound(node.a, field, round_up=True)
        else:
            if node.include:
                lte = self.bound(node.a, field, round_up=True)
            else:
                lt_ = self.bound(node.a, field, round_up=False)
        if gt is None and gte is None and lt_ is None and lte is None:
            return ir.Exists(field)
        return ir.Range(field, gt=gt, gte=gte, lt=lt_, lte=lte)

    def regex(self, node: lt.Regex, field: Field) -> ir.Node:
        if field.kind is not Kind.KEYWORD:
            raise self.fail(f"regular expressions work on keyword fields; {field.name} is {field.kind.value}", node)
        pattern = node.value[1:-1]
        problem = regexes.problem(pattern)
        if problem:
            shown = pattern if len(pattern) <= 80 else pattern[:77] + "..."
            raise self.fail(f"bad regular expression /{shown}/: {problem}", node)
        return ir.Regexp(field, pattern)


def _and(items: list[ir.Node]) -> ir.Node:
    items = [i for i in items if not isinstance(i, ir.MatchAll)] or [ir.MatchAll()]
    return items[0] if len(items) == 1 else ir.And(tuple(items))


def _or(items: list[ir.Node]) -> ir.Node:
    if any(isinstance(i, ir.MatchAll) for i in items):
        return ir.MatchAll()
    return items[0] if len(items) == 1 else ir.Or(tuple(items))


_FIELD_NAME = re.compile(r"(?:^|(?<=[\s(+\-!]))([A-Za-z_][\w.]*):")


def _unknown_field(text: str) -> tuple[str, int, str] | None:
    """The first `name:` in the query that is a misspelt field: it, where, and the field."""
    for match in _FIELD_NAME.finditer(text):
        name = match.group(1)
        if name not in FIELDS and name != "_exists_":
            close = difflib.get_close_matches(name, FIELDS, n=1)
            if close:
                return name, match.start(1), close[0]
    return None


def parse(query: str) -> ir.Node:
    """Parse a Lucene query into the typed tree; raise QueryError pointing at the problem."""
    text = query.strip()
    if text in ("", "*", "*:*"):
        return ir.MatchAll()
    prepared, inserted = _escape_path_slashes(text)
    builder = _Builder(text, inserted)
    try:
        tree = parser.parse(prepared)
    except (ParseSyntaxError, IllegalCharacterError, ParseError) as exc:
        unknown = _unknown_field(text)
        if unknown is not None:
            # `inbound.pth:/x` fails as syntax only because a misspelt field's value is not
            # read as a path: the field is the problem to name.
            name, at, close = unknown
            raise QueryError(f"unknown field {name!r}; did you mean {close}? known fields: {', '.join(FIELDS)}", text, at) from None
        message = str(exc).replace("Syntax error in input : ", "").rstrip("!")
        found = _POSITION.search(message)
        position = builder.position(int(found.group(1))) if found else len(text)
        message = _POSITION.sub("", message).strip()
        raise QueryError(f"cannot parse the query: {message}", text, position) from None
    except RecursionError:
        raise QueryError(f"the query nests too deeply to read; write it with fewer nested groups ({len(text)} characters)") from None
    built = builder.build(tree)
    conditions = sum(len(n.fields) if isinstance(n, ir.Text) else 1 for n in ir.walk(built) if not isinstance(n, (ir.And, ir.Or, ir.Not, ir.MatchAll)))
    if conditions > MAX_CONDITIONS:
        raise QueryError(
            f"the query has {conditions} conditions (a word without a field counts once per text field, 4); "
            f"at most {MAX_CONDITIONS} are supported (Elasticsearch refuses more); split it into several queries"
        )
    return built
