"""Ingest: inputs -> sessions -> store, naming every input that was rejected and why."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from msgspec import Struct, field

from ..errors import StoreError
from ..model import Session
from ..store.base import PutResult, SessionStore, StoreWriteError
from ..formats import FORMATS
from .sources import STDIN, Source, detect, expand, read_records

BATCH = 5000  # sessions handed to the store at once (SQLite writes them in one transaction)


class Rejection(Struct):
    source: str  # file name, or <stdin>
    where: str  # which part of it: "line 7", "record 3 (byte 812)", "session", "input"
    reason: str
    session_id: str | None = None  # set when the store (not the reader) refused the session
    line: int | None = None  # the line number, for line-based inputs

    def __str__(self) -> str:
        session = f"session {self.session_id}: " if self.session_id else ""
        return f"{self.source}: {self.where}: {session}{self.reason}"


class IngestReport(Struct):
    read: int = 0  # sessions read from the inputs
    stored: int = 0
    unchanged: int = 0  # already in the store, identical
    rejected: list[Rejection] = field(default_factory=list)
    # Why ingest stopped before reading everything (the store failed for good), if it did.
    aborted: str | None = None


class IngestInterrupted(KeyboardInterrupt):
    """Ctrl-C during ingest: `report` says what was stored before it (the sessions already
    read were stored first)."""

    def __init__(self, report: IngestReport):
        super().__init__()
        self.report = report


def rejection_lines(rejections: list[Rejection]) -> list[str]:
    """One line per rejection, except that consecutive lines of one file the store refused
    for the same reason (a store that went away mid-ingest) collapse into a range:
    `f: lines 10-900: why`."""
    out: list[str] = []
    run: tuple[str, str, int, int] | None = None  # source, reason, first line, last line

    def flush() -> None:
        if run is not None:
            source, reason, first, last = run
            where = f"line {first}" if first == last else f"lines {first}-{last}"
            out.append(f"{source}: {where}: {reason}")

    for rejection in rejections:
        line, reason = rejection.line, rejection.reason
        collapsible = line is not None and rejection.session_id is not None
        if collapsible and run and run[0] == rejection.source and run[1] == reason and line == run[3] + 1:
            run = (run[0], run[1], run[2], line)  # type: ignore[assignment]
            continue
        flush()
        run = None
        if collapsible:
            run = (rejection.source, reason, line, line)  # type: ignore[assignment]
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
    """Read every input, store what is valid in batches, and report what was rejected.

    Nothing valid that was read is lost to a failure: a reader that breaks on one input
    rejects that input and the others go on; on Ctrl-C the sessions already read are stored
    before IngestInterrupted says how many; a store that fails for good names every session
    it did not take and stops."""
    report = IngestReport()
    batch: list[Session] = []
    origin: dict[str, tuple[str, str, int | None]] = {}

    def name(session_id: str, reason: str) -> Rejection:
        source, where, line = origin.get(session_id, ("?", "?", None))
        return Rejection(source, where, reason, session_id=session_id, line=line)

    def count(result: PutResult) -> None:
        report.stored += result.stored
        report.unchanged += result.unchanged
        report.rejected.extend(name(r.session_id, r.reason) for r in result.rejected)

    def flush() -> None:
        try:
            result = store.put_many(batch)
        except StoreError as exc:
            # The store failed for good: name this batch and stop; what was stored stays.
            if isinstance(exc, StoreWriteError):
                count(exc.result)
            for session in batch:
                report.rejected.append(name(session.session_id, f"not stored: {exc}"))
            report.aborted = f"{exc}; inputs after the last one named were not read"
            batch.clear()
            origin.clear()
            raise _Stop from None
        count(result)
        if progress:
            progress(len(batch))
        batch.clear()
        origin.clear()

    try:
        for source in expand(list(paths)):
            try:
                for record in read_records(source, fmt):
                    if record.session is None:
                        report.rejected.append(Rejection(source.name, record.where, record.error or "rejected", line=record.line))
                        continue
                    report.read += 1
                    batch.append(record.session)
                    origin[record.session.session_id] = (source.name, record.where, record.line)
                    if len(batch) >= BATCH:
                        flush()
            except (_Stop, KeyboardInterrupt):
                raise
            except Exception as exc:  # a reader's own defect: this input is named, the others go on
                report.rejected.append(
                    Rejection(source.name, "input", f"could not be read to the end ({type(exc).__name__}: {exc}); the sessions before were kept")
                )
        if batch:
            flush()
    except _Stop:
        pass
    except KeyboardInterrupt:
        if batch:
            try:
                flush()  # what was read is stored; a second Ctrl-C stops this too
            except _Stop:
                pass
        raise IngestInterrupted(report) from None
    return report


class _Stop(Exception):
    """The store failed for good; ingest stops reading."""


__all__ = ["rejection_lines", "FORMATS", "STDIN", "IngestInterrupted", "IngestReport", "Rejection", "Source", "detect", "expand", "ingest", "read_records"]
