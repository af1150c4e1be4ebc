"""Replay results as plain data beside the model: verdicts, counting, and what the stores keep."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import pytest
from cli_helpers import koala
from stores import BACKENDS, open_test_store

from koala_store.replay.runner import Counts
from koala_store.results import Comparison, RunSummary, Verdict


def test_verdicts_are_the_stored_strings() -> None:
    assert [v.value for v in Verdict] == ["same", "different", "error"]
    comparison = Comparison("r1", "s1", "GET /x", Verdict.DIFFERENT, 1, 2)
    assert b'"verdict":"different"' in msgspec.json.encode(comparison)
    assert msgspec.json.decode(b'{"run_id":"r","session_id":"s","endpoint":"e","verdict":"error","recorded_at":1,"replayed_at":2}', type=Comparison).verdict is Verdict.ERROR
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"run_id":"r","session_id":"s","endpoint":"e","verdict":"maybe","recorded_at":1,"replayed_at":2}', type=Comparison)


def test_counts_add_one_per_verdict() -> None:
    counts = Counts()
    for verdict in [Verdict.SAME, Verdict.SAME, Verdict.DIFFERENT, Verdict.ERROR, Verdict.SAME]:
        counts.add(verdict)
    assert (counts.same, counts.different, counts.error, counts.skipped) == (3, 1, 1, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stores_keep_verdicts_as_strings(backend: str, tmp_path: Path) -> None:
    with open_test_store(backend, tmp_path) as store:
        store.runs.put_run(RunSummary("r1", "nightly", 1, "*", "127.0.0.1:1", "fuzzy"))
        store.runs.put_comparisons([Comparison("r1", f"s{i}", "GET /x", verdict, i, 10 + i) for i, verdict in enumerate(Verdict)])
        assert [c.verdict for c in store.runs.comparisons("r1")] == list(Verdict)
        assert [c.session_id for c in store.runs.comparisons("r1", Verdict.DIFFERENT)] == ["s1"]
        assert [c.session_id for c in store.runs.comparisons("r1", "error")] == ["s2"]
    if backend == "sqlite":
        rows = sqlite3.connect(tmp_path / "contract.db").execute("SELECT verdict, typeof(verdict) FROM comparisons ORDER BY session_id").fetchall()
        assert rows == [("same", "text"), ("different", "text"), ("error", "text")]


def test_runs_show_rejects_an_unknown_verdict(capsys, tmp_path: Path) -> None:
    run = koala(capsys, "runs", "show", "r1", "--verdict", "maybe", "--store", str(tmp_path / "k.db"))
    assert run.code == 1
    assert "invalid value for '--verdict': 'maybe' is not one of 'same', 'different', 'error'" in run.err
    assert "Traceback" not in run.err
