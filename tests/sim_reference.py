"""Koala's `sim` strategy as it was before issue 12 (an inverted index built for every
session), kept only as the reference the differential tests compare the current one with."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from koala_store.model import CallOutbound
from matchers.base import ConnectionState, MatchResult, SessionMatcher, fmt

CAP = 128
DEFAULT_THRESHOLD = 0.7
# Cosines equal up to float noise count as ties (Koala compares exactly; summing in another
# order can change the last bit of mathematically equal scores).
TIE_EPSILON = 1e-12

_ASCII_RUN = re.compile(rb"[A-Za-z0-9_.]+")
_ASCII_WORD_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_."
_UNICODE_RUN = re.compile(r"[\w.]+")
_BYTE = [bytes([i]) for i in range(256)]
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
    vec: Vector = {}
    if data.isascii():
        runs = _ASCII_RUN.findall(data)
        others = data.translate(None, _ASCII_WORD_BYTES)
    else:
        text = data.decode("utf-8", "surrogateescape")
        runs = [m.encode("utf-8") for m in _UNICODE_RUN.findall(text)]
        others = _UNICODE_RUN.sub("", text).encode("utf-8", "surrogateescape")
    for run, count in Counter(runs).items():
        for piece in _pieces(run) if len(run) > CAP else (run,):
            vec[piece] = vec.get(piece, 0.0) + len(piece) * count
    for byte, count in Counter(others).items():
        token = _BYTE[byte]
        vec[token] = vec.get(token, 0.0) + count
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


def vectorize(data: bytes) -> Vector:
    """The weighted token vector of a request, with Koala's HTTP URI weighting."""
    vec = _lex_vector(data)
    line_end = data.find(b"\n")
    line = (data if line_end < 0 else data[:line_end]).strip()
    m = _REQUEST_LINE.match(line)
    if m is not None:
        uri = m.group(1)
        q = uri.find(b"?")
        if q > 0:
            uri = uri[:q]
        factor = 1 + (_header_lines(data, line_end + 1) if line_end >= 0 else 0)
        for token in [uri, *(seg for seg in uri.split(b"/") if seg)]:
            vec[token] = vec.get(token, 0.0) + len(token) * factor
    return vec


def cosine(a: Vector, b: Vector) -> float:
    if len(a) > len(b):
        a, b = b, a
    dot = sum(w * b[t] for t, w in a.items() if t in b)
    na = math.sqrt(sum(w * w for w in a.values()))
    nb = math.sqrt(sum(w * w for w in b.values()))
    return dot / (na * nb) if na and nb else 0.0


class SimSessionMatcher(SessionMatcher):
    strategy = "sim"

    def __init__(self, calls: Sequence[CallOutbound], threshold: float):
        super().__init__(calls)
        self.threshold = threshold
        # Cached per session: an inverted index token -> [(position, weight)] and the norms,
        # so a match touches only the candidates sharing a token with the request.
        self._norms = [0.0] * len(self.calls)
        self._index: dict[bytes, list[tuple[int, float]]] = {}
        for p, call in enumerate(self.calls):
            if not call.request:
                continue
            vec = vectorize(call.request)
            self._norms[p] = math.sqrt(sum(w * w for w in vec.values()))
            for token, weight in vec.items():
                self._index.setdefault(token, []).append((p, weight))

    def scores(self, request: bytes) -> dict[int, float]:
        """The cosine of `request` against each recorded call that has a request, by position."""
        cosines = self._cosines(request)
        return {p: cosines[p] for p in self._eligible(None, greeting=False)}

    def _cosines(self, request: bytes) -> list[float]:
        vec = vectorize(request)
        norm = math.sqrt(sum(w * w for w in vec.values()))
        dots = [0.0] * len(self.calls)
        index = self._index
        for token, weight in vec.items():
            postings = index.get(token)
            if postings:
                for p, w in postings:
                    dots[p] += weight * w
        norms = self._norms
        return [d / (norm * norms[p]) if d and norm else 0.0 for p, d in enumerate(dots)]

    def _match(self, request: bytes, conn: ConnectionState, eligible: tuple[int, ...]) -> MatchResult:
        scores = self._cosines(request)
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


class ReferenceSim:
    def __init__(self, *, threshold: float = DEFAULT_THRESHOLD):
        self.threshold = threshold

    def for_session(self, calls: Sequence[CallOutbound]) -> SimSessionMatcher:
        return SimSessionMatcher(calls, self.threshold)
