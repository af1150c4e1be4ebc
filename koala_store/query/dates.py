"""Dates in queries, resolved to unix nanoseconds before any backend sees them.

Accepted: ISO dates and times (`2026-11-01`, `2026-11-01T10:30`, `...:05.123Z`, offsets
`+08:00`), `now`, Elasticsearch date math (`now-1d`, `now/d`, `2026-11-01||+1M/M`) and
epoch integers (seconds, milliseconds, microseconds or nanoseconds, told apart by size).
A value names a span as long as its precision: `2026-11-01` is that whole day; rounding
up gives the last nanosecond of the span, as Elasticsearch does for `lte` and `gt`.
"""

from __future__ import annotations

import calendar
import re
import time
from datetime import datetime, timedelta, timezone

NS = 1_000_000_000
_ISO = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<mo>\d{2})(?:-(?P<d>\d{2})"
    r"(?:[T ](?P<h>\d{2})(?::(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?)?)?)?)?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})?$"
)
_MATH = re.compile(r"([+-])(\d+)([yMwdhHms])|/([yMwdhHms])")


class DateError(ValueError):
    pass


_FIXED_NS = {"w": 604800 * NS, "d": 86400 * NS, "h": 3600 * NS, "H": 3600 * NS, "m": 60 * NS, "s": NS}


def _from_ns(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // NS, tz=timezone.utc).replace(microsecond=(ns % NS) // 1000)


def _to_ns(moment: datetime) -> int:
    return calendar.timegm(moment.utctimetuple()) * NS + moment.microsecond * 1000


def _shift(ns: int, amount: int, unit: str) -> int:
    """ns moved by amount units; months and years keep the day where the month allows."""
    if unit not in "yM":
        return ns + amount * _FIXED_NS[unit]
    moment = _from_ns(ns)
    total = moment.year * 12 + moment.month - 1 + amount * (12 if unit == "y" else 1)
    year, month = divmod(total, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return _to_ns(moment.replace(year=year, month=month + 1, day=day)) + ns % 1000


def _floor(ns: int, unit: str) -> int:
    moment = _from_ns(ns).replace(microsecond=0)
    if unit == "y":
        moment = moment.replace(month=1, day=1, hour=0, minute=0, second=0)
    elif unit == "M":
        moment = moment.replace(day=1, hour=0, minute=0, second=0)
    elif unit in "wd":
        moment = moment.replace(hour=0, minute=0, second=0)
        if unit == "w":
            moment -= timedelta(days=moment.weekday())
    elif unit in "hH":
        moment = moment.replace(minute=0, second=0)
    elif unit == "m":
        moment = moment.replace(second=0)
    return _to_ns(moment)


def _last_ns_of(ns: int, unit: str) -> int:
    return _shift(_floor(ns, unit), 1, unit) - 1


def _epoch(value: int) -> int:
    magnitude = abs(value)
    if magnitude >= 10**17:
        return value
    if magnitude >= 10**14:
        return value * 1_000
    if magnitude >= 10**11:
        return value * 1_000_000
    return value * NS


def _anchor(text: str, original: str, now_ns: int | None) -> tuple[int, int]:
    """(first ns, last ns) of the span an anchor names."""
    if text == "now":
        now = time.time_ns() if now_ns is None else now_ns
        return now, now
    if re.fullmatch(r"-\d+|\d{5,}", text):
        instant = _epoch(int(text))
        return instant, instant
    match = _ISO.match(text)
    if match is None:
        raise DateError(f"{original!r} is not a date; write 2026-11-01, 2026-11-01T10:30:00Z, now-1d or an epoch number")
    parts = match.groupdict()
    try:
        moment = datetime(
            int(parts["y"]),
            int(parts["mo"] or 1),
            int(parts["d"] or 1),
            int(parts["h"] or 0),
            int(parts["mi"] or 0),
            int(parts["s"] or 0),
            tzinfo=timezone.utc,
        )
    except ValueError as exc:
        raise DateError(f"{original!r} is not a date: {exc}") from None
    first = _to_ns(moment)
    if parts["tz"] and parts["tz"] != "Z":
        sign = 1 if parts["tz"][0] == "+" else -1
        digits = parts["tz"][1:].replace(":", "")
        first -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60) * NS
    fraction = parts["f"]
    if fraction:
        first += int(fraction.ljust(9, "0"))
        return first, first + 10 ** (9 - len(fraction)) - 1
    for unit, key in (("y", "mo"), ("M", "d"), ("d", "h"), ("h", "mi"), ("m", "s"), ("s", "f")):
        if not parts[key]:
            return first, _last_ns_of(first, unit)
    raise AssertionError("unreachable")


# Stores hold unix nanoseconds in 64-bit integers: 1677-09-21T00:12:43Z to 2262-04-11T23:47:16Z.
_NS_RANGE = (-(2**63), 2**63 - 1)


def parse_date(text: str, *, round_up: bool = False, now_ns: int | None = None) -> int:
    """Resolve a query date to unix nanoseconds: its span's first ns, or with round_up its last."""
    shown = text if len(text) <= 60 else f"{text[:40]}...({len(text)} characters)"
    try:
        value = _parse_date(text, round_up=round_up, now_ns=now_ns)
    except DateError:
        raise
    except (ValueError, OverflowError, OSError):
        value = None  # a year, number or shift beyond what any calendar here can hold
    if value is None or not _NS_RANGE[0] <= value <= _NS_RANGE[1]:
        raise DateError(f"{shown!r} is outside the dates a store can hold (1677-09-21 to 2262-04-11 UTC)")
    return value


def _parse_date(text: str, *, round_up: bool, now_ns: int | None) -> int:
    value = text.strip()
    if value.startswith("now"):
        anchor, math = "now", value[3:]
    elif "||" in value:
        anchor, math = value.split("||", 1)
    else:
        anchor, math = value, ""
    first, last = _anchor(anchor, text, now_ns)
    pos = 0
    while pos < len(math):
        step = _MATH.match(math, pos)
        if step is None:
            raise DateError(f"{text!r}: cannot read the date math {math[pos:]!r}; write e.g. now-1d or now/d")
        if step.group(4):
            unit = step.group(4)
            first, last = _floor(first, unit), _last_ns_of(last, unit)
        else:
            amount = int(step.group(2)) * (1 if step.group(1) == "+" else -1)
            first, last = _shift(first, amount, step.group(3)), _shift(last, amount, step.group(3))
        pos = step.end()
    return last if round_up else first
