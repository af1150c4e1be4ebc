"""Koala's `sim` strategy: cosine similarity of weighted token vectors.

Tokens (see ../shared/spec/koala-matching.md): runs of letters, digits, `.` and `_`, cut
into pieces of at most 128 bytes, weigh their length per occurrence; every other byte is a
one-byte token of weight 1. "Letters and digits" are Unicode ones in UTF-8 text, as Koala's
lexer decodes runes (Python's `\\w`); invalid UTF-8 bytes are other bytes. HTTP requests add
weight to the URI (without its query) and to each path segment.
"""

from __future__ import annotations

import math
import operator
import re
from collections import Counter
from collections.abc import Sequence
from itertools import repeat

from koala_store.model import CallOutbound

try:  # compiled by `pip install` where a C compiler is present (setup.py); optional
    from ._simlex import dots as _compiled_dots
    from ._simlex import lex_ascii as _compiled_lex_ascii
    from ._simlex import lex_packed as _compiled_lex_packed
    from ._simlex import pack as _compiled_pack
    from ._simlex import sum_of_squares as _compiled_sum_of_squares
except ImportError:  # pragma: no cover - exercised where the extension did not build
    _compiled_lex_ascii = _compiled_sum_of_squares = _compiled_lex_packed = _compiled_pack = _compiled_dots = None

# Whether sessions keep packed vectors (matchers/_simlex.c) rather than dicts by default.
PACKED = _compiled_dots is not None

from .base import ConnectionState, MatchResult, MatcherError, SessionMatcher, Strategy, check_options, check_threshold, fmt

CAP = 128
DEFAULT_THRESHOLD = 0.7
# Cosines equal up to float noise count as ties (Koala compares exactly; summing in another
# order can change the last bit of mathematically equal scores).
TIE_EPSILON = 1e-12
# Sessions whose vectors hold at most this many tokens in all get an inverted index.
INDEX_POSTINGS = 50_000

_ASCII_WORD_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_."
# Every other byte as a space: bytes.split() then gives the runs (faster than the regex).
_RUNS_APART = bytes(b if b in _ASCII_WORD_BYTES else 32 for b in range(256))
_UNICODE_RUN = re.compile(r"[\w.]+")
_BYTE = [bytes([i]) for i in range(256)]
_ASCII_OTHER_BYTES = [_BYTE[i] for i in range(128) if i not in _ASCII_WORD_BYTES]
_REQUEST_LINE = re.compile(rb"^[A-Z][A-Z_-]* (\S+) HTTP/1\.\d")

Vector = dict[bytes, float]


def _pieces(run: bytes) -> list[bytes]:
    """Cap a token run at 128 bytes, as Koala does: the rest starts a new token.

    A cut can split a multi-byte character; the orphaned continuation bytes are not letters
    to Koala (they decode as errors), so they become one-byte tokens.
    """
    out: list[bytes] = []
    while len(run) > CAP:
        out.append(run[:CAP])
        run = run[CAP:]
        i = 0
        while i < len(run) and 0x80 <= run[i] <= 0xBF:
            out.append(_BYTE[run[i]])
            i += 1
        run = run[i:]
    if run:
        out.append(run)
    return out


def tokenize(data: bytes) -> list[bytes]:
    """The tokens of `data` in order (for tests and explanations; `vectorize` is the fast path)."""
    text = data.decode("utf-8", "surrogateescape")
    out: list[bytes] = []
    pos = 0
    for m in _UNICODE_RUN.finditer(text):
        out.extend(_BYTE[b] for b in text[pos : m.start()].encode("utf-8", "surrogateescape"))
        out.extend(_pieces(m.group().encode("utf-8")))
        pos = m.end()
    out.extend(_BYTE[b] for b in text[pos:].encode("utf-8", "surrogateescape"))
    return out


