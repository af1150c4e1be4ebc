"""The demo end to end: the recording made from a real run replays against the unchanged
build with no difference, and against the changed build shows each regression."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from demo_runs import ingest_demo, replay_demo
from koala_store.store.sqlite import SqliteStore

pytest.importorskip("redis")  # the demo service's client (a dev dependency)


def run_build(tmp_path: Path, build: str):
    store = SqliteStore(tmp_path / f"{build}.db")
    ingest_demo(store)
    summary = replay_demo(store, build)
    comparisons = list(store.runs.comparisons(summary.run_id))
    store.close()
    return summary, comparisons


def test_the_unchanged_build_replays_with_no_difference(tmp_path: Path) -> None:
    summary, comparisons = run_build(tmp_path, "v1")
    assert (summary.same, summary.different, summary.error, summary.unattributed) == (25, 0, 0, 0), [c.differences for c in comparisons if c.differences]
    # Every recorded call was made and answered from the recording, the Redis handshake too.
    assert sum(c.outbound.matched for c in comparisons) == 43
    assert all(c.outbound.missed == 0 and c.outbound.unmatched == 0 for c in comparisons)


def test_the_changed_build_shows_each_regression(tmp_path: Path) -> None:
    summary, comparisons = run_build(tmp_path, "v2")
    assert (summary.same, summary.different, summary.error) == (12, 13, 0)
    found = Counter((c.endpoint, d.kind, d.path.split(".", 1)[0] if d.path.startswith("outbound") else d.path) for c in comparisons for d in c.differences)
    assert found == {
        ("GET /users/{id}", "removed", "body.email"): 7,  # a missing field
        ("GET /quote", "changed", "body.total_cents"): 2,  # a changed value
        ("POST /orders", "missing_call", "outbound[3]"): 3,  # a lost write to Redis
        ("GET /orders/{id}", "changed", "status"): 1,  # a changed status
    }
