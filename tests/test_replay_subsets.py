"""Replaying a query-picked subset gives each session the verdict it gets when everything is
replayed: the demo (Redis through a pooled connection whose HELLO/CLIENT set-up was recorded
only by the first session that used it), each endpoint alone, against v1 and v2, each on a
freshly started service (so its pool opens during the subset's first session)."""

from __future__ import annotations

import pytest

from demo_runs import ingest_demo, replay_demo
from koala_store.store.sqlite import SqliteStore

pytest.importorskip("redis")
SUBSETS = [
    "inbound.path:/health",
    "inbound.path:/users/*",
    "inbound.path:/quote",
    "inbound.path:/orders AND inbound.method:POST",
    "inbound.path:/orders/*",
    "inbound.path:/nope",
]


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> SqliteStore:
    store = SqliteStore(tmp_path_factory.mktemp("demo") / "koala.db")
    ingest_demo(store)
    return store


def verdicts(store: SqliteStore, build: str, query: str) -> tuple[dict[str, str], list]:
    summary = replay_demo(store, build, query)
    comparisons = list(store.runs.comparisons(summary.run_id))
    return {c.session_id: c.verdict for c in comparisons}, comparisons


@pytest.mark.parametrize("build", ["v1", "v2"])
def test_every_endpoint_alone_gets_the_verdicts_of_replaying_everything(demo_store: SqliteStore, build: str) -> None:
    everything, _ = verdicts(demo_store, build, "*")
    assert len(everything) == 25
    assert list(everything.values()).count("different") == (0 if build == "v1" else 13)
    seen: dict[str, str] = {}
    for query in SUBSETS:
        subset, comparisons = verdicts(demo_store, build, query)
        assert subset, query
        assert subset == {sid: everything[sid] for sid in subset}, (query, [c.differences for c in comparisons if c.differences])
        seen.update(subset)
        # The pool's set-up was answered from the session that recorded it, and said so.
        for comparison in comparisons:
            assert comparison.outbound is not None
            assert comparison.outbound.unmatched == 0 and all(not d.kind.startswith("unmatched") for d in comparison.differences)
            for talk in comparison.outbound.talks:
                if talk.answered_from is not None:
                    assert talk.opening and talk.answered_from == "1795320053825103978-1"
    assert seen == everything


def test_a_subset_answers_the_pools_set_up_from_the_session_that_recorded_it(demo_store: SqliteStore) -> None:
    _, comparisons = verdicts(demo_store, "v1", "inbound.path:/orders AND inbound.method:POST")
    first = comparisons[0]
    assert first.outbound is not None and first.outbound.setup == 4  # HELLO 3, CLIENT x3
    answered = [t for t in first.outbound.talks if t.answered_from]
    assert [t.answered_from for t in answered] == ["1795320053825103978-1"] * 4
