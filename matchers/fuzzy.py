"""`fuzzy`, ours: protocol-aware normalisation, then rapidfuzz similarity over lexemes.

Each request is normalised (koala_store.wire.normalize), its key split into lexemes (words,
punctuation, placeholders of masked values) and each lexeme mapped to one character of a
per-session alphabet, repeated by its length class (1-3 chars: 1, 4-7: 2, 8-11: 3, 12+: 4)
so a long word counts more than a comma. The score is rapidfuzz's normalized Indel
similarity of those strings: 1.0 for equal keys, and a drifted value costs the same against
every recorded call of the same shape, so such calls tie exactly instead of by noise.

A call can only win when its protocol and kind (method, command, Expect: 100-continue)
equal the request's and its score reaches the threshold. Ties on the best score go, in order,
to: the call byte-identical to the request; the closest values (`detail`, which keeps SQL
literals and Redis values); a call not used yet (used calls are preferred last); the
recorded connection this live connection matched last; the first call after the last match
(this connection's, else the session's); the first call.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from rapidfuzz import process
from rapidfuzz.distance import Indel

from koala_store.model import CallOutbound
from koala_store.wire import FASTCGI, HTTP, MYSQL, REDIS
from koala_store.wire.normalize import DEFAULT_VOLATILE_HEADERS, Normalized, Normalizer

from .base import (
    NEAR_MISSES,
    ConnectionState,
    MatcherError,
    MatchResult,
    SessionMatcher,
    Strategy,
    check_options,
    check_threshold,
    fmt,
)

DEFAULT_THRESHOLD = 0.8
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


def _header_names(value: object) -> frozenset[str]:
    names = None
    if not isinstance(value, (str, bytes)):
        try:
            names = tuple(value)  # type: ignore[call-overload]
        except TypeError:
            pass
    if names is None or not all(isinstance(h, str) for h in names):
        raise MatcherError(
            f"option volatile_headers={value!r} for matcher 'fuzzy' is not a collection of header "
            "names; pass e.g. matchers.normalize.DEFAULT_VOLATILE_HEADERS | {'x-sign'}"
        )
    return frozenset(h.lower() for h in names)


class FuzzyStrategy(Strategy):
    """Ours: normalise per protocol, compare with rapidfuzz, prefer used calls last.

    Options: `threshold` (0..1, default 0.8), `mask_literals` (mask SQL literals, default
    True), `mask_volatile` (mask id- and clock-shaped values, default True),
    `volatile_headers` (HTTP header names ignored; default `DEFAULT_VOLATILE_HEADERS`).
    """

    name = "fuzzy"
    OPTIONS = ("threshold", "mask_literals", "mask_volatile", "volatile_headers")

    def __init__(
        self,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        mask_literals: bool = True,
        mask_volatile: bool = True,
        volatile_headers: Iterable[str] = DEFAULT_VOLATILE_HEADERS,
        **options: object,
    ):
        check_options(self.name, options, self.OPTIONS)
        self.threshold = check_threshold(self.name, threshold)
        for opt, value in (("mask_literals", mask_literals), ("mask_volatile", mask_volatile)):
            if not isinstance(value, bool):
                raise MatcherError(f"option {opt}={value!r} for matcher 'fuzzy' must be True or False")
        self.volatile_headers = _header_names(volatile_headers)
        self.mask_literals = mask_literals
        self.mask_volatile = mask_volatile
        self._normalizer = Normalizer(volatile_headers=self.volatile_headers, mask_literals=mask_literals, mask_volatile=mask_volatile)

    def for_session(self, calls: Sequence[CallOutbound]) -> FuzzySessionMatcher:
        return FuzzySessionMatcher(calls, self.threshold, self._normalizer)


__all__ = ["DEFAULT_THRESHOLD", "FuzzySessionMatcher", "FuzzyStrategy"]
