"""The `koala` CLI: ingest, search, show, export and delete, in-process and as a real process."""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import orjson

from cli_helpers import koala, koala_process
from factories import varied_sessions
from koala_store.formats import gor, koala as koala_format, ndjson
from koala_store.store import open_store


def write_koala_folder(folder: Path, sessions) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for s in sessions:
        (folder / s.session_id).write_bytes(koala_format.dumps(s))


def count(url: str, query: str = "*") -> int:
    store = open_store(url)
    try:
        return store.count(query)
    finally:
        store.close()


def test_ingest_every_format_and_search(capsys, tmp_path: Path, example_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    sessions = varied_sessions(30)
    write_koala_folder(tmp_path / "records", sessions[:10])
    with (tmp_path / "t.gor.gz").open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as out:
        gor.write(sessions[10:20], out)
    with (tmp_path / "docs.ndjson").open("wb") as out:
        ndjson.write(sessions[20:], out)
    run = koala(capsys, "ingest", str(tmp_path / "records"), str(tmp_path / "t.gor.gz"), str(tmp_path / "docs.ndjson"), str(example_path), "--store", url)
    assert run.code == 0, run.err
    assert f"stored 31 sessions into {url}" in run.out
    run = koala(capsys, "sessions", "search", "inbound.method:POST", "--json", "--store", url)
    lines = [orjson.loads(line) for line in run.out.splitlines()]
    assert run.code == 0 and len(lines) == 7  # 6 synthetic POSTs + the example
    assert all(d["inbound"]["method"] == "POST" for d in lines)
    run = koala(capsys, "sessions", "search", "--limit", "3", "--store", url)
    assert run.code == 0 and "31 sessions match; showing the first 3" in run.err


def test_ingesting_twice_stores_once(capsys, tmp_path: Path, example_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    assert koala(capsys, "ingest", str(example_path), "--store", url).code == 0
    run = koala(capsys, "ingest", str(example_path), "--store", url)
    assert run.code == 0 and "stored 0 sessions (1 already stored)" in run.out
    assert count(url) == 1


def test_stdin_and_forced_format(capsys, tmp_path: Path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    data = io.BytesIO()
    gor.write(varied_sessions(3), data)

    class Stdin:
        buffer = io.BytesIO(data.getvalue())

    monkeypatch.setattr("sys.stdin", Stdin)
    run = koala(capsys, "ingest", "-", "--format", "gor", "--store", url)
    assert run.code == 0 and "stored 3 sessions" in run.out


def test_show_and_raw(capsys, tmp_path: Path, example_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    koala(capsys, "ingest", str(example_path), "--store", url)
    run = koala(capsys, "sessions", "show", "1548160113499755162-1158745", "--store", url)
    assert run.code == 0
    assert "POST /v1/order?city=1 from 10.0.0.2:51234 -> 200 application/json" in run.out
    assert "CallOutbound 10.0.0.8:6379#11 redis" in run.out
    run = koala(capsys, "sessions", "show", "1548160113499755162-1158745", "--raw", "--store", url)
    assert run.out.encode() == example_path.read_bytes() + b"\n"
    run = koala(capsys, "sessions", "show", "nope", "--store", url)
    assert run.code == 1 and "no session 'nope' in" in run.err


def test_export_each_format_and_reingest(capsys, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    sessions = varied_sessions(20)
    with (tmp_path / "in.ndjson").open("wb") as out:
        ndjson.write(sessions, out)
    koala(capsys, "ingest", str(tmp_path / "in.ndjson"), "--store", url)
    for fmt, target in [("koala", "kfolder"), ("replayer", "rfolder"), ("gor", "out.gor.gz"), ("ndjson", "out.ndjson")]:
        run = koala(capsys, "sessions", "export", "inbound.method:GET", "--format", fmt, "-o", str(tmp_path / target), "--store", url)
        assert run.code == 0, run.err
        assert "exported 12 sessions" in run.err
    assert len(list((tmp_path / "kfolder").iterdir())) == 12
    assert len(list((tmp_path / "rfolder").glob("*.json"))) == 12
    assert gzip.open(tmp_path / "out.gor.gz").read().count(gor.SEPARATOR) == 24
    # Every export reads back into an empty store as the same sessions.
    for target in ("kfolder", "rfolder", "out.ndjson"):
        other = f"sqlite:///{tmp_path / (target + '.db')}"
        assert koala(capsys, "ingest", str(tmp_path / target), "--store", other).code == 0
        store = open_store(other)
        back = {s.session_id: s for s in store.scan()}
        store.close()
        originals = {s.session_id: s for s in sessions if s.call_from_inbound.request.startswith(b"GET")}
        assert set(back) == set(originals)
        if target != "rfolder":  # replayer bodies keep only the calls, not logs or UDP
            assert back == originals
    run = koala(capsys, "sessions", "export", "*", "--format", "ndjson", "-o", "-", "--store", url)
    assert len(run.out.splitlines()) == 20


def test_delete_needs_yes(capsys, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    with (tmp_path / "in.ndjson").open("wb") as out:
        ndjson.write(varied_sessions(10), out)
    koala(capsys, "ingest", str(tmp_path / "in.ndjson"), "--store", url)
    run = koala(capsys, "sessions", "delete", "inbound.status:500", "--store", url)
    assert run.code == 1 and "this would delete 2 sessions" in run.err and "add --yes" in run.err
    assert count(url) == 10
    run = koala(capsys, "sessions", "delete", "inbound.status:500", "--yes", "--store", url)
    assert run.code == 0 and "deleted 2 sessions" in run.out
    assert count(url) == 8


def test_koala_store_environment_variable_picks_the_store(tmp_path: Path, example_path: Path) -> None:
    env = {"KOALA_STORE": f"sqlite:///{tmp_path / 'env.db'}"}
    run = koala_process("ingest", str(example_path), env=env)
    assert run.code == 0, run.err
    assert count(env["KOALA_STORE"]) == 1


def test_default_store_is_koala_db_in_the_working_folder(tmp_path: Path, example_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KOALA_STORE"}
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "koala_store", "ingest", str(example_path)], cwd=tmp_path, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "koala.db").exists()


def test_subprocess_end_to_end(tmp_path: Path, example_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    run = koala_process("ingest", str(example_path), "--store", url)
    assert run.code == 0, run.err
    run = koala_process("sessions", "search", "outbound.protocol:mysql", "--store", url)
    assert run.code == 0 and "1548160113499755162-1158745" in run.out and "/v1/order" in run.out
    run = koala_process("sessions", "export", "*", "--format", "gor", "-o", "-", "--store", url)
    assert run.code == 0 and run.out.startswith("1 ")
    run = koala_process("sessions", "search", "inbound.stauts:200", "--store", url)
    assert run.code == 1
    assert "error: unknown field 'inbound.stauts'; did you mean inbound.status?" in run.err
    assert "  inbound.stauts:200\n  ^" in run.err


def test_version_and_usage_errors_in_the_one_error_style(capsys) -> None:
    from koala_store import __version__

    run = koala(capsys, "--version")
    assert run.code == 0 and run.out.strip() == f"koala-store {__version__}"
    run = koala(capsys, "sessions", "export", "*")
    assert run.code == 1 and run.err.strip() == "error: missing option '--format' / '-f'. Choose from: koala, replayer, gor, ndjson; see koala sessions export --help"
    run = koala(capsys, "sesions", "search")
    assert run.code == 1 and run.err.strip().startswith("error: no such command 'sesions'")
