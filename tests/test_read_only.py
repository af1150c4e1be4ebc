"""Reading never writes (issue 11 item 4): read commands open the store read-only, so a store
this user cannot write can still be read, and a read command never creates a store, a table,
a template or an index."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest

from cli_helpers import koala, koala_process
from factories import varied_sessions
from koala_store.store import open_store
from stores import ES_URL, drop_prefix, unique_prefix

READ_COMMANDS = [
    ["sessions", "search"],
    ["sessions", "search", "alice"],
    ["sessions", "show", "1763780400000000000-1000"],
    ["sessions", "export", "*", "-f", "ndjson", "-o", "-"],
    ["sessions", "delete", "*"],  # without --yes it only counts
    ["runs", "list"],
    ["runs", "show", "nightly"],
]
NOBODY = 65534


@pytest.mark.parametrize("command", READ_COMMANDS, ids=" ".join)
def test_a_read_command_on_a_missing_store_says_so_and_creates_nothing(capsys, tmp_path: Path, command: list[str]) -> None:
    db = tmp_path / "k.db"
    run = koala(capsys, *command, "--store", f"sqlite:///{db}")
    assert run.code == 1
    assert f"no store at {db}; ingest sessions first (koala ingest PATH --store sqlite:///{db})" in " ".join(run.err.split())
    assert list(tmp_path.iterdir()) == []


def test_the_default_store_is_not_created_by_a_search(tmp_path: Path) -> None:
    run = koala_process("sessions", "search", cwd=str(tmp_path), env={"KOALA_STORE": ""})
    assert run.code == 1 and "no store at koala.db; ingest sessions first" in run.err
    assert list(tmp_path.iterdir()) == []


def test_reading_writes_nothing(capsys, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    store = open_store(url)
    store.put_many(varied_sessions(20))
    store.refresh()
    store.close()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for command in READ_COMMANDS:
        run = koala(capsys, *command, "--store", url)
        assert run.code in (0, 1), run.err  # 1: no such session or run, or delete without --yes
        assert "Traceback" not in run.err
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after["k.db"] == before["k.db"]
    # SQLite's own shared-memory index may appear beside it (readers of a WAL database need
    # one); no data does: the write-ahead log stays empty.
    assert set(after) <= {"k.db", "k.db-wal", "k.db-shm"} and after.get("k.db-wal", b"") == b""


@pytest.fixture
def shared_folder():
    """A folder other users can look into (pytest's own tmp folders are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="koala-ro-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def as_nobody(*args: str) -> list[str]:
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", *args]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="runs a command as another user: needs root and setpriv")
@pytest.mark.parametrize("leftover_wal", [False, True], ids=["closed cleanly", "with -wal and -shm"])
def test_a_store_this_user_cannot_write_is_read(shared_folder: Path, leftover_wal: bool) -> None:
    import subprocess
    import sys

    db = shared_folder / "k.db"
    sessions = varied_sessions(30)
    store = open_store(f"sqlite:///{db}")
    store.put_many(sessions)
    store.refresh()
    if leftover_wal:
        keeper = sqlite3.connect(db)  # a writer still has it open: -wal and -shm exist
        keeper.execute("SELECT count(*) FROM sessions").fetchone()
    store.close()
    for path in shared_folder.iterdir():
        path.chmod(0o644)
    try:
        for args, expected in (
            (["sessions", "search", "inbound.method:POST", "--json", "--limit", "0"], 6),
            (["sessions", "search", "alice", "--json", "--limit", "0"], 6),
            (["runs", "list", "--json"], 0),
        ):
            done = subprocess.run(
                as_nobody(sys.executable, "-m", "koala_store", *args, "--store", f"sqlite:///{db}"),
                capture_output=True,
                cwd=shared_folder,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr.decode()
            assert len(done.stdout.splitlines()) == expected
    finally:
        if leftover_wal:
            keeper.close()
    assert sorted(p.name for p in shared_folder.iterdir() if p.stat().st_uid == NOBODY) == []


@pytest.mark.skipif(not ES_URL, reason="needs the local Elasticsearch that scripts/test.sh starts")
def test_elasticsearch_read_commands_create_no_template_or_index(capsys) -> None:
    from elasticsearch import Elasticsearch

    prefix = unique_prefix()
    url = f"{ES_URL}?prefix={prefix}"
    admin = Elasticsearch(ES_URL)
    try:
        for command in READ_COMMANDS:
            run = koala(capsys, *command, "--store", url)
            assert run.code in (0, 1), run.err
            assert "Traceback" not in run.err
        assert koala(capsys, "sessions", "search", "--store", url).err.strip().endswith("0 sessions match")
        assert admin.indices.get(index=f"{prefix}-*", expand_wildcards="all").body == {}
        assert admin.options(ignore_status=404).indices.get_index_template(name=f"{prefix}-*").body.get("index_templates", []) == []
        # A recorder's index that is not there reads as empty and is not created either.
        run = koala(capsys, "sessions", "search", "--store", ES_URL, "--index", f"{prefix}-rdebug_index")
        assert run.code == 0 and "0 sessions match" in run.err
        assert not admin.indices.exists(index=f"{prefix}-rdebug_index")
        # `koala store init` creates them, once asked.
        run = koala(capsys, "store", "init", "--store", url)
        assert run.code == 0, run.err
        names = {t["name"] for t in admin.indices.get_index_template(name=f"{prefix}-*")["index_templates"]}
        assert names == {f"{prefix}-sessions", f"{prefix}-replays"}
        assert admin.indices.exists(index=f"{prefix}-runs")
    finally:
        drop_prefix(admin, prefix)
        admin.close()


def test_store_init_creates_the_sqlite_file(capsys, tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    run = koala(capsys, "store", "init", "--store", f"sqlite:///{db}")
    assert run.code == 0 and f"ready: sqlite:///{db}" in run.out
    run = koala(capsys, "sessions", "search", "--store", f"sqlite:///{db}")
    assert run.code == 0 and "0 sessions match" in run.err
    run = koala(capsys, "runs", "list", "--store", f"sqlite:///{db}")
    assert run.code == 0
