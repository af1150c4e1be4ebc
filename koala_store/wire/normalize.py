"""Requests normalised for matching: what the `fuzzy` strategy compares.

A request becomes a `Normalized`: its protocol, its kind (HTTP method, Redis command, MySQL
command and statement verb: calls of different kinds never answer each other), a `key` that
fuzzy compares (volatile parts dropped or masked, SQL literals masked, Redis values left
out) and a `detail`: the same canonical text with SQL literals and Redis values kept (only
volatile values masked), which breaks ties between equal keys.

- HTTP, and FastCGI through the HTTP request it carries: method, path, query pairs sorted by
  name, the headers that are not volatile (wire.http.VOLATILE_HEADERS: Host, Date,
  X-Request-Id, traceparent...), and the body (JSON re-serialised with sorted keys, forms
  sorted). FastCGI's records, padding and CGI-only params do not count.
- Redis (RESP, pipelines too): each command with its keys (and hash fields); values go to
  `detail` only.
- MySQL: COM_QUERY / COM_STMT_PREPARE text, comments dropped, literals masked as `?`
  (optional); the client handshake keeps user, database and plugin, not the scramble.
- Anything else: the bytes as Latin-1 text.

The request is parsed by wire.request.parse_request, the one parser every consumer shares.

`Normalizer.prepare` gives a `Prepared` instead: the protocol, kind and a `bucket` at the cost
of parsing, with the key and the detail (the costly part: masking, SQL literals) computed on
first use. Two requests whose keys have the same lexemes (equal but for whitespace between
them) always share a bucket, so a matcher looking for an exact key need not normalise the
candidates of other buckets.

Masking (`mask_volatile`) replaces values shaped like ids and clocks - UUIDs, ISO and HTTP
dates, calendar dates (20190122, 2019-01-22), 10+ digit numbers (epoch times, snowflake
ids), 16+ hex digits (trace ids, digests) - with placeholders, so drift in them costs nothing.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl

import orjson
import re2

from . import fastcgi, jsonbody, mysql, resp
from .http import VOLATILE_HEADERS, HttpRequest
from .protocol import FASTCGI, HTTP, MYSQL, REDIS, UNKNOWN, Protocol
from .request import Message, parse_request

try:  # compiled by `pip install` where a C compiler is present (setup.py); optional
    from ._normalize import bucket_ascii as _compiled_bucket_ascii
    from ._normalize import collapse_lists_ascii as _compiled_collapse_lists
    from ._normalize import comment_marker_ascii as _compiled_comment_marker
    from ._normalize import mask_ascii as _compiled_mask_ascii
    from ._normalize import sql_text_ascii as _compiled_sql_text
except ImportError:  # pragma: no cover - exercised where the extension did not build
    _compiled_mask_ascii = _compiled_sql_text = _compiled_collapse_lists = _compiled_bucket_ascii = _compiled_comment_marker = None
try:  # the JSON canonical form the diff compares bodies with (also optional)
    from koala_store.wire._canonjson import canonical as _compiled_canonical
except ImportError:  # pragma: no cover - exercised where the extension did not build
    _compiled_canonical = None

DEFAULT_VOLATILE_HEADERS: frozenset[str] = VOLATILE_HEADERS


@dataclass(slots=True, frozen=True)
class Normalized:
    protocol: Protocol
    kind: str
    key: str
    detail: str
    expect: bool = False  # HTTP Expect: 100-continue (a different exchange shape)


class Prepared:
    """A request's protocol, kind and bucket; its key and detail computed on first use.

    `bucket` and `detail_bucket` hash the key's and the detail's text before masking with
    every character normalisation can change deleted (see `bucket_of`): equal lexemes in
    two keys (or details) imply equal buckets, so other buckets need no key to be ruled out.
    """

    __slots__ = ("protocol", "kind", "expect", "bucket", "size", "_key", "_detail", "_detail_bucket", "_make_key", "_make_detail", "_make_detail_bucket")

    def __init__(
        self,
        protocol: Protocol,
        kind: str,
        expect: bool,
        bucket: int,
        size: int,
        make_key: Callable[[], str],
        make_detail: Callable[[], str] | None = None,
        make_detail_bucket: Callable[[], int] | None = None,
    ):
        self.protocol = protocol
        self.kind = kind
        self.expect = expect
        self.bucket = bucket
        self.size = size  # at least the key's length: what normalising and scoring it costs
        self._make_key = make_key
        self._make_detail = make_detail  # None: the detail is the key
        self._make_detail_bucket = make_detail_bucket  # needed with make_detail
        self._key: str | None = None
        self._detail: str | None = None
        self._detail_bucket: int | None = None

    @property
    def key(self) -> str:
        if self._key is None:
            self._key = self._make_key()
        return self._key

    @property
    def detail(self) -> str:
        if self._make_detail is None:
            return self.key
        if self._detail is None:
            self._detail = self._make_detail()
        return self._detail

    @property
    def detail_bucket(self) -> int:
        if self._make_detail_bucket is None:
            return self.bucket
        if self._detail_bucket is None:
            self._detail_bucket = self._make_detail_bucket()
        return self._detail_bucket

    def normalized(self) -> Normalized:
        return Normalized(self.protocol, self.kind, self.key, self.detail, self.expect)


# --- volatile values ------------------------------------------------------------------

_B = r"(?<![0-9A-Za-z])"  # not inside a longer word (unlike \b, "_" counts as a boundary)
_E = r"(?![0-9A-Za-z])"
_DAY = r"(?:0[1-9]|1[0-2])"
_DATE = r"(?:0[1-9]|[12]\d|3[01])"
# One pass over the text; the group that matched names the placeholder. The lookahead in
# front names every character a value can start with (a digit, a hex letter, the first letter
# of a day's name): Python's engine then skips other positions at once instead of trying each
# alternative there, about twice as fast on text full of values (an 8 KB INSERT: 0.85 -> 0.46 ms).
_VOLATILE = re.compile(
    r"(?=[\da-fA-FMTWS])(?:"
    r"(?P<time>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
    r"|(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r" \d{4} \d{2}:\d{2}:\d{2} GMT)"
    r"|" + _B + r"(?:"
    r"(?P<uuid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"|(?P<num>\d{10,})"  # epoch times, snowflake ids
    # Calendar dates (daily keys, partitions): yyyymmdd and yyyy-mm-dd.
    r"|(?P<date>(?:19|20)\d\d" + _DAY + _DATE + r"|(?:19|20)\d\d-" + _DAY + "-" + _DATE + r")"
    r"|(?P<hex>(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{16,})"  # trace ids, digests
    r")" + _E + r")"
)
PLACEHOLDERS = ("<time>", "<uuid>", "<num>", "<date>", "<hex>")


def _placeholder(m: re.Match[str]) -> str:
    return f"<{m.lastgroup}>"


def mask_volatile(text: str) -> str:
    """Replace id- and clock-shaped values with placeholders."""
    if _compiled_mask_ascii is not None and (masked := _compiled_mask_ascii(text)) is not None:
        return masked  # the same text, ~20x faster on text full of values (wire/_normalize.c)
    return _mask_volatile_python(text)


def _mask_volatile_python(text: str) -> str:
    """`mask_volatile` for any text: the reference the compiled version follows."""
    if not text.isascii():
        return _VOLATILE.sub(_placeholder, text)
    # Python's engine tries the pattern at every position; RE2 (linear, no look-arounds)
    # finds where a value may be much faster, and only the runs around those are masked.
    spans = [m.span() for m in itertools.islice(_VOLATILE_SCREEN.finditer(text), _MAX_RUNS + 1)]
    if len(spans) > _MAX_RUNS:
        return _VOLATILE.sub(_placeholder, text)
    out = []
    done = 0
    reverse = ""
    for start, end in spans:
        if start < done:
            continue  # in a run already masked
        if not reverse:
            reverse = text[::-1]
        before = _NOT_IN_VALUE.search(reverse, len(text) - start)
        run_start = len(text) - before.start() if before else 0
        after = _NOT_IN_VALUE.search(text, end)
        run_end = after.start() if after else len(text)
        out.append(text[done:run_start])
        out.append(_VOLATILE.sub(_placeholder, text[run_start:run_end]))
        done = run_end
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


# A value lies in a run of the characters values are made of and never looks past one (its
# look-arounds test [0-9A-Za-z], all in runs), so masking each run alone masks the text.
_NOT_IN_VALUE = re.compile(r"[^0-9A-Za-z\d:.,+ -]")
# What every value contains (the pattern without its look-arounds), on ASCII text: a run
# where this finds nothing holds no value.
_VOLATILE_SCREEN = re2.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}"
    r"|(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT"
    r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|\d{10}"
    r"|(?:19|20)\d\d" + _DAY + _DATE + r"|(?:19|20)\d\d-" + _DAY + "-" + _DATE + r""
    r"|[0-9a-fA-F]{16}"
)
_MAX_RUNS = 8  # beyond this many, one pass over the whole text costs less


# --- buckets --------------------------------------------------------------------------

# Every character that masking, SQL literal masking, whitespace collapsing or the matcher's
# lexer can add, drop or change: digits, hex letters, the letters of clock words (Mon..Sun,
# Jan..Dec, GMT, T, Z) and of placeholders, SQL literal punctuation ( ) ? + , . and 0x, and
# whitespace. A key is its text with some spans of these characters replaced by others, so
# the text with all of them deleted is the same for equal keys: the bucket hashes it.
_CLOCK_WORDS = "Mon Tue Wed Thu Fri Sat Sun Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec GMT TZ"
_BUCKET_DROP = bytes(sorted(set(("0123456789abcdefABCDEF" + _CLOCK_WORDS + "".join(PLACEHOLDERS) + "-:.,+?()x \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f").encode())))
_UNICODE_DROP = re.compile(r"(?![\x00-\x7f])[\d\s]")  # digits and spaces beyond ASCII (\d, \s, split)


def bucket_of(text: str) -> int:
    """The bucket of a key whose text before masking is `text` (see _BUCKET_DROP)."""
    if _compiled_bucket_ascii is not None and (bucket := _compiled_bucket_ascii(text, _BUCKET_DROP)) is not None:
        return bucket  # the same hash in one pass over the text (wire/_normalize.c)
    return _bucket_python(text)


def _bucket_python(text: str) -> int:
    """`bucket_of` for any text: the reference the compiled version follows."""
    if not text.isascii():
        text = _UNICODE_DROP.sub("", text)
    return hash(text.encode("utf-8", "surrogatepass").translate(None, _BUCKET_DROP))


# --- SQL ------------------------------------------------------------------------------

_KEEP, _MASK = 0, 1  # what wire/_normalize.c's sql_text_ascii does with literals
_SQL_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)")
_SQL_ROWS = re.compile(r"(\(\?\+\))(?:\s*,\s*\(\?\+\))+")


def normalize_sql(sql: str, *, mask_literals: bool) -> str:
    """SQL with comments dropped, whitespace collapsed and (optionally) literals as `?`.

    Masked `IN (?, ?, ?)` lists and multi-row `VALUES` collapse to one `(?+)`, so the
    number of items does not count as a difference.
    """
    compiled = _compiled_sql(sql, mask_literals)
    return compiled if compiled is not None else _sql_text(mysql.SQL_TOKEN.split(sql), mask_literals=mask_literals)


def _compiled_sql(sql: str, mask_literals: bool) -> str | None:
    """`normalize_sql` by wire/_normalize.c (~12x faster than splitting); None for SQL that
    is not ASCII, or where it did not build."""
    if _compiled_sql_text is None or (text := _compiled_sql_text(sql, _MASK if mask_literals else _KEEP)) is None:
        return None
    return _collapse_lists(text) if mask_literals else text


def _sql_text(parts: list[str | None], *, mask_literals: bool) -> str:
    """`normalize_sql` of a statement split by mysql.SQL_TOKEN: text between tokens, then the
    token's four groups (str, comment, num, space; three of them None), and so on. The
    reference wire/_normalize.c follows."""
    strs, nums = parts[1::5], parts[3::5]
    if mask_literals:
        tokens = [" " if s is None and n is None else "?" for s, n in zip(strs, nums, strict=True)]
    else:
        tokens = [" " if s is None and n is None else s or n for s, n in zip(strs, nums, strict=True)]
    pieces = parts[0::5]
    joined: list = [None] * (len(pieces) + len(tokens))
    joined[0::2] = pieces
    joined[1::2] = tokens
    text = " ".join("".join(joined).split())
    return _collapse_lists(text) if mask_literals else text


def _collapse_lists(text: str) -> str:
    if _compiled_collapse_lists is not None and (collapsed := _compiled_collapse_lists(text)) is not None:
        return collapsed  # the same text, ~20x faster on an INSERT of many rows (wire/_normalize.c)
    return _collapse_lists_python(text)


def _collapse_lists_python(text: str) -> str:
    """`_collapse_lists` for any text: the reference wire/_normalize.c follows."""
    return _SQL_ROWS.sub(r"\1", _SQL_LIST.sub("(?+)", text))


def _comment_marker(sql: str) -> bool:
    """Whether `sql` holds "--", "/*" or "#": without one, it holds no comment."""
    if _compiled_comment_marker is not None and (found := _compiled_comment_marker(sql)) is not None:
        return found  # one pass, ~6x faster on SQL full of dates (wire/_normalize.c)
    return "--" in sql or "/*" in sql or "#" in sql


class _Statement:
    """A statement's key and detail texts and buckets, from one tokenisation at most."""

    __slots__ = ("sql", "_commented", "_parts", "_pending", "_masked")

    def __init__(self, sql: str, forms: int):
        self.sql = sql
        self._commented: bool | None = None
        self._parts: list[str | None] | None = None
        self._pending = forms
        # The compiled masked text the key's bucket was taken from, until the key takes it.
        self._masked: str | None = None

    @property
    def commented(self) -> bool:
        """Whether the statement may hold a comment (inside strings these are harmless)."""
        if self._commented is None:
            self._commented = _comment_marker(self.sql)
        return self._commented

    def text(self, *, mask_literals: bool) -> str:
        if not mask_literals and not self.commented:
            return " ".join(self.sql.split())  # literals kept and no comment: only blanks change
        if mask_literals and self._masked is not None:
            masked, self._masked = self._masked, None
            return _collapse_lists(masked)
        if (compiled := _compiled_sql(self.sql, mask_literals)) is not None:
            return compiled
        parts = self._parts
        if parts is None:
            parts = self._parts = mysql.SQL_TOKEN.split(self.sql)
        self._pending -= 1
        if self._pending <= 0:
            self._parts = None
        return _sql_text(parts, mask_literals=mask_literals)

    def bucket(self, *, mask_literals: bool) -> int:
        """The bucket of the key (`mask_literals`) or the detail, without the regexes."""
        sql = self.sql
        if mask_literals:
            if "'" not in sql and '"' not in sql and not self.commented:
                return bucket_of(sql)  # nothing to drop
            if _compiled_sql_text is not None and (text := _compiled_sql_text(sql, _MASK)) is not None:
                # The key's text before its lists collapse: literals become "?" and comments
                # blanks, all characters buckets drop, so it buckets as the statement does
                # with its strings and comments left out. Kept: the key needs no second pass
                # (wire/_normalize.c, one pass instead of the regex's ~0.2 ms for 8 KB).
                self._masked = text
                return bucket_of(text)
            return bucket_of(_SQL_STRINGS_AND_COMMENTS.sub("", sql))
        if not self.commented:
            return bucket_of(sql)  # nothing to drop
        if _compiled_sql_text is not None and (text := _compiled_sql_text(sql, _KEEP)) is not None:
            return bucket_of(text)  # the same comments left out as the regex (blanks differ, which buckets drop)
        return bucket_of(_SQL_COMMENTS_BESIDE_STRINGS.sub(r"\g<str>", sql))


