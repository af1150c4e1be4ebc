"""`koala ingest PATH...`: files, folders or stdin into the store."""

from __future__ import annotations

from typing import Optional

import typer

from ..errors import KoalaError
from ..ingest import FORMATS, ingest, rejection_lines
from .common import IndexOption, EXIT_PARTIAL, list_rejected, EXIT_USER_ERROR, StoreOption, fail, note, progress_bar, say, store_from, user_errors


@user_errors
def ingest_command(
    paths: list[str] = typer.Argument(..., help="Files, folders (walked; a Koala record folder holds one session per file) or - for stdin."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help=f"Force the input format: {', '.join(FORMATS)}. Default: told from name and content."),
    store_url: Optional[str] = StoreOption,
    index: Optional[str] = IndexOption,
) -> None:
    """Store sessions from Koala record files, Koala replayer bodies, GoReplay .gor(.gz) files or NDJSON."""
    if fmt is not None and fmt not in FORMATS:
        raise fail(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    store = store_from(store_url, index)
    problem = None
    try:
        with progress_bar() as bar:
            reading = bar.add_task("ingesting", total=None)
            report = ingest(paths, store, fmt=fmt, progress=lambda n: bar.advance(reading, n))
            try:
                pending = getattr(store, "pending_text", None)
                if pending is not None and (todo := pending()):
                    indexing = bar.add_task("indexing full text", total=todo)
                    store.refresh(progress=lambda n: bar.advance(indexing, n))  # type: ignore[call-arg]
                else:
                    store.refresh()
            except KoalaError as exc:
                problem = f"the stored sessions may not be searchable yet: {exc}"
    finally:
        store.close()
    unchanged = f" ({report.unchanged} already stored)" if report.unchanged else ""
    say(f"stored {report.stored} sessions{unchanged} into {store.url}")
    if report.aborted:
        note(f"stopped early: {report.aborted}")
    if problem:
        note(f"warning: {problem}")
    if report.rejected or report.aborted or problem:
        list_rejected(rejection_lines(report.rejected))
        kept = report.stored + report.unchanged
        raise typer.Exit(EXIT_PARTIAL if kept else EXIT_USER_ERROR)
