"""The outbound mock in a process of its own (koala_store.replay.mock_process), end to end: a
real SUT, the real child process on real sockets, a real SQLite store. Each run is checked
against the same replay with the mock in the runner's process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from cli_helpers import koala
from koala_store.errors import KoalaError
from koala_store.replay import mock_process
from koala_store.replay.mock_process import RemoteMock, use_process
from koala_store.replay.runner import ReplayOptions, replay
from koala_store.replay.targets import Address, OutboundMapping
from koala_store.store.sqlite import SqliteStore
from replay_helpers import DEP_PEER, free_port, item_session, noisy_session, pair_session, plain_session, sut


@pytest.fixture
def store(tmp_path: Path):
    opened = SqliteStore(tmp_path / "replay.db")
    yield opened
    opened.close()


def options(port: int, dep: int, **more) -> ReplayOptions:
    mapping = OutboundMapping(Address("127.0.0.1", dep), Address(DEP_PEER.ip, DEP_PEER.port))
    return ReplayOptions(target=Address("127.0.0.1", port), mappings=[mapping], **more)


def outcomes(store, summary) -> dict[str, tuple]:
    """Per session: the verdict, the differing paths and each talk's matched position."""
    return {
        c.session_id: (c.verdict, sorted(d.path for d in c.differences), [(t.position, t.repeated, t.opening) for t in c.outbound.talks], c.outbound.missed)
        for c in store.runs.comparisons(summary.run_id)
    }


def test_auto_gives_the_mock_a_process_only_with_sessions_side_by_side_and_cores_to_spare() -> None:
    assert use_process(2, "auto", cores=4) and use_process(8, "auto", cores=16)
    assert not use_process(8, "auto", cores=2)  # measured behind: the SUT takes the spare core
    assert not use_process(32, "auto", cores=2) and not use_process(64, "auto", cores=3)
    assert not use_process(32, "auto", cores=1)
    assert not use_process(1, "auto", cores=16)  # one session at a time stays in-process
    assert use_process(2, "on") and not use_process(8, "off")
    assert not use_process(1, "on")  # attribution by elimination needs the runner's own mock


@pytest.mark.parametrize("matcher", ["fuzzy", "chunk"])
def test_a_run_with_the_mock_in_its_own_process_gives_the_same_verdicts_and_matches(store, matcher: str) -> None:
    sessions = [item_session(i, f"sku{i}", 100 + i) for i in range(30)] + [pair_session(100 + i, f"p{i}") for i in range(10)]
    store.put_many(sessions)
    dep = free_port()
    with sut("--propagate", dep=dep) as port:
        inside = replay(store, options(port, dep, concurrency=8, matcher=matcher, mock_process="off"))
        beside = replay(store, options(port, dep, concurrency=8, matcher=matcher, mock_process="on"))
    assert (beside.same, beside.different, beside.error, beside.unattributed) == (40, 0, 0, 0)
    assert outcomes(store, beside) == outcomes(store, inside)
    assert all(c.outbound.talks for c in store.runs.comparisons(beside.run_id))


def test_regressions_are_found_through_the_mock_process_as_in_process(store) -> None:
    """A changed answer, and calls made in another order than recorded."""
    store.put_many([item_session(i, f"sku{i}", 100) for i in range(12)] + [pair_session(100 + i, f"p{i}") for i in range(6)])
    dep = free_port()
    with sut("--propagate", "--swap", "--price-bump", "5", dep=dep) as port:
        inside = replay(store, options(port, dep, concurrency=4, mock_process="off"))
        beside = replay(store, options(port, dep, concurrency=4, mock_process="on"))
    assert beside.different == inside.different >= 12
    assert outcomes(store, beside) == outcomes(store, inside)


def test_a_service_that_does_not_pass_the_header_on_is_refused_as_in_process(store) -> None:
    store.put_many([plain_session(0, "/health-ish"), *[item_session(i, f"sku{i}", 100) for i in range(1, 5)]])
    dep = free_port()
    with sut(dep=dep) as port, pytest.raises(KoalaError) as refused:
        replay(store, options(port, dep, concurrency=4, mock_process="on"))
    assert "--concurrency 4 cannot tell which session an outbound call belongs to" in str(refused.value)


def test_a_talk_naming_no_session_is_reported_unattributed_from_the_child() -> None:
    async def run() -> RemoteMock:
        dep = free_port()
        mock = RemoteMock([OutboundMapping(Address("127.0.0.1", dep), Address(DEP_PEER.ip, DEP_PEER.port))], "fuzzy", {}, bypass=[])
        await mock.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", dep)
            writer.write(b"GET /price/x HTTP/1.1\r\nHost: dep\r\nX-Koala-Session: nobody\r\n\r\n")
            await writer.drain()
            assert await asyncio.wait_for(reader.read(100), 5) == b""  # fail closed: no answer
            writer.close()
            await mock.collect()
        finally:
            await mock.stop()
        return mock

    mock = asyncio.run(run())
    [talk] = mock.unattributed
    assert "'nobody' names no session being replayed" in talk.reason
    assert talk.request.startswith(b"GET /price/x")
    assert mock.cpu_seconds > 0


