"""The SessionStore protocol every backend implements, and what its calls return.

Queries are Lucene strings (koala_store.query) or already parsed trees; every backend gives
the same answer to the same query, which tests/test_store_contract.py checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from msgspec import Struct, field

from ..model import Session
from ..query import ir
from ..query.parse import parse

if TYPE_CHECKING:
    from ..results import RunStore

Query = str | ir.Node


def as_tree(query: Query) -> ir.Node:
    return parse(query) if isinstance(query, str) else query


def peers_by_scan(sessions: Iterable[Session]) -> dict[str, int]:
    """`outbound_peers` the slow way, for stores or queries an index cannot aggregate."""
    counts: dict[str, int] = {}
    for session in sessions:
        for peer in {call.peer.address for call in session.outbound_calls}:
            counts[peer] = counts.get(peer, 0) + 1
    return counts


class Rejected(Struct):
    """One session a store would not keep, and why."""

    session_id: str
    reason: str


class PutResult(Struct):
    stored: int = 0  # written or replaced
    unchanged: int = 0  # already stored byte for byte
    rejected: list[Rejected] = field(default_factory=list)

    def add(self, other: "PutResult") -> None:
        self.stored += other.stored
        self.unchanged += other.unchanged
        self.rejected.extend(other.rejected)


@runtime_checkable
class SessionStore(Protocol):
    """Sessions keyed by SessionId: writing one twice keeps one."""

    url: str

    def put_many(self, sessions: Iterable[Session]) -> PutResult:
        """Store sessions in batches; a session that fails is reported, the others kept."""
        ...

    def get(self, session_id: str) -> Session | None: ...

    def count(self, query: Query = "*") -> int: ...

    def scan(self, query: Query = "*", *, limit: int | None = None) -> Iterator[Session]:
        """Matching sessions in recorded order (recorded_at, then session_id), streamed."""
        ...

    def outbound_peers(self, query: Query = "*") -> dict[str, int]:
        """The recorded outbound peers (`ip:port`) of the matching sessions, each with how
        many of those sessions called it (what a replay of them must mock)."""
        ...

    def delete(self, query: Query) -> int:
        """Delete matching sessions; return how many went."""
        ...

    def refresh(self) -> None:
        """Make everything written so far visible to every query."""
        ...

    @property
    def runs(self) -> "RunStore":
        """Replay runs and their comparisons, kept beside the sessions."""
        ...

    def close(self) -> None: ...
