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

How it stays fast (the decisions above are the same either way): a session only parses its
calls up front (protocol, kind and a bucket: see wire.normalize.Prepared); a call is
normalised when a request of its kind needs it (small sessions: all at once). When scoring
every call of the request's kind costs little, every one is scored and the near misses are
the best losers of all. Otherwise an equal key decides first: only calls of the request's
bucket can have one, and no other call can tie with 1.0; among equal keys, byte-identical
calls, then calls with equal values, win before any values are compared. Without an equal
key, the likeliest call is scored first and its score is the cut-off under which rapidfuzz
drops the others cheaply. In those two cases a matched call's near misses are the calls it
tied with; a request that matches nothing is always scored against every call, for its near
misses.
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_left
from collections.abc import Iterable, Sequence

from rapidfuzz import process
from rapidfuzz.distance import Indel

from koala_store.model import CallOutbound
from koala_store.wire import FASTCGI, HTTP, MYSQL, REDIS
from koala_store.wire.normalize import DEFAULT_VOLATILE_HEADERS, Normalizer, Prepared

try:  # compiled by `pip install` where a C compiler is present (setup.py); optional
    from ._fuzzylex import encode_ascii as _compiled_encode_ascii
    from ._fuzzylex import flush_alphabet as _compiled_flush_alphabet
    from ._fuzzylex import lexeme_cache as _compiled_lexeme_cache
except ImportError:  # pragma: no cover - exercised where the extension did not build
    _compiled_encode_ascii = _compiled_lexeme_cache = _compiled_flush_alphabet = None

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
# rapidfuzz's score_cutoff drops scores up to ~1e-7 above it: cut-offs are set this much lower.
CUTOFF_SLACK = 1e-5
# Sessions whose requests hold at most this many bytes are normalised whole when prepared.
EAGER_BYTES = 64 * 1024
# Scoring every candidate is done when it costs under ~2 ms: rapidfuzz's bit-parallel Indel
# takes ~2 ns per candidate character and 64 query characters, normalising ~200 ns per byte.
FULL_SCORING_BUDGET_NS = 2_000_000
SCORE_NS = 2
NORMALISE_NS = 200

_LEXEME = re.compile(r"<(?:time|uuid|num|date|hex)>|\w+|[^\w\s]")
_UNKNOWN = "\U0010ffff"  # never assigned: a lexeme no candidate has
_FIRST_CODE = 0x100
_LAST_CODE = 0x10FFFE
_KIND_LABEL = {HTTP: "method", FASTCGI: "method", REDIS: "command", MYSQL: "command"}

Signature = tuple[str, str, bool]  # protocol, kind, Expect: 100-continue


def _weight(lexeme: str) -> int:
    return 1 + min(len(lexeme), 12) // 4


def _lexemes(text: str) -> list[str]:
    return _LEXEME.findall(text) or list(text)  # all-blank text still has content


def _same_lexemes(a: str, b: str) -> bool:
    """Whether two normalised texts encode alike (equal but for whitespace between lexemes)."""
    if a == b:
        return True
    if "".join(a.split()) != "".join(b.split()):  # lexemes are the text's non-blank characters
        return False
    return _lexemes(a) == _lexemes(b)


def _self_score(text: str) -> float:
    """The similarity of `text`'s encoding to itself (the same for every text: 1.0)."""
    return Indel.normalized_similarity(text[:1], text[:1])


def _no_reason(p: int) -> str:
    return ""


@functools.lru_cache(maxsize=64)
def _identical_reason(threshold: float) -> str:
    """The reason a byte-identical request's match gives (made once per threshold, not per talk)."""
    return f"similarity {fmt(1.0)} (threshold {fmt(threshold)})"


