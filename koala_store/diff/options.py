"""What the diff ignores and how it compares values: `DiffOptions`, and its compiled form.

`DiffOptions` is plain configuration (it encodes to JSON, so a run can store what it used).
`compile_options` checks it once and turns it into `Rules`, which the comparison functions
use; compiled rules are cached by the options' JSON, so passing the same options for every
session costs one encode per call.

`--ignore` entries (see koala_store.diff.paths for the grammar):

    served_at                 a key name: that key at any depth below a root (rdebug's -E):
                              body.served_at, body.items[0].served_at, headers.served_at,
                              outbound[3].request.body.served_at, outbound[3].request.query.served_at
    body.user.updated_at      a path: that path and everything below it
    body.items[*].id          `*`/`[*]` match one segment, `**` any number
    headers.x-cache           header names are case-insensitive
    re:REGEX                  a regular expression that must match a whole difference path
                              (or the path of one of its ancestors)

A key name never matches a root itself: `--ignore status` ignores JSON keys named `status`,
not the HTTP status; use `re:status` for that.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

from koala_store.errors import KoalaError
from koala_store.wire.http import VOLATILE_HEADERS

from .paths import ROOTS, PathSyntaxError, format_path, is_header_segment, matches_prefix, parse_path

# Headers never compared unless --compare-header takes one back: wire.http.VOLATILE_HEADERS,
# the one list of headers that differ between two runs of the same build (clocks, request and
# trace ids, framing and hop-by-hop headers, server software, caching validators, what proxies
# add). Set-Cookie is not among them: it is compared by cookie name and attributes (a lost
# HttpOnly flag or a cookie no longer set is a regression), never by value.
DEFAULT_IGNORED_HEADERS: tuple[str, ...] = tuple(sorted(VOLATILE_HEADERS))


class DiffOptionsError(KoalaError, ValueError):
    """A bad --ignore entry or diff option; the message names the input and the fix."""


class DiffOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How responses and side effects are compared.

    - `ignore`: `--ignore` entries (key names, paths, `re:` regexes; see the module doc).
    - `ignored_headers`: response and outbound-request headers never compared (any case);
      by default DEFAULT_IGNORED_HEADERS (wire.http.VOLATILE_HEADERS: Date, Server, Host,
      User-Agent, X-Request-Id, trace headers...).
    - `ignore_order`: JSON arrays compare as multisets (deepdiff's ignore_order).
    - `float_places`: floats are equal when equal once rounded to this many decimal places
      (rdebug rounds to 10); None compares them exactly.
    - `float_tolerance`: floats (and a float against an int) are also equal when they differ
      by at most this much; 0 turns it off.
    - `timestamp_window_s`: two values that look like unix timestamps (integers or floats in
      seconds, or integers in ms, us or ns, between 2000 and 2100) of the same unit, or two
      ISO-8601 date-times, are equal when less than this many seconds apart (rdebug: 120);
      0 turns it off.
    - `clock_offset_s`: how far the replay's clock runs ahead of the recording's (the runner
      may pass replay start - recorded_at); an actual timestamp within the window of
      expected + offset is then equal too, so `served_at: now()` survives old recordings.
    """

    ignore: list[str] = msgspec.field(default_factory=list)
    ignored_headers: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_IGNORED_HEADERS))
    ignore_order: bool = False
    float_places: int | None = 10
    float_tolerance: float = 0.0
    timestamp_window_s: float = 120.0
    clock_offset_s: float = 0.0


DEFAULT_OPTIONS = DiffOptions()


