"""Comparing two message bodies: JSON when both parse, otherwise text, otherwise bytes.

Used for the inbound response body (`body`) and for outbound HTTP request bodies
(`outbound[N].request.body`). The caller has already undone chunked transfer encoding and
content encoding (see koala_store.diff.response.decoded_body).
"""

from __future__ import annotations

import codecs
import re

import msgspec

from .difference import CHANGED, TYPE_CHANGED, Difference, bytes_difference, excerpts, shown, text_difference
from .jsondiff import diff_json, parse_json
from .options import Rules
from .paths import Path, format_path

try:  # optional compiled part (setup.py); without it, bodies in another key order are parsed
    from koala_store.wire._canonjson import canonical as _canonical
    from koala_store.wire._canonjson import same_tokens as _same_tokens
except ImportError:  # pragma: no cover - exercised where no C compiler is installed
    _canonical = _same_tokens = None

_CHARSET = re.compile(r"charset\s*=\s*\"?([\w.:-]+)", re.I)
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f]")


def compare_body(expected: bytes, expected_type: str, actual: bytes, actual_type: str, path: Path, rules: Rules) -> list[Difference]:
    """Differences between two bodies at `path`; content types guide parsing and decoding."""
    if expected == actual or rules.ignored(path) or _same_json(expected, actual):
        return []
    je, ja = parse_json(expected, expected_type), parse_json(actual, actual_type)
    where = format_path(path)
    if je is not None and ja is not None:
        out = []
        if je.callback != ja.callback:
            out.append(Difference(where, CHANGED, je.callback, ja.callback, "JSONP callback differs (None: plain JSON)"))
        return out + diff_json(je.value, ja.value, path, rules)
    te, ta = decode_text(expected, expected_type), decode_text(actual, actual_type)
    if (je is None) != (ja is None) and expected.strip() and actual.strip():
        # One side is JSON, the other is not (an error page instead of the API's answer).
        e, a, _ = excerpts(te if te is not None else shown(expected), ta if ta is not None else shown(actual))
        which = "expected" if je is not None else "actual"
        return [Difference(where, TYPE_CHANGED, e, a, f"only the {which} body is JSON")]
    if te is not None and ta is not None:
        return [text_difference(where, te, ta)]
    return [bytes_difference(where, expected, actual, "bodies" if path[-1] == "body" else "bytes")]


_WHITESPACE = b" \t\n\r"
_MAX_BRACKETS = 256  # far below any parser's nesting limit, so both sides surely parse


def same_json_text(expected: bytes, actual: bytes) -> bool:
    """Whether two bodies are the same JSON written with other whitespace: then they parse
    to the same value and the object diff would find nothing, so they are not parsed.

    msgspec reformats each in C without building objects (it validates the JSON and keeps
    every token's bytes as written), and equal results mean equal token streams. Only
    bodies parse_json reads as JSON whatever their type (starting with `{` or `[`) qualify,
    and only when their first tokens agree: bodies whose keys come in another order are left
    to the object diff at once rather than reformatted for nothing. The gates keep this
    exact: msgspec accepts invalid UTF-8 and deeper nesting than the parsers, so such bodies
    are left to the object diff too."""
    pair = _json_pair(expected, actual)
    if pair is None:
        return False
    e, a = pair
    head_e, head_a = e[:64].translate(None, _WHITESPACE), a[:64].translate(None, _WHITESPACE)
    n = min(len(head_e), len(head_a), 24)
    if head_e[:n] != head_a[:n]:
        return False
    try:
        if msgspec.json.format(e, indent=-1) != msgspec.json.format(a, indent=-1):
            return False
    except msgspec.DecodeError:
        return False
    # Equal token streams: what holds for one side's tokens holds for the other's.
    return e.count(b"[") + e.count(b"{") <= _MAX_BRACKETS and _utf8(e)


def same_canonical_json(expected: bytes, actual: bytes) -> bool:
    """Whether two bodies are the same JSON up to whitespace and the order of object keys:
    then they parse to the same value and the object diff would find nothing.

    Their canonical forms (koala_store/wire/_canonjson.c: keys sorted, whitespace dropped,
    every token as written) are compared without parsing either to objects. The form is
    None for what it cannot answer for exactly (see the C file), and those bodies are
    parsed. As in same_json_text, a body that is not ASCII must be valid UTF-8, which the
    parsers require and the form does not check.

    Bodies whose keys come in the same order (re-indented) are settled first by matching
    their tokens in place, which sorts and writes nothing."""
    pair = _json_pair(expected, actual) if _canonical is not None else None
    if pair is None:
        return False
    if _same_tokens(*pair):
        return _utf8(pair[0])
    form = _canonical(pair[0])
    return form is not None and form == _canonical(pair[1]) and _utf8(pair[0])


def _json_pair(expected: bytes, actual: bytes) -> tuple[bytes, bytes] | None:
    """Both bodies without leading whitespace when both start like the same kind of JSON
    document (an object or an array: what parse_json reads as JSON whatever the type)."""
    e, a = expected.lstrip(), actual.lstrip()
    if e[:1] not in (b"{", b"[") or e[:1] != a[:1]:
        return None
    return e, a


def _utf8(body: bytes) -> bool:
    """Whether a body's bytes are UTF-8, as the parsers require (the fast paths do not check)."""
    if body.isascii():
        return True
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# The canonical form settles other whitespace too, faster than msgspec's reformatting.
_same_json = same_canonical_json if _canonical is not None else same_json_text


def decode_text(data: bytes, content_type: str = "") -> str | None:
    """The body as text (the declared charset, else UTF-8), or None when it is binary."""
    charset = "utf-8"
    match = _CHARSET.search(content_type)
    if match:
        try:
            charset = codecs.lookup(match.group(1)).name
        except LookupError:
            pass
    try:
        text = data.decode(charset)
    except UnicodeDecodeError:
        return None
    # Control bytes other than whitespace mean binary, even when they happen to decode.
    if _CONTROL.search(text, 0, 4096):
        return None
    return text
