"""Ctrl-C stops a long SQLite query cleanly (issue 11 item 5): the interrupted statement ends
at once and the command exits 130, with no traceback."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from cli_helpers import interruptible
from factories import varied_sessions
from koala_store.store.sqlite import SqliteStore


def test_ctrl_c_stops_a_long_query(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    store = SqliteStore(db)
    store.put_many(varied_sessions(20_000, payload=2048))  # not refreshed: text is checked in Python, slowly
    store.close()
    query = " OR ".join(f"nosuchword{i}" for i in range(60))
    search = interruptible("sessions", "search", query, "--store", f"sqlite:///{db}", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(2)
    assert search.poll() is None, "the query should still be running"
    sent = time.monotonic()
    search.send_signal(signal.SIGINT)
    out, err = search.communicate(timeout=30)
    assert time.monotonic() - sent < 5
    assert search.returncode == 130, err.decode()  # quietly, as any Ctrl-C of the CLI
    assert "Traceback" not in err.decode() and "error" not in err.decode()
