"""The SessionStore protocol every backend implements, and what its calls return.

Queries are Lucene strings (koala_store.query) or already parsed trees; every backend gives
the same answer to the same query, which tests/test_store_contract.py checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from msgspec import Struct, field

from ..errors import StoreError
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
    """One session a store would not keep, and why; `transient` when the store was away (the
    same session may be stored later), not refusing it."""

    session_id: str
    reason: str
    transient: bool = False


# A bulk load's end is told how many indexes it builds and returns what to call after each
# (a progress bar's advance): SqliteStore.bulk_load, ingest's building_indexes.
Building = Callable[[int], Callable[[], None]]


class PutResult(Struct):
    stored: int = 0  # written or replaced
    unchanged: int = 0  # already stored byte for byte
    rejected: list[Rejected] = field(default_factory=list)

    def add(self, other: "PutResult") -> None:
        self.stored += other.stored
        self.unchanged += other.unchanged
        self.rejected.extend(other.rejected)


class Skipped(Struct):
    """A stored document a read could not turn into a session (named by its id), and why:
    reads go on without it, and the store lists it once in `skipped`."""

    document: str
    reason: str


class StoreWriteError(StoreError):
    """Writing failed for good (disk full, store gone) partway: `result` is what had been
    written before; the session batch that failed and everything after it were not."""

    def __init__(self, message: str, result: PutResult):
        super().__init__(message)
        self.result = result


class IndexesNotBuilt(StoreError):
    """A bulk load's end could not build the keyword indexes (SqliteStore.bulk_load): every
    session written is stored, queries scan until the indexes exist, and opening the store
    for writing builds them."""


class SkipLog:
    """The documents skipped so far, each once (a command opens one store)."""

    def __init__(self) -> None:
        self.items: list[Skipped] = []
        self._seen: set[str] = set()

    def add(self, document: str, reason: str) -> None:
        if document not in self._seen:
            self._seen.add(document)
            self.items.append(Skipped(document, reason))


@runtime_checkable
class SessionStore(Protocol):
    """Sessions keyed by SessionId: writing one twice keeps one.

    Opening never creates anything on a read-only store (`readonly=True`: search, show,
    export, runs); the first write, or `init()`, creates the file, tables, templates and
    indices a store needs.
    """

    url: str
    # Documents reads had to pass over (they do not convert to a session), each once.
    skipped: list[Skipped]

    def init(self) -> None:
        """Create everything the store needs (idempotent); `koala store init`."""
        ...

    def put_many(self, sessions: Iterable[Session]) -> PutResult:
        """Store sessions in batches; a session that fails is reported, the others kept."""
        ...

    def get(self, session_id: str) -> Session | None: ...

    def count(self, query: Query = "*", *, at_most: int | None = None) -> int:
        """How many sessions match. With `at_most`, counting stops once more than that many
        are found, and at_most + 1 then says "more than at_most" (as Elasticsearch's
        track_total_hits does): a listing's total without counting a million matches."""
        ...

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

    def refresh(self, progress: Callable[[int], None] | None = None) -> None:
        """Make everything written so far visible to every query (and fast to find);
        `progress` is told how many sessions each step indexed."""
        ...

    def pending_text(self) -> int:
        """Sessions a refresh would still index (0 where refreshing costs nothing)."""
        ...

    @property
    def runs(self) -> "RunStore":
        """Replay runs and their comparisons, kept beside the sessions."""
        ...

    def close(self) -> None: ...
