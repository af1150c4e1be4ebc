"""Ingest: inputs -> sessions -> store, naming every input that was rejected and why."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from msgspec import Struct, field

from ..errors import StoreError
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
    # Why ingest stopped before reading everything (the store failed for good), if it did.
    aborted: str | None = None


_LINE = re.compile(r"^line (\d+)$")


def rejection_lines(rejections: list[Rejection]) -> list[str]:
    """One line per rejection, except that consecutive lines of one file rejected for the same
    reason (a store that went away mid-ingest) collapse into a range: `f: lines 10-900: why`."""
    out: list[str] = []
    run: tuple[str, str, int, int] | None = None  # source, reason, first line, last line

    def flush() -> None:
        if run is not None:
            source, reason, first, last = run
            where = f"line {first}" if first == last else f"lines {first}-{last}"
            out.append(f"{source}: {where}: {reason}")

    for rejection in rejections:
        line = _LINE.match(rejection.where)
        reason = re.sub(r"^session \S+: ", "", rejection.reason) if line else rejection.reason
        if line and run and run[0] == rejection.source and run[1] == reason and int(line.group(1)) == run[3] + 1:
            run = (run[0], run[1], run[2], int(line.group(1)))
            continue
        flush()
        run = None
        if line and reason != rejection.reason:
            run = (rejection.source, reason, int(line.group(1)), int(line.group(1)))
        else:
            out.append(str(rejection))
    flush()
    return out


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
        try:
            result = store.put_many(batch)
        except StoreError as exc:
            # The store failed for good: name this batch and stop; what was stored stays.
            for session in batch:
                source, where = origin.get(session.session_id, ("?", "?"))
                report.rejected.append(Rejection(source, where, f"session {session.session_id}: not stored: {exc}"))
            report.aborted = f"{exc}; inputs after the last one named were not read"
            batch.clear()
            origin.clear()
            raise _Stop from None
        report.stored += result.stored
        report.unchanged += result.unchanged
        for rejected in result.rejected:
            source, where = origin.get(rejected.session_id, ("?", "?"))
            report.rejected.append(Rejection(source, where, f"session {rejected.session_id}: {rejected.reason}"))
        if progress:
            progress(len(batch))
        batch.clear()
        origin.clear()

    try:
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
    except _Stop:
        pass
    return report


class _Stop(Exception):
    """The store failed for good; ingest stops reading."""


__all__ = ["rejection_lines", "FORMATS", "STDIN", "IngestReport", "Rejection", "Source", "detect", "expand", "ingest", "read_records"]
