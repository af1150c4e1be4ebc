"""JSON comparison: prune what is equal in C, let deepdiff describe what is left.

Most replayed bodies are equal, or differ in a few fields of a 4 KB document. deepdiff walks
every node in Python and its cost grows with depth (about 1 ms for a 15-node nested tree on
the reference machine), so:

1. `same()` settles equal subtrees with C-level `==` plus an orjson dump (which, unlike
   `==`, tells `true` from `1` and `1` from `1.0`).
2. `_prune()` walks only the nodes that differ and collects the differing parts into two
   flat maps keyed by path: scalars that differ under the value rules (koala_store.diff.values),
   keys present on one side only, values whose JSON type changed, and arrays that need
   aligning (lengths differ, or ignore_order) whole. Same-length arrays are walked index by
   index. Ignored paths are left out (and stripped from the arrays handed over whole).
3. One `DeepDiff` call on the two flat maps says what changed: values_changed, type_changes,
   dictionary_item_added/removed (keys on one side), and inside the whole arrays its own
   alignment (iterable_item_added/removed, ignore_order matching). Its paths are our
   relative path followed by deepdiff's steps inside the array.

Array paths: an item changed in place or removed is at its index in `expected`; an item
added is at its index in `actual` (deepdiff's convention). Numbers compare by value
(`1` equals `1.0`), so an int -> float change of value is `changed`, not `type_changed`.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import orjson

from koala_store.wire import jsonbody

from .difference import ADDED, CHANGED, REMOVED, TYPE_CHANGED, Difference, shown
from .options import Rules
from .paths import Path, format_path, parse_path, sort_key
from .values import scalars_equal

_SCALARS = (str, int, float, bool, type(None))
_NUMBERS = (int, float)
# rdebug's JSONP rule, made tolerant of whitespace, dotted callbacks and a trailing `;`.
_JSONP = re.compile(rb"\s*([A-Za-z_$][\w$.]*)\s*\(\s*(.*?)\s*\)\s*;?\s*", re.S)


class Parsed(NamedTuple):
    value: Any
    callback: str | None  # the JSONP callback, None for plain JSON


def parse_json(body: bytes, content_type: str = "") -> Parsed | None:
    """The JSON value of a body (JSONP unwrapped), or None when it is not JSON.

    Tried when the content type says JSON or JavaScript, or the body starts like an object
    or an array (HTML and plain text are never parsed).
    """
    stripped = body.lstrip()
    if not stripped:
        return None
    first = stripped[:1]
    ct = content_type.lower()
    if first in b"{[" or "json" in ct or "javascript" in ct:
        value = _loads(stripped)
        if value is not _FAIL:
            return Parsed(value, None)
    if first.isalpha() or first in b"_$":
        match = _JSONP.fullmatch(body)
        if match is not None and match.group(2)[:1] in b"{[":
            value = _loads(match.group(2))
            if value is not _FAIL:
                return Parsed(value, match.group(1).decode("ascii"))
    return None


_FAIL = object()


def _loads(data: bytes) -> Any:
    try:
        return jsonbody.loads(data)
    except ValueError:
        return _FAIL


def same(x: Any, y: Any) -> bool:
    """Exact JSON equality: `true` != `1`, `1` != `1.0` (the value rules decide those later)."""
    if x is y:
        return True
    tx = type(x)
    if tx is not type(y):
        return False
    if tx is dict or tx is list:
        if x != y:
            return False
        try:
            # Sorted at once: bodies in the same order and other whitespace never get here
            # (body.same_json_text), so the keys of what does are most often in another order.
            return orjson.dumps(x, option=orjson.OPT_SORT_KEYS) == orjson.dumps(y, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # integers past 64 bits
            return _strict_equal(x, y)
    return x == y


def _strict_equal(x: Any, y: Any) -> bool:
    if type(x) is not type(y):
        return False
    if type(x) is dict:
        return x.keys() == y.keys() and all(_strict_equal(v, y[k]) for k, v in x.items())
    if type(x) is list:
        return len(x) == len(y) and all(_strict_equal(a, b) for a, b in zip(x, y, strict=True))
    return x == y


def diff_json(expected: Any, actual: Any, prefix: Path, rules: Rules) -> list[Difference]:
    """Differences between two JSON values, with paths below `prefix`."""
    if same(expected, actual) or rules.ignored(prefix):
        return []
    fx: dict[tuple, Any] = {}
    fy: dict[tuple, Any] = {}
    _prune(expected, actual, prefix, len(prefix), rules, fx, fy)
    if not fx and not fy:
        return []
    whole = _emptied_arrays(fx, fy, prefix)
    return _deepdiff(fx, fy, prefix, rules, whole) if fx or fy else whole


def _emptied_arrays(fx: dict, fy: dict, prefix: Path) -> list[Difference]:
    """An array that was empty or became empty is one difference, not one per item (a list
    of 5,000 results that came back empty is one fact). Taken out of the flat maps."""
    out = []
    for key, vx in list(fx.items()):
        vy = fy.get(key, _FAIL)
        if type(vx) is list and type(vy) is list and (not vx or not vy):
            del fx[key], fy[key]
            note = f"{len(vx)} items -> {len(vy)} items"
            out.append(Difference(format_path(prefix + key), CHANGED, shown(vx), shown(vy), note))
    return out


def _prune(x: Any, y: Any, path: Path, base: int, rules: Rules, fx: dict, fy: dict) -> None:
    """Record the differing parts of x and y (present at `path`, known not `same`) in the
    flat maps fx, fy, keyed by their path relative to the diff's prefix (`path[base:]`)."""
    tx, ty = type(x), type(y)
    if tx is dict and ty is dict:
        for k, vx in x.items():
            child = path + (k,)
            if k in y:
                vy = y[k]
                if not same(vx, vy) and not rules.ignored(child):
                    _prune(vx, vy, child, base, rules, fx, fy)
            elif not rules.ignored(child):
                fx[child[base:]] = _strip(vx, child, rules)
        for k, vy in y.items():
            if k not in x:
                child = path + (k,)
                if not rules.ignored(child):
                    fy[child[base:]] = _strip(vy, child, rules)
        return
    if tx is list and ty is list:
        if len(x) == len(y) and not rules.ignore_order:
            for i, (vx, vy) in enumerate(zip(x, y, strict=True)):
                if not same(vx, vy):
                    child = path + (i,)
                    if not rules.ignored(child):
                        _prune(vx, vy, child, base, rules, fx, fy)
            return
        if _paired_by_index(x, y, path, rules):
            # What deepdiff does with these, done here: only the differing pairs and the
            # items past the shorter list reach it (an item appended to a list of 20
            # orders no longer has deepdiff walk the 20 equal ones: bench_diff.py's
            # `different` set, side by side: 979-1,007 -> 1,581-1,759 pairs/s, best of 3).
            for i, (vx, vy) in enumerate(zip(x, y, strict=False)):
                if not same(vx, vy):
                    _prune(vx, vy, path + (i,), base, rules, fx, fy)
            extra, flat = (x, fx) if len(x) > len(y) else (y, fy)
            for i in range(min(len(x), len(y)), len(extra)):
                child = path + (i,)
                flat[child[base:]] = _strip(extra[i], child, rules)
            return
        sx, sy = _strip(x, path, rules), _strip(y, path, rules)
        if not same(sx, sy):
            fx[path[base:]], fy[path[base:]] = sx, sy
        return
    if tx in _SCALARS and ty in _SCALARS and scalars_equal(x, y, rules):
        return
    fx[path[base:]], fy[path[base:]] = _strip(x, path, rules), _strip(y, path, rules)