class FuzzySessionMatcher(SessionMatcher):
    strategy = "fuzzy"
    prefers_unused = True

    def __init__(
        self,
        calls: Sequence[CallOutbound],
        threshold: float,
        normalizer: Normalizer,
        *,
        eager_bytes: int = EAGER_BYTES,
        full_scoring_budget_ns: int = FULL_SCORING_BUDGET_NS,
    ):
        super().__init__(calls)
        self.threshold = threshold
        self._normalizer = normalizer
        self._budget_ns = full_scoring_budget_ns
        self._eager_bytes = eager_bytes
        self._ready = False  # calls parsed (see _prepare_calls)
        self._eligible_sets: dict[int, tuple[tuple[int, ...], frozenset[int]]] = {}
        # Calls by their exact request bytes: a live request byte for byte a recorded one (an
        # unchanged build's usual case) is decided among those without any parse when the
        # caller does not ask for a matched call's near misses (`explain_matches`).
        self._identical: dict[bytes, list[int]] = {}
        for p, call in enumerate(self.calls):
            if call.request:
                self._identical.setdefault(call.request, []).append(p)

    def _prepare_calls(self) -> None:
        """Parse the calls (their keys and details come on first use), with the calls of each
        bucket and, for small sessions, every key at once. Done on the first request that
        needs it, so a replay whose requests are all byte-identical never pays for it."""
        if self._ready:
            return
        self._ready = True
        normalizer = self._normalizer
        self._alphabet: dict[str, str] = {}
        # The compiled encoder's codes by lexeme bytes (matchers/_fuzzylex.c), kept with the alphabet.
        self._lexeme_cache = _compiled_lexeme_cache(self._alphabet) if _compiled_lexeme_cache is not None else None
        self._prepared: list[Prepared | None] = [normalizer.prepare(c.request) if c.request else None for c in self.calls]
        # A live request byte for byte a recorded one needs no parse of its own: its
        # preparation is that call's.
        self._by_bytes: dict[bytes, Prepared] = {c.request: n for c, n in zip(self.calls, self._prepared, strict=True) if n is not None}
        self._sigs: list[Signature | None] = [(n.protocol, n.kind, n.expect) if n else None for n in self._prepared]
        self._keys: list[str | None] = [None] * len(self.calls)
        self._details: dict[int, str] = {}
        self._buckets: dict[tuple[Signature, int], list[int]] = {}
        for p, prepared in enumerate(self._prepared):
            if prepared is not None:
                self._buckets.setdefault((self._sigs[p], prepared.bucket), []).append(p)  # type: ignore[index]
        self._choices: dict[int, tuple[tuple[int, ...], list[str]]] = {}
        self._splits: dict[tuple, tuple[tuple[int, ...], tuple[int, ...], frozenset[int], tuple[int, ...]]] = {}
        if sum(n.size for n in self._prepared if n) <= self._eager_bytes:
            for p, prepared in enumerate(self._prepared):
                if prepared is not None:
                    self._key(p)

    def _encode(self, text: str, *, grow: bool) -> str:
        """Lexemes as characters of the session's alphabet, repeated by length class."""
        if self._lexeme_cache is not None:
            # The same codes, assigned in the same order, ~10x faster (matchers/_fuzzylex.c).
            code = _compiled_encode_ascii(text, self._alphabet, grow, self._lexeme_cache)
            if code is not None:
                return code
        return self._encode_python(text, grow=grow)

    def _encode_python(self, text: str, *, grow: bool) -> str:
        """`_encode` for any text: the reference the compiled version follows."""
        self._whole_alphabet()
        lexemes = _lexemes(text)
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

    def _whole_alphabet(self) -> dict[str, str]:
        """The alphabet with every code the compiled encoder gave (it writes new lexemes into
        the dict only when asked: see _fuzzylex.c's Cache.pending)."""
        if self._lexeme_cache is not None:
            _compiled_flush_alphabet(self._lexeme_cache)
        return self._alphabet

    def _new_code(self, lexeme: str) -> str:
        # matchers/_fuzzylex.c makes codes the same way: keep the two alike.
        alphabet = self._alphabet
        n = _FIRST_CODE + len(alphabet)
        if n >= 0xD800:
            n += 0x800  # skip surrogates
        if n > _LAST_CODE:
            n = _FIRST_CODE + hash(lexeme) % (0xD800 - _FIRST_CODE)  # shared: rare and harmless
        code = alphabet[lexeme] = chr(n) * _weight(lexeme)
        return code

    def _key(self, p: int) -> str:
        """Call p's encoded key, normalised now if it was not yet."""
        key = self._keys[p]
        if key is None:
            prepared = self._prepared[p]
            key = self._keys[p] = self._encode(prepared.key, grow=True) if prepared else ""
        return key

    def _detail(self, p: int) -> str:
        code = self._details.get(p)
        if code is None:
            prepared = self._prepared[p]
            code = self._details[p] = self._encode(prepared.detail, grow=True) if prepared else ""
        return code

    def _batch(self, positions: tuple[int, ...]) -> list[str]:
        """The encoded keys of `positions` (a tuple cached by the caller), cached by identity."""
        cached = self._choices.get(id(positions))
        if cached is None or cached[0] is not positions:
            cached = self._choices[id(positions)] = (positions, [self._key(p) for p in positions])
        return cached[1]

    def _split(self, eligible: tuple[int, ...], sig: Signature) -> tuple[tuple[int, ...], frozenset[int], tuple[int, ...]]:
        """Eligible positions of the request's protocol and kind (also as a set), and those
        scored when every call is: others too when too few calls of the kind exist to fill
        the near misses (cached; calls of another kind never win)."""
        key = (id(eligible), sig)
        cached = self._splits.get(key)
        if cached is None or cached[0] is not eligible:
            same = tuple(p for p in eligible if self._sigs[p] == sig)
            other = tuple(p for p in eligible if self._sigs[p] != sig)
            pool = same + other if other and len(same) <= NEAR_MISSES else same
            cached = self._splits[key] = (eligible, same, frozenset(same), pool)
        return cached[1], cached[2], cached[3]

    def scores(self, request: bytes) -> dict[int, float]:
        """Similarity of `request`'s key to each recorded call with a request, by position (any kind)."""
        self._prepare_calls()
        positions = self._eligible(None, greeting=False)
        choices = self._batch(positions)  # normalises them all first: the query needs their lexemes
        return self._scores(self._encode(self._normalizer.prepare(request).key, grow=False), positions, choices)

    @staticmethod
    def _scores(query: str, positions: Sequence[int], choices: list[str], cutoff: float | None = None) -> dict[int, float]:
        """Exact similarity to every call in `positions` (those reaching `cutoff`, when given)."""
        found = process.extract(query, choices, scorer=Indel.normalized_similarity, processor=None, limit=None, score_cutoff=cutoff)
        return {positions[i]: score for _, score, i in found}

    def _gate(self, norm: Prepared, p: int) -> str:
        """Why recorded call p (of another protocol or kind) can never answer this request."""
        cand = self._prepared[p]
        assert cand is not None
        if cand.protocol != norm.protocol:
            return f"protocol {cand.protocol} differs from the request's {norm.protocol}"
        if cand.kind != norm.kind:
            label = _KIND_LABEL.get(norm.protocol, "kind")
            return f"{label} {cand.kind or '-'} differs from the request's {norm.kind or '-'}"
        return "Expect: 100-continue differs"

    def _match(self, request: bytes, conn: ConnectionState, eligible: tuple[int, ...]) -> MatchResult:
        if not self.explain_matches and (identical := self._identical.get(request)):
            result = self._match_identical(request, conn, identical, eligible)
            if result is not None:
                return result
        self._prepare_calls()
        norm = self._by_bytes.get(request) or self._normalizer.prepare(request)
        sig = (norm.protocol, norm.kind, norm.expect)
        same, same_set, pool = self._split(eligible, sig)
        if same and not self._affordable(pool, norm):
            result = self._match_fast(request, norm, conn, same, same_set)
            if result is not None:
                return result
        return self._match_all(request, norm, conn, same, pool)

    def _match_identical(self, request: bytes, conn: ConnectionState, identical: list[int], eligible: tuple[int, ...]) -> MatchResult | None:
        """The decision full scoring would make for a request byte-identical to recorded calls:
        they score 1.0 and rank first among any ties (the first tie rule), and among
        themselves the values are equal, so the remaining tie rules decide. No near misses."""
        if len(identical) == 1:  # the usual case: found in the ascending positions, no set made
            p = identical[0]
            at = bisect_left(eligible, p)
            tied = identical if at < len(eligible) and eligible[at] == p else []
        else:
            tied = [p for p in identical if p in self._eligible_set(eligible)]
        if not tied:
            return None
        winner = tied[0]
        if len(tied) > 1:
            anchor = self._anchor(conn)
            last = conn.last_identity
            winner = max(tied, key=lambda p: (self.use_counts[p] == 0, last is not None and self._identities[p] == last, p > anchor, -p))
        return self._accept(conn, winner, 1.0, (), _no_reason, _identical_reason(self.threshold))

    def _eligible_set(self, eligible: tuple[int, ...]) -> frozenset[int]:
        cached = self._eligible_sets.get(id(eligible))
        if cached is None or cached[0] is not eligible:
            cached = self._eligible_sets[id(eligible)] = (eligible, frozenset(eligible))
        return cached[1]

    def _affordable(self, pool: tuple[int, ...], norm: Prepared) -> bool:
        """Whether scoring every call of `pool` (normalising those not normalised yet) is cheap."""
        words = 1 + norm.size // 64
        cost = 0
        for p in pool:
            key = self._keys[p]
            if key is None:
                size = self._prepared[p].size  # type: ignore[union-attr]
                cost += size * (words * SCORE_NS + NORMALISE_NS)
            else:
                cost += len(key) * words * SCORE_NS
            if cost > self._budget_ns:
                return False
        return True

    def _match_all(self, request: bytes, norm: Prepared, conn: ConnectionState, same: tuple[int, ...], pool: tuple[int, ...]) -> MatchResult:
        """Score every call of `pool`: the best wins, the near misses are the best of the rest."""
        choices = self._batch(pool)  # normalised before the query is encoded: it needs their lexemes
        query = self._encode(norm.key, grow=False)
        scores = self._scores(query, pool, choices)
        threshold = self.threshold
        passing = [p for p in same if scores[p] > 0 and scores[p] >= threshold]
        if passing:
            return self._decide(request, norm, conn, scores, passing)
        if same:
            best = max(scores[p] for p in same)
            reason = f"best similarity {fmt(best)} below threshold {fmt(threshold)}"
        else:
            best = 0.0
            label = _KIND_LABEL.get(norm.protocol, "kind")
            reason = f"no recorded {norm.protocol} call with {label} {norm.kind or '-'}"
            if norm.expect:
                reason += " and Expect: 100-continue"
        sig = (norm.protocol, norm.kind, norm.expect)

        def why_unmatched(p: int) -> str:
            if self._sigs[p] != sig:
                return self._gate(norm, p)
            return f"similarity {fmt(scores[p])} below threshold {fmt(threshold)}"

        return self._reject(conn, best, scores.items(), why_unmatched, reason)

    def _match_fast(self, request: bytes, norm: Prepared, conn: ConnectionState, same: tuple[int, ...], same_set: frozenset[int]) -> MatchResult | None:
        """The same winner as `_match_all`, scoring only calls that can still win; None when no
        call reaches the threshold (the caller then scores every call for the near misses)."""
        best = _self_score(norm.key)  # an equal key's score; any other key's is below it by more than a tie
        mates = [p for p in self._buckets.get(((norm.protocol, norm.kind, norm.expect), norm.bucket), ()) if p in same_set]
        if best >= self.threshold:
            contenders, values = self._equal_keys(request, norm, mates)
            if contenders:
                return self._decide(request, norm, conn, dict.fromkeys(contenders, best), contenders, values)
        return self._match_pruned(request, norm, conn, same, frozenset(mates))

    def _equal_keys(self, request: bytes, norm: Prepared, mates: list[int]) -> tuple[list[int], dict[int, float] | None]:
        """The calls among `mates` with the request's key that can still win on the tie rules,
        and their values' similarity when known ([] when no call has the request's key).

        The first rules decide without looking at every equal key: calls byte-identical to the
        request beat the others, and calls whose values (detail) equal the request's have the
        best similarity of values there is; only without either are all values compared."""
        identical = [p for p in mates if self.calls[p].request == request]
        if identical:  # same bytes: same key and values
            return identical, self._equal_values(identical, norm)
        bucket = norm.detail_bucket
        equal_values = [p for p in mates if self._prepared[p].detail_bucket == bucket and self._same_values(p, norm) and self._same_key(p, norm)]  # type: ignore[union-attr]
        if equal_values:
            return equal_values, self._equal_values(equal_values, norm)
        return [p for p in mates if self._same_key(p, norm)], None

    @staticmethod
    def _equal_values(positions: list[int], norm: Prepared) -> dict[int, float]:
        """The similarity of values of calls whose values equal the request's (only ties read it)."""
        if len(positions) == 1:
            return {}
        return dict.fromkeys(positions, _self_score(norm.detail))

    def _same_key(self, p: int, norm: Prepared) -> bool:
        return _same_lexemes(self._prepared[p].key, norm.key)  # type: ignore[union-attr]

    def _same_values(self, p: int, norm: Prepared) -> bool:
        return _same_lexemes(self._prepared[p].detail, norm.detail)  # type: ignore[union-attr]

    def _match_pruned(self, request: bytes, norm: Prepared, conn: ConnectionState, same: tuple[int, ...], mates: frozenset[int]) -> MatchResult | None:
        """No call has the request's key: the likeliest winner (of the request's bucket, else
        the closest in size) is scored first, then every call of the kind with a cut-off just
        under its score, so rapidfuzz drops the calls that cannot reach it at little cost."""
        threshold = self.threshold
        order = sorted(same, key=lambda p: (p not in mates, abs(self._prepared[p].size - norm.size)))  # type: ignore[union-attr]
        choices = [self._key(p) for p in order]
        query = self._encode(norm.key, grow=False)  # after the candidates: it needs their lexemes
        likeliest = Indel.normalized_similarity(query, choices[0])
        # Every call that can be the best or tie with it; the tests below are exact.
        scores = self._scores(query, order, choices, cutoff=max(0.0, max(threshold, likeliest) - TIE_EPSILON - CUTOFF_SLACK))
        passing = sorted(p for p, s in scores.items() if s > 0 and s >= threshold)
        if not passing:
            return None
        best = max(scores[p] for p in passing)
        tied = [p for p in passing if best - scores[p] <= TIE_EPSILON]  # the near misses are those too
        return self._decide(request, norm, conn, {p: scores[p] for p in tied}, tied)

    def _decide(
        self,
        request: bytes,
        norm: Prepared,
        conn: ConnectionState,
        scores: dict[int, float],
        passing: list[int],
        values: dict[int, float] | None = None,
    ) -> MatchResult:
        """The winner among `passing` (ascending positions of the request's kind that reach the
        threshold) by score, then the tie rules; the other scored calls are the losers.
        `values`: the similarity of values of the tied calls, when already known."""
        threshold = self.threshold
        sig = (norm.protocol, norm.kind, norm.expect)
        best = max(scores[p] for p in passing)
        tied = [p for p in passing if best - scores[p] <= TIE_EPSILON]
        winner = tied[0]
        ranks: dict[int, tuple] = {}
        if len(tied) > 1:
            ranks = self._rank(request, norm, conn, tied, values)
            winner = max(tied, key=lambda p: ranks[p])

        def why(p: int) -> str:
            s = scores[p]
            if self._sigs[p] != sig:
                return self._gate(norm, p)
            if s < threshold:
                return f"similarity {fmt(s)} below threshold {fmt(threshold)}"
            if p not in ranks:
                return f"similarity {fmt(s)} below the winner's {fmt(best)}"
            return self._tie_reason(ranks[p], ranks[winner], winner, conn)

        losers = [(p, s) for p, s in scores.items() if p != winner]
        return self._accept(conn, winner, best, losers, why, f"similarity {fmt(best)} (threshold {fmt(threshold)})")

    def _rank(self, request: bytes, norm: Prepared, conn: ConnectionState, tied: list[int], values: dict[int, float] | None = None) -> dict[int, tuple]:
        """A sort key per tied call (greater wins): the tie rules of the module docstring."""
        if values is None:
            details = {p: self._detail(p) for p in tied}  # grows the alphabet first
            query = self._encode(norm.detail, grow=False)
            values = {p: Indel.normalized_similarity(query, details[p]) for p in tied}
        anchor = self._anchor(conn)
        ranks = {}
        for p in tied:
            ranks[p] = (
                self.calls[p].request == request,
                round(values[p], 9),
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
