"""`Difference`: one thing that changed, where (a path) and how (a kind), with both values.

Kinds (the path says where, the kind says what):

    changed         a value differs (status code, header value, JSON scalar, text or bytes body,
                    a request's method, query parameter, Redis argument, SQL literal...)
    type_changed    a JSON value changed type (string -> number, object -> array, JSON -> text)
    added           present only in the actual side (key, array item, header, argument)
    removed         present only in the expected side
    missing_call    a recorded outbound call the replay never made    (outbound[<ActionIndex>])
    unmatched_call  a live outbound call that matched no recorded one (outbound.unmatched[<talk>])
    reordered       a call made after a call recorded later on the same peer (outbound[<ActionIndex>])
    repeated_call   a recorded call answered more than once           (outbound[<ActionIndex>])

`expected` and `actual` are JSON-able: JSON values as parsed, strings, numbers, or None when
a side has nothing (added/removed). For the call kinds: missing_call has the recorded request
(excerpt) and None; unmatched_call None and the live request (excerpt); reordered the
ActionIndexes involved in recorded order and in the order the replay made them;
repeated_call 1 and the number of times made. Bytes appear as Koala escaped text
(koala_store.formats.escaped); long text is cut to an excerpt around the first difference and
large JSON values to the start of their JSON text, with `note` saying so.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from koala_store.formats import escaped

CHANGED = "changed"
TYPE_CHANGED = "type_changed"
ADDED = "added"
REMOVED = "removed"
MISSING_CALL = "missing_call"
UNMATCHED_CALL = "unmatched_call"
REORDERED = "reordered"
REPEATED_CALL = "repeated_call"
KINDS = (CHANGED, TYPE_CHANGED, ADDED, REMOVED, MISSING_CALL, UNMATCHED_CALL, REORDERED, REPEATED_CALL)

MAX_TEXT = 1000  # characters of a string value kept whole
MAX_JSON = 2000  # characters of a JSON value's text kept whole
CONTEXT = 120  # characters shown before the first difference in an excerpt


class Difference(msgspec.Struct, frozen=True):
    """One difference; see the module doc for kinds and koala_store.diff.paths for paths."""

    path: str
    kind: str
    expected: Any = None
    actual: Any = None
    note: str = ""


def shown(value: Any) -> Any:
    """A value as a Difference carries it: JSON-able and of bounded size."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return cut(escaped.encode(bytes(value)))
    if isinstance(value, str):
        return cut(value)
    if isinstance(value, (dict, list)):
        try:
            text = orjson.dumps(value)
        except TypeError:  # integers past 64 bits (parsed by the json fallback)
            return value
        if len(text) > MAX_JSON:
            return text[:MAX_JSON].decode("utf-8", "ignore") + f"… ({len(text)} bytes of JSON)"
    return value


def cut(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


def first_difference(a: str | bytes, b: str | bytes) -> int:
    """Offset of the first element where a and b differ (the shorter length if one is a prefix)."""
    n = min(len(a), len(b))
    lo, hi = 0, n
    # Binary search on prefix equality: slices compare in C, so this is fast on long bodies.
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def excerpts(a: str, b: str, limit: int = MAX_TEXT) -> tuple[str, str, int]:
    """Both texts whole when short, else windows starting a little before the first difference."""
    at = first_difference(a, b)
    if len(a) <= limit and len(b) <= limit:
        return a, b, at
    start = max(0, at - CONTEXT)
    lead = "…" if start else ""

    def window(text: str) -> str:
        part = text[start : start + limit]
        tail = "…" if start + limit < len(text) else ""
        return f"{lead}{part}{tail}"

    return window(a), window(b), at


def line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, col


def text_difference(path: str, expected: str, actual: str, what: str = "text") -> Difference:
    e, a, at = excerpts(expected, actual)
    line, col = line_col(expected, at)
    note = f"{what} differs from line {line}, column {col}"
    if len(expected) > MAX_TEXT or len(actual) > MAX_TEXT:
        note += f" (excerpts; {len(expected)} and {len(actual)} characters)"
    return Difference(path, CHANGED, e, a, note)


def bytes_difference(path: str, expected: bytes, actual: bytes, what: str = "bytes") -> Difference:
    at = first_difference(expected, actual)
    start = max(0, at - CONTEXT) if len(expected) > MAX_TEXT // 4 or len(actual) > MAX_TEXT // 4 else 0
    # Escaped text can be 4x longer than the bytes: cut the bytes, then escape.
    span = MAX_TEXT // 4

    def window(data: bytes) -> str:
        part = escaped.encode(data[start : start + span])
        return ("…" if start else "") + part + ("…" if start + span < len(data) else "")

    note = f"{what} differ from byte {at}"
    if len(expected) != len(actual) or len(expected) > span:
        note += f" ({len(expected)} and {len(actual)} bytes)"
    return Difference(path, CHANGED, window(expected), window(actual), note)
