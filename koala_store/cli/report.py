"""`koala report RUN [-o report.html]`: a replay run as one self-contained HTML file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional

import typer

from ..errors import KoalaError
from ..report.html import render_html
from .common import StoreOption, fail, note, store_from, user_errors
from ..words import count


@user_errors
def report_command(
    run: str = typer.Argument(..., help="A run id or name (the newest run of that name)."),
    output: str = typer.Option("report.html", "--output", "-o", help="The HTML file to write."),
    store_url: Optional[str] = StoreOption,
) -> None:
    """Write a run's report as one HTML file: summary, endpoints, charts, noise, and every
    differing session side by side. Nothing is fetched when it is opened."""
    store = store_from(store_url, readonly=True)
    try:
        summary = store.runs.run(run)
        if summary is None:
            raise fail(f"no replay run {run!r} in {store.url}; list them with koala runs list")
        html = render_html(summary, store.runs.comparisons(summary.run_id))
    finally:
        store.close()
    _write(Path(output), html)
    note(f"wrote {output} ({len(html.encode()) / 1e6:.1f} MB): {count(summary.total, 'session')}, {summary.different} different, {summary.error} error")


def _write(path: Path, text: str) -> None:
    """Write whole or not at all: a reader never sees half a report."""
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise KoalaError(f"cannot write {path}: {exc.strerror} ({path.parent}); give -o a path in a writable folder") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise KoalaError(f"cannot write {path}: {exc.strerror}; give -o a writable path") from None