def options_from_cli(
    ignore: Iterable[str] = (),
    *,
    ignore_headers: Iterable[str] = (),
    compare_headers: Iterable[str] = (),
    ignore_order: bool = False,
    float_places: int | None = 10,
    float_tolerance: float = 0.0,
    timestamp_window_s: float = 120.0,
    clock_offset_s: float = 0.0,
) -> DiffOptions:
    """Options from CLI-style inputs, checked: repeatable `--ignore`, `--ignore-header NAME`
    (added to the defaults), `--compare-header NAME` (taken out of the defaults), and the
    value rules. Raises DiffOptionsError naming the bad input and the fix."""
    compared = {h.strip().lower() for h in compare_headers}
    headers = [h for h in DEFAULT_IGNORED_HEADERS if h not in compared]
    for name in ignore_headers:
        name = name.strip().lower()
        if not name or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9a-z-]+", name):
            raise DiffOptionsError(f"--ignore-header {name!r} is not a header name; pass a name such as X-Cache")
        if name not in headers:
            headers.append(name)
    options = DiffOptions(
        ignore=[str(entry) for entry in ignore],
        ignored_headers=headers,
        ignore_order=bool(ignore_order),
        float_places=float_places,
        float_tolerance=float_tolerance,
        timestamp_window_s=timestamp_window_s,
        clock_offset_s=clock_offset_s,
    )
    compile_options(options)
    return options


@dataclass(frozen=True, slots=True)
class Rules:
    """Compiled options: what the comparison functions consult on their hot paths."""

    options: DiffOptions
    ignored_headers: frozenset[str]
    keys: frozenset[str]  # bare key names (rdebug's -E)
    keys_lower: frozenset[str]  # the same, for header names
    patterns: tuple[tuple, ...]
    regexes: tuple[re.Pattern[str], ...]
    ignore_order: bool
    float_places: int | None
    float_tolerance: float
    window_s: float
    clock_offset_s: float

    @property
    def ignores_anything(self) -> bool:
        return bool(self.keys or self.patterns or self.regexes)

    def ignored(self, segments: tuple) -> bool:
        """Whether a difference at `segments` (or anything below it) is ignored."""
        if self.keys:
            for i in range(1, len(segments)):
                seg = segments[i]
                if type(seg) is str and (seg in self.keys or (seg in self.keys_lower and is_header_segment(segments, i))):
                    return True
        for pattern in self.patterns:
            if matches_prefix(pattern, segments):
                return True
        if self.regexes:
            for n in range(1, len(segments) + 1):
                text = format_path(segments[:n])
                if any(r.fullmatch(text) for r in self.regexes):
                    return True
        return False


_cache: dict[bytes, Rules] = {}
# (options, a copy of them, their rules): the object compiled last, one tuple so that a
# thread reading it never pairs one call's options with another's rules.
_last: tuple = ()


def compile_options(options: DiffOptions | None) -> Rules:
    """Check and compile options (cached); raises DiffOptionsError on a bad entry."""
    global _last
    if options is None:
        options = DEFAULT_OPTIONS
    # A replay passes the same options object for every pair: it is known by identity, and
    # checked equal to a copy of what it held (its lists could have been changed in place),
    # which costs far less than the JSON encode below.
    last = _last
    if last and options is last[0] and options == last[1]:
        return last[2]
    # The clock offset differs between sessions a replay compares (the runner gives whole
    # seconds, so few values): the compiled rules are kept per offset, made by copying.
    key = msgspec.json.encode(options)
    rules = _cache.get(key)
    if rules is None:
        offset = options.clock_offset_s
        base_key = msgspec.json.encode(msgspec.structs.replace(options, clock_offset_s=0.0)) if offset else key
        base = _cache.get(base_key) or _compile(msgspec.structs.replace(options, clock_offset_s=0.0) if offset else options)
        if offset:
            _check_number("clock_offset_s", offset, -math.inf, math.inf)
            rules = dataclasses.replace(base, options=options, clock_offset_s=float(offset))
        else:
            rules = base
        if len(_cache) > 256:
            _cache.clear()
        _cache[base_key] = base
        _cache[key] = rules
    _last = (options, _snapshot(options), rules)
    return rules


# (options, a copy of them, the offset, the options with it): the last made, one tuple so a
# thread reading it never pairs one call's options with another's.
_last_offset: tuple = ()


def with_clock_offset(options: DiffOptions, offset: float) -> DiffOptions:
    """`options` with this clock offset: the same object as last time while neither changed,
    so compile_options knows it by identity (a replay shifts its options for each session,
    and sessions replayed in a row mostly share their offset)."""
    global _last_offset
    last = _last_offset
    if last and last[0] is options and last[2] == offset and last[1] == options:
        return last[3]
    shifted = msgspec.structs.replace(options, clock_offset_s=offset)
    _last_offset = (options, _snapshot(options), offset, shifted)
    return shifted


