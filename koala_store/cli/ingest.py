"""`koala ingest PATH...`: files, folders or stdin into the store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import typer

from ..errors import KoalaError
from ..formats import Format
from ..ingest import IngestInterrupted, IngestReport, ingest, rejection_lines
from .common import EXIT_PARTIAL, EXIT_USER_ERROR, IndexOption, StoreOption, list_rejected, note, progress_bar, say, store_from, user_errors
from ..words import count

EXIT_INTERRUPTED = 130


def _stored(report: IngestReport, url: str) -> str:
    unchanged = f" ({report.unchanged} already stored)" if report.unchanged else ""
    return f"stored {count(report.stored, 'session')}{unchanged} into {url}"


@user_errors
def ingest_command(
    paths: list[str] = typer.Argument(..., help="Files, folders (walked; a Koala record folder holds one session per file) or - for stdin."),
    fmt: Optional[Format] = typer.Option(None, "--format", "-f", help="Force the input format. Default: told from name and content."),
    store_url: Optional[str] = StoreOption,
    index: Optional[str] = IndexOption,
    workers: Optional[int] = typer.Option(
        None,
        "--workers",
        min=0,
        help="Processes that parse and prepare big NDJSON files while this one writes (SQLite store). Default: one per core but one; 0: none.",
        show_default=False,
    ),
) -> None:
    """Store sessions from Koala record files, Koala replayer bodies, GoReplay .gor(.gz) files or NDJSON."""
    store = store_from(store_url, index)
    problem = None
    try:
        with progress_bar() as bar:
            reading = bar.add_task("ingesting", total=None)

            def building(indexes: int) -> Callable[[], None]:
                task = bar.add_task("building keyword indexes", total=indexes)
                return lambda: bar.advance(task, 1)

            try:
                report = ingest(paths, store, fmt=fmt, progress=lambda n: bar.advance(reading, n), workers=workers, building_indexes=building)
            except IngestInterrupted as stopped:
                bar.stop()
                # Full text not indexed yet is still found (queries check it), just slower.
                note(f"interrupted; {_stored(stopped.report, store.url)}; inputs after that were not read")
                list_rejected(rejection_lines(stopped.report.rejected))
                raise typer.Exit(EXIT_INTERRUPTED) from None
            if report.unindexed:
                problem = report.unindexed
            try:
                if todo := store.pending_text():
                    indexing = bar.add_task("indexing full text", total=todo)
                    store.refresh(progress=lambda n: bar.advance(indexing, n))
                else:
                    store.refresh()
            except KoalaError as exc:
                problem = "; ".join(filter(None, [problem, f"the stored sessions may not be searchable yet: {exc}"]))
            except KeyboardInterrupt:
                bar.stop()
                note(f"interrupted while indexing full text; {_stored(report, store.url)} (all found by full text, more slowly until the next ingest)")
                raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        store.close()
    say(_stored(report, store.url))
    if report.aborted:
        note(f"stopped early: {report.aborted}")
    if problem:
        note(f"warning: {problem}")
    if report.rejected or report.aborted or problem:
        list_rejected(rejection_lines(report.rejected))
        kept = report.stored + report.unchanged
        raise typer.Exit(EXIT_PARTIAL if kept else EXIT_USER_ERROR)
