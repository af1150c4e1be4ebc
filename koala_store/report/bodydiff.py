"""A unified diff of the recorded and the replayed body, for text and JSON bodies.

JSON bodies are pretty-printed first (keys in their order, two-space indent), so a changed
field shows as one changed line rather than one long changed line of compact JSON.
"""

from __future__ import annotations

import difflib
import json

from ..diff.exchange import Exchange, Response
from ..wire.jsonbody import loads

CONTEXT_LINES = 3


def readable_body(response: Response) -> str:
    """The body as it is diffed and shown: pretty JSON, or the text as it came."""
    if response.kind == "json":
        try:
            return json.dumps(loads(response.body.encode()), indent=2, ensure_ascii=False)
        except ValueError:
            return response.body
    return response.body


def body_diff(exchange: Exchange) -> list[str]:
    """Unified diff lines (`---`, `+++`, `@@`, ` `, `-`, `+`), or one line saying why none.

    Empty when the bodies are equal."""
    expected, actual = exchange.expected, exchange.actual
    if actual is None:
        return ["(no replayed response to diff)"]
    if expected.kind == "bytes" or actual.kind == "bytes":
        if expected.body == actual.body:
            return []
        return [f"(binary bodies differ: {expected.size} and {actual.size} bytes; no text diff)"]
    a, b = readable_body(expected), readable_body(actual)
    cut = [(side, r) for side, r in (("recorded", expected), ("replayed", actual)) if r.cut]
    if a == b and not cut:
        return []
    lines = list(difflib.unified_diff(a.splitlines(), b.splitlines(), "recorded body", "replayed body", lineterm="", n=CONTEXT_LINES))
    if not lines:
        lines.append("(the kept starts of the bodies are equal; they differ further on)")
    lines += [f"(the {side} body was cut to its first {len(r.body.encode())} of {r.size} bytes)" for side, r in cut]
    return lines
