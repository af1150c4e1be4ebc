"""A parsed query, with fields resolved and values typed: what each backend compiles.

Dates are already unix nanoseconds and numbers already numbers, so two backends given the
same tree cannot disagree about what a value means.
"""

from __future__ import annotations

from typing import Union

from msgspec import Struct

from .fields import Field

Value = Union[str, int, float]


class MatchAll(Struct, frozen=True):
    pass


class And(Struct, frozen=True):
    items: tuple["Node", ...]


class Or(Struct, frozen=True):
    items: tuple["Node", ...]


class Not(Struct, frozen=True):
    item: "Node"


class Term(Struct, frozen=True):
    """Exact equality on a keyword or number field."""

    field: Field
    value: Value


class Wildcard(Struct, frozen=True):
    """Keyword matching a pattern with `*` (any run) and `?` (one character)."""

    field: Field
    pattern: str


class Regexp(Struct, frozen=True):
    """Keyword fully matching a regular expression."""

    field: Field
    pattern: str


class Range(Struct, frozen=True):
    """Bounds on a number, date (ns) or keyword; None leaves a side open."""

    field: Field
    gt: Value | None = None
    gte: Value | None = None
    lt: Value | None = None
    lte: Value | None = None


class Exists(Struct, frozen=True):
    field: Field


class Text(Struct, frozen=True):
    """Full text: the tokens appear next to each other, in order, in any of the fields.

    With `prefix`, the last token only has to start a word.
    """

    fields: tuple[Field, ...]
    tokens: tuple[str, ...]
    prefix: bool = False


Node = Union[MatchAll, And, Or, Not, Term, Wildcard, Regexp, Range, Exists, Text]


def walk(node: Node):
    """Every node of the tree, depth first."""
    yield node
    if isinstance(node, (And, Or)):
        for item in node.items:
            yield from walk(item)
    elif isinstance(node, Not):
        yield from walk(node.item)


def uses_text(node: Node) -> bool:
    return any(isinstance(n, Text) for n in walk(node))
