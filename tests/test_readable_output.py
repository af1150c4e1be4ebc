"""What a person reads about a run: values in JSON notation, body diffs (`runs show --diff`),
JUnit timestamps in ISO 8601, and verdict colours only on a terminal."""

from __future__ import annotations

import gzip
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

from cli_helpers import koala
from factories import http_response
from koala_store.diff import Difference
from koala_store.diff.exchange import MAX_BODY, exchange_of
from koala_store.replay.report import render
from koala_store.results import Comparison, RunSummary
from koala_store.report.bodydiff import body_diff
from koala_store.report.notation import json_notation
from koala_store.store.sqlite import SqliteStore
from replay_helpers import DEP_PEER, ROOT, free_port, item_session, sut

ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*3[0-7](;[0-9]+)*m")


def test_values_are_written_in_json_notation() -> None:
    assert [json_notation(v) for v in (False, None, True, "a\nb", 1.5, {"k": [1, None]})] == [
        "false",
        "null",
        "true",
        '"a\\nb"',
        "1.5",
        '{"k": [1, null]}',
    ]
    assert json_notation("é" * 100, 10) == '"éééééé...'
    assert json_notation(b"a\xff") == '"a\\\\xff"'  # bytes as Koala escaped text, in a JSON string


def _summary() -> RunSummary:
    return RunSummary(run_id="r1", name="n", started_at=1_700_000_000_000_000_000, query="*", target="127.0.0.1:1", matcher="fuzzy", total=1, different=1)


def test_the_text_report_shows_differences_in_json_notation() -> None:
    comparison = Comparison(
        run_id="r1",
        session_id="s1",
        endpoint="GET /x",
        verdict="different",
        recorded_at=1,
        replayed_at=2,
        differences=[Difference("body.active", "changed", False, None), Difference("body.name", "changed", "ann", "bob")],
    )
    text = render(_summary(), [comparison])
    assert "body.active: false -> null" in text
    assert 'body.name: "ann" -> "bob"' in text
    assert "None" not in text and "False" not in text


def test_json_bodies_diff_line_by_line() -> None:
    expected = http_response(200, json.dumps({"id": 1, "name": "ann", "email": "a@x"}).encode())
    actual = http_response(200, json.dumps({"id": 1, "name": "ann"}).encode())
    exchange = exchange_of(expected, actual)
    assert exchange.expected.kind == exchange.actual.kind == "json"
    assert exchange.expected.status == 200
    lines = body_diff(exchange)
    assert lines[:2] == ["--- recorded body", "+++ replayed body"]
    assert lines[2:] == ["@@ -1,5 +1,4 @@", " {", '   "id": 1,', '-  "name": "ann",', '-  "email": "a@x"', '+  "name": "ann"', " }"]


def test_long_bodies_are_cut_and_say_so_and_binary_bodies_are_named() -> None:
    big = b"line\n" * (MAX_BODY // 5 + 100)
    exchange = exchange_of(http_response(200, big, "text/plain"), http_response(200, big + b"more\n", "text/plain"))
    assert exchange.expected.cut and exchange.expected.size == len(big) and len(exchange.expected.body) == MAX_BODY
    assert body_diff(exchange) == [
        "(the kept starts of the bodies are equal; they differ further on)",
        f"(the recorded body was cut to its first {MAX_BODY} of {len(big)} bytes)",
        f"(the replayed body was cut to its first {MAX_BODY} of {len(big) + 5} bytes)",
    ]
    binary = exchange_of(http_response(200, gzip.compress(b"a"), "application/octet-stream"), http_response(200, b"\x00\x01", "application/octet-stream"))
    assert binary.expected.kind == "bytes"
    assert body_diff(binary) == [f"(binary bodies differ: {binary.expected.size} and 2 bytes; no text diff)"]
    assert body_diff(exchange_of(b"\x00raw", None)) == ["(no replayed response to diff)"]


def _replayed_run(tmp_path: Path, capsys) -> tuple[str, Path]:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    store = SqliteStore(tmp_path / "k.db")
    store.put_many([item_session(0, "a", 10), item_session(1, "b", 20)])
    store.close()
    dep = free_port()
    junit = tmp_path / "run.xml"
    with sut("--price-bump", "3", dep=dep) as port:
        run = koala(capsys, "replay", "*", "--target", f"127.0.0.1:{port}", "--outbound", f"{dep}={DEP_PEER.address}", "--store", url, "--run-name", "red", "--junit", str(junit))
    assert run.code == 3, run.err
    return url, junit


def test_runs_show_diff_prints_a_unified_diff_of_the_bodies(tmp_path: Path, capsys) -> None:
    url, junit = _replayed_run(tmp_path, capsys)
    shown = koala(capsys, "runs", "show", "red", "--diff", "--store", url)
    assert shown.code == 0, shown.err
    assert "    --- recorded body" in shown.out and "    +++ replayed body" in shown.out
    assert '    -  "price": 10' in shown.out and '    +  "price": 13' in shown.out
    plain = koala(capsys, "runs", "show", "red", "--store", url)
    assert "--- recorded body" not in plain.out and "body.price: 10 -> 13" in plain.out
    # Only differing sessions keep their bodies.
    store = SqliteStore(tmp_path / "k.db")
    try:
        [run] = store.runs.runs()
        assert all(c.exchange is not None for c in store.runs.comparisons(run.run_id))
    finally:
        store.close()


def test_junit_has_an_iso_timestamp_and_json_values(tmp_path: Path, capsys) -> None:
    _, junit = _replayed_run(tmp_path, capsys)
    suite = ET.parse(junit).getroot().find("testsuite")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", suite.get("timestamp"))
    assert "changed body.price: expected 10, got 13" in suite.find("testcase/failure").text


def _run_on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """The CLI's output when its stdout is a real pseudo-terminal."""
    main, child = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "koala_store", *args], stdout=child, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    process.wait(60)
    os.close(main)
    return b"".join(chunks).decode()


def test_verdict_colours_only_on_a_terminal_and_never_with_no_color(tmp_path: Path, capsys) -> None:
    url, _ = _replayed_run(tmp_path, capsys)
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM")} | {"TERM": "xterm-256color", "COLUMNS": "200"}
    args = ["runs", "show", "red", "--diff", "--store", url]
    on_terminal = _run_on_a_terminal(args, env)
    assert "DIFFERENT" in on_terminal and ANSI_COLOUR.search(on_terminal), on_terminal
    no_color = _run_on_a_terminal(args, env | {"NO_COLOR": "1"})
    assert "DIFFERENT" in no_color and not ANSI_COLOUR.search(no_color)
    piped = subprocess.run([sys.executable, "-m", "koala_store", *args], capture_output=True, env=env, cwd=ROOT, timeout=60)
    assert b"DIFFERENT" in piped.stdout and b"\x1b[" not in piped.stdout
