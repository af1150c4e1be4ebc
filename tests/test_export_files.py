"""Export writes exactly what it says (issue 11 items 2, 12, 13): file names that are unique,
reversible and never hidden, files with the umask's mode, no file replaced without --force,
and sessions the .gor format cannot hold named instead of written broken."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_helpers import koala, koala_process
from factories import make_session, varied_sessions
from koala_store.export import session_file_name, session_id_from_file_name
from koala_store.formats import gor
from koala_store.store import open_store

AWKWARD_IDS = ["a/b", "a_b", "a?b", "a%2Fb", ".hidden", ".", "..", "x" * 300, "é/ü 漢字", "a\\b", "A:B*C", "~tilde", "-dash", "trailing."]


def stored_ids(url: str) -> set[str]:
    store = open_store(url, readonly=True)
    try:
        return {s.session_id for s in store.scan()}
    finally:
        store.close()


@pytest.fixture
def awkward_store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'src.db'}"
    store = open_store(url)
    store.put_many([make_session(i, session_id=sid) for i, sid in enumerate(AWKWARD_IDS)])
    store.close()
    return url


def test_file_names_are_unique_reversible_and_safe() -> None:
    names = [session_file_name(sid) for sid in AWKWARD_IDS]
    assert len(set(names)) == len(AWKWARD_IDS)
    for sid, name in zip(AWKWARD_IDS, names, strict=True):
        assert "/" not in name and "\0" not in name and not name.startswith(".")
        assert len(name.encode()) <= 200
        if len(sid) < 100:
            assert session_id_from_file_name(name) == sid
    assert session_file_name("1548160113499755162-1158745") == "1548160113499755162-1158745"  # Koala's ids stay as Koala names them


@pytest.mark.parametrize("fmt", ["koala", "replayer"])
def test_folder_export_then_ingest_gives_back_every_session(capsys, tmp_path: Path, awkward_store: str, fmt: str) -> None:
    out = tmp_path / "out"
    run = koala(capsys, "sessions", "export", "*", "--format", fmt, "-o", str(out), "--store", awkward_store)
    assert run.code == 0, run.err
    assert f"exported {len(AWKWARD_IDS)} sessions to {out}" in run.err
    assert len(list(out.iterdir())) == len(AWKWARD_IDS)
    back = f"sqlite:///{tmp_path / 'back.db'}"
    run = koala(capsys, "ingest", str(out), "--store", back)
    assert run.code == 0, run.err
    assert stored_ids(back) == set(AWKWARD_IDS)


def test_exported_files_get_the_umask_mode(tmp_path: Path, awkward_store: str) -> None:
    for umask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        out = tmp_path / f"u{umask:o}"
        run = koala_process("sessions", "export", "*", "-f", "ndjson", "-o", str(out / "s.ndjson"), "--store", awkward_store, umask=umask, mkdir=out)
        assert run.code == 0, run.err
        assert (out / "s.ndjson").stat().st_mode & 0o777 == mode
        run = koala_process("sessions", "export", "*", "-f", "koala", "-o", str(out / "folder"), "--store", awkward_store, umask=umask)
        assert run.code == 0, run.err
        assert {p.stat().st_mode & 0o777 for p in (out / "folder").iterdir()} == {mode}


def test_an_existing_file_is_not_replaced_without_force(capsys, tmp_path: Path, awkward_store: str) -> None:
    target = tmp_path / "s.ndjson"
    target.write_bytes(b"precious\n")
    run = koala(capsys, "sessions", "export", "*", "-f", "ndjson", "-o", str(target), "--store", awkward_store)
    assert run.code == 1 and f"{target} exists; pass --force to replace it" in " ".join(run.err.split())
    assert target.read_bytes() == b"precious\n"
    run = koala(capsys, "sessions", "export", "*", "-f", "ndjson", "-o", str(target), "--force", "--store", awkward_store)
    assert run.code == 0 and len(target.read_bytes().splitlines()) == len(AWKWARD_IDS)
    assert not list(tmp_path.glob(".*.part"))


def test_a_folder_export_names_each_file_it_left_alone(capsys, tmp_path: Path, awkward_store: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / session_file_name("a/b")).write_bytes(b"precious")
    run = koala(capsys, "sessions", "export", "*", "-f", "koala", "-o", str(out), "--store", awkward_store)
    assert run.code == 2
    err = " ".join(run.err.split())
    assert f"exported {len(AWKWARD_IDS) - 1} sessions to {out}" in err
    assert f"session a/b: {out / 'a%2Fb'} exists; pass --force to replace it" in err
    assert (out / "a%2Fb").read_bytes() == b"precious"
    run = koala(capsys, "sessions", "export", "*", "-f", "koala", "-o", str(out), "--force", "--store", awkward_store)
    assert run.code == 0 and (out / "a%2Fb").read_bytes() != b"precious"


def test_gor_export_names_sessions_whose_payload_holds_the_separator(capsys, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    sessions = varied_sessions(4)
    sessions[1].call_from_inbound.request += gor.SEPARATOR + b"1 abcabcabcabcabcabcabcabc 1 1\nGET / HTTP/1.1\r\n"
    sessions[2].return_inbound.response += "\n🐵🙈🙉".encode()  # would run into the separator written after it
    store = open_store(url)
    store.put_many(sessions)
    store.close()
    out = tmp_path / "t.gor"
    run = koala(capsys, "sessions", "export", "*", "-f", "gor", "-o", str(out), "--store", url)
    assert run.code == 2
    err = " ".join(run.err.split())
    assert "exported 2 sessions" in err
    assert f"session {sessions[1].session_id}: not written as .gor: its inbound request holds GoReplay's record separator" in err
    assert f"session {sessions[2].session_id}: not written as .gor: its inbound response holds GoReplay's record separator" in err
    back = f"sqlite:///{tmp_path / 'back.db'}"
    run = koala(capsys, "ingest", str(out), "--store", back)
    assert run.code == 0, run.err  # what was written reads back, every record of it
    assert stored_ids(back) == {f"{s.call_from_inbound.occurred_at}-{gor.gor_id(s)}" for s in (sessions[0], sessions[3])}