_SQL_VERB = re.compile(r"\s*(?:/\*.*?\*/\s*)*\(?\s*([A-Za-z]+)", re.S)


def _sql_verb(sql: str) -> str:
    m = _SQL_VERB.match(sql)
    return m.group(1).upper() if m else ""


# String literals and comments where mysql.SQL_TOKEN finds them, for buckets: its other
# tokens (numbers, spaces) neither hold nor start one, and hold only characters buckets
# drop. (Without a group, every alternative starts with a literal character, which Python's
# engine skips ahead to: twice as fast.)
_SQL_STRING = r"'[^'\\]*(?:(?:\\.|'')[^'\\]*)*'" + r'|"[^"\\]*(?:(?:\\.|"")[^"\\]*)*"'
_SQL_COMMENT = r"/\*.*?\*/|--[^\n]*|#[^\n]*"
_SQL_STRINGS_AND_COMMENTS = re.compile(f"{_SQL_STRING}|{_SQL_COMMENT}", re.S)
_SQL_COMMENTS_BESIDE_STRINGS = re.compile(f"(?P<str>{_SQL_STRING})|{_SQL_COMMENT}", re.S)


# --- Redis ----------------------------------------------------------------------------

_REDIS_NO_KEY = frozenset(
    "PING ECHO AUTH SELECT INFO MULTI EXEC DISCARD QUIT TIME DBSIZE FLUSHDB FLUSHALL CLIENT "
    "CONFIG SCRIPT HELLO COMMAND RANDOMKEY SAVE BGSAVE LASTSAVE UNWATCH READONLY".split()
)
_REDIS_ALL_KEYS = frozenset("DEL UNLINK EXISTS MGET TOUCH WATCH SINTER SUNION SDIFF PFCOUNT SUBSCRIBE UNSUBSCRIBE".split())
_REDIS_PAIRS = frozenset({"MSET", "MSETNX"})
_REDIS_HASH_FIELDS = frozenset({"HGET", "HMGET", "HDEL", "HEXISTS", "HINCRBY", "HINCRBYFLOAT", "HSTRLEN"})
_REDIS_HASH_PAIRS = frozenset({"HSET", "HMSET", "HSETNX"})
_REDIS_BLOCKING = frozenset({"BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX"})


