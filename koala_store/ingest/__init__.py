"""Ingest: inputs -> sessions -> store, naming every input that was rejected and why."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from msgspec import Struct, field

from ..model import Session
from ..store.base import SessionStore
from .sources import FORMATS, STDIN, Source, detect, expand, read_records

BATCH = 1000


class Rejection(Struct):
    source: str  # file name, or <stdin>
    where: str  # which part of it: "line 7", "record 3 (byte 812)", "session", "input"
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.where}: {self.reason}"


class IngestReport(Struct):
    read: int = 0  # sessions read from the inputs
    stored: int = 0
    unchanged: int = 0  # already in the store, identical
    rejected: list[Rejection] = field(default_factory=list)


def ingest(
    paths: Iterable[str],
    store: SessionStore,
    *,
    fmt: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Read every input, store what is valid in batches, and report what was rejected."""
    report = IngestReport()
    batch: list[Session] = []
    origin: dict[str, tuple[str, str]] = {}

    def flush() -> None:
        result = store.put_many(batch)
        report.stored += result.stored
        report.unchanged += result.unchanged
        for rejected in result.rejected:
            source, where = origin.get(rejected.session_id, ("?", "?"))
            report.rejected.append(Rejection(source, where, f"session {rejected.session_id}: {rejected.reason}"))
        if progress:
            progress(len(batch))
        batch.clear()
        origin.clear()

    for source in expand(list(paths)):
        for record in read_records(source, fmt):
            if record.session is None:
                report.rejected.append(Rejection(source.name, record.where, record.error or "rejected"))
                continue
            report.read += 1
            batch.append(record.session)
            origin[record.session.session_id] = (source.name, record.where)
            if len(batch) >= BATCH:
                flush()
    if batch:
        flush()
    return report


__all__ = ["FORMATS", "STDIN", "IngestReport", "Rejection", "Source", "detect", "expand", "ingest", "read_records"]
