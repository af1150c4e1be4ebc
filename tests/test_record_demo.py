"""`koala record` in front of the demo service for real (redis-server and the downstream
service running), every session checked against what the client and the dependencies saw,
then replayed with `koala replay`: the unchanged build shows no difference, the changed
build its four regressions."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from koala_store.model import Session
from koala_store.replay.runner import ReplayOptions, replay
from koala_store.replay.targets import Address, OutboundMapping
from koala_store.store import open_store
from record_helpers import LOOPBACK, Tee, process, start_koala, stop_koala, tmp_store
from replay_helpers import ROOT, free_port

pytest.importorskip("redis", reason="the demo service needs redis-py (examples/demo/requirements.txt)")
if not shutil.which("redis-server") and not Path("/usr/bin/redis-server").exists():
    pytest.skip("redis-server is not installed (scripts/tools.sh installs Debian's package)", allow_module_level=True)

sys.path.insert(0, str(ROOT / "examples" / "demo"))
import record as demo  # noqa: E402


class Recorded:
    def __init__(self, sessions: list[Session], exchanges: list[tuple[bytes, bytes]], redis: Tee, downstream: Tee, redis_peer: str, downstream_peer: str, stderr: str):
        self.sessions = sessions
        self.exchanges = exchanges
        self.redis = redis
        self.downstream = downstream
        self.redis_peer = redis_peer
        self.downstream_peer = downstream_peer
        self.stderr = stderr


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    work = tmp_path_factory.mktemp("record-demo")
    redis_port, downstream_port, service_port, listen = free_port(), free_port(), free_port(), free_port()
    redis_proxy, downstream_proxy = free_port(), free_port()
    with process([demo.find_redis_server(), "--port", str(redis_port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no", "--dir", str(work)], redis_port, stdout=subprocess.DEVNULL):
        with process([sys.executable, str(demo.HERE / "downstream.py"), "--port", str(downstream_port)], downstream_port):
            redis_tee, downstream_tee = Tee(redis_port), Tee(downstream_port)
            service = [sys.executable, str(demo.HERE / "service.py"), "--port", str(service_port), "--redis", f"{LOOPBACK}:{redis_proxy}", "--downstream", f"http://{LOOPBACK}:{downstream_proxy}"]
            with process(service, service_port):
                recorder = start_koala(
                    "record", "--listen", f"{LOOPBACK}:{listen}", "--target", f"{LOOPBACK}:{service_port}",
                    "--outbound", f"{LOOPBACK}:{redis_proxy}={LOOPBACK}:{redis_tee.port}",
                    "--outbound", f"{LOOPBACK}:{downstream_proxy}={LOOPBACK}:{downstream_tee.port}",
                    "--store", tmp_store(work), "--spool", str(work / "spool"), "--quiet",
                    port=listen,
                )  # fmt: skip
                try:
                    exchanges = demo.run_script(listen)
                finally:
                    code, err = stop_koala(recorder)
            assert code == 143, err  # stopped by SIGTERM, as a shell reports it
    store = open_store(tmp_store(work))
    sessions = list(store.scan())
    store.close()
    return Recorded(sessions, exchanges, redis_tee, downstream_tee, f"{LOOPBACK}:{redis_tee.port}", f"{LOOPBACK}:{downstream_tee.port}", err)


def test_every_request_is_one_complete_session_with_what_the_client_saw(recorded: Recorded) -> None:
    assert "interrupted; 25 complete and 0 incomplete sessions recorded; all stored" in recorded.stderr
    assert len(recorded.sessions) == len(recorded.exchanges) == 25
    for session, (request, response) in zip(recorded.sessions, recorded.exchanges, strict=True):
        assert session.call_from_inbound.request == request  # without the headers the proxy added
        assert session.response == response
        assert not session.incomplete
        assert session.actions[-1] == session.return_inbound
        assert [a.action_index for a in session.actions] == list(range(len(session.actions)))
        thread = int(session.session_id.rsplit("-", 1)[1])
        assert thread == session.thread_id and session.session_id.startswith(str(session.recorded_at))


def test_the_talks_are_exactly_what_the_dependencies_saw(recorded: Recorded) -> None:
    by_connection: dict[tuple[str, int], list] = defaultdict(list)
    for session in recorded.sessions:
        for call in session.outbound_calls:
            by_connection[(call.peer.address, call.socket_fd)].append(call)
    for tee, peer in ((recorded.redis, recorded.redis_peer), (recorded.downstream, recorded.downstream_peer)):
        seen = [c for c in tee.connections if c.to_dependency or c.from_dependency]
        recorded_connections = sorted((calls for (p, _), calls in by_connection.items() if p == peer), key=lambda calls: calls[0].occurred_at)
        assert len(recorded_connections) == len(seen)
        for calls, observed in zip(recorded_connections, seen, strict=True):
            assert b"".join(c.request for c in calls) == bytes(observed.to_dependency)
            assert b"".join(c.response for c in calls) == bytes(observed.from_dependency)
    redis_connections = {c.socket_fd for s in recorded.sessions for c in s.outbound_calls if c.peer.address == recorded.redis_peer}
    assert len(redis_connections) == 1  # redis-py's pooled connection, talks of many sessions
    first_redis = next(c for s in recorded.sessions for c in s.outbound_calls if c.peer.address == recorded.redis_peer)
    assert first_redis.request.startswith(b"*2\r\n$5\r\nHELLO\r\n")  # its opening, in the session that opened it


def _replay(recorded: Recorded, tmp_path: Path, build: str):
    store = open_store(tmp_store(tmp_path, f"{build}.db"))
    store.put_many(recorded.sessions)
    redis, downstream, port = free_port(), free_port(), free_port()
    command = [sys.executable, str(demo.HERE / "service.py"), "--port", str(port), "--redis", f"{LOOPBACK}:{redis}", "--downstream", f"http://{LOOPBACK}:{downstream}", "--build", build]
    with process(command, port):
        summary = replay(
            store,
            ReplayOptions(
                target=Address(LOOPBACK, port),
                mappings=[
                    OutboundMapping(Address(LOOPBACK, redis), Address(LOOPBACK, recorded.redis.port)),
                    OutboundMapping(Address(LOOPBACK, downstream), Address(LOOPBACK, recorded.downstream.port)),
                ],
            ),
        )
    comparisons = list(store.runs.comparisons(summary.run_id))
    store.close()
    return summary, comparisons


def test_replaying_the_unchanged_build_shows_no_difference(recorded: Recorded, tmp_path: Path) -> None:
    summary, comparisons = _replay(recorded, tmp_path, "v1")
    assert (summary.same, summary.different, summary.error, summary.unattributed) == (25, 0, 0, 0), [c.differences for c in comparisons if c.differences]
    assert all(c.outbound.missed == 0 and c.outbound.unmatched == 0 for c in comparisons)


def test_replaying_the_changed_build_shows_its_four_regressions(recorded: Recorded, tmp_path: Path) -> None:
    summary, comparisons = _replay(recorded, tmp_path, "v2")
    assert (summary.same, summary.different, summary.error) == (12, 13, 0)
    found = Counter((c.endpoint, d.kind, d.path.split(".", 1)[0] if d.path.startswith("outbound") else d.path) for c in comparisons for d in c.differences)
    assert found == {
        ("GET /users/{id}", "removed", "body.email"): 7,
        ("GET /quote", "changed", "body.total_cents"): 2,
        ("POST /orders", "missing_call", "outbound[3]"): 3,
        ("GET /orders/{id}", "changed", "status"): 1,
    }
