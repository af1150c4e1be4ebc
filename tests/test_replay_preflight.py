"""Pre-flight: a run that cannot work stops before the first session with one message (exit
1), and --concurrency runs inbound-only sessions side by side."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from cli_helpers import koala
from koala_store.replay.runner import ReplayOptions, replay
from koala_store.replay.targets import Address, OutboundMapping
from koala_store.store.sqlite import SqliteStore
from replay_helpers import DEP_PEER, KV_PEER, free_port, item_session, plain_session, save_session, sut
from stores import BACKENDS, open_test_store


@pytest.fixture
def db(tmp_path: Path) -> str:
    store = SqliteStore(tmp_path / "k.db")
    store.put_many([item_session(i, f"sku{i}", 10) for i in range(3)] + [save_session(3 + i, f"s{i}", b"v") for i in range(2)])
    store.close()
    return f"sqlite:///{tmp_path / 'k.db'}"


def test_a_target_that_does_not_answer_is_one_message_not_one_per_session(capsys, db: str) -> None:
    port = free_port()
    run = koala(capsys, "replay", "*", "--target", f"127.0.0.1:{port}", "--store", db)
    assert run.code == 1
    assert run.err.splitlines() == [f"error: --target 127.0.0.1:{port} does not answer (connection refused); start the build under test there or fix --target"]
    assert koala(capsys, "runs", "list", "--store", db).out == ""  # no run was started


def test_unmapped_dependencies_are_listed_with_their_session_counts_and_the_flag_to_add(capsys, db: str) -> None:
    dep = free_port()
    with sut(dep=dep) as port:
        run = koala(capsys, "replay", "*", "--target", f"127.0.0.1:{port}", "--store", db)
        assert run.code == 1
        message = " ".join(run.err.split())
        assert message == (
            "error: 2 recorded dependencies of the selected sessions are not mapped: "
            f"{DEP_PEER.address} (3 sessions), {KV_PEER.address} (2 sessions); "
            f"add --outbound 127.0.0.1:PORT={DEP_PEER.address} --outbound 127.0.0.1:PORT={KV_PEER.address} "
            "(the mock listens on 127.0.0.1:PORT; point the build's dependency there), or --bypass PEER to let the build reach the real one"
        )
        # Mapped or let through, every dependency is covered: the run goes on.
        run = koala(capsys, "replay", "*", "--target", f"127.0.0.1:{port}", "--outbound", f"{dep}={DEP_PEER.address}", "--bypass", KV_PEER.address, "--limit", "3", "--store", db)
        assert run.code == 0, run.err
        # Only the selected sessions count: these make no Redis call.
        run = koala(capsys, "replay", "inbound.path:/item/*", "--target", f"127.0.0.1:{port}", "--outbound", f"{dep}={DEP_PEER.address}", "--store", db)
        assert run.code == 0, run.err


@pytest.mark.parametrize("backend", BACKENDS)
def test_stores_count_the_sessions_calling_each_dependency(backend: str, tmp_path: Path) -> None:
    with open_test_store(backend, tmp_path) as store:
        store.put_many([item_session(i, f"sku{i}", 10) for i in range(3)] + [save_session(3 + i, f"s{i}", b"v") for i in range(2)] + [plain_session(9, "/x")])
        store.refresh()
        assert store.outbound_peers("*") == {DEP_PEER.address: 3, KV_PEER.address: 2}
        assert store.outbound_peers("inbound.method:POST") == {KV_PEER.address: 2}
        assert store.outbound_peers("inbound.path:/x") == {}


def test_concurrency_runs_inbound_only_sessions_side_by_side(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "k.db")
    store.put_many([plain_session(i, "/hold", {"held": True}) for i in range(6)])
    with sut() as port:
        summary = replay(store, ReplayOptions(target=Address("127.0.0.1", port), concurrency=3))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/peak", timeout=5) as answer:
            peak = json.loads(answer.read())["peak"]
    assert (summary.same, summary.total) == (6, 6)
    assert peak >= 2  # not one at a time


def test_concurrency_with_mapped_dependencies_that_no_session_calls_is_not_serialised(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "k.db")
    store.put_many([plain_session(i, "/hold", {"held": True}) for i in range(6)])
    with sut() as port:
        options = ReplayOptions(target=Address("127.0.0.1", port), concurrency=3, mappings=[OutboundMapping(Address("127.0.0.1", free_port()), Address(DEP_PEER.ip, DEP_PEER.port))])
        summary = replay(store, options)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/peak", timeout=5) as answer:
            peak = json.loads(answer.read())["peak"]
    assert summary.same == 6 and peak >= 2
