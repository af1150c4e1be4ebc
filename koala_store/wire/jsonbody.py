"""JSON bodies parsed exactly: orjson for speed, the standard library when a number has more
digits than 64 bits hold (orjson would turn it into a float, making different ids equal)."""

from __future__ import annotations

import json
from typing import Any

import orjson

_DIGIT_MASK = bytes(48 if chr(i).isdigit() else 32 for i in range(128)) + bytes(range(128, 256))
_LONG_DIGITS = b"0" * 19


def loads(data: bytes) -> Any:
    """The JSON value of `data`; raises ValueError when it is not JSON."""
    return parse(data)[0]


def parse(data: bytes) -> tuple[Any, bool]:
    """`loads`, and whether orjson read the value: then it holds no NaN or Infinity and no
    integer beyond 64 bits, so orjson can also write it back (see wire.normalize)."""
    if data.translate(_DIGIT_MASK).find(_LONG_DIGITS) < 0:
        try:
            return orjson.loads(data), True
        except orjson.JSONDecodeError:
            pass  # maybe JSON that only the standard library reads (NaN, ...): ask it
    try:
        return json.loads(data), False
    except RecursionError as exc:
        raise ValueError("JSON nested too deep") from exc
