"""Replay end to end with real processes: a real SUT (tests/sut_app.py), the real mock on real
sockets, real dependencies where a call may reach one, a real SQLite store."""

from __future__ import annotations

import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from cli_helpers import koala
from koala_store.diff import DiffOptions
from koala_store.errors import KoalaError
from koala_store.replay.inbound import RequestEdits
from koala_store.replay.runner import ReplayOptions, replay
from koala_store.replay.targets import Address, OutboundMapping
from koala_store.store.sqlite import SqliteStore
from replay_helpers import (
    DB_PEER,
    DEP_PEER,
    KV_PEER,
    free_port,
    greet_session,
    item_session,
    noisy_session,
    pair_session,
    plain_session,
    running,
    save_session,
    sut,
    TESTS,
)


@pytest.fixture
def store(tmp_path: Path):
    opened = SqliteStore(tmp_path / "replay.db")
    yield opened
    opened.close()


def addr(port: int) -> Address:
    return Address("127.0.0.1", port)


def mapping(listen: int, peer) -> OutboundMapping:
    return OutboundMapping(addr(listen), Address(peer.ip, peer.port))


def comparisons(store, summary):
    return list(store.runs.comparisons(summary.run_id))


def test_nothing_changed_means_every_session_is_the_same(store) -> None:
    store.put_many([item_session(i, f"sku{i}", 100 + i) for i in range(6)])
    dep = free_port()
    with sut(dep=dep) as port:
        summary = replay(store, ReplayOptions(target=addr(port), mappings=[mapping(dep, DEP_PEER)]))
    assert (summary.total, summary.same, summary.different, summary.error) == (6, 6, 0, 0)
    for comparison in comparisons(store, summary):
        assert comparison.outbound.matched == 1 and comparison.outbound.unmatched == 0 and comparison.outbound.missed == 0
        assert comparison.replayed_status == comparison.recorded_status == 200


def test_a_changed_value_is_found(store) -> None:
    store.put_many([item_session(i, f"sku{i}", 100) for i in range(3)])
    dep = free_port()
    with sut("--price-bump", "5", dep=dep) as port:
        summary = replay(store, ReplayOptions(target=addr(port), mappings=[mapping(dep, DEP_PEER)]))
    assert summary.different == 3
    [difference] = comparisons(store, summary)[0].differences
    assert (difference.path, difference.kind, difference.expected, difference.actual) == ("body.price", "changed", 100, 105)


@pytest.mark.parametrize("matcher", ["chunk", "sim", "fuzzy"])
def test_every_matcher_answers_the_outbound_calls(store, matcher: str) -> None:
    store.put_many([item_session(i, f"sku{i}", 100 + i) for i in range(4)])
    dep = free_port()
    with sut(dep=dep) as port:
        summary = replay(store, ReplayOptions(target=addr(port), mappings=[mapping(dep, DEP_PEER)], matcher=matcher))
    assert summary.same == 4, [c.differences for c in comparisons(store, summary)]


def test_a_target_down_before_the_run_is_one_error_and_no_run(store) -> None:
    store.put_many([item_session(i, f"sku{i}", 100) for i in range(3)])
    port = free_port()
    with pytest.raises(KoalaError) as caught:
        replay(store, ReplayOptions(target=addr(port), timeout=2))
    assert str(caught.value) == f"--target 127.0.0.1:{port} does not answer (connection refused); start the build under test there or fix --target"
    assert store.runs.runs() == []


def test_a_target_that_goes_down_mid_run_is_a_per_session_error_and_the_run_goes_on(store) -> None:
    store.put_many([plain_session(i, f"/echo/x-{i}") for i in range(8)])
    port = free_port()
    with running([sys.executable, str(TESTS / "sut_app.py"), "--port", str(port)], port) as process:
        threading.Timer(0.5, process.terminate).start()
        summary = replay(store, ReplayOptions(target=addr(port), rate=8, timeout=2))
    found = comparisons(store, summary)
    assert summary.total == 8 and 0 < summary.error < 8
    assert all("cannot connect to the target" in c.error or "closed" in c.error or "dropped" in c.error for c in found if c.verdict == "error")


def test_a_slow_and_a_resetting_sut_are_errors_and_the_others_still_compare(store) -> None:
    store.put_many([plain_session(0, "/slow", {"slow": True}), plain_session(1, "/reset"), item_session(2, "ok", 7)])
    dep = free_port()
    with sut(dep=dep) as port:
        summary = replay(store, ReplayOptions(target=addr(port), mappings=[mapping(dep, DEP_PEER)], timeout=1))
    slow, reset, fine = comparisons(store, summary)
    assert slow.verdict == "error" and "did not answer within 1 s" in slow.error
    assert reset.verdict == "error" and ("dropped the connection" in reset.error or "closed the connection without answering" in reset.error)
    assert fine.verdict == "same"
    assert (summary.same, summary.error) == (1, 2)


