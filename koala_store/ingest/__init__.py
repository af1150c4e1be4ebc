"""Ingest: inputs -> sessions -> store, naming every input that was rejected and why."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import nullcontext, suppress
from typing import ContextManager

from msgspec import Struct, field

from ..errors import StoreError
from ..model import Session
from ..store.base import Building, IndexesNotBuilt, PutResult, SessionStore, StoreWriteError
from ..formats import FORMATS
from .interrupts import held_back
from .parallel import Pipeline, PreparedChunk, default_workers
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
    # Why a bulk load's keyword indexes were not built at its end (all was stored), if not.
    unindexed: str | None = None


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
    workers: int | None = None,
    building_indexes: Building | None = None,
) -> IngestReport:
    """Read every input, store what is valid in batches, and report what was rejected.

    Nothing valid that was read is lost to a failure: a reader that breaks on one input
    rejects that input and the others go on; on Ctrl-C the sessions already read are stored
    before IngestInterrupted says how many; a store that fails for good names every session
    it did not take and stops.

    Big NDJSON files are parsed and prepared by `workers` processes (default: one per core
    but one) when the store has a preparer (ingest.parallel); 0 keeps all in this process.

    A big input is a bulk load when the store has one (SqliteStore.bulk_load): its keyword
    indexes are built at the end, `building_indexes` told how many and returning what to
    call after each."""
    report = IngestReport()
    batch: list[Session] = []
    origin: dict[str, tuple[str, str, int | None]] = {}
    preparer = getattr(store, "preparer", None)
    pipeline = Pipeline(preparer, default_workers() if workers is None else workers) if preparer else None

    def name(session_id: str, reason: str) -> Rejection:
        source, where, line = origin.get(session_id, ("?", "?", None))
        return Rejection(source, where, reason, session_id=session_id, line=line)

    def count(result: PutResult) -> None:
        report.stored += result.stored
        report.unchanged += result.unchanged
        report.rejected.extend(name(r.session_id, r.reason) for r in result.rejected)

    def write(put: Callable[[], PutResult], session_ids: Iterable[str], n: int) -> None:
        with held_back():  # a Ctrl-C between the store's commit and the count would lose the batch from the report
            try:
                result = put()
            except StoreError as exc:
                # The store failed for good: name these sessions and stop; what was stored stays.
                if isinstance(exc, StoreWriteError):
                    count(exc.result)
                for session_id in session_ids:
                    report.rejected.append(name(session_id, f"not stored: {exc}"))
                report.aborted = f"{exc}; inputs after the last one named were not read"
                batch.clear()
                origin.clear()
                raise _Stop from None
            count(result)
        if progress:
            progress(n)
        origin.clear()

    def flush() -> None:
        # Taken out first: a Ctrl-C raised once the write is counted must not write it again.
        sessions = batch[:]
        batch.clear()
        write(lambda: store.put_many(sessions), [session.session_id for session in sessions], len(sessions))

    def write_chunk(source: str, chunk: PreparedChunk) -> None:
        if batch:
            flush()  # sessions read before the chunk are stored before it
        report.rejected.extend(Rejection(source, where, reason, line=line) for where, reason, line in chunk.rejected)
        report.read += chunk.read
        origin.update((session_id, (source, where, line)) for session_id, (where, line) in chunk.origins.items())
        write(lambda: store.put_prepared(chunk.prepared), list(chunk.origins), chunk.read)  # type: ignore[attr-defined]

    def read_all() -> None:
        try:
            for source in sources:
                reader = pipeline.reader if pipeline and pipeline.takes(_size(source)) else None
                try:
                    for record in read_records(source, fmt, ndjson_reader=reader):
                        if isinstance(record, PreparedChunk):
                            write_chunk(source.name, record)
                            continue
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
                # What was read is stored. A second Ctrl-C is raised once this batch is written and
                # counted (held_back): the report stays true either way.
                with suppress(_Stop, KeyboardInterrupt):
                    flush()
            raise IngestInterrupted(report) from None
        finally:
            if pipeline:
                pipeline.close()

    sources = list(expand(list(paths)))
    try:
        with _bulk_load(store, sources, building_indexes):
            read_all()
    except IndexesNotBuilt as exc:
        report.unindexed = str(exc)
    return report


def _bulk_load(store: SessionStore, sources: list[Source], building: Building | None) -> ContextManager[None]:
    """The store's bulk load of these inputs' bytes (SqliteStore.bulk_load), if it has one."""
    bulk_load = getattr(store, "bulk_load", None)
    return bulk_load(sum(_size(source) or 0 for source in sources), building) if bulk_load else nullcontext()


def _size(source: Source) -> int | None:
    """The size of a regular file input; None for stdin and what cannot be read."""
    try:
        return source.path.stat().st_size if source.path is not None and source.problem is None else None
    except OSError:
        return None


class _Stop(Exception):
    """The store failed for good; ingest stops reading."""


__all__ = ["rejection_lines", "FORMATS", "STDIN", "IngestInterrupted", "IngestReport", "Rejection", "Source", "detect", "expand", "ingest", "read_records"]
