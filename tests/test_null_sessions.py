"""Sessions Koala's recorder writes with `"ReturnInbound": null` and/or `"Actions": null` (a
request answered by closing, a thread shut down, a session cut at 500 actions) are stored,
searched, shown, exported unchanged and replayed, on both stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import koala
from koala_store.formats import koala as koala_format
from koala_store.replay.runner import ReplayOptions, replay
from koala_store.replay.targets import Address, OutboundMapping
from replay_helpers import DEP_PEER, free_port, item_session, sut
from stores import BACKENDS, open_test_store


def unanswered(index: int, *, with_call: bool) -> bytes:
    """A Koala record file of a session whose response was never recorded."""
    session = item_session(index, f"n{index}", 10 + index)
    doc = koala_format.to_dict(session)
    doc["ReturnInbound"] = None
    doc["Actions"] = [a for a in doc["Actions"] if a["ActionType"] != "ReturnInbound"] if with_call else None
    return koala_format.go_json(json.dumps(doc, indent=2).encode())


@pytest.mark.parametrize("backend", BACKENDS)
def test_null_sessions_are_stored_searched_shown_and_exported_unchanged(backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = {"1": unanswered(1, with_call=True), "2": unanswered(2, with_call=False)}
    folder = tmp_path / "in"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    with open_test_store(backend, tmp_path) as store:
        url = store.url
        run = koala(capsys, "ingest", str(folder), "--store", url)
        assert run.code == 0 and "stored 2 sessions" in run.out, run.err
        run = koala(capsys, "sessions", "search", "inbound.path:/item/n* AND NOT _exists_:inbound.status", "--json", "--store", url)
        found = [json.loads(line) for line in run.out.splitlines()]
        assert run.code == 0 and len(found) == 2
        assert {f["outbound_count"] for f in found} == {0, 1}
        session_id = next(f["session_id"] for f in found if f["outbound_count"] == 1)
        run = koala(capsys, "sessions", "show", session_id, "--store", url)
        assert run.code == 0 and "never answered" in run.out
        out = tmp_path / "out"
        run = koala(capsys, "sessions", "export", "*", "--format", "koala", "-o", str(out), "--store", url)
        assert run.code == 0
        exported = sorted(p.read_bytes() for p in out.iterdir())
        assert exported == sorted(files.values())


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_null_session_replays_comparing_what_can_be_compared(backend: str, tmp_path: Path) -> None:
    (session,) = koala_format.loads(unanswered(3, with_call=True))
    assert session.return_inbound is None and len(session.outbound_calls) == 1
    dep = free_port()
    with open_test_store(backend, tmp_path) as store, sut(dep=dep) as port:
        store.put_many([session])
        store.refresh()
        options = ReplayOptions(target=Address("127.0.0.1", port), mappings=[OutboundMapping(Address("127.0.0.1", dep), Address(DEP_PEER.ip, DEP_PEER.port))])
        summary = replay(store, options)
        (comparison,) = store.runs.comparisons(summary.run_id)
    assert (summary.same, summary.different, summary.error) == (1, 0, 0)
    assert comparison.outbound is not None and comparison.outbound.matched == 1
    assert comparison.replayed_status == 200 and comparison.recorded_status is None
    assert any("recorded response missing" in note for note in comparison.notes)
