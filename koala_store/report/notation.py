"""Values as a person reads them: JSON notation (`false`, `null`, `"text"`), never Python's
repr, on one line and of bounded length."""

from __future__ import annotations

import json
from typing import Any

from ..formats import escaped


def json_notation(value: Any, limit: int | None = None) -> str:
    """`value` as compact one-line JSON, cut to `limit` characters with `...` when longer."""
    if isinstance(value, (bytes, bytearray)):
        value = escaped.encode(bytes(value))  # as Differences carry bytes: Koala escaped text
    try:
        # ensure_ascii=False keeps text readable; control characters still come out escaped.
        text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    except (TypeError, ValueError):
        text = json.dumps(str(value), ensure_ascii=False)
    if limit is not None and len(text) > limit:
        return text[: limit - 3] + "..."
    return text