def _paired_by_index(x: list, y: list, path: Path, rules: Rules) -> bool:
    """Whether deepdiff would pair these two lists' items by index: in order, and not all of
    them scalars (scalars it aligns with difflib). Not when one is empty (_emptied_arrays
    makes that one difference) or an item itself is ignored (dropping it moves the items
    after it)."""
    if rules.ignore_order or not x or not y or not (_holds_containers(x) or _holds_containers(y)):
        return False
    return not rules.ignores_anything or not any(rules.ignored(path + (i,)) for i in range(max(len(x), len(y))))


def _holds_containers(items: list) -> bool:
    return any(type(v) is dict or type(v) is list for v in items)


def _strip(value: Any, path: Path, rules: Rules) -> Any:
    """A copy of value without its ignored parts (the value itself when nothing can be)."""
    if not rules.ignores_anything:
        return value
    if type(value) is dict:
        return {k: _strip(v, path + (k,), rules) for k, v in value.items() if not rules.ignored(path + (k,))}
    if type(value) is list:
        return [_strip(v, path + (i,), rules) for i, v in enumerate(value) if not rules.ignored(path + (i,))]
    return value


_KINDS = {
    "values_changed": CHANGED,
    "type_changes": TYPE_CHANGED,
    "dictionary_item_added": ADDED,
    "iterable_item_added": ADDED,
    "dictionary_item_removed": REMOVED,
    "iterable_item_removed": REMOVED,
}


def _deepdiff(x: dict, y: dict, prefix: Path, rules: Rules, found_already: list[Difference]) -> list[Difference]:
    # threshold_to_diff_deeper=0: the flat maps share few keys by construction, and deepdiff
    # must not report them as one changed dict for that.
    kwargs: dict[str, Any] = {"view": "tree", "ignore_order": rules.ignore_order, "threshold_to_diff_deeper": 0}
    # No significant_digits: deepdiff applies it to integers too (as floats), which would
    # make 2**60 and 2**60 + 1 equal. The float rule is applied to its report instead.
    # Imported here: deepdiff (with pydantic) takes ~80 ms to import, and most runs, the
    # mock's own process among them, compare equal bodies without it.
    from deepdiff import DeepDiff

    tree = DeepDiff(x, y, **kwargs)
    found: list[tuple[tuple, Difference]] = [(sort_key(_segments_of(d)), d) for d in found_already]
    for report, levels in tree.items():
        reported = _KINDS.get(report)
        if reported is None:  # repetition_change and friends never occur with these settings
            continue
        for level in levels:
            kind = reported  # per level: a number -> number type change below must not relabel the next one
            # The first element is our relative path (a key of the flat map), the rest are
            # deepdiff's steps inside an array it aligned.
            steps = level.path(output_format="list")
            segments = prefix + steps[0] + tuple(steps[1:])
            e = None if kind == ADDED else level.t1
            a = None if kind == REMOVED else level.t2
            if kind in (CHANGED, TYPE_CHANGED):
                if type(e) in _SCALARS and type(a) in _SCALARS and scalars_equal(e, a, rules):
                    continue  # inside arrays handed over whole, the value rules apply here
                if type(e) in _NUMBERS and type(a) in _NUMBERS:
                    kind = CHANGED  # 1 -> 1.5 is a change of value, not of JSON type
            if rules.ignored(segments):
                continue
            found.append((sort_key(segments), Difference(format_path(segments), kind, shown(e), shown(a))))
    found.sort(key=lambda item: item[0])
    return [d for _, d in found]


def _segments_of(d: Difference) -> tuple:
    return parse_path(d.path)