class _RealDependency(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits: list[str] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        body = b'{"price": 100}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def real_dependency():
    _RealDependency.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RealDependency)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def _mismatched_session(peer_port: int):
    """The recording's call was to another path entirely: the live call matches nothing."""
    session = item_session(0, "sku1", 100)
    call = session.actions[0]
    call.request = b"GET /inventory/warehouse/7/levels?full=true HTTP/1.1\r\nHost: dep.internal\r\n\r\n"
    call.peer = type(call.peer)("127.0.0.1", peer_port)
    return session


def test_an_unmatched_call_is_closed_reported_and_never_reaches_the_real_dependency(store, real_dependency) -> None:
    real = real_dependency.server_address[1]
    store.put_many([_mismatched_session(real)])
    dep = free_port()
    with sut(dep=dep) as port:
        summary = replay(store, ReplayOptions(target=addr(port), mappings=[OutboundMapping(addr(dep), addr(real))], timeout=3))
    [comparison] = comparisons(store, summary)
    assert _RealDependency.hits == []  # fail closed
    assert comparison.outbound.unmatched == 1 and comparison.outbound.missed == 1
    [talk] = comparison.outbound.unmatched_talks
    assert "GET /price/sku1" in talk.request
    assert talk.near_misses and talk.near_misses[0].reason
    assert comparison.verdict in ("different", "error")  # the SUT saw its call dropped


def test_bypass_lets_an_unmatched_call_reach_the_real_dependency(store, real_dependency) -> None:
    real = real_dependency.server_address[1]
    store.put_many([_mismatched_session(real)])
    dep = free_port()
    with sut(dep=dep) as port:
        summary = replay(store, ReplayOptions(target=addr(port), mappings=[OutboundMapping(addr(dep), addr(real))], bypass=[addr(real)]))
    [comparison] = comparisons(store, summary)
    assert _RealDependency.hits == ["/price/sku1"]
    assert comparison.bypassed == 1
    assert comparison.replayed_status == 200  # the real answer came back


def test_a_server_that_speaks_first_gets_its_recorded_greeting(store) -> None:
    store.put_many([greet_session(0), greet_session(1)])
    db = free_port()
    with sut(db=db) as port:
        summary = replay(store, ReplayOptions(target=addr(port), mappings=[mapping(db, DB_PEER)]))
    assert summary.same == 2, [c.differences for c in comparisons(store, summary)]
    talks = comparisons(store, summary)[0].outbound.talks
    assert talks[0].greeting and talks[1].action_index == 1


def test_a_long_lived_connection_carries_talks_of_consecutive_sessions(store) -> None:
    # As recorded: one pooled connection (same fd) answered every session's call.
    store.put_many([item_session(i, f"sku{i}", 100 + i, fd=9) for i in range(8)])
    dep = free_port()
    with sut("--pool", dep=dep) as port:
        summary = replay(store, ReplayOptions(target=addr(port), mappings=[mapping(dep, DEP_PEER)], matcher="chunk"))
    assert summary.same == 8, [c.differences for c in comparisons(store, summary)]
    connections = {c.outbound.talks[0].connection for c in comparisons(store, summary)}
    assert len(connections) == 1  # really one live connection


def test_a_write_with_another_value_is_a_regression_though_the_response_is_the_same(store) -> None:
    store.put_many([save_session(0, "7", b"blue")])
    kv = free_port()
    with sut("--shout", kv=kv) as port:
        summary = replay(store, ReplayOptions(target=addr(port), mappings=[mapping(kv, KV_PEER)]))
    [comparison] = comparisons(store, summary)
    assert comparison.verdict == "different"
    assert [(d.path, d.expected, d.actual) for d in comparison.differences] == [("outbound[0].request.args[2]", "blue", "BLUE")]


def test_a_lost_write_is_a_recorded_call_never_made(store) -> None:
    store.put_many([save_session(0, "7", b"blue")])
    kv = free_port()
    with sut("--no-save", kv=kv) as port:
        summary = replay(store, ReplayOptions(target=addr(port), mappings=[mapping(kv, KV_PEER)]))
    [comparison] = comparisons(store, summary)
    assert [(d.path, d.kind) for d in comparison.differences] == [("outbound[0]", "missing_call")]
    assert comparison.outbound.missed == 1


def test_calls_made_in_another_order_are_reported(store) -> None:
    store.put_many([pair_session(0, "x")])
    dep = free_port()
    with sut("--swap", dep=dep) as port:
        summary = replay(store, ReplayOptions(target=addr(port), mappings=[mapping(dep, DEP_PEER)]))
    [comparison] = comparisons(store, summary)
    assert comparison.outbound.reordered == 1
    [reordered] = comparison.outbound.reordered_calls
    assert (reordered.recorded_order, reordered.replayed_order) == ([0, 1], [1, 0])