def _redis_keys(cmd: str, args: list[bytes]) -> list[bytes]:
    """The key (and hash field) arguments of one command; values are left out."""
    if cmd in _REDIS_NO_KEY or not args:
        return []
    if cmd in _REDIS_ALL_KEYS:
        return args
    if cmd in _REDIS_PAIRS:
        return args[::2]
    if cmd in _REDIS_HASH_FIELDS:
        return args
    if cmd in _REDIS_HASH_PAIRS:
        return [args[0], *args[1::2]]
    if cmd in _REDIS_BLOCKING:
        return args[:-1]
    if cmd in ("EVAL", "EVALSHA"):
        try:
            count = int(args[1])
        except (IndexError, ValueError):
            return args[:1]
        return [args[0], *args[2 : 2 + count]]
    return args[:1]


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


# --- HTTP -----------------------------------------------------------------------------


def _query_pairs(query: str) -> list[tuple[str, str]]:
    """parse_qsl(query, keep_blank_values=True): what it gives, without its per-field
    unquoting where nothing is quoted (urllib's pure-Python loop: fuzzy's full preparation of
    a 500 x 8 KB session 340.0M -> 337.2M instructions, with the SQL verb's regex compiled once)."""
    if "%" in query or "+" in query:
        return parse_qsl(query, keep_blank_values=True)
    return [(name, value) for name, _, value in (field.partition("=") for field in query.split("&") if field)]


