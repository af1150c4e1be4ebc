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

Masking (`mask_volatile`) replaces values shaped like ids and clocks - UUIDs, ISO and HTTP
dates, calendar dates (20190122, 2019-01-22), 10+ digit numbers (epoch times, snowflake
ids), 16+ hex digits (trace ids, digests) - with placeholders, so drift in them costs nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from . import fastcgi, jsonbody, mysql, resp
from .http import VOLATILE_HEADERS, HttpRequest
from .protocol import FASTCGI, HTTP, MYSQL, REDIS, UNKNOWN, Protocol
from .request import Message, parse_request

DEFAULT_VOLATILE_HEADERS: frozenset[str] = VOLATILE_HEADERS


@dataclass(slots=True, frozen=True)
class Normalized:
    protocol: Protocol
    kind: str
    key: str
    detail: str
    expect: bool = False  # HTTP Expect: 100-continue (a different exchange shape)


# --- volatile values ------------------------------------------------------------------

_B = r"(?<![0-9A-Za-z])"  # not inside a longer word (unlike \b, "_" counts as a boundary)
_E = r"(?![0-9A-Za-z])"
_DAY = r"(?:0[1-9]|1[0-2])"
_DATE = r"(?:0[1-9]|[12]\d|3[01])"
# One pass over the text; the group that matched names the placeholder.
_VOLATILE = re.compile(
    r"(?P<time>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
    r"|(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r" \d{4} \d{2}:\d{2}:\d{2} GMT)"
    r"|" + _B + r"(?:"
    r"(?P<uuid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"|(?P<num>\d{10,})"  # epoch times, snowflake ids
    # Calendar dates (daily keys, partitions): yyyymmdd and yyyy-mm-dd.
    r"|(?P<date>(?:19|20)\d\d" + _DAY + _DATE + r"|(?:19|20)\d\d-" + _DAY + "-" + _DATE + r")"
    r"|(?P<hex>(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{16,})"  # trace ids, digests
    r")" + _E
)
PLACEHOLDERS = ("<time>", "<uuid>", "<num>", "<date>", "<hex>")


def _placeholder(m: re.Match[str]) -> str:
    return f"<{m.lastgroup}>"


def mask_volatile(text: str) -> str:
    """Replace id- and clock-shaped values with placeholders."""
    return _VOLATILE.sub(_placeholder, text)


# --- SQL ------------------------------------------------------------------------------

_SQL_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)")
_SQL_ROWS = re.compile(r"(\(\?\+\))(?:\s*,\s*\(\?\+\))+")


def normalize_sql(sql: str, *, mask_literals: bool) -> str:
    """SQL with comments dropped, whitespace collapsed and (optionally) literals as `?`.

    Masked `IN (?, ?, ?)` lists and multi-row `VALUES` collapse to one `(?+)`, so the
    number of items does not count as a difference.
    """

    def repl(m: re.Match[str]) -> str:
        kind = m.lastgroup
        if kind in ("space", "comment"):
            return " "
        return "?" if mask_literals else m.group()

    text = " ".join(mysql.SQL_TOKEN.sub(repl, sql).split())
    if mask_literals:
        text = _SQL_ROWS.sub(r"\1", _SQL_LIST.sub("(?+)", text))
    return text


def _sql_verb(sql: str) -> str:
    m = re.match(r"\s*(?:/\*.*?\*/\s*)*\(?\s*([A-Za-z]+)", sql, re.S)
    return m.group(1).upper() if m else ""


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


def _sorted_pairs(query: str) -> list[tuple[str, str]]:
    pairs = parse_qsl(query, keep_blank_values=True)
    # Stable: repeated names keep their relative order, which can matter.
    return sorted(pairs, key=lambda kv: kv[0])


def _canonical_body(body: bytes, content_type: str) -> str:
    if not body:
        return ""
    stripped = body.lstrip()
    if "json" in content_type or stripped[:1] in (b"{", b"["):
        try:
            value = jsonbody.loads(body)
        except ValueError:
            pass  # not JSON after all
        else:
            # The standard library writes any integer exactly (orjson stops at 64 bits).
            return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if "x-www-form-urlencoded" in content_type:
        return "&".join(f"{k}={v}" for k, v in _sorted_pairs(_text(body)))
    return _text(body)


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
        return self.of(parse_request(request), request)

    def of(self, message: Message | None, request: bytes) -> Normalized:
        """The normalised form of `request`, already parsed into `message`."""
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
                text = self._mask(f"user={user} db={db} plugin={plugin}")
                return Normalized(MYSQL, "HANDSHAKE", text, text)
        text = self._mask(request.decode("latin-1"))
        return Normalized(UNKNOWN, "", text, text)

    def _mask(self, text: str) -> str:
        return mask_volatile(text) if self.mask_volatile else text

    def _http(self, head: HttpRequest, protocol: Protocol) -> Normalized:
        expect = False
        headers = []
        for name, value in head.headers:
            lname = name.lower()
            if lname == "expect" and "100-continue" in value.lower():
                expect = True
            if lname not in self.volatile_headers:
                headers.append((lname, value))
        headers.sort(key=lambda kv: kv[0])
        body = _canonical_body(head.body, (head.header("Content-Type") or "").lower())
        lines = [f"{head.method} {head.path}"]
        lines += [f"?{k}={v}" for k, v in _sorted_pairs(head.query)]
        lines += [f"{k}: {v}" for k, v in headers]
        lines += ["", body]
        text = self._mask("\n".join(lines))
        return Normalized(protocol, head.method, text, text, expect)

    def _redis(self, commands: list[list[bytes]]) -> Normalized:
        keys, details = [], []
        for args in commands:
            cmd = args[0].decode("latin-1").upper()
            keys.append(" ".join([cmd, *(_text(a) for a in _redis_keys(cmd, args[1:]))]))
            details.append(" ".join([cmd, *(_text(a) for a in args[1:])]))
        kind = keys[0].split(" ", 1)[0]
        return Normalized(REDIS, kind, self._mask("\n".join(keys)), self._mask("\n".join(details)))

    def _mysql(self, code: int, arg: bytes) -> Normalized:
        name = mysql.COMMAND_NAMES.get(code, f"COM_{code:#04x}")
        if code in (0x03, 0x16):
            sql = _text(arg)
            detail = self._mask(normalize_sql(sql, mask_literals=False))
            key = self._mask(normalize_sql(sql, mask_literals=True)) if self.mask_literals else detail
            return Normalized(MYSQL, f"{name} {_sql_verb(sql)}", key, detail)
        if code == 0x17 and len(arg) >= 4:
            # Statement id, then binary parameters: compare the id, keep the rest as detail.
            stmt = int.from_bytes(arg[:4], "little")
            return Normalized(MYSQL, name, f"stmt {stmt}", f"stmt {stmt} {arg[4:].hex()}")
        text = self._mask(f"{name} {_text(arg) if code in (0x02, 0x11) else arg.hex()}")
        return Normalized(MYSQL, name, text, text)
