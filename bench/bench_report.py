"""The HTML report of a large run: file size, time to write it, time to open it in headless
Chromium (Debian's package), and time to page and filter it.

    .venv/bin/python bench/bench_report.py [--sessions 5000] [--different-every 3]

Builds a synthetic finished run (tests/run_factories.py: real diffs of real response bytes,
one session in three differing, about 1% errors) in a temporary SQLite store, runs
`koala report` on it in-process (the library call render_html plus the file write), and
opens the file with Playwright (once with the browser's launch, then a reload: the page
alone): `load` is when the page and its scripts have run (plotly
drawn, the first page of sessions shown), then the time to go to the next page and to
filter by an endpoint.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import browser  # noqa: E402
from koala_store.report.html import render_html  # noqa: E402
from koala_store.store.sqlite import SqliteStore  # noqa: E402
from run_factories import synthetic_run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=5000)
    parser.add_argument("--different-every", type=int, default=3)
    args = parser.parse_args()
    if args.sessions < 1:
        parser.error(f"--sessions {args.sessions}: give 1 or more")
    if args.different_every < 1:
        parser.error(f"--different-every {args.different_every}: give 1 or more (1: every session differs)")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        summary, comparisons = synthetic_run(args.sessions, different_every=args.different_every)
        store = SqliteStore(tmp / "k.db")
        store.runs.put_run(summary)
        store.runs.put_comparisons(comparisons)
        render_html(summary, [])  # load the template and plotly.js once, as a warm process would
        began = time.perf_counter()
        html = render_html(summary, store.runs.comparisons(summary.run_id))
        path = tmp / "report.html"
        path.write_text(html, encoding="utf-8")
        written = time.perf_counter() - began
        store.close()
        size = os.path.getsize(path)
        print(f"sessions {summary.total}, differing or failed {summary.different + summary.error}")
        print(f"file {size / 1e6:.1f} MB (plotly.js {len(html) and _plotly_share(html):.1f} MB of it), written in {written:.2f} s")
        why = browser.missing()
        if why:
            print(f"open: skipped ({why})")
            return 0
        began = time.perf_counter()
        with browser.open_file(path) as opened:
            loaded = time.perf_counter() - began
            page = opened.page
            began = time.perf_counter()
            page.reload(wait_until="load")  # the page alone, the browser already running
            reloaded = time.perf_counter() - began
            paged = None  # a run whose differing sessions fit on one page has no next page
            if page.locator("#next").count() and page.is_enabled("#next"):
                began = time.perf_counter()
                page.click("#next")
                page.wait_for_function("document.getElementById('page-label').textContent.startsWith('page 2')")
                paged = time.perf_counter() - began
            began = time.perf_counter()
            page.select_option("#filter-endpoint", "GET /users/{id}")
            filtered = time.perf_counter() - began
            errors = opened.console_errors
        next_page = "none (one page)" if paged is None else f"{paged * 1000:.0f} ms"
        print(
            f"open in headless chromium: {loaded:.2f} s with the browser's launch, {reloaded:.2f} s the page alone; "
            f"next page {next_page}; filter {filtered * 1000:.0f} ms; console errors {len(errors)}"
        )
    return 0


def _plotly_share(html: str) -> float:
    from plotly.offline import get_plotlyjs

    return len(get_plotlyjs()) / 1e6


if __name__ == "__main__":
    sys.exit(main())