def _sorted_pairs(query: str) -> list[tuple[str, str]]:
    pairs = _query_pairs(query)
    # Stable: repeated names keep their relative order, which can matter.
    return sorted(pairs, key=lambda kv: kv[0])


# What orjson writes unlike json.dumps: exponents (1e16 for 1e+16, 1e-9 for 1e-09) and small
# floats in full (0.00001 for 1e-05); strings, integers and other floats come out the same.
# Looked for where a number starts (inside strings too: a false alarm only costs time). RE2:
# it finds none in an 8 KB body in ~26 us, Python's engine in ~200 us.
_ORJSON_FLOAT_FORMS = re2.compile(rb"[:,\[]-?(?:\d+(?:\.\d+)?e|0\.0000)")


def _json_text(body: bytes) -> tuple[str, bool] | None:
    """`body` as JSON with sorted keys, and whether orjson wrote it (fast, but floats may be
    written unlike json.dumps: see `_exact_json`); None when not JSON."""
    try:
        value, orjson_read = jsonbody.parse(body)
    except ValueError:
        return None
    if orjson_read:  # no NaN (orjson writes null) and no integer beyond 64 bits
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode(), True
        except orjson.JSONEncodeError:
            pass  # nested too deep, a lone surrogate...: the standard library writes it
    return _stdlib_json(value), False


