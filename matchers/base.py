"""What every strategy shares: per-connection and per-session state, candidate lists (results,
MatchResult and NearMiss, live in koala_store.matching and are re-exported here).

A `Strategy` is configuration only. `Strategy.for_session(calls)` returns a `SessionMatcher`
holding one session's state (`outs_last`, how often each recorded call was used) and the
strategy's preprocessing of the candidates, done once. Each live outbound connection gets a
`ConnectionState` from `SessionMatcher.connection()`; the runner keeps it beside its socket
and passes it to every `match`/`greeting` for that socket.

Positions are indexes into the `calls` given to `for_session` (recorded order, 0..n-1) and
stay session-wide when a `peer` narrows the candidates.
"""

from __future__ import annotations

import abc
import heapq
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from koala_store.errors import KoalaError
from koala_store.matching import MatchResult, NearMiss
from koala_store.model import CallOutbound

NEAR_MISSES = 3


class MatcherError(KoalaError, ValueError):
    """A bad strategy name, option or connection state; the message names the input and the fix."""


class UnknownStrategyError(MatcherError, LookupError):
    """No built-in or installed strategy has that name."""


_owners = itertools.count(1)


@dataclass(slots=True)
class ConnectionState:
    """Matching state of one live outbound connection.

    `last` is the position matched last on this connection in the owning session (-1 when
    fresh or after a failed match). `identity_counts` counts matches per recorded identity
    `ip:port#fd`; with `last_identity` and `matches` it survives a carry-over to the next
    session (see `SessionMatcher.connection`), since a long-lived connection keeps its
    recorded identity from one session to the next.
    """

    owner: int
    last: int = -1
    identity_counts: dict[str, int] = field(default_factory=dict)
    last_identity: str | None = None
    matches: int = 0

    @property
    def fresh(self) -> bool:
        return self.last < 0


def fmt(value: float) -> str:
    return f"{value:.2f}"


def check_threshold(strategy: str, value: object) -> float:
    """A threshold as a float in 0..1, or one clear error naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= 1:
        raise MatcherError(f"threshold {value!r} for matcher {strategy!r} is not a number between 0 and 1; pass e.g. threshold=0.7")
    return float(value)


def check_options(strategy: str, options: dict[str, object], known: Iterable[str]) -> None:
    known = sorted(known)
    unknown = sorted(set(options) - set(known))
    if unknown:
        allowed = ", ".join(known) if known else "none"
        raise MatcherError(f"unknown option {unknown[0]!r} for matcher {strategy!r}; its options are: {allowed}")


class Strategy(abc.ABC):
    """A matching strategy: configuration, and a factory of per-session matchers."""

    name: ClassVar[str]
    OPTIONS: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def for_session(self, calls: Sequence[CallOutbound]) -> SessionMatcher:
        """Preprocess one session's recorded outbound calls (positions 0..n-1 in this order)."""

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.OPTIONS)
        return f"matchers.get({self.name!r}{', ' if opts else ''}{opts})"


