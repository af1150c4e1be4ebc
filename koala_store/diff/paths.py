"""Difference paths: one grammar for what the diff reports and what `--ignore` names.

A path is a root followed by segments:

    root      status | headers | body | response | outbound
    .name     a JSON key, header name (lower case), query parameter... : [A-Za-z0-9_$@-] and
              other Unicode word characters
    ["key"]   any other key, as a JSON string (dots, spaces, brackets, the empty key)
    [N]       an array index, or a position: outbound[<ActionIndex>], args[2]

    status                          headers.content-type          body.user.tier
    body.items[2].price             body["a.b"]                   response
    outbound[3]                     outbound[3].request.args[2]   outbound.unmatched[0]

Patterns (the dotted form of `--ignore`) add wildcards: `*` or `[*]` for one segment, `**`
for any number of segments (zero included). A pattern matches a path and everything below it.

Segments are kept as tuples of `str` (keys) and `int` (indexes) while walking; strings are
made only for differences that get reported.
"""

from __future__ import annotations

import json
import re
from typing import Union

Segment = Union[str, int]
Path = tuple[Segment, ...]

ROOTS = ("status", "headers", "body", "response", "outbound")


class _Wildcard:
    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


ANY = _Wildcard("*")  # exactly one segment
DEEP = _Wildcard("**")  # zero or more segments

_SIMPLE_KEY = re.compile(r"[\w$@-]+")
_FIRST = re.compile(r"[\w$@-]+|\*\*|\*")
_NEXT = re.compile(r'\.([\w$@-]+|\*\*|\*)|\[(\d+|\*)\]|\[("(?:[^"\\]|\\.)*")\]')


class PathSyntaxError(ValueError):
    """A path or pattern that does not follow the grammar; `position` is 0-based."""

    def __init__(self, message: str, position: int):
        super().__init__(message)
        self.position = position


def format_path(segments: Path) -> str:
    """The text of a path: `body.items[2].price`."""
    out = [str(segments[0])] if segments else []
    for seg in segments[1:]:
        if type(seg) is int:
            out.append(f"[{seg}]")
        elif seg is ANY:
            out.append("[*]")
        elif _SIMPLE_KEY.fullmatch(seg):
            out.append("." + seg)
        else:
            out.append("[" + json.dumps(seg, ensure_ascii=False) + "]")
    return "".join(out)


def parse_path(text: str, *, wildcards: bool = False) -> tuple:
    """Segments of a path (or of a pattern, with `wildcards`); raises PathSyntaxError."""
    match = _FIRST.match(text)
    if match is None:
        raise PathSyntaxError("a path starts with a name such as body or headers", 0)
    segments: list = [_token(match.group(), wildcards, 0)]
    pos = match.end()
    while pos < len(text):
        match = _NEXT.match(text, pos)
        if match is None:
            raise PathSyntaxError('expected .name, [index], [*] or ["key"] here', pos)
        name, index, quoted = match.groups()
        if name is not None:
            segments.append(_token(name, wildcards, pos))
        elif index is not None:
            segments.append(_token(index, wildcards, pos) if index == "*" else int(index))
        else:
            segments.append(json.loads(quoted))
        pos = match.end()
    return tuple(segments)


def _token(name: str, wildcards: bool, pos: int):
    if name == "*" or name == "**":
        if not wildcards:
            raise PathSyntaxError(f"wildcard {name} is allowed in --ignore patterns only", pos)
        return ANY if name == "*" else DEEP
    return name


def matches_prefix(pattern: tuple, segments: Path, i: int = 0, j: int = 0) -> bool:
    """True when `pattern` matches `segments` or one of its ancestors (a subtree rule)."""
    while i < len(pattern):
        p = pattern[i]
        if p is DEEP:
            return any(matches_prefix(pattern, segments, i + 1, k) for k in range(j, len(segments) + 1))
        if j >= len(segments):
            return False
        s = segments[j]
        if p is not ANY and (p != s or type(p) is not type(s)):
            return False
        i += 1
        j += 1
    return True


def is_header_segment(segments: Path, index: int) -> bool:
    """Whether segments[index] is a header name: after the `headers` root or `request.headers`."""
    if index < 1 or segments[index - 1] != "headers":
        return False
    return index == 1 or segments[index - 2] == "request"


def sort_key(segments: Path) -> tuple:
    # Mixed str/int segments sort without comparing str with int.
    return tuple((1, s) if type(s) is int else (0, s) for s in segments)


def generalize(segments: Path) -> tuple:
    """The path with array indexes inside JSON bodies replaced by `ANY` (noise statistics).

    Indexes after a `body` segment are positions in a JSON array, and a field that varies in
    one element is taken to vary in all. Other indexes stay: `outbound[3]` names one recorded
    call and `args[2]` one argument, and neither says anything about its neighbours.
    """
    out: list = []
    in_body = False
    for seg in segments:
        if in_body and type(seg) is int:
            out.append(ANY)
        else:
            out.append(seg)
            in_body = in_body or seg == "body"
    return tuple(out)


def generalized_prefixes(path: str) -> tuple[str, ...]:
    """The generalized text of `path` and of each of its ancestors, shortest first."""
    try:
        segments = generalize(parse_path(path))
    except PathSyntaxError:
        return (path,)
    return tuple(format_path(segments[:n]) for n in range(1, len(segments) + 1))