def _stdlib_json(value: object) -> str:
    # The standard library writes any integer exactly (orjson stops at 64 bits).
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _exact_json(text: str, body: bytes) -> str:
    """orjson's `text` of `body` as json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False) writes it: the same text unless a float is written otherwise."""
    if text[:1] in ("{", "[") and _ORJSON_FLOAT_FORMS.search(text.encode()) is None:
        return text
    return _stdlib_json(jsonbody.loads(body))


def _plain_json_form(body: bytes) -> str | None:
    """A JSON object or array body without escapes or repeated keys, whose numbers are
    spelled as Python writes them, as a key shows it (json.dumps with sorted keys, no
    whitespace), made without parsing it; None for any other body, or where
    wire/_canonjson.c did not build."""
    if _compiled_canonical is None or not body:
        return None
    form = _compiled_canonical(body, True)
    if form is None:
        return None
    try:
        return form.decode()  # strict, as the JSON parsers read it
    except UnicodeDecodeError:
        return None


def _canonical_body(body: bytes, content_type: str) -> tuple[str, bool]:
    """The body as the key shows it, and whether orjson wrote it (then `_exact_json` gives
    the key's text; the bucket can take this one, floats are made of characters it drops)."""
    if not body:
        return "", False
    stripped = body.lstrip()
    if "json" in content_type or stripped[:1] in (b"{", b"["):
        json_text = _json_text(body)
        if json_text is not None:
            return json_text
    if "x-www-form-urlencoded" in content_type:
        return "&".join(f"{k}={v}" for k, v in _sorted_pairs(_text(body))), False
    return _text(body), False


