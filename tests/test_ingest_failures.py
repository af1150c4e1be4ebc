"""Ingest when things go wrong (issue 11 items 3 and 10): a header a reader cannot take, a
full disk, Ctrl-C. Each ends in one clear message, the right exit code, a count of what was
stored, and everything valid that was read before is stored."""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_helpers import interruptible, koala
from factories import varied_sessions
from koala_store.formats import gor, ndjson
from koala_store.ingest import IngestInterrupted, ingest
from koala_store.store import open_store
from koala_store.store.base import StoreWriteError
from koala_store.store.sqlite import SqliteStore
import koala_store.ingest as ingest_module
import koala_store.store.sqlite as sqlite_store


def count(url: str) -> int:
    store = open_store(url, readonly=True)
    try:
        return store.count()
    finally:
        store.close()


def test_a_gor_header_with_a_5000_digit_number(capsys, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    good = tmp_path / "a.ndjson"
    with good.open("wb") as out:
        ndjson.write(varied_sessions(3), out)
    bad = tmp_path / "b.gor"
    bad.write_bytes(b"1 0123456789abcdef01234567 " + b"9" * 5000 + b" -1\nGET / HTTP/1.1\r\n\r\n" + gor.SEPARATOR + gor.dumps(varied_sessions(4)[3]))
    run = koala(capsys, "ingest", str(good), str(bad), "--store", url)
    assert run.code == 2
    err = " ".join(run.err.split())
    assert f"{bad}: record 1 (byte 0): header has a timestamp or latency of 5000 digits; nanoseconds since 1970 have at most 19" in err
    assert "stored 4 sessions" in run.out and "Traceback" not in run.err
    assert count(url) == 4


def test_a_full_database_names_what_was_not_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_store, "BATCH", 1000)  # several transactions in one put_many
    monkeypatch.setattr(ingest_module, "BATCH", 1000)  # several put_many calls in one ingest
    store = SqliteStore(tmp_path / "k.db")
    store.db.execute("PRAGMA max_page_count = 60")  # SQLite's own "disk is full", for real
    sessions = varied_sessions(3000, payload=1024)
    with pytest.raises(StoreWriteError) as caught:
        store.put_many(sessions)
    assert "cannot write to the SQLite store" in str(caught.value) and "database or disk is full" in str(caught.value)
    assert caught.value.result.stored == store.count() < 3000
    # ingest turns it into a report: stored, then each session not stored, named.
    source = tmp_path / "more.ndjson"
    with source.open("wb") as out:
        ndjson.write(varied_sessions(3000, seed=8, payload=1024)[::-1], out)
    before = store.count()
    report = ingest([str(source)], store, workers=0)  # in batches of BATCH (workers write chunks of parallel.LINES)
    assert report.aborted and "database or disk is full" in report.aborted
    assert report.stored == store.count() - before
    assert len(report.rejected) == 1000 and all(r.reason.startswith("not stored: cannot write to the SQLite store") for r in report.rejected)
    store.close()


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_disk_full_mid_ingest_is_one_message_with_the_count(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    source = tmp_path / "many.ndjson"
    with source.open("wb") as out:
        ndjson.write(varied_sessions(5000, payload=2048), out)
    done = subprocess.run(
        [sys.executable, "-m", "koala_store", "ingest", str(source), "--store", url],
        capture_output=True,
        timeout=300,
        preexec_fn=_limit_file_size(1024 * 1024),  # room for some batches, not for all (a session takes ~0.6 KB)
    )
    out, err = done.stdout.decode(), " ".join(done.stderr.decode().split())
    assert done.returncode in (1, 2), err
    assert "Traceback" not in err
    assert "stopped early: cannot write to the SQLite store" in err and "the disk may be full" in err
    stored = int(re.search(r"stored (\d+) sessions", out).group(1))
    assert stored < 5000 and count(url) == stored
    named = re.search(r"many.ndjson: lines (\d+)-(\d+): not stored", err)
    assert named and int(named.group(1)) == stored + 1  # the batch that failed, by line


def test_ctrl_c_during_ingest_stores_what_was_read_and_says_how_many(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    ingest_process = interruptible("ingest", "-", "--format", "ndjson", "--store", url, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for session in varied_sessions(2500):
        ingest_process.stdin.write(ndjson.dumps(session))
    ingest_process.stdin.flush()  # stdin stays open: ingest waits for more
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if count(url) >= 2000:
                break
        except Exception:
            pass
        time.sleep(0.2)
    time.sleep(1)  # the last 500 are read into the batch
    ingest_process.send_signal(signal.SIGINT)
    out, err = ingest_process.communicate(timeout=60)
    assert ingest_process.returncode == 130, err.decode()
    assert f"interrupted; stored 2500 sessions into {url}; inputs after that were not read" in " ".join(err.decode().split())
    assert "Traceback" not in err.decode()
    assert count(url) == 2500


class CtrlCAfterCommit(SqliteStore):
    """A real SQLite store that gets Ctrl-C at the worst moment: as its `batches`-th batch has
    committed, before ingest has counted it (SIGINT to this process, as a terminal sends it)."""

    def __init__(self, path: Path, batches: int):
        super().__init__(path)
        self.left = batches

    def put_many(self, sessions):  # type: ignore[no-untyped-def]
        result = super().put_many(sessions)
        self.left -= 1
        if self.left == 0:
            os.kill(os.getpid(), signal.SIGINT)
        return result


def three_batches_ctrl_c_after_two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, CtrlCAfterCommit]:
    """An input of three ingest batches (1,000 sessions each), and a store that gets Ctrl-C as
    the second one commits."""
    monkeypatch.setattr(ingest_module, "BATCH", 1000)
    source = tmp_path / "s.ndjson"
    with source.open("wb") as out:
        ndjson.write(varied_sessions(3000), out)
    return source, CtrlCAfterCommit(tmp_path / "k.db", batches=2)


def test_ctrl_c_right_after_a_batch_commits_counts_that_batch_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Seen in CI: "interrupted; stored 10000 sessions" over a store holding 15,000.
    source, store = three_batches_ctrl_c_after_two(tmp_path, monkeypatch)
    try:
        with pytest.raises(IngestInterrupted) as caught:
            ingest([str(source)], store, workers=0)
        report = caught.value.report
        assert (report.stored, report.unchanged) == (2000, 0)  # the second batch counted, and not written again
        assert store.count() == 2000
    finally:
        store.close()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C is Python's own again


def test_ctrl_c_ignored_by_the_caller_stays_ignored_through_a_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # held_back hands a Ctrl-C to the handler there was before: SIG_IGN (nohup, a worker) ignores it.
    source, store = three_batches_ctrl_c_after_two(tmp_path, monkeypatch)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        report = ingest([str(source)], store, workers=0)
        assert report.stored == store.count() == 3000
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
        store.close()
