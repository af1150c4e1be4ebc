"""`koala store init [--store URL]` and `koala store copy SRC DST [QUERY]`."""

from __future__ import annotations

from typing import Optional

import typer

from ..store import copy_sessions, open_store
from .common import EXIT_PARTIAL, IndexOption, StoreOption, list_rejected, progress_bar, report_skipped, say, store_from, user_errors
from ..words import count

app = typer.Typer(help="Work with whole stores.", no_args_is_help=True)


@app.command("init")
@user_errors
def init(store_url: Optional[str] = StoreOption, index: Optional[str] = IndexOption) -> None:
    """Create the store: the SQLite file and its tables, or Elasticsearch's templates and indices
    (otherwise the first write creates them; reads never do)."""
    store = store_from(store_url, index)
    try:
        store.init()
    finally:
        store.close()
    say(f"ready: {store.url}")


@app.command("copy")
@user_errors
def copy(
    source_url: str = typer.Argument(..., metavar="SRC", help="Store to read: sqlite:///path.db or http://host:9200."),
    target_url: str = typer.Argument(..., metavar="DST", help="Store to write."),
    query: str = typer.Argument("*", help="Lucene query choosing what to copy (default: everything)."),
    source_index: Optional[str] = typer.Option(None, "--source-index", help="Elasticsearch index to read instead of koala-store's own."),
    target_index: Optional[str] = typer.Option(None, "--target-index", help="Elasticsearch index to write instead of koala-store's own."),
) -> None:
    """Copy sessions from SRC to DST; copying twice stores each session once."""
    source = open_store(source_url, index=source_index, readonly=True)
    try:
        target = open_store(target_url, index=target_index)
        try:
            total = source.count(query)
            with progress_bar() as bar:
                task = bar.add_task("copying", total=total)
                result = copy_sessions(source, target, query, progress=lambda n: bar.advance(task, n))
        finally:
            target.close()
        partial = report_skipped(source)
    finally:
        source.close()
    unchanged = f" ({result.unchanged} already there)" if result.unchanged else ""
    say(f"copied {count(result.stored, 'session')}{unchanged} from {source.url} to {target.url}")
    if result.rejected:
        list_rejected([f"session {r.session_id}: {r.reason}" for r in result.rejected])
    if result.rejected or partial:
        raise typer.Exit(EXIT_PARTIAL)