def test_a_mock_process_that_dies_stops_the_run_with_one_clear_error(store, monkeypatch) -> None:
    store.put_many([item_session(i, f"sku{i}", 100 + i) for i in range(400)])
    started: list[RemoteMock] = []
    original = RemoteMock.start

    async def start_and_note(self: RemoteMock) -> None:
        await original(self)
        started.append(self)

    async def finish_then_kill(self, context, grace, _finish=RemoteMock.finish):
        talks = await _finish(self, context, grace)
        if self._process is not None and self._process.returncode is None and len(started) == 1:
            os.kill(self._process.pid, signal.SIGKILL)
            started.append(self)  # once
        return talks

    monkeypatch.setattr(RemoteMock, "start", start_and_note)
    monkeypatch.setattr(RemoteMock, "finish", finish_then_kill)
    dep = free_port()
    with sut("--propagate", dep=dep) as port, pytest.raises(KoalaError) as failed:
        replay(store, options(port, dep, concurrency=4, mock_process="on"))
    assert "the outbound mock's process ended unexpectedly (exit status -9)" in str(failed.value)
    assert "--mock-process off" in str(failed.value)
    run = store.runs.runs(1)[0]
    assert run.status == "interrupted" and 0 < run.total < 400  # what was compared is kept


def test_a_listen_address_in_use_is_one_clear_error_from_the_child(capsys, tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "k.db")
    store.put_many([item_session(0, "a", 10)])
    store.close()
    with socket.socket() as busy, sut("--propagate") as port:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        run = koala(
            capsys,
            "replay",
            "*",
            "--target",
            f"127.0.0.1:{port}",
            "--outbound",
            f"{taken}={DEP_PEER.address}",
            "--concurrency",
            "2",
            "--mock-process",
            "on",
            "--store",
            f"sqlite:///{tmp_path / 'k.db'}",
        )
    assert run.code == 1
    assert f"cannot listen on 127.0.0.1:{taken} for {DEP_PEER.address}" in " ".join(run.err.split())


def test_the_child_ends_when_the_runner_goes_away() -> None:
    """A runner killed outright leaves no mock behind: the child sees its control socket close."""

    async def run() -> int:
        mock = RemoteMock([OutboundMapping(Address("127.0.0.1", free_port()), Address(DEP_PEER.ip, DEP_PEER.port))], "fuzzy", {}, bypass=[])
        await mock.start()
        process = mock._process
        assert process is not None
        mock._writer.transport.abort()  # what the runner's death does to its end
        code = await asyncio.wait_for(process.wait(), mock_process.STOP_WAIT_S)
        await mock.stop()
        return code

    assert asyncio.run(run()) == 0


def test_noise_runs_go_through_the_mock_process(store) -> None:
    """Each session replayed again: every replay's talks come back from the child."""
    store.put_many([noisy_session(i, f"n{i}") for i in range(4)] + [item_session(10 + i, f"sku{i}", 5) for i in range(8)])
    dep = free_port()
    with sut("--propagate", "--price-bump", "1", dep=dep) as port:
        beside = replay(store, options(port, dep, concurrency=4, noise_runs=2, mock_process="on"))
    results = list(store.runs.comparisons(beside.run_id))
    noisy = [c for c in results if c.endpoint.startswith("GET /noisy")]
    items = [c for c in results if c.endpoint.startswith("GET /item")]
    assert all(c.verdict == "same" and [s.why for s in c.suppressed] == ["noise-runs"] for c in noisy)
    assert all([d.path for d in c.differences] == ["body.price"] and c.outbound.matched == 1 for c in items)


def test_a_failed_preflight_ends_the_launched_mock_process_at_once(store, monkeypatch) -> None:
    """The child is launched before the pre-flight (its start-up overlaps the checks); a
    target that does not answer stops the run with the pre-flight's error, and the child,
    never started, ends with it (no process left behind, no wait for a reply)."""
    store.put_many([item_session(i, f"sku{i}", 5) for i in range(3)])
    launched: list[RemoteMock] = []
    original = RemoteMock.launch

    async def launch_and_note(self: RemoteMock) -> None:
        await original(self)
        launched.append(self)

    monkeypatch.setattr(RemoteMock, "launch", launch_and_note)
    process_of = {}
    original_reap = RemoteMock._reap

    async def reap_and_note(self: RemoteMock) -> None:
        process_of["child"] = self._process
        await original_reap(self)

    monkeypatch.setattr(RemoteMock, "_reap", reap_and_note)
    silent = free_port()  # nothing listens here
    began = time.monotonic()
    with pytest.raises(KoalaError) as failed:
        replay(store, options(silent, free_port(), concurrency=4, mock_process="on"))
    took = time.monotonic() - began
    assert f"127.0.0.1:{silent}" in str(failed.value)
    assert len(launched) == 1
    child = process_of["child"]
    assert child is not None and child.returncode is not None  # it ended, and was waited for
    assert took < mock_process.STOP_WAIT_S
