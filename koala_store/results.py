"""What a replay run produces: one Comparison per session and a RunSummary, and the RunStore
protocol both backends implement to keep them (SQLite tables, Elasticsearch indices).

Plain data beside model.py, so the stores keep results without importing the replay runner
(which imports the stores). Differences and outbound reports come from koala_store.diff,
which depends on neither.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from enum import StrEnum
from typing import Any, Protocol

import msgspec

from .diff.difference import Difference
from .diff.exchange import Exchange
from .diff.outbound import OutboundReport


class Verdict(StrEnum):
    """How replaying one session went; stored as these strings (SQLite, Elasticsearch, JSON)."""

    SAME = "same"
    DIFFERENT = "different"
    ERROR = "error"


SAME, DIFFERENT, ERROR = Verdict.SAME, Verdict.DIFFERENT, Verdict.ERROR
VERDICTS = tuple(Verdict)


class Suppressed(msgspec.Struct, frozen=True):
    """A difference judged to be noise, and by which rule."""

    difference: Difference
    why: str  # "noise-runs": it also differed between repeated replays; "baseline": Diffy's rule


class Comparison(msgspec.Struct, omit_defaults=True):
    """The outcome of replaying one session."""

    run_id: str
    session_id: str
    endpoint: str  # "POST /v1/order", or the protocol for non-HTTP inbound traffic
    verdict: Verdict
    recorded_at: int  # unix ns of the recording
    replayed_at: int  # unix ns of the replay
    differences: list[Difference] = msgspec.field(default_factory=list)
    suppressed: list[Suppressed] = msgspec.field(default_factory=list)
    outbound: OutboundReport | None = None
    error: str | None = None
    recorded_status: int | None = None
    replayed_status: int | None = None
    recorded_latency_ms: float | None = None
    replayed_latency_ms: float | None = None
    bypassed: int = 0  # unmatched talks let through to the real dependency (--bypass)
    notes: list[str] = msgspec.field(default_factory=list)  # what could not be compared, and why
    exchange: Exchange | None = None  # both responses, bounded; differing sessions only


class PathCount(msgspec.Struct):
    endpoint: str
    path: str
    kind: str
    sessions: int


class UnattributedNote(msgspec.Struct):
    peer: str
    request: str  # escaped excerpt
    reason: str


class RunSummary(msgspec.Struct, omit_defaults=True):
    run_id: str
    name: str
    started_at: int  # unix ns
    query: str
    target: str
    matcher: str
    status: str = "running"  # running | finished | interrupted
    finished_at: int | None = None
    baseline: str | None = None
    threshold: float | None = None
    concurrency: int = 1
    noise_runs: int = 0
    total: int = 0
    same: int = 0
    different: int = 0
    error: int = 0
    skipped: int = 0  # matched the query but not --allow-url / --disallow-url, or incomplete
    # Recorded incomplete (koala record could not attribute every outbound talk) and not
    # replayed; --include-incomplete replays them.
    skipped_incomplete: int = 0
    suppressed: int = 0  # differences judged noise, over all sessions
    unattributed: int = 0  # outbound talks no session could be named for
    unattributed_talks: list[UnattributedNote] = msgspec.field(default_factory=list)
    differing_paths: list[PathCount] = msgspec.field(default_factory=list)
    sessions_per_second: float | None = None
    # The run's whole ReplayConfig (koala_store.replay.config): `koala replay --rerun` reads it.
    config: dict[str, Any] | None = None

    @property
    def failed(self) -> bool:
        return self.different > 0 or self.error > 0


class RunStore(Protocol):
    """Replay results beside the sessions they came from."""

    def put_run(self, summary: RunSummary) -> None: ...

    def put_comparisons(self, comparisons: Iterable[Comparison]) -> None: ...

    def runs(self, limit: int = 20) -> list[RunSummary]:
        """Newest first."""
        ...

    def run(self, ref: str) -> RunSummary | None:
        """A run by id, or the newest run with that name."""
        ...

    def comparisons(self, run_id: str, verdict: Verdict | str | None = None) -> Iterator[Comparison]:
        """A run's comparisons in recorded order."""
        ...
