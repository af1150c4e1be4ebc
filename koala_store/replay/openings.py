"""Recorded connection openings, to answer the set-up of any new live connection.

A pooled client opens its connection to a dependency once: the greeting, authentication and
session set-up talks (koala_store.wire.setup) are recorded only in the session that opened
it. When replay runs a subset of sessions, or the service reconnects mid-run, a new live
connection needs those talks answered although the session being replayed does not hold
them. The library collects every recorded opening of each dependency (from the store, not
only the replayed sessions) and answers a live connection's set-up from one of them, with
the protocol-aware `fuzzy` matcher whatever strategy the run uses (authentication packets
differ run to run in scrambles and client attributes; normalisation sees past them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

import matchers
from matchers import ConnectionState, MatchResult, SessionMatcher

from ..model import CallOutbound, Session
from ..store.base import SessionStore
from ..wire import UNKNOWN
from ..wire.setup import opening_positions, peer_protocols

MAX_OPENINGS_PER_PEER = 16
# Sessions read per dependency when building the library: openings come with the service's
# first requests after a start, so the oldest sessions of a dependency hold them.
SCAN_PER_PEER = 500


class Opening(msgspec.Struct, frozen=True):
    """The set-up talks of one recorded connection, in recorded order."""

    session_id: str
    peer: str  # recorded peer ip:port
    calls: tuple[CallOutbound, ...]

    @property
    def has_greeting(self) -> bool:
        return any(not call.request for call in self.calls)


class Answer(msgspec.Struct, frozen=True):
    """A set-up talk answered from the library: the recorded call and where it came from."""

    result: MatchResult
    session_id: str

    @property
    def response(self) -> bytes:
        assert self.result.call is not None
        return self.result.call.response


def openings_of(session: Session) -> list[Opening]:
    """The connection openings a session recorded, one per connection it opened."""
    calls = session.outbound_calls
    positions = opening_positions(calls)
    by_connection: dict[str, list[CallOutbound]] = {}
    for p in sorted(positions):
        by_connection.setdefault(calls[p].connection, []).append(calls[p])
    return [Opening(session.session_id, run[0].peer.address, tuple(run)) for run in by_connection.values()]


def peer_query(peer: str) -> str:
    """A query for the sessions that talked to `peer` (quoted: the colon is not a field)."""
    return 'outbound.peer:"' + peer.replace("\\", "\\\\").replace('"', '\\"') + '"'


class OpeningLibrary:
    """Recorded openings per dependency, and the matching of live set-up talks against them."""

    def __init__(self) -> None:
        self._strategy = matchers.get("fuzzy")
        self._by_peer: dict[str, list[Opening]] = {}
        self._seen: set[tuple[str, tuple[bytes, ...]]] = set()

    def add(self, session: Session) -> None:
        """Keep the openings `session` recorded (an opening already known is kept once)."""
        for opening in openings_of(session):
            self.add_opening(opening)

    def add_opening(self, opening: Opening) -> None:
        kept = self._by_peer.setdefault(opening.peer, [])
        key = (opening.peer, tuple(call.request for call in opening.calls))
        if len(kept) < MAX_OPENINGS_PER_PEER and key not in self._seen:
            self._seen.add(key)
            kept.append(opening)

    def all(self) -> list[Opening]:
        """Every opening kept, of every dependency (to hand the library to another process)."""
        return [opening for openings in self._by_peer.values() for opening in openings]

    def load(self, store: SessionStore, peers: Iterable[str], *, per_peer: int = SCAN_PER_PEER) -> None:
        """Collect the openings of each dependency from the store's oldest sessions with it."""
        for peer in peers:
            for session in store.scan(peer_query(peer), limit=per_peer):
                self.add(session)
                if len(self._by_peer.get(peer, ())) >= MAX_OPENINGS_PER_PEER:
                    break

    def protocols(self) -> dict[str, str]:
        """What each dependency with a recorded opening speaks."""
        out: dict[str, str] = {}
        for peer, openings in self._by_peer.items():
            for opening in openings:
                protocol = peer_protocols(opening.calls).get(peer, UNKNOWN)
                if protocol != UNKNOWN:
                    out[peer] = protocol
                    break
        return out

    def openings(self, peer: str) -> Sequence[Opening]:
        return self._by_peer.get(peer, ())

    def connection(self, peer: str) -> LiveOpening:
        """Matching state for one new live connection to `peer`."""
        return LiveOpening(self, peer)

    def _matcher(self, opening: Opening) -> SessionMatcher:
        return self._strategy.for_session(opening.calls)


class LiveOpening:
    """One live connection's set-up, answered from one recorded opening once a talk matched
    it (the greeting and the authentication that answers it stay together)."""

    def __init__(self, library: OpeningLibrary, peer: str):
        self.library = library
        self.peer = peer
        self._bound: tuple[Opening, SessionMatcher, ConnectionState] | None = None

    def greeting(self) -> Answer | None:
        """The recorded greeting of a dependency that speaks first (MySQL)."""
        if self._bound is None:
            opening = next((o for o in self.library.openings(self.peer) if o.has_greeting), None)
            if opening is None:
                return None
            self._bind(opening)
        assert self._bound is not None
        opening, matcher, state = self._bound
        result = matcher.greeting(state)
        return Answer(result, opening.session_id) if result.matched else None

    def match(self, request: bytes) -> Answer | None:
        """The recorded answer to a set-up talk, or None when no opening has one."""
        if self._bound is not None:
            opening, matcher, state = self._bound
            result = matcher.match(request, state)
            if result.matched:
                return Answer(result, opening.session_id)
        best: tuple[float, Opening, SessionMatcher, ConnectionState, MatchResult] | None = None
        for opening in self.library.openings(self.peer):
            if self._bound is not None and opening is self._bound[0]:
                continue
            matcher = self.library._matcher(opening)
            state = matcher.connection()
            result = matcher.match(request, state)
            if result.matched and (best is None or result.score > best[0]):
                best = (result.score, opening, matcher, state, result)
        if best is None:
            return None
        _, opening, matcher, state, result = best
        self._bound = (opening, matcher, state)
        return Answer(result, opening.session_id)

    def _bind(self, opening: Opening) -> None:
        matcher = self.library._matcher(opening)
        self._bound = (opening, matcher, matcher.connection())