def test_noise_runs_suppress_what_varies_between_runs(store) -> None:
    store.put_many([noisy_session(i, f"n{i}") for i in range(3)] + [item_session(3, "sku", 1)])
    dep = free_port()
    with sut("--price-bump", "1", dep=dep) as port:
        plain = replay(store, ReplayOptions(target=addr(port), mappings=[mapping(dep, DEP_PEER)]))
        filtered = replay(store, ReplayOptions(target=addr(port), mappings=[mapping(dep, DEP_PEER)], noise_runs=2))
    assert plain.different == 4
    assert (filtered.same, filtered.different, filtered.suppressed) == (3, 1, 3)
    noisy = comparisons(store, filtered)[0]
    assert [(s.difference.path, s.why) for s in noisy.suppressed] == [("body.nonce", "noise-runs")]
    real = comparisons(store, filtered)[3]
    assert [d.path for d in real.differences] == ["body.price"]


def test_baseline_applies_diffys_rule_per_endpoint_and_field(store) -> None:
    store.put_many([noisy_session(i, f"n{i}") for i in range(10)] + [item_session(10 + i, f"sku{i}", 5) for i in range(10)])
    # One mock serves both builds: both dial the same listener for the dependency.
    dep = free_port()
    with sut(dep=dep) as baseline, sut("--price-bump", "1", dep=dep) as candidate:
        summary = replay(store, ReplayOptions(target=addr(candidate), baseline=addr(baseline), mappings=[mapping(dep, DEP_PEER)]))
    assert (summary.same, summary.different) == (10, 10)
    results = {c.session_id: c for c in comparisons(store, summary)}
    noisy = [c for c in results.values() if c.endpoint.startswith("GET /noisy")]
    assert all(c.verdict == "same" and [s.why for s in c.suppressed] == ["baseline"] for c in noisy)
    items = [c for c in results.values() if c.endpoint.startswith("GET /item")]
    assert all([d.path for d in c.differences] == ["body.price"] for c in items)


def test_concurrency_attributes_talks_by_the_propagated_header(store) -> None:
    store.put_many([item_session(i, f"sku{i}", 100 + i) for i in range(40)])
    dep = free_port()
    with sut("--propagate", dep=dep) as port:
        summary = replay(store, ReplayOptions(target=addr(port), mappings=[mapping(dep, DEP_PEER)], concurrency=8))
    assert (summary.same, summary.unattributed) == (40, 0), [c.differences for c in comparisons(store, summary) if c.differences][:2]


def test_concurrency_is_refused_when_the_sut_does_not_propagate(store) -> None:
    store.put_many([plain_session(0, "/health-ish"), *[item_session(i, f"sku{i}", 100) for i in range(1, 5)]])
    dep = free_port()
    with sut(dep=dep) as port, pytest.raises(KoalaError) as refused:
        replay(store, ReplayOptions(target=addr(port), mappings=[mapping(dep, DEP_PEER)], concurrency=4))
    assert "--concurrency 4 cannot tell which session an outbound call belongs to" in str(refused.value)
    assert "does not pass X-Koala-Session or traceparent on" in str(refused.value)
    run = store.runs.runs(1)[0]
    assert run.status == "interrupted"


def test_limit_rate_and_speed(store) -> None:
    store.put_many([plain_session(i, f"/echo/x-none-{i}", {"value": None}) for i in range(6)])
    with sut() as port:
        limited = replay(store, ReplayOptions(target=addr(port), limit=3))
        started = time.monotonic()
        paced = replay(store, ReplayOptions(target=addr(port), rate=20))
        rate_took = time.monotonic() - started
        started = time.monotonic()
        fast = replay(store, ReplayOptions(target=addr(port), speed=20, limit=4))  # recorded 1 s apart
        speed_took = time.monotonic() - started
    assert limited.total == 3 and paced.total == 6 and fast.total == 4
    assert rate_took >= 5 / 20
    assert speed_took >= 3 / 20


def test_url_filters_rewrites_and_set_headers(store) -> None:
    store.put_many([plain_session(0, "/v1/echo/x-env", {"value": "replay"}), plain_session(1, "/admin/echo/x-env", {"value": "replay"})])
    with sut() as port:
        summary = replay(
            store,
            ReplayOptions(
                target=addr(port),
                edits=RequestEdits.parse(["^/v1/:/"], ["X-Env: replay"]),
                disallow_url=["^/admin"],
            ),
        )
    assert (summary.total, summary.same, summary.skipped) == (1, 1, 1)


