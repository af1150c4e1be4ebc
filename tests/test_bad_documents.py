"""A stored document that does not convert to a session never breaks a read (issue 8): every
scan (search, show, export, replay, store copy, delete) passes over it, and the command names
it once, by its id, on stderr, with the count, and exits 2 (the answer is partial)."""

from __future__ import annotations

import copy
import urllib.request
from pathlib import Path

import orjson
import pytest

from cli_helpers import koala
from factories import varied_sessions
from koala_store.formats import koala as koala_format
from koala_store.store import open_store
from koala_store.store.sqlite import SqliteStore
from stores import ES_URL, drop_prefix, unique_prefix

GOOD = varied_sessions(6)


def bad_documents() -> dict[str, dict]:
    """Documents as a Koala recorder (or a hand) may leave them, that are not sessions here."""
    base = koala_format.to_dict(varied_sessions(8)[7])
    # (Koala's null ReturnInbound/Actions are valid sessions: tests/test_null_sessions.py.)
    no_inbound = copy.deepcopy(base)
    no_inbound["SessionId"] = "bad-null-inbound"
    no_inbound["CallFromInbound"] = None
    unknown_action = copy.deepcopy(base)
    unknown_action["SessionId"] = "bad-unknown-action"
    unknown_action["Actions"][0]["ActionType"] = "Teleport"
    return {"bad-null-inbound": no_inbound, "bad-unknown-action": unknown_action, "bad-not-koala": {"hello": "world"}}


def post(url: str, index: str, doc_id: str, doc: dict) -> None:
    request = urllib.request.Request(f"{url}/{index}/_doc/{doc_id}", data=orjson.dumps(doc), headers={"Content-Type": "application/json"}, method="PUT")
    urllib.request.urlopen(request).close()


def check_every_command(capsys, tmp_path: Path, args: list[str], copy_args: list[str], names: list[str]) -> None:
    for command in (
        ["sessions", "search", "*", "--limit", "0", *args],
        ["sessions", "search", "NOT inbound.status:999", *args],
        ["sessions", "export", "*", "-f", "ndjson", "-o", str(tmp_path / "out.ndjson"), "--force", *args],
        ["store", "copy", *copy_args],
    ):
        run = koala(capsys, *command)
        assert run.code == 2, (command, run.err)
        err = run.err
        assert f"skipped {len(names)} stored documents that cannot be read as sessions:" in err
        for name in names:
            assert sum(1 for line in err.splitlines() if name in line) == 1, (name, err)
        assert "Traceback" not in err
    assert len((tmp_path / "out.ndjson").read_bytes().splitlines()) == len(GOOD)
    copied = open_store(f"sqlite:///{tmp_path / 'copy.db'}", readonly=True)
    assert copied.count() == len(GOOD)
    copied.close()


@pytest.mark.skipif(not ES_URL, reason="needs the local Elasticsearch that scripts/test.sh starts")
@pytest.mark.parametrize("layout", ["recorder", "ours"])
def test_elasticsearch_scans_pass_over_bad_documents(capsys, tmp_path: Path, layout: str) -> None:
    prefix = unique_prefix()
    copy_to = f"sqlite:///{tmp_path / 'copy.db'}"
    if layout == "recorder":
        index = f"{prefix}-rdebug_index"
        args = ["--store", ES_URL, "--index", index]
        copy_args = [ES_URL, copy_to, "--source-index", index]
        store = open_store(ES_URL, index=index)
        target = index
    else:
        args = ["--store", f"{ES_URL}?prefix={prefix}"]
        copy_args = [f"{ES_URL}?prefix={prefix}", copy_to]
        store = open_store(f"{ES_URL}?prefix={prefix}")
        target = f"{prefix}-sessions-2025.11.22"
    try:
        store.put_many(GOOD)
        for doc_id, doc in bad_documents().items():
            post(ES_URL, target, doc_id, doc)
        store.refresh()
        names = [f"{target}/{doc_id}" for doc_id in bad_documents()]
        check_every_command(capsys, tmp_path, args, copy_args, names)
        run = koala(capsys, "sessions", "show", "bad-null-inbound", *args)
        assert run.code == 1
        assert "session 'bad-null-inbound' is in" in " ".join(run.err.split()) and "cannot be read as a session" in run.err
        run = koala(capsys, "sessions", "show", GOOD[0].session_id, *args)
        assert run.code == 0
        # delete: on a recorder's index a bad document cannot be told to match: kept and named.
        run = koala(capsys, "sessions", "delete", "inbound.method:GET", "--yes", *args)
        assert run.code == (2 if layout == "recorder" else 0), run.err
        store.refresh()
        assert store.count("inbound.method:GET") == 0
    finally:
        drop_prefix(store.client, prefix)  # type: ignore[attr-defined]
        store.close()


def test_a_damaged_sqlite_row_is_passed_over_and_named(capsys, tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    store = SqliteStore(db)
    store.put_many(GOOD)
    store.refresh()
    store.db.execute("UPDATE sessions SET body = x'01deadbeef' WHERE session_id = ?", (GOOD[2].session_id,))
    store.close()
    url = f"sqlite:///{db}"
    run = koala(capsys, "sessions", "search", "--json", "--store", url)
    assert run.code == 2
    assert len(run.out.splitlines()) == len(GOOD) - 1
    assert f"  {GOOD[2].session_id}: its stored form cannot be read" in run.err
    run = koala(capsys, "sessions", "show", GOOD[2].session_id, "--store", url)
    assert run.code == 1 and "cannot be read as a session" in run.err


def test_replay_passes_over_a_damaged_row_and_names_it(capsys, tmp_path: Path) -> None:
    from replay_helpers import DEP_PEER, free_port, item_session, sut

    db = tmp_path / "k.db"
    store = SqliteStore(db)
    sessions = [item_session(i, f"sku{i}", 100 + i) for i in range(3)]
    store.put_many(sessions)
    store.db.execute("UPDATE sessions SET body = x'00ff' WHERE session_id = ?", (sessions[1].session_id,))
    store.close()
    dep = free_port()
    with sut(dep=dep) as port:
        run = koala(capsys, "replay", "*", "--target", f"127.0.0.1:{port}", "--outbound", f"{dep}={DEP_PEER.address}", "--store", f"sqlite:///{db}")
    assert run.code == 2, run.err
    assert "same 2, different 0, error 0" in run.out
    assert f"  {sessions[1].session_id}: its stored form cannot be read" in run.err
