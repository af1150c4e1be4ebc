"""Stopping a replay: SIGTERM, as Ctrl-C, writes the run as "interrupted" with what was
compared so far, and the command exits 143 (130 for Ctrl-C)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from koala_store.store.sqlite import SqliteStore
from replay_helpers import plain_session, sut


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_replay_records_the_run_as_interrupted(tmp_path: Path, signum: int, code: int) -> None:
    db = tmp_path / "k.db"
    store = SqliteStore(db)
    store.put_many([plain_session(i, "/hold", {"held": True}) for i in range(40)])
    store.close()
    with sut() as port:
        process = subprocess.Popen(
            [sys.executable, "-m", "koala_store", "replay", "*", "--target", f"127.0.0.1:{port}", "--store", f"sqlite:///{db}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "COLUMNS": "200"},
        )
        store = SqliteStore(db)
        deadline = time.monotonic() + 20
        while not store.runs.runs() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # a few sessions compared
        process.send_signal(signum)
        _, err = process.communicate(timeout=30)
    assert process.returncode == code, err
    assert b"interrupted; what was stored or written so far is kept" in err
    (run,) = store.runs.runs()
    compared = list(store.runs.comparisons(run.run_id))
    assert run.status == "interrupted" and run.finished_at is not None
    assert 0 < run.total == len(compared) < 40
