"""Concurrent clients through `koala record`: with the service passing X-Koala-Session on,
every talk lands in its own session; without it, sessions whose talks overlapped are marked
incomplete (never mis-attributed) and replay skips them unless asked; --serial makes every
session complete; a talk outside any request goes into no session."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from koala_store.model import Session
from koala_store.replay.runner import ReplayOptions, replay
from koala_store.replay.targets import Address, OutboundMapping
from koala_store.store import open_store
from record_helpers import LOOPBACK, start_koala, stop_koala, tmp_store
from replay_helpers import TESTS, free_port, running

CLIENTS, PER_CLIENT = 6, 4
DELAY_S = 0.15  # the dependency answers this late, so concurrent requests overlap


class SlowPrices(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        time.sleep(DELAY_S)
        item = self.path.rsplit("/", 1)[1]
        data = json.dumps({"price": int(item) * 10}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def dependency():
    server = ThreadingHTTPServer((LOOPBACK, 0), SlowPrices)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def _clients(port: int) -> list[tuple[str, bytes]]:
    """CLIENTS threads, started together, each sending PER_CLIENT requests."""
    barrier = threading.Barrier(CLIENTS)
    results: list[tuple[str, bytes]] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        barrier.wait()
        for i in range(PER_CLIENT):
            item = n * 100 + i
            with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/item/{item}", timeout=10) as response:
                body = response.read()
            with lock:
                results.append((str(item), body))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


class Run:
    def __init__(self, sessions: list[Session], stderr: str, metrics: str, dep_proxy: int, dep_port: int):
        self.sessions, self.stderr, self.metrics, self.dep_proxy, self.dep_port = sessions, stderr, metrics, dep_proxy, dep_port


def _record(tmp_path: Path, dependency: int, *flags: str, propagate: bool, stray: bool = False) -> Run:
    service, listen, dep_proxy, metrics = free_port(), free_port(), free_port(), free_port()
    command = [sys.executable, str(TESTS / "sut_app.py"), "--port", str(service), "--dep", f"{LOOPBACK}:{dep_proxy}"] + (["--propagate"] if propagate else [])
    with running(command, service):
        recorder = start_koala(
            "record", "--listen", f"{LOOPBACK}:{listen}", "--target", f"{LOOPBACK}:{service}",
            "--outbound", f"{LOOPBACK}:{dep_proxy}={LOOPBACK}:{dependency}", "--metrics", f"{LOOPBACK}:{metrics}",
            "--store", tmp_store(tmp_path), "--spool", str(tmp_path / "spool"), "--quiet", *flags,
            port=listen,
        )  # fmt: skip
        try:
            answers = _clients(listen)
            assert len(answers) == CLIENTS * PER_CLIENT
            assert all(json.loads(body)["price"] == int(item) * 10 for item, body in answers)
            if stray:  # a health check of the dependency while no request is in flight
                time.sleep(0.1)
                with urllib.request.urlopen(f"http://{LOOPBACK}:{dep_proxy}/price/7", timeout=5) as response:
                    response.read()
            time.sleep(0.2)
            with urllib.request.urlopen(f"http://{LOOPBACK}:{metrics}/metrics", timeout=5) as response:
                metrics_text = response.read().decode()
        finally:
            code, err = stop_koala(recorder)
    assert code == 143, err
    store = open_store(tmp_store(tmp_path))
    sessions = list(store.scan())
    store.close()
    return Run(sessions, err, metrics_text, dep_proxy, dependency)


def _item(session: Session) -> str:
    return re.search(rb"GET /item/(\d+) ", session.call_from_inbound.request).group(1).decode()  # type: ignore[union-attr]


def _assert_never_misattributed(sessions: list[Session]) -> None:
    for session in sessions:
        for call in session.outbound_calls:
            assert call.request.startswith(f"GET /price/{_item(session)} ".encode()), (session.session_id, call.request)


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert match, f"{name} not in the metrics"
    return float(match.group(1))


def test_with_the_header_passed_on_every_talk_lands_in_its_session(tmp_path: Path, dependency: int) -> None:
    run = _record(tmp_path, dependency, propagate=True)
    assert len(run.sessions) == CLIENTS * PER_CLIENT
    assert not [s.incomplete for s in run.sessions if s.incomplete]
    assert all(len(s.outbound_calls) == 1 for s in run.sessions)
    _assert_never_misattributed(run.sessions)
    assert f"{CLIENTS * PER_CLIENT} complete and 0 incomplete sessions recorded" in run.stderr
    assert _metric(run.metrics, 'koala_record_sessions_total{state="complete"}') == CLIENTS * PER_CLIENT


def test_without_the_header_overlapping_sessions_are_incomplete_never_misattributed(tmp_path: Path, dependency: int) -> None:
    run = _record(tmp_path, dependency, propagate=False)
    assert len(run.sessions) == CLIENTS * PER_CLIENT
    incomplete = [s for s in run.sessions if s.incomplete]
    complete = [s for s in run.sessions if not s.incomplete]
    assert incomplete, "six clients started together on a slow dependency must overlap"
    _assert_never_misattributed(run.sessions)
    assert all(len(s.outbound_calls) == 1 for s in complete)
    for session in incomplete:
        assert re.match(r"talk #\d+ to 127\.0\.0\.1:\d+ on connection \d+ b'GET /price/\d+ HTTP/1\.1", session.incomplete), session.incomplete
        assert "inbound requests were in flight" in session.incomplete and "--serial" in session.incomplete
    assert f"{len(complete)} complete and {len(incomplete)} incomplete sessions recorded" in run.stderr
    assert _metric(run.metrics, 'koala_record_sessions_total{state="incomplete"}') == len(incomplete)

    # Replay skips them, says so, and replays them when asked.
    store = open_store(tmp_store(tmp_path))
    try:
        for include in (False, True):
            mock, service = free_port(), free_port()
            with running([sys.executable, str(TESTS / "sut_app.py"), "--port", str(service), "--dep", f"{LOOPBACK}:{mock}"], service):
                options = ReplayOptions(
                    target=Address(LOOPBACK, service),
                    mappings=[OutboundMapping(Address(LOOPBACK, mock), Address(LOOPBACK, run.dep_port))],
                    include_incomplete=include,
                )
                summary = replay(store, options)
            if not include:
                assert (summary.total, summary.same, summary.skipped_incomplete) == (len(complete), len(complete), len(incomplete))
            else:
                assert summary.total == len(run.sessions) and summary.skipped_incomplete == 0
                notes = [n for c in store.runs.comparisons(summary.run_id) for n in c.notes if n.startswith("recorded incomplete: talk #")]
                assert len(notes) == len(incomplete)
    finally:
        store.close()


def test_serial_admits_one_request_at_a_time_so_every_session_is_complete(tmp_path: Path, dependency: int) -> None:
    run = _record(tmp_path, dependency, "--serial", propagate=False, stray=True)
    assert len(run.sessions) == CLIENTS * PER_CLIENT
    assert not [s.incomplete for s in run.sessions if s.incomplete]
    assert all(len(s.outbound_calls) == 1 for s in run.sessions)
    _assert_never_misattributed(run.sessions)  # the stray /price/7 is in none of them
    ordered = sorted(run.sessions, key=lambda s: s.recorded_at)
    for before, after in zip(ordered, ordered[1:], strict=False):
        assert before.return_inbound.occurred_at <= after.recorded_at  # never two in flight
    assert "1 talks outside any request" in run.stderr and "no inbound request was in flight" in run.stderr
    assert _metric(run.metrics, "koala_record_unattributed_talks_total") == 1