def _lex_vector(data: bytes) -> Vector:
    # Weights are whole numbers (lengths times counts), so every sum of them and of their
    # products is exact and does not depend on the order it is taken in.
    if data.isascii():
        if _compiled_lex_ascii is not None and (vec := _compiled_lex_ascii(data)) is not None:
            return vec  # the same counts as below, 4x faster (matchers/_simlex.c)
        runs = Counter(data.translate(_RUNS_APART).split())
        others = data.translate(None, _ASCII_WORD_BYTES)
        lengths = list(map(len, runs))
        if max(lengths, default=0) <= CAP:
            vec: Vector = dict(zip(runs, map(operator.mul, lengths, runs.values()), strict=True))
            for token in _ASCII_OTHER_BYTES:  # a few of them occur: found and counted by C scans
                if token in others:
                    vec[token] = others.count(token)
            return vec
        runs_and_counts = runs.items()
    else:
        text = data.decode("utf-8", "surrogateescape")
        runs_and_counts = Counter(m.encode("utf-8") for m in _UNICODE_RUN.findall(text)).items()
        others = _UNICODE_RUN.sub("", text).encode("utf-8", "surrogateescape")
    vec = {}
    for run, count in runs_and_counts:
        for piece in _pieces(run) if len(run) > CAP else (run,):
            vec[piece] = vec.get(piece, 0) + len(piece) * count
    for byte, count in Counter(others).items():
        token = _BYTE[byte]
        vec[token] = vec.get(token, 0) + count
    return vec


def _header_lines(data: bytes, start: int) -> int:
    """Header lines after the request line, up to the blank line that ends the head."""
    count = 0
    while True:
        end = data.find(b"\n", start)
        # A line under 3 bytes (the blank "\r\n") ends the head, as in Koala.
        if end < 0 or end - start < 3:
            return count
        count += 1
        start = end + 1


def _uri_weights(data: bytes) -> list[tuple[bytes, int]]:
    """Koala's HTTP weighting: the URI (without its query) and each of its path segments add
    their length times (1 + the header lines) to their token. Nothing for other protocols."""
    line_end = data.find(b"\n")
    line = (data if line_end < 0 else data[:line_end]).strip()
    m = _REQUEST_LINE.match(line)
    if m is None:
        return []
    uri = m.group(1)
    q = uri.find(b"?")
    if q > 0:
        uri = uri[:q]
    factor = 1 + (_header_lines(data, line_end + 1) if line_end >= 0 else 0)
    return [(token, len(token) * factor) for token in [uri, *(seg for seg in uri.split(b"/") if seg)]]


def _weighted(vec: Vector, extra: list[tuple[bytes, int]]) -> Vector:
    for token, weight in extra:
        vec[token] = vec.get(token, 0) + weight
    return vec


def vectorize(data: bytes) -> Vector:
    """The weighted token vector of a request, with Koala's HTTP URI weighting."""
    return _weighted(_lex_vector(data), _uri_weights(data))


def pack_vector(data: bytes) -> tuple[bytes, float]:
    """`vectorize(data)` packed (matchers/_simlex.c), and its norm: what a session keeps of a
    call when the extension is built. ASCII requests are lexed straight into the packed form."""
    extra = _uri_weights(data)
    got = _compiled_lex_packed(data, extra) if data.isascii() else None
    if got is None:
        got = _compiled_pack(_weighted(_lex_vector(data), extra))
    packed, squares = got
    return packed, math.sqrt(squares)


def cosine(a: Vector, b: Vector) -> float:
    if len(a) > len(b):
        a, b = b, a
    dot = sum(w * b[t] for t, w in a.items() if t in b)
    na = math.sqrt(sum(w * w for w in a.values()))
    nb = math.sqrt(sum(w * w for w in b.values()))
    return dot / (na * nb) if na and nb else 0.0


def _norm(vec: Vector) -> float:
    if _compiled_sum_of_squares is not None and (squares := _compiled_sum_of_squares(vec)) is not None:
        return math.sqrt(squares)  # the same exact sum in C (matchers/_simlex.c)
    weights = vec.values()
    return math.sqrt(sum(map(operator.mul, weights, weights)))


def _dot(a: Vector, b: Vector) -> float:
    """The dot product, walking the smaller vector (C loops: map and sum)."""
    if len(a) > len(b):
        a, b = b, a
    return sum(map(operator.mul, a.values(), map(b.get, a, repeat(0))))


