"""The demo recording in examples/demo/recording (made by examples/demo/record.py from a real
run) and the demo service's two builds."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from koala_store.formats import koala
from koala_store.model import CallOutbound, ReturnInbound, Session
from koala_store.summary import summarize

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo"
RECORDING = DEMO / "recording"
REDIS_PEER = "127.0.0.1:16379"
DOWNSTREAM_PEER = "127.0.0.1:18081"


def _load() -> list[Session]:
    sessions = []
    for path in sorted(RECORDING.iterdir()):
        loaded = koala.loads(path.read_bytes())
        assert len(loaded) == 1, path.name
        assert loaded[0].session_id == path.name, "a Koala record folder names each file by its SessionId"
        sessions.append(loaded[0])
    return sorted(sessions, key=lambda s: s.recorded_at)


@pytest.fixture(scope="module")
def sessions() -> list[Session]:
    return _load()


def test_every_file_is_a_koala_session(sessions: list[Session]) -> None:
    assert len(sessions) >= 20
    for session in sessions:
        thread = session.session_id.rsplit("-", 1)[1]
        assert int(thread) == session.thread_id
        assert session.call_from_inbound.request.startswith((b"GET ", b"POST "))
        # Koala repeats ReturnInbound as the last action; ActionIndex is the position.
        assert session.actions[-1] == session.return_inbound
        assert isinstance(session.actions[-1], ReturnInbound)
        assert [a.action_index for a in session.actions] == list(range(len(session.actions)))
        for call in session.outbound_calls:
            assert session.recorded_at <= call.occurred_at <= call.response_time <= session.return_inbound.occurred_at


def test_outbound_calls_carry_the_recorded_peers_and_protocols(sessions: list[Session]) -> None:
    protocols: dict[str, set[str]] = {}
    for session in sessions:
        for call in summarize(session).outbound:
            protocols.setdefault(call.peer, set()).add(call.protocol)
    assert protocols == {REDIS_PEER: {"redis"}, DOWNSTREAM_PEER: {"http"}}


def test_the_recording_covers_every_endpoint_and_outcome(sessions: list[Session]) -> None:
    seen = {(s.method, s.path.split("/")[1], s.status) for s in map(summarize, sessions)}
    for expected in [
        ("GET", "health", 200),
        ("GET", "users", 200),
        ("GET", "users", 404),
        ("GET", "quote", 200),
        ("POST", "orders", 201),
        ("POST", "orders", 422),
        ("GET", "orders", 200),
        ("GET", "orders", 404),
    ]:
        assert expected in seen
    commands = {c.method for s in map(summarize, sessions) for c in s.outbound if c.protocol == "redis"}
    assert {"GET", "SET", "INCRBY"} <= commands


def test_a_redis_connection_is_shared_by_consecutive_sessions(sessions: list[Session]) -> None:
    def redis_connections(session: Session) -> set[str]:
        return {c.connection for c in session.outbound_calls if c.peer.address == REDIS_PEER}

    # Longest run of consecutive Redis-using sessions that all talk on one connection.
    best, run = 0, 0
    previous: set[str] = set()
    for connections in filter(None, map(redis_connections, sessions)):
        run = run + 1 if connections & previous else 1
        best, previous = max(best, run), connections
    assert best >= 3


def test_the_redis_handshake_is_recorded_once_per_connection(sessions: list[Session]) -> None:
    # redis-py greets a new connection (HELLO, CLIENT ...) before its first command; with one
    # pooled connection that happens in exactly one session.
    first_talks: dict[str, CallOutbound] = {}
    for session in sessions:
        for call in session.outbound_calls:
            first_talks.setdefault(call.connection, call)
    redis_firsts = [c for c in first_talks.values() if c.peer.address == REDIS_PEER]
    assert redis_firsts and all(c.request.startswith(b"*2\r\n$5\r\nHELLO\r\n") for c in redis_firsts)


# --- the service's builds -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(port: int, path: str) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@contextmanager
def running_service(build: str) -> Iterator[int]:
    """The demo service's `build` on a free port, with Redis and the downstream down."""
    pytest.importorskip("redis", reason="the demo service needs redis-py (examples/demo/requirements.txt)")
    port, nothing = _free_port(), _free_port()  # nothing listens on `nothing`
    process = subprocess.Popen(
        [sys.executable, str(DEMO / "service.py"), "--port", str(port), "--build", build]
        + ["--redis", f"127.0.0.1:{nothing}", "--downstream", f"http://127.0.0.1:{nothing}"],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                _get(port, "/health")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"service {build} did not start: {process.communicate()[1].decode()}") from None
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize("build", ["v1", "v2"])
def test_both_builds_answer_health_without_redis(build: str) -> None:
    with running_service(build) as port:
        status, body = _get(port, "/health")
    assert status == 200
    assert body["status"] == "ok" and isinstance(body["served_at"], int)


def test_an_unreachable_redis_is_a_clear_503() -> None:
    # One build is enough: redis-py retries a refused connection for a few seconds.
    with running_service("v1") as port:
        status, body = _get(port, "/orders/1")
    assert status == 503 and body["error"].startswith("redis:")