class SessionMatcher(abc.ABC):
    """One session's candidates, their preprocessing and the session's matching state.

    Not thread-safe: one session is matched from one thread (or one event loop) at a time.
    A strategy implements `_match(request, conn, eligible)` and ends it with `_accept` or
    `_reject`, which apply the spec's state updates; greetings, peers, connection checks
    and near misses come from here.
    """

    strategy: ClassVar[str]

    def __init__(self, calls: Sequence[CallOutbound]):
        self.calls: tuple[CallOutbound, ...] = tuple(calls)
        self._owner = next(_owners)
        # Highest position matched so far in the session (-1 at start).
        self.outs_last = -1
        # How often each recorded call answered a live one ("missed" calls stay at 0).
        self.use_counts = [0] * len(self.calls)
        self._identities = [c.connection for c in self.calls]
        self._addresses = [c.peer.address for c in self.calls]
        self._eligible_cache: dict[tuple[bool, str | None], tuple[int, ...]] = {}

    # --- public API ---------------------------------------------------------------------

    def connection(self, previous: ConnectionState | None = None) -> ConnectionState:
        """State for a live connection; pass `previous` to carry a long-lived one over.

        A carried connection keeps its identity history (so ties still prefer the recorded
        connection it has been answering from) but starts with `last = -1`: its old `last`
        indexes another session's calls, so in this session it is fresh.
        """
        if previous is None:
            return ConnectionState(owner=self._owner)
        if not isinstance(previous, ConnectionState):
            raise MatcherError(f"cannot carry {type(previous).__name__} over as a connection; pass the ConnectionState the previous session's matcher returned")
        return ConnectionState(
            owner=self._owner,
            identity_counts=dict(previous.identity_counts),
            last_identity=previous.last_identity,
            matches=previous.matches,
        )

    def match(self, request: bytes, conn: ConnectionState, *, peer: str | None = None) -> MatchResult:
        """Choose the recorded call that answers `request` on `conn`, and update the state."""
        self._check(conn)
        if not request:
            return self._reject(conn, 0.0, (), _no_reason, "empty request: use greeting() for a peer that speaks first")
        eligible = self._eligible(peer, greeting=False)
        if not eligible:
            return self._reject(conn, 0.0, (), _no_reason, self._nothing_for(peer, "recorded call with a request"))
        return self._match(bytes(request), conn, eligible)

    def greeting(self, conn: ConnectionState, *, peer: str | None = None) -> MatchResult:
        """The recorded greeting (a call with an empty request) for a client that sent nothing."""
        self._check(conn)
        greetings = self._eligible(peer, greeting=True)
        if not greetings:
            return self._reject(conn, 0.0, (), _no_reason, self._nothing_for(peer, "greeting"))
        winner, why = self._break_tie(list(greetings), conn, prefer_unused=self.prefers_unused)
        losers = [(p, 1.0) for p in greetings if p != winner]
        return self._accept(conn, winner, 1.0, losers, why, "recorded greeting")

    def missed(self) -> list[int]:
        """Positions of recorded calls that no live call used (side effects that vanished)."""
        return [p for p, n in enumerate(self.use_counts) if n == 0]

    # --- for subclasses ---------------------------------------------------------------

    # Whether ties (and greetings) prefer a recorded call not used yet.
    prefers_unused: ClassVar[bool] = False
    # Whether a matched call's result lists its near misses. A caller that only reports the
    # near misses of unmatched calls (the replay mock) sets it False, and a strategy may
    # then decide faster; the decision itself never changes.
    explain_matches: bool = True

    @abc.abstractmethod
    def _match(self, request: bytes, conn: ConnectionState, eligible: tuple[int, ...]) -> MatchResult:
        """Match a non-empty request among `eligible` positions (ascending)."""

    def _check(self, conn: ConnectionState) -> None:
        if not isinstance(conn, ConnectionState):
            raise MatcherError(f"expected a ConnectionState, got {type(conn).__name__}; get one from session_matcher.connection()")
        if conn.owner != self._owner:
            raise MatcherError(
                "this ConnectionState belongs to another session's matcher; carry a long-lived connection over with session_matcher.connection(previous_state)"
            )

    def _eligible(self, peer: str | None, *, greeting: bool) -> tuple[int, ...]:
        key = (greeting, peer)
        cached = self._eligible_cache.get(key)
        if cached is None:
            cached = tuple(p for p, call in enumerate(self.calls) if (not call.request) == greeting and (peer is None or self._addresses[p] == peer))
            self._eligible_cache[key] = cached
        return cached

    @staticmethod
    def _nothing_for(peer: str | None, what: str) -> str:
        return f"no {what} recorded for peer {peer}" if peer else f"no {what} in the session"

    def _anchor(self, conn: ConnectionState) -> int:
        """Where the next call is expected: after this connection's last match, else the session's."""
        return conn.last if conn.last >= 0 else self.outs_last

    def _break_tie(self, tied: list[int], conn: ConnectionState, *, prefer_unused: bool = False):
        """Koala's tie rules for equal scores, in order (tied is ascending):

        [unused calls first, for strategies that track use]; the identity `ip:port#fd`
        matched most often on this connection (when exactly one call has that count, it
        wins; among several, the first at or after the anchor); else the first tied call at
        or after `last + 1` (`outs_last + 1` on a fresh connection); else the first.
        Returns the winner and a function giving a loser's reason.
        """
        pool = tied
        if prefer_unused:
            unused = [p for p in tied if self.use_counts[p] == 0]
            if unused and len(unused) < len(tied):
                pool = unused
        counts = conn.identity_counts
        top: list[int] = []
        best_count = 0
        for p in pool:
            c = counts.get(self._identities[p], 0)
            if c > best_count:
                best_count, top = c, [p]
            elif c == best_count and c > 0:
                top.append(p)
        start = self._anchor(conn) + 1
        winner: int | None = None
        rule = ""
        if len(top) == 1:
            winner, rule = top[0], "identity"
        else:
            for group, name in ((top, "identity-order"), (pool, "order")):
                winner = next((p for p in group if p >= start), None)
                if winner is not None:
                    rule = name
                    break
            if winner is None:
                winner, rule = pool[0], "first"
        ident = self._identities[winner]
        anchor = start - 1

        def why(p: int) -> str:
            if pool is not tied and p not in pool:
                return "already used; an unused call scored as well"
            if rule == "identity" or (rule == "identity-order" and p not in top):
                return f"tied with the winner, whose recorded connection {ident} matched more often on this connection"
            if rule in ("identity-order", "order") and anchor >= 0:
                if p < start:
                    return f"tied with the winner but at or before the last match (position {anchor})"
                return f"tied with the winner, the first tied call after the last match (position {anchor})"
            return "tied with the winner, which comes first"

        return winner, why

    def _near_misses(self, scored: Iterable[tuple[int, float]], why: Callable[[int], str]) -> tuple[NearMiss, ...]:
        """The best losers (score > 0), with reasons computed for those three only."""
        if not scored:
            return ()
        top = heapq.nsmallest(NEAR_MISSES, ((-s, p) for p, s in scored if s > 0))
        return tuple(NearMiss(position=p, action_index=self.calls[p].action_index, score=-neg, reason=why(p)) for neg, p in top)

    def _accept(
        self,
        conn: ConnectionState,
        position: int,
        score: float,
        losers: Iterable[tuple[int, float]],
        why: Callable[[int], str],
        reason: str,
    ) -> MatchResult:
        """Record a match: `losers` are the other scored candidates, `why(p)` says why p lost."""
        near_misses = self._near_misses(losers, why)  # before the state changes: reasons read it
        conn.last = position
        ident = self._identities[position]
        conn.identity_counts[ident] = conn.identity_counts.get(ident, 0) + 1
        conn.last_identity = ident
        conn.matches += 1
        if position > self.outs_last:
            self.outs_last = position
        self.use_counts[position] += 1
        return MatchResult(
            call=self.calls[position],
            position=position,
            score=score,
            strategy=self.strategy,
            near_misses=near_misses,
            reason=reason,
        )

    def _reject(
        self,
        conn: ConnectionState,
        score: float,
        losers: Iterable[tuple[int, float]],
        why: Callable[[int], str],
        reason: str,
    ) -> MatchResult:
        near_misses = self._near_misses(losers, why)
        # A failure resets the connection to fresh (identity history stays, as in Koala).
        conn.last = -1
        return MatchResult(
            call=None,
            position=None,
            score=score,
            strategy=self.strategy,
            near_misses=near_misses,
            reason=reason,
        )


def _no_reason(p: int) -> str:
    return ""
