"""Ingest N synthetic ~2 KB sessions into the SQLite store, then scan them all back by query.

Targets (issue 2): >= 20,000 sessions/s ingest; peak memory of the full scan < 200 MB.
The scan runs in a fresh process so its peak RSS is its own (interpreter included).

    .venv/bin/python bench/bench_sqlite_store.py [--sessions 100000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from factories import payload_bytes, varied_sessions  # noqa: E402

from koala_store.formats import ndjson  # noqa: E402
from koala_store.ingest import ingest  # noqa: E402
from koala_store.store.sqlite import SqliteStore  # noqa: E402

SCAN_QUERY = "recorded_at:[2025-11-01 TO now] AND NOT inbound.path:/nothing"


def scan_child(db: str) -> None:
    store = SqliteStore(db)
    started = time.perf_counter()
    count = sum(1 for _ in store.scan(SCAN_QUERY))
    elapsed = time.perf_counter() - started
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
    status = Path("/proc/self/status").read_text()
    peak_mb = int(status.split("VmHWM:")[1].split()[0]) / 1024
    print(f"{count} {elapsed:.3f} {peak_mb:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--scan-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scan_child:
        scan_child(args.scan_child)
        return

    n = args.sessions
    sessions = varied_sessions(n, payload=2048)
    mean = sum(payload_bytes(s) for s in sessions[:1000]) / 1000
    print(f"sessions: {n}, mean payload {mean:.0f} bytes")
    with tempfile.TemporaryDirectory() as tmp:
        # 1. The store alone: put_many of Session objects.
        store = SqliteStore(Path(tmp) / "a.db")
        started = time.perf_counter()
        result = store.put_many(sessions)
        put_s = time.perf_counter() - started
        assert result.stored == n, result
        print(f"put_many:                 {n / put_s:>9,.0f} sessions/s  ({put_s:.2f} s)")
        started = time.perf_counter()
        store.refresh()
        text_s = time.perf_counter() - started
        print(f"full-text index (refresh): {n / text_s:>8,.0f} sessions/s  ({text_s:.2f} s)")
        store.close()

        # 2. End to end from a file: read NDJSON, validate, derive, store.
        source = Path(tmp) / "sessions.ndjson"
        with source.open("wb") as out:
            ndjson.write(sessions, out)
        del sessions
        store = SqliteStore(Path(tmp) / "b.db")
        started = time.perf_counter()
        report = ingest([str(source)], store)
        file_s = time.perf_counter() - started
        assert report.stored == n and not report.rejected
        print(f"ingest from NDJSON file:  {n / file_s:>9,.0f} sessions/s  ({file_s:.2f} s, {source.stat().st_size / 1e6:.0f} MB file)")
        started = time.perf_counter()
        store.refresh()
        refresh_s = time.perf_counter() - started
        print(f"  + full-text refresh:    {n / (file_s + refresh_s):>9,.0f} sessions/s end to end incl. text ({refresh_s:.2f} s)")
        store.close()

        # 3. Full scan by query in a fresh process.
        done = subprocess.run([sys.executable, __file__, "--scan-child", str(Path(tmp) / "b.db")], capture_output=True, text=True, check=True)
        count, elapsed, peak = done.stdout.split()
        print(f"scan by query:            {int(count) / float(elapsed):>9,.0f} sessions/s  ({count} sessions, {elapsed} s)")
        print(f"scan peak RSS:            {float(peak):>9.1f} MB (whole process)")


if __name__ == "__main__":
    main()
