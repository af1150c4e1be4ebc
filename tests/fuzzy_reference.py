"""The `fuzzy` strategy as it was before issue 12 (eager normalisation, every call scored),
kept only as the reference the differential tests compare the fast implementation with.
Its decisions are the specification; do not optimise this module."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

from rapidfuzz import process
from rapidfuzz.distance import Indel

from koala_store.model import CallOutbound
from koala_store.wire import FASTCGI, HTTP, MYSQL, REDIS, fastcgi, jsonbody, mysql, resp
from koala_store.wire.http import VOLATILE_HEADERS, HttpRequest
from koala_store.wire.protocol import UNKNOWN, Protocol
from koala_store.wire.request import Message, parse_request
from matchers.base import NEAR_MISSES, ConnectionState, MatchResult, SessionMatcher, fmt

DEFAULT_VOLATILE_HEADERS: frozenset[str] = VOLATILE_HEADERS
DEFAULT_THRESHOLD = 0.8


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

# mysql.SQL_TOKEN as it was written before issue 12 (a string one character at a time).
_SQL_TOKEN = re.compile(
    r"""(?P<str>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")"""
    r"|(?P<comment>/\*.*?\*/|--[^\n]*|#[^\n]*)"
    r"|(?P<num>\b0x[0-9a-fA-F]+\b|(?<![\w.$])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.]))"
    r"|(?P<space>\s+)",
    re.S,
)
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

    text = " ".join(_SQL_TOKEN.sub(repl, sql).split())
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


# --- the matcher ----------------------------------------------------------------------
TIE_EPSILON = 1e-9

_LEXEME = re.compile(r"<(?:time|uuid|num|date|hex)>|\w+|[^\w\s]")
_UNKNOWN = "\U0010ffff"  # never assigned: a lexeme no candidate has
_FIRST_CODE = 0x100
_LAST_CODE = 0x10FFFE
_KIND_LABEL = {HTTP: "method", FASTCGI: "method", REDIS: "command", MYSQL: "command"}


def _weight(lexeme: str) -> int:
    return 1 + min(len(lexeme), 12) // 4


