"""The inbound response: HTTP status, headers and body, of HTTP/1.x or FastCGI (the CGI response
PHP-FPM writes; record framing, padding and STDERR are not compared); other protocols as bytes.

Paths: `status` (the code; the reason phrase and HTTP version are not compared), `headers.<name>`
(lower case), `headers.set-cookie.<cookie>`, `body...`, and `response` for a response that is
not HTTP on either side (one difference: the bytes, or text when both decode).
"""

from __future__ import annotations

import functools
import zlib

from koala_store.wire import HttpResponse, http1, http_response

from .body import compare_body, decode_text
from .difference import ADDED, CHANGED, REMOVED, Difference, bytes_difference, text_difference
from .options import DiffOptions, Rules, compile_options
from .paths import Path, format_path

STATUS: Path = ("status",)
HEADERS: Path = ("headers",)
BODY: Path = ("body",)
RESPONSE: Path = ("response",)
# Headers that say how the body is framed, encoded or compared: when their values differ,
# the bodies must be parsed to know whether they do.
BODY_HEADERS = frozenset({"content-length", "transfer-encoding", "content-encoding", "content-type"})


def compare_responses(expected: bytes, actual: bytes, options: DiffOptions | None = None) -> list[Difference]:
    """Differences between the recorded (`expected`) and the replayed (`actual`) response.

    Identical bytes return at once; equal bodies (bytes, or JSON once parsed) never reach
    deepdiff. Raises DiffOptionsError for bad options.
    """
    if expected == actual:
        return []
    rules = compile_options(options)
    if http1.alike_but_header_values(expected, actual, _value_only(rules.ignored_headers)):
        return []  # the usual answer of an unchanged build: only Date (or the like) moved
    he, ha = http_response(expected), http_response(actual)
    if he is None or ha is None:
        return _raw(expected, actual, rules)
    out: list[Difference] = []
    if he.status != ha.status and not rules.ignored(STATUS):
        note = f"{he.status} {he.reason} -> {ha.status} {ha.reason}".strip()
        out.append(Difference("status", CHANGED, he.status, ha.status, note))
    out += compare_headers(he.headers, ha.headers, HEADERS, rules, rules.ignored_headers)
    be, ba = decoded_body(he), decoded_body(ha)
    if be != ba:
        out += compare_body(be, he.header("Content-Type") or "", ba, ha.header("Content-Type") or "", BODY, rules)
    return out


@functools.lru_cache(maxsize=64)
def _value_only(ignored: frozenset[str]) -> frozenset[str]:
    """The ignored headers whose values alone may differ for bytes to tell two answers alike
    (made once per set of ignored headers, not once per comparison)."""
    return ignored - BODY_HEADERS


def _raw(expected: bytes, actual: bytes, rules: Rules) -> list[Difference]:
    if rules.ignored(RESPONSE):
        return []
    te, ta = decode_text(expected), decode_text(actual)
    if te is not None and ta is not None:
        return [text_difference("response", te, ta, "response")]
    return [bytes_difference("response", expected, actual, "responses")]


def decoded_body(response: HttpResponse) -> bytes:
    """The body with gzip/deflate content encoding undone (wire undid transfer encoding)."""
    body = response.body
    encoding = (response.header("Content-Encoding") or "").strip().lower()
    if body and encoding in ("gzip", "x-gzip", "deflate"):
        try:
            # wbits 47 reads gzip and zlib; raw deflate needs -15.
            body = zlib.decompress(body, 47) if encoding != "deflate" else _inflate(body)
        except zlib.error:
            pass  # compare the bytes as recorded
    return body


def _inflate(body: bytes) -> bytes:
    try:
        return zlib.decompress(body)
    except zlib.error:
        return zlib.decompress(body, -15)


def compare_headers(
    expected: list[tuple[str, str]],
    actual: list[tuple[str, str]],
    path: Path,
    rules: Rules,
    ignored: frozenset[str],
) -> list[Difference]:
    """Header differences by lower-case name; repeated headers compare as multisets."""
    if rules.ignored(path) or _same_in_place(expected, actual, ignored):
        return []
    ge, ga = _group(expected, ignored), _group(actual, ignored)
    if ge == ga:
        return []
    out: list[Difference] = []
    for name in sorted(ge.keys() | ga.keys()):
        ve, va = ge.get(name), ga.get(name)
        if ve == va:
            continue
        here = path + (name,)
        if rules.ignored(here):
            continue
        if name == "set-cookie":
            out += _cookies(ve or [], va or [], here, rules)
        elif ve is None:
            out.append(Difference(format_path(here), ADDED, None, _one(va)))
        elif va is None:
            out.append(Difference(format_path(here), REMOVED, _one(ve), None))
        else:
            out.append(Difference(format_path(here), CHANGED, _one(ve), _one(va)))
    return out


def _same_in_place(expected: list[tuple[str, str]], actual: list[tuple[str, str]], ignored: frozenset[str]) -> bool:
    """Whether both hold the same names in the same order, each value equal unless the header
    is ignored: then their groups are equal. The common case (the same server answering),
    settled without lower-casing and grouping every header."""
    if len(expected) != len(actual):
        return False
    for (name, value), (other_name, other_value) in zip(expected, actual, strict=True):
        if name != other_name or (value != other_value and name.lower() not in ignored):
            return False
    return True


def _group(headers: list[tuple[str, str]], ignored: frozenset[str]) -> dict[str, list[str]]:
    """Each header's values by lower-case name, normalised and sorted (a multiset)."""
    out: dict[str, list[str]] = {}
    repeated = False
    for name, value in headers:
        lname = name.lower()
        if lname in ignored:
            continue
        value = value.strip()
        if lname == "content-type":
            value = _content_type(value)
        values = out.get(lname)
        if values is None:
            out[lname] = [value]
        else:
            values.append(value)
            repeated = True
    if repeated:
        for values in out.values():
            values.sort()
    return out


def _content_type(value: str) -> str:
    # `application/json; charset=UTF-8` and `application/json;charset=utf-8` are one type.
    return ";".join(part.strip() for part in value.lower().split(";"))


def _one(values: list[str] | None) -> str | list[str] | None:
    if values is None:
        return None
    return values[0] if len(values) == 1 else values


def _cookies(expected: list[str], actual: list[str], path: Path, rules: Rules) -> list[Difference]:
    """Set-Cookie by cookie name: values and expiry are volatile, names and flags are not."""
    ce, ca = _parse_cookies(expected), _parse_cookies(actual)
    out = []
    for name in sorted(ce.keys() | ca.keys()):
        here = path + (name,)
        if ce.get(name) == ca.get(name) or rules.ignored(here):
            continue
        kind = ADDED if name not in ce else REMOVED if name not in ca else CHANGED
        out.append(Difference(format_path(here), kind, ce.get(name), ca.get(name), "cookie attributes (value, Expires and Max-Age not compared)"))
    return out


def _parse_cookies(values: list[str]) -> dict[str, str]:
    out = {}
    for value in values:
        first, *attrs = [part.strip() for part in value.split(";")]
        name = first.split("=", 1)[0].strip()
        kept = sorted(a.lower() for a in attrs if a and a.split("=", 1)[0].strip().lower() not in ("expires", "max-age"))
        out[name] = "; ".join(kept)
    return out