def _snapshot(options: DiffOptions) -> DiffOptions:
    """A copy of options with lists of their own: equal to them until they are changed in
    place (the copy's lists hold the same strings: comparing is mostly identity checks)."""
    return msgspec.structs.replace(options, ignore=list(options.ignore), ignored_headers=list(options.ignored_headers))


def _compile(options: DiffOptions) -> Rules:
    keys: set[str] = set()
    patterns: list[tuple] = []
    regexes: list[re.Pattern[str]] = []
    for entry in options.ignore:
        if not isinstance(entry, str) or not entry.strip():
            raise DiffOptionsError(f"--ignore {entry!r} is empty; pass a key name, a path such as body.user.updated_at, or re:REGEX")
        entry = entry.strip()
        if entry.startswith("re:"):
            regexes.append(_regex(entry))
        elif _is_key_name(entry):
            keys.add(entry)
        else:
            patterns.append(_pattern(entry))
    _check_number("float_places", options.float_places, 0, 17, integer=True, optional=True)
    _check_number("float_tolerance", options.float_tolerance, 0, math.inf)
    _check_number("timestamp_window_s", options.timestamp_window_s, 0, math.inf)
    _check_number("clock_offset_s", options.clock_offset_s, -math.inf, math.inf)
    return Rules(
        options=options,
        ignored_headers=frozenset(h.strip().lower() for h in options.ignored_headers),
        keys=frozenset(keys),
        keys_lower=frozenset(k.lower() for k in keys),
        patterns=tuple(patterns),
        regexes=tuple(regexes),
        ignore_order=bool(options.ignore_order),
        float_places=options.float_places,
        float_tolerance=float(options.float_tolerance),
        window_s=float(options.timestamp_window_s),
        clock_offset_s=float(options.clock_offset_s),
    )


def _is_key_name(entry: str) -> bool:
    # A bare name: no dot, bracket or wildcard (a JSON key, a header or a parameter name).
    return re.fullmatch(r"[^.\[\]*]+", entry) is not None


def _regex(entry: str) -> re.Pattern[str]:
    source = entry[3:]
    try:
        return re.compile(source)
    except re.error as exc:
        raise DiffOptionsError(
            f"--ignore {entry!r} is not a valid regular expression ({exc}); fix it or escape the literal characters . [ ] ( ) with a backslash, "
            r"e.g. --ignore 're:body\.items\[\d+\]\.id'"
        ) from None


def _pattern(entry: str) -> tuple:
    try:
        segments = parse_path(entry, wildcards=True)
    except PathSyntaxError as exc:
        raise DiffOptionsError(
            f'--ignore {entry!r} is not a valid path: {exc} (at character {exc.position + 1}); write e.g. body.items[*].id, headers.x-cache or body["odd.key"]'
        ) from None
    root = segments[0]
    if isinstance(root, str) and root not in ROOTS:
        raise DiffOptionsError(
            f"--ignore {entry!r} does not start with one of {', '.join(ROOTS)}; write body.{entry} to ignore it in the JSON body, "
            f"or just the key name ({entry.split('.')[-1]}) to ignore that key at any depth"
        )
    # Header names compare in lower case.
    out = list(segments)
    for i in range(1, len(out)):
        if isinstance(out[i], str) and is_header_segment(tuple(out), i):
            out[i] = out[i].lower()
    return tuple(out)


_EXAMPLES = {"float_places": 10, "float_tolerance": 0.001, "timestamp_window_s": 120, "clock_offset_s": 0}


def _check_number(name: str, value: object, low: float, high: float, *, integer: bool = False, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, (int, float)) and not isinstance(value, bool) and (isinstance(value, int) or not integer):
        if math.isfinite(value) and low <= value <= high:
            return
    want = "an integer" if integer else "a finite number"
    bounds = f" from {low:g} to {high:g}" if math.isfinite(high) else f" >= {low:g}" if math.isfinite(low) else ""
    hint = " (or None to compare floats exactly)" if optional else ""
    raise DiffOptionsError(f"diff option {name}={value!r} is not {want}{bounds}; pass e.g. {name}={_EXAMPLES[name]!r}{hint}")