class FuzzySessionMatcher(SessionMatcher):
    strategy = "fuzzy"
    prefers_unused = True

    def __init__(self, calls: Sequence[CallOutbound], threshold: float, normalizer: Normalizer):
        super().__init__(calls)
        self.threshold = threshold
        self._normalize = normalizer
        self._alphabet: dict[str, str] = {}
        # Cached per session: normalised calls, their encoded keys, encoded details (lazily,
        # only ties need them) and per-peer lists of keys for rapidfuzz's batch scorer.
        self._norms: list[Normalized | None] = [normalizer(c.request) if c.request else None for c in self.calls]
        self._keys = [self._encode(n.key, grow=True) if n else "" for n in self._norms]
        self._sigs = [(n.protocol, n.kind, n.expect) if n else None for n in self._norms]
        self._details: dict[int, str] = {}
        self._choices: dict[int, tuple[tuple[int, ...], list[str]]] = {}
        self._splits: dict[tuple, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {}

    def _encode(self, text: str, *, grow: bool) -> str:
        """Lexemes as characters of the session's alphabet, repeated by length class."""
        lexemes = _LEXEME.findall(text) or list(text)  # all-blank text still has content
        codes = list(map(self._alphabet.get, lexemes))
        if None in codes:
            for i, code in enumerate(codes):
                if code is None:
                    lexeme = lexemes[i]
                    if grow:
                        codes[i] = self._alphabet.get(lexeme) or self._new_code(lexeme)
                    else:
                        codes[i] = _UNKNOWN * _weight(lexeme)
        return "".join(codes)  # type: ignore[arg-type]

    def _new_code(self, lexeme: str) -> str:
        alphabet = self._alphabet
        n = _FIRST_CODE + len(alphabet)
        if n >= 0xD800:
            n += 0x800  # skip surrogates
        if n > _LAST_CODE:
            n = _FIRST_CODE + hash(lexeme) % (0xD800 - _FIRST_CODE)  # shared: rare and harmless
        code = alphabet[lexeme] = chr(n) * _weight(lexeme)
        return code

    def _detail(self, p: int) -> str:
        code = self._details.get(p)
        if code is None:
            norm = self._norms[p]
            code = self._details[p] = self._encode(norm.detail, grow=True) if norm else ""
        return code

    def _batch(self, positions: tuple[int, ...]) -> list[str]:
        """The encoded keys of `positions` (a tuple cached by the caller), cached by identity."""
        cached = self._choices.get(id(positions))
        if cached is None or cached[0] is not positions:
            cached = self._choices[id(positions)] = (positions, [self._keys[p] for p in positions])
        return cached[1]

    def _split(self, eligible: tuple[int, ...], sig: tuple[str, str, bool]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Eligible positions of the request's protocol and kind, and the others (cached)."""
        key = (id(eligible), sig)
        cached = self._splits.get(key)
        if cached is None or cached[0] is not eligible:
            same = tuple(p for p in eligible if self._sigs[p] == sig)
            other = tuple(p for p in eligible if self._sigs[p] != sig)
            cached = self._splits[key] = (eligible, same, other)
        return cached[1], cached[2]

    def scores(self, request: bytes) -> dict[int, float]:
        """Similarity of `request`'s key to each recorded call with a request, by position (any kind)."""
        return self._scores(self._encode(self._normalize(request).key, grow=False), self._eligible(None, greeting=False))

    def _scores(self, query: str, positions: tuple[int, ...]) -> dict[int, float]:
        """Exact similarity to every call in `positions`."""
        choices = self._batch(positions)
        return {positions[i]: score for _, score, i in process.extract(query, choices, scorer=Indel.normalized_similarity, processor=None, limit=None)}

    def _gate(self, norm: Normalized, p: int) -> str:
        """Why recorded call p (of another protocol or kind) can never answer this request."""
        cand = self._norms[p]
        assert cand is not None
        if cand.protocol != norm.protocol:
            return f"protocol {cand.protocol} differs from the request's {norm.protocol}"
        if cand.kind != norm.kind:
            label = _KIND_LABEL.get(norm.protocol, "kind")
            return f"{label} {cand.kind or '-'} differs from the request's {norm.kind or '-'}"
        return "Expect: 100-continue differs"

    def _match(self, request: bytes, conn: ConnectionState, eligible: tuple[int, ...]) -> MatchResult:
        norm = self._normalize(request)
        query = self._encode(norm.key, grow=False)
        same, other = self._split(eligible, (norm.protocol, norm.kind, norm.expect))
        # Calls of another protocol or kind can never win: they are scored only when too few
        # calls of the request's kind exist to fill the near misses.
        scores = self._scores(query, same) if same else {}
        if other and len(same) <= NEAR_MISSES:
            scores.update(self._scores(query, other))
        threshold = self.threshold
        passing = [p for p in same if scores[p] > 0 and scores[p] >= threshold]
        if not passing:
            if same:
                best = max(scores[p] for p in same)
                reason = f"best similarity {fmt(best)} below threshold {fmt(threshold)}"
            else:
                best = 0.0
                label = _KIND_LABEL.get(norm.protocol, "kind")
                reason = f"no recorded {norm.protocol} call with {label} {norm.kind or '-'}"
                if norm.expect:
                    reason += " and Expect: 100-continue"

            def why_unmatched(p: int) -> str:
                if self._sigs[p] != self._sigs_of(norm):
                    return self._gate(norm, p)
                return f"similarity {fmt(scores[p])} below threshold {fmt(threshold)}"

            return self._reject(conn, best, scores.items(), why_unmatched, reason)

        best = max(scores[p] for p in passing)
        tied = [p for p in passing if best - scores[p] <= TIE_EPSILON]
        winner = tied[0]
        ranks: dict[int, tuple] = {}
        if len(tied) > 1:
            ranks = self._rank(request, norm, conn, tied)
            winner = max(tied, key=lambda p: ranks[p])

        def why(p: int) -> str:
            s = scores[p]
            if self._sigs[p] != self._sigs_of(norm):
                return self._gate(norm, p)
            if s < threshold:
                return f"similarity {fmt(s)} below threshold {fmt(threshold)}"
            if p not in ranks:
                return f"similarity {fmt(s)} below the winner's {fmt(best)}"
            return self._tie_reason(ranks[p], ranks[winner], winner, conn)

        losers = [(p, s) for p, s in scores.items() if p != winner]
        return self._accept(conn, winner, best, losers, why, f"similarity {fmt(best)} (threshold {fmt(threshold)})")

    @staticmethod
    def _sigs_of(norm: Normalized) -> tuple[str, str, bool]:
        return (norm.protocol, norm.kind, norm.expect)

    def _rank(self, request: bytes, norm: Normalized, conn: ConnectionState, tied: list[int]) -> dict[int, tuple]:
        """A sort key per tied call (greater wins): the tie rules of the module docstring."""
        details = {p: self._detail(p) for p in tied}  # grows the alphabet first
        query = self._encode(norm.detail, grow=False)
        anchor = self._anchor(conn)
        ranks = {}
        for p in tied:
            ranks[p] = (
                self.calls[p].request == request,
                round(Indel.normalized_similarity(query, details[p]), 9),
                self.use_counts[p] == 0,
                conn.last_identity is not None and self._identities[p] == conn.last_identity,
                p > anchor,
                -p,
            )
        return ranks

    def _tie_reason(self, rank: tuple, win: tuple, winner: int, conn: ConnectionState) -> str:
        if rank[0] != win[0]:
            return "tied on similarity; the winner is byte-identical to the request"
        if rank[1] != win[1]:
            return f"tied on similarity; the winner's values are closer ({fmt(win[1])} vs {fmt(rank[1])})"
        if rank[2] != win[2]:
            return "already used; an unused call scored as well"
        if rank[3] != win[3]:
            return f"tied; the winner is on {self._identities[winner]}, the recorded connection this one matched last"
        anchor = self._anchor(conn)
        if rank[4] != win[4]:
            return f"tied with the winner but at or before the last match (position {anchor})"
        if anchor >= 0 and win[4]:
            return f"tied with the winner, the first tied call after the last match (position {anchor})"
        return "tied with the winner, which comes first"


class ReferenceFuzzy:
    """`matchers.get("fuzzy", **options)` as it was: `for_session(calls)` gives the old matcher."""

    def __init__(
        self,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        volatile_headers: Iterable[str] = DEFAULT_VOLATILE_HEADERS,
        mask_literals: bool = True,
        mask_volatile: bool = True,
    ):
        self.threshold = threshold
        self._normalizer = Normalizer(volatile_headers=volatile_headers, mask_literals=mask_literals, mask_volatile=mask_volatile)

    def for_session(self, calls: Sequence[CallOutbound]) -> FuzzySessionMatcher:
        return FuzzySessionMatcher(calls, self.threshold, self._normalizer)