class Normalizer:
    """Turns request bytes into a `Normalized`, with the fuzzy strategy's options."""

    def __init__(
        self,
        *,
        volatile_headers: Iterable[str] = DEFAULT_VOLATILE_HEADERS,
        mask_literals: bool = True,
        mask_volatile: bool = True,
    ):
        self.volatile_headers = frozenset(h.lower() for h in volatile_headers)
        self.mask_literals = mask_literals
        self.mask_volatile = mask_volatile

    def __call__(self, request: bytes) -> Normalized:
        return self.prepare(request).normalized()

    def of(self, message: Message | None, request: bytes) -> Normalized:
        """The normalised form of `request`, already parsed into `message`."""
        return self.prepare_message(message, request).normalized()

    def prepare(self, request: bytes) -> Prepared:
        """`request`'s protocol, kind and bucket now; its key and detail when first read."""
        return self.prepare_message(parse_request(request), request)

    def prepare_message(self, message: Message | None, request: bytes) -> Prepared:
        match message:
            case HttpRequest():
                return self._http(message, HTTP)
            case resp.Commands():
                return self._redis(message.commands)
            case fastcgi.Request():
                return self._http(message.http(), FASTCGI)
            case mysql.Command(code, argument):
                return self._mysql(code, argument)
            case mysql.Handshake(user, db, plugin):
                return self._masked(MYSQL, "HANDSHAKE", f"user={user} db={db} plugin={plugin}")
        return self._masked(UNKNOWN, "", request.decode("latin-1"))

    def _mask(self, text: str) -> str:
        return mask_volatile(text) if self.mask_volatile else text

    def _masked(self, protocol: Protocol, kind: str, text: str, expect: bool = False) -> Prepared:
        """A request whose key and detail are both `text` masked."""
        return Prepared(protocol, kind, expect, bucket_of(text), len(text), lambda: self._mask(text))

    def _http(self, head: HttpRequest, protocol: Protocol) -> Prepared:
        expect = False
        headers = []
        for name, value in head.headers:
            lname = name.lower()
            if lname == "expect" and "100-continue" in value.lower():
                expect = True
            if lname not in self.volatile_headers:
                headers.append((lname, value))
        headers.sort(key=lambda kv: kv[0])
        content_type = (head.header("Content-Type") or "").lower()
        lines = [f"{head.method} {head.path}"]
        lines += [f"?{k}={v}" for k, v in _sorted_pairs(head.query)]
        lines += [f"{k}: {v}" for k, v in headers]
        lines.append("")
        form = _plain_json_form(head.body)
        if form is not None:  # the text parsing the body would give: nothing to parse
            return self._masked(protocol, head.method, "\n".join([*lines, form]), expect)
        body, by_orjson = _canonical_body(head.body, content_type)
        text = "\n".join([*lines, body])
        if not by_orjson:
            return self._masked(protocol, head.method, text, expect)

        def key() -> str:
            exact = _exact_json(body, head.body)
            return self._mask(text if exact is body else "\n".join([*lines, exact]))

        return Prepared(protocol, head.method, expect, bucket_of(text), len(text), key)

    def _redis(self, commands: list[list[bytes]]) -> Prepared:
        keys = []
        for args in commands:
            cmd = args[0].decode("latin-1").upper()
            keys.append(" ".join([cmd, *(_text(a) for a in _redis_keys(cmd, args[1:]))]))
        kind = keys[0].split(" ", 1)[0]
        key = "\n".join(keys)
        detail = ""  # the values too: often most of the bytes, and read only to break ties

        def detail_text() -> str:
            nonlocal detail
            if not detail:
                detail = "\n".join(" ".join([args[0].decode("latin-1").upper(), *(_text(a) for a in args[1:])]) for args in commands)
            return detail

        return Prepared(
            REDIS, kind, False, bucket_of(key), len(key), lambda: self._mask(key), lambda: self._mask(detail_text()), lambda: bucket_of(detail_text())
        )

    def _mysql(self, code: int, arg: bytes) -> Prepared:
        name = mysql.COMMAND_NAMES.get(code, f"COM_{code:#04x}")
        if code in (0x03, 0x16):
            sql = _text(arg)
            kind = f"{name} {_sql_verb(sql)}"
            statement = _Statement(sql, 2 if self.mask_literals else 1)

            def detail() -> str:
                return self._mask(statement.text(mask_literals=False))

            if not self.mask_literals:
                return Prepared(MYSQL, kind, False, statement.bucket(mask_literals=False), len(sql), detail)
            return Prepared(
                MYSQL,
                kind,
                False,
                statement.bucket(mask_literals=True),
                len(sql),
                lambda: self._mask(statement.text(mask_literals=True)),
                detail,
                lambda: statement.bucket(mask_literals=False),
            )
        if code == 0x17 and len(arg) >= 4:
            # Statement id, then binary parameters: compare the id, keep the rest as detail.
            key = f"stmt {int.from_bytes(arg[:4], 'little')}"
            detail = f"{key} {arg[4:].hex()}"
            return Prepared(MYSQL, name, False, bucket_of(key), len(key), lambda: key, lambda: detail, lambda: bucket_of(detail))
        return self._masked(MYSQL, name, f"{name} {_text(arg) if code in (0x02, 0x11) else arg.hex()}")