class SimSessionMatcher(SessionMatcher):
    strategy = "sim"

    def __init__(self, calls: Sequence[CallOutbound], threshold: float, *, index_postings: int = INDEX_POSTINGS, packed: bool = PACKED):
        """`packed`: keep each call's vector packed and take dot products in C (the default
        where matchers/_simlex.c is built), else as dicts."""
        super().__init__(calls)
        self.threshold = threshold
        self._index: dict[bytes, list[tuple[int, float]]] | None = None
        self._packed: list[bytes] | None = None
        if packed:
            # Per call, its packed vector and norm. At 500 calls x 8 KB, against dicts side by
            # side: preparation 41-62 -> 22-24 ms, a match 23-27 -> 3.2-3.4 ms (p50);
            # instructions (bench/bench_instructions.py) 268M -> 171M and 123M -> 18M; the
            # session keeps 5.1 MB instead of 13.9 (tracemalloc).
            if _compiled_dots is None:
                raise MatcherError("sim's packed vectors need matchers/_simlex.c, which is not built; reinstall with ./scripts/setup.sh or pass packed=False")
            prepared = [pack_vector(call.request) for call in self.calls]
            self._packed = [vec for vec, _ in prepared]
            self._norms = [norm for _, norm in prepared]
            return
        # Dicts: each call's vector and norm and, for sessions of few tokens, an inverted
        # index token -> [(position, weight)], so a match touches only the calls sharing a
        # token with the request. Beyond that, building the index costs more than it saves
        # and each call's dot product is taken on its own (C loops). Weights are whole
        # numbers, so all three ways give exactly the same sums.
        self._vectors: list[Vector] = [vectorize(call.request) if call.request else {} for call in self.calls]
        self._norms = [_norm(vec) for vec in self._vectors]
        if sum(map(len, self._vectors)) <= index_postings:
            self._index = {}
            for p, vec in enumerate(self._vectors):
                for token, weight in vec.items():
                    self._index.setdefault(token, []).append((p, weight))

    def scores(self, request: bytes) -> dict[int, float]:
        """The cosine of `request` against each recorded call that has a request, by position."""
        return self._cosines(request, self._eligible(None, greeting=False))

    def _cosines(self, request: bytes, positions: Sequence[int]) -> dict[int, float]:
        norms = self._norms
        if self._packed is not None:
            packed, norm = pack_vector(request)
            calls = self._packed
            products = _compiled_dots(packed, [calls[p] for p in positions])
            return {p: d / (norm * norms[p]) if d and norm else 0.0 for p, d in zip(positions, products, strict=True)}
        vec = vectorize(request)
        norm = _norm(vec)
        if self._index is not None:
            dots = [0.0] * len(self.calls)
            index = self._index
            for token, weight in vec.items():
                postings = index.get(token)
                if postings:
                    for p, w in postings:
                        dots[p] += weight * w
        else:
            tokens, weights = list(vec), list(vec.values())
            dots = dict.fromkeys(positions, 0.0)
            for p in positions:
                cand = self._vectors[p]
                if len(cand) < len(tokens):
                    dots[p] = _dot(cand, vec)
                else:
                    dots[p] = sum(map(operator.mul, weights, map(cand.get, tokens, repeat(0))))
        return {p: dots[p] / (norm * norms[p]) if dots[p] and norm else 0.0 for p in positions}

    def _match(self, request: bytes, conn: ConnectionState, eligible: tuple[int, ...]) -> MatchResult:
        scores = self._cosines(request, eligible)
        best = max(scores[p] for p in eligible)
        threshold = self.threshold
        if best <= 0 or best < threshold:
            return self._reject(
                conn,
                best,
                [(p, scores[p]) for p in eligible],
                lambda p: f"cosine {fmt(scores[p])} below threshold {fmt(threshold)}",
                f"best cosine {fmt(best)} below threshold {fmt(threshold)}",
            )
        tied = [p for p in eligible if best - scores[p] <= TIE_EPSILON]
        winner, tie_reason = self._break_tie(tied, conn) if len(tied) > 1 else (tied[0], None)

        def why(p: int) -> str:
            if tie_reason is not None and best - scores[p] <= TIE_EPSILON:
                return tie_reason(p)
            if scores[p] < threshold:
                return f"cosine {fmt(scores[p])} below threshold {fmt(threshold)}"
            return f"cosine {fmt(scores[p])} below the winner's {fmt(best)}"

        losers = [(p, scores[p]) for p in eligible if p != winner]
        return self._accept(conn, winner, scores[winner], losers, why, f"cosine {fmt(scores[winner])} (threshold {fmt(threshold)})")


class SimStrategy(Strategy):
    """Koala's cosine strategy; `threshold` defaults to Koala's 0.7 (rdebug's tool uses 0.75)."""

    name = "sim"
    OPTIONS = ("threshold",)

    def __init__(self, *, threshold: float = DEFAULT_THRESHOLD, **options: object):
        check_options(self.name, options, self.OPTIONS)
        self.threshold = check_threshold(self.name, threshold)

    def for_session(self, calls: Sequence[CallOutbound]) -> SimSessionMatcher:
        return SimSessionMatcher(calls, self.threshold)
