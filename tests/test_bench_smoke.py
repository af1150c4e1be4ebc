"""Every benchmark in bench/ runs end to end at a tiny size and prints its figures.

The speed targets live in bench/ (README), and nothing else runs those scripts: a change that
broke one would go unseen until someone next measured. These runs check that each still works
and prints what it measures, not how fast it is: the sizes are the smallest that go through
every part of each script. Each runs as a user would run it: `python bench/NAME.py ...`, in a
process of its own, against the real parts it measures (the Go service, GoReplay, Chromium,
Elasticsearch).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import ROOT
from stores import ES_URL
from tools import GOREPLAY

import browser

BENCH = ROOT / "bench"
WAIT_S = 240


@dataclass(frozen=True)
class Bench:
    script: str
    args: list[str]
    figures: list[str]  # regular expressions, each to be found in what it prints
    needs: list[str] = field(default_factory=list)  # "go", "goreplay", "chromium", "elasticsearch", "valgrind"


BENCHES = [
    Bench("bench_diff.py", ["--pairs", "100", "--passes", "1"], [r"equal-reserialized\s+[\d,]+ pairs/s", r"outbound \(8 calls\)\s+[\d,]+ sessions/s"]),
    Bench("bench_fuzzy_paths.py", ["--matches", "2"], [r"500 x 8 KB\s+fuzzy\s+prep\s+[\d.]+", r"matches nothing\s+[\d.]+"]),
    Bench("bench_matchers.py", ["--sessions", "3"], [r"fuzzy\s+[\d.]+%\s+\d+\s+\d+", r"chunk\s+[\d.]+%"]),
    Bench("bench_replay.py", ["--sessions", "40", "--repeat", "1"], [r"fuzzy\s+concurrency 8:\s+\d+/s", r"target >= 1,000/s"], ["go"]),
    Bench("bench_replay_parts.py", ["--sessions", "40"], [r"judge \+ conclude:\s+[\d.]+ us", r"mock answering talks:\s+[\d.]+ us"], ["go"]),
    Bench(
        "bench_vs_goreplay.py",
        ["--sessions", "40", "--workers", "1,8", "--rounds", "1"],
        [r"8 workers: koala\s+\d+/s\s+goreplay\s+\d+/s\s+ratio [\d.]+x"],
        ["go", "goreplay"],
    ),
    Bench("bench_record.py", ["--latency-requests", "30", "--duration", "0.3"], [r"p99\s+[\d.]+ \|\s+[\d.]+ \|", r"errors: 0 \| 0"], ["go"]),
    # 300 sessions, one in three differing: two pages of differing sessions (PAGE_SIZE 50).
    Bench("bench_report.py", ["--sessions", "300"], [r"written in [\d.]+ s", r"next page \d+ ms; filter \d+ ms; console errors 0"], ["chromium"]),
    Bench("bench_report.py", ["--sessions", "10"], [r"next page none \(one page\)"], ["chromium"]),  # no second page to go to
    Bench(
        "bench_sqlite_store.py",
        ["--sessions", "1500", "--cache", "{tmp}"],
        [r"inbound.path\s+[\d.]+ ms", r"database size:\s+\d+ MB", r"CPU a session: not measured"],
    ),
    Bench(
        "bench_ingest.py",
        ["--sessions", "200", "--batch", "50", "--clients", "2", "--es", "{es}"],
        [r"into SQLite: accepted\s+[\d,]+", r"into Elasticsearch: accepted"],
        ["elasticsearch"],
    ),
    Bench(
        "bench_elastic_store.py", ["--url", "{es}", "--sessions", "200", "--rounds", "1", "--post-sample", "20"], [r"ours / plain = [\d.]+"], ["elasticsearch"]
    ),
    Bench("bench_instructions.py", ["diff-equal", "--reps", "1"], [r"diff-equal\s+[\d,]+ k"], ["valgrind"]),
]


def _missing(need: str) -> str | None:
    if need == "go" and shutil.which("go") is None:
        return "Go is not installed (the benchmarks build their Go service with it)"
    if need == "goreplay" and not GOREPLAY.exists():
        return "goreplay is not installed (scripts/tools.sh installs it)"
    if need == "chromium":
        return browser.missing()
    if need == "elasticsearch" and not ES_URL:
        return "needs the local Elasticsearch: export KOALA_TEST_ES_URL (scripts/test.sh does)"
    if need == "valgrind" and shutil.which("valgrind") is None:
        return "valgrind is not installed"
    return None


@pytest.fixture
def short_temp() -> Iterator[Path]:
    """A TMPDIR for a bench with a short path: Chromium puts a Unix socket in it, and refuses
    paths longer than a socket address holds (pytest's tmp_path is too deep)."""
    folder = Path(tempfile.mkdtemp(prefix="kbs-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_bench(script: str, *args: str, temp: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`temp`: the folder the bench gets as TMPDIR (its working folders go there)."""
    env = {**os.environ, "TMPDIR": str(temp)} if temp else None
    return subprocess.run([sys.executable, str(BENCH / script), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=WAIT_S)


@pytest.mark.parametrize("bench", BENCHES, ids=[f"{b.script}:{' '.join(b.args[:2])}" for b in BENCHES])
def test_benchmark_runs_and_prints_its_figures(bench: Bench, tmp_path: Path, short_temp: Path) -> None:
    for need in bench.needs:
        if why := _missing(need):
            pytest.skip(why)
    args = [a.format(tmp=tmp_path, es=ES_URL or "") for a in bench.args]
    done = run_bench(bench.script, *args, temp=short_temp)
    said = f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    assert done.returncode == 0, said
    for figure in bench.figures:
        assert re.search(figure, done.stdout), f"{bench.script} did not print {figure!r}\n{said}"
    # A bench's working folder (recordings, stores: up to ~140 MB at full size) goes when it ends.
    assert not list(short_temp.glob("koala-bench-*")), f"{bench.script} left {[p.name for p in short_temp.iterdir()]} behind"


@pytest.mark.parametrize(
    ("args", "error"), [(["--sessions", "0"], "--sessions 0: give 1 or more"), (["--different-every", "0"], "--different-every 0: give 1 or more")]
)
def test_report_bench_refuses_sizes_it_cannot_measure(args: list[str], error: str) -> None:
    done = run_bench("bench_report.py", *args)
    assert done.returncode == 2
    assert error in done.stderr
    assert "Traceback" not in done.stderr