def test_ignore_rules_apply(store) -> None:
    store.put_many([item_session(0, "sku", 100)])
    dep = free_port()
    with sut("--price-bump", "1", dep=dep) as port:
        summary = replay(store, ReplayOptions(target=addr(port), mappings=[mapping(dep, DEP_PEER)], diff=DiffOptions(ignore=["price"])))
    assert summary.same == 1


def test_cli_exit_codes_junit_json_and_runs(capsys, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    store = SqliteStore(tmp_path / "k.db")
    store.put_many([item_session(0, "a", 10), item_session(1, "b", 20)])
    store.close()
    dep = free_port()
    junit = tmp_path / "run.xml"
    with sut(dep=dep) as port:
        common = ["--target", f"127.0.0.1:{port}", "--outbound", f"{dep}={DEP_PEER.address}", "--store", url]
        run = koala(capsys, "replay", "*", *common, "--run-name", "green")
        assert run.code == 0, run.err
        assert "same 2, different 0, error 0" in run.out
    with sut("--price-bump", "3", dep=dep) as port:
        common = ["--target", f"127.0.0.1:{port}", "--outbound", f"{dep}={DEP_PEER.address}", "--store", url]
        run = koala(capsys, "replay", "*", *common, "--run-name", "red", "--junit", str(junit))
        assert run.code == 3
        assert "DIFFERENT" in run.out and "body.price: 10 -> 13" in run.out
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "2", "0")
    assert suite.find("testcase/failure").get("message").startswith("1 difference, first changed body.price")
    listed = koala(capsys, "runs", "list", "--store", url)
    assert listed.code == 0 and "red" in listed.out and "green" in listed.out
    shown = koala(capsys, "runs", "show", "red", "--store", url)
    assert "different 2" in shown.out and "body.price" in shown.out
    as_json = koala(capsys, "runs", "show", "red", "--json", "--store", url)
    lines = as_json.out.splitlines()
    assert len(lines) == 3 and '"verdict":"different"' in lines[1]
    missing = koala(capsys, "runs", "show", "nope", "--store", url)
    assert missing.code == 1 and "no replay run 'nope'" in missing.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "nowhere"], "--target 'nowhere' is not HOST:PORT"),
        (["--target", "127.0.0.1:1", "--outbound", "16379"], "--outbound '16379' is not LISTEN=RECORDED_PEER"),
        (["--target", "127.0.0.1:1", "--rate", "10/s", "--speed", "2x"], "--rate and --speed both set the pace"),
        (["--target", "127.0.0.1:1", "--rate", "fast"], "--rate 'fast' is not a rate"),
        (["--target", "127.0.0.1:1", "--noise-runs", "2", "--baseline", "127.0.0.1:2"], "--noise-runs and --baseline are two ways"),
        (["--target", "127.0.0.1:1", "--allow-url", "("], "--allow-url '(' is not a regular expression"),
        (["--target", "127.0.0.1:1", "--match", "magic"], "unknown matcher 'magic'"),
        (["--target", "127.0.0.1:1", "--match", "sim", "--threshold", "7"], "threshold 7.0 for matcher 'sim' is not a number between 0 and 1"),
        (["--target", "127.0.0.1:1", "--ignore", "re:("], "re:("),
        (["--target", "127.0.0.1:1", "--set-header", "nocolon"], "--set-header 'nocolon' is not 'Name: value'"),
        (["--target", "127.0.0.1:1", "--outbound", "127.0.0.1:1=10.0.0.1:80"], "is the target's own address"),
        (["--target", "127.0.0.1:1", "--limit", "0"], "--limit 0: give 1 or more"),
        (["--target", "127.0.0.1:1", "--timeout", "0"], "--timeout 0: give the seconds to wait for an answer"),
        (["--target", "127.0.0.1:1", "--concurrency", "0"], "--concurrency 0: give 1 or more"),
        (["--target", "127.0.0.1:1", "--mock-process", "maybe"], "--mock-process 'maybe': give auto, on or off"),
    ],
)
def test_bad_replay_options_are_one_clear_error(capsys, tmp_path: Path, args: list[str], message: str) -> None:
    run = koala(capsys, "replay", "*", *args, "--store", f"sqlite:///{tmp_path / 'k.db'}")
    assert run.code == 1
    assert message in " ".join(run.err.split())


def test_a_listen_address_in_use_is_one_clear_error(capsys, tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "k.db")
    store.put_many([item_session(0, "a", 10)])
    store.close()
    with socket.socket() as busy, sut() as port:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        run = koala(capsys, "replay", "*", "--target", f"127.0.0.1:{port}", "--outbound", f"{taken}={DEP_PEER.address}", "--store", f"sqlite:///{tmp_path / 'k.db'}")
    assert run.code == 1
    assert f"cannot listen on 127.0.0.1:{taken} for {DEP_PEER.address}" in " ".join(run.err.split())
