"""When two scalars count as equal: floats (rounding, tolerance) and timestamps (a window).

Called only on values that already differ, so none of this is on the equal path.

- Booleans equal booleans only (`true` is not `1`).
- Numbers compare by value (`1` equals `1.0`); when either is a float, they are also equal
  once rounded to `float_places` (rdebug: 10) or within `float_tolerance`.
- Two numbers that look like unix timestamps of the same unit (seconds: 2000..2100; ms, us
  and ns likewise; floats in seconds only) are equal when less than `timestamp_window_s`
  apart, like rdebug's `ALLOW_TIME_DIFF_RANGE`. rdebug also requires the value to be within
  30 days of its own clock; a pure library has no clock, so the range stands in for that.
- Two ISO-8601 date-times (`2025-11-22T03:00:00Z`, `2025-11-22 03:00:00.123+08:00`; a
  naive one is taken as UTC when the other has an offset) follow the same window.
- `clock_offset_s`: the actual value may also sit within the window of expected + offset.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from .options import Rules

_UNITS = (1, 1_000, 1_000_000, 1_000_000_000)  # s, ms, us, ns
_LOW, _HIGH = 946_684_800, 4_102_444_800  # 2000-01-01 .. 2100-01-01 UTC
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:Z|z|[+-]\d{2}(?::?\d{2})?)?")
_NUMBER_TEXT = re.compile(r"-?\d+(?:\.\d+)?")


def scalars_equal(expected: object, actual: object, rules: Rules) -> bool:
    """Whether two differing JSON scalars count as equal under the rules."""
    te, ta = type(expected), type(actual)
    if te is bool or ta is bool:
        return te is ta and expected == actual
    if te in (int, float) and ta in (int, float):
        return numbers_equal(expected, actual, rules)  # type: ignore[arg-type]
    if te is str and ta is str:
        return expected == actual or iso_close(expected, actual, rules)  # type: ignore[arg-type]
    return te is ta and expected == actual


def numbers_equal(expected: int | float, actual: int | float, rules: Rules) -> bool:
    if expected == actual:
        return True
    if type(expected) is float or type(actual) is float:
        places = rules.float_places
        if places is not None and round(expected, places) == round(actual, places):
            return True
        if rules.float_tolerance and abs(expected - actual) <= rules.float_tolerance:
            return True
    return timestamps_close(expected, actual, rules)


def timestamps_close(expected: int | float, actual: int | float, rules: Rules) -> bool:
    if not rules.window_s:
        return False
    unit = _unit(expected)
    if unit is None or unit != _unit(actual):
        return False
    return _close((actual - expected) / unit, rules)


def _unit(value: int | float) -> int | None:
    if type(value) is float:
        return 1 if _LOW <= value < _HIGH else None
    for unit in _UNITS:
        if _LOW * unit <= value < _HIGH * unit:
            return unit
    return None


def _close(delta_s: float, rules: Rules) -> bool:
    window = rules.window_s
    if abs(delta_s) < window:
        return True
    return bool(rules.clock_offset_s) and abs(delta_s - rules.clock_offset_s) < window


def iso_close(expected: str, actual: str, rules: Rules) -> bool:
    if not rules.window_s or not _ISO.fullmatch(expected) or not _ISO.fullmatch(actual):
        return False
    e, a = _parse_iso(expected), _parse_iso(actual)
    if e is None or a is None:
        return False
    if (e.tzinfo is None) != (a.tzinfo is None):
        e, a = e.replace(tzinfo=e.tzinfo or timezone.utc), a.replace(tzinfo=a.tzinfo or timezone.utc)
    return _close((a - e).total_seconds(), rules)


def _parse_iso(text: str) -> datetime | None:
    text = text.replace(",", ".")
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    # fromisoformat takes at most 6 fraction digits: drop nanoseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def texts_equal(expected: str, actual: str, rules: Rules) -> bool:
    """Equality for values that arrive as text (query parameters, Redis arguments, SQL
    literals): numbers written as text follow the number rules, date-times the window."""
    if expected == actual:
        return True
    if _NUMBER_TEXT.fullmatch(expected) and _NUMBER_TEXT.fullmatch(actual):
        e = float(expected) if "." in expected else int(expected)
        a = float(actual) if "." in actual else int(actual)
        return numbers_equal(e, a, rules)
    return iso_close(expected, actual, rules)
