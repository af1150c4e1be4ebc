"""Parts of a replayed session, timed alone, on the sessions bench/bench_replay.py records.

    .venv/bin/python bench/bench_replay_parts.py [--sessions 3000]

1. Records N sessions of bench/fastsut as bench_replay.py does, and replays them once
   (fuzzy, 8 in flight, the mock in this process), keeping what each session's judge was
   given: the session, the SUT's answer and the mock's talks.
2. Prints, best of 7 rounds over those sessions:
   - judge + conclude (koala_store.replay.judge), microseconds a session;
   - the header scan the mock runs on each outbound HTTP talk (http1.take_headers: the
     session header read and taken out), microseconds a talk, compiled and in Python;
   - how long a new Python process takes to import the mock's own process
     (koala_store.replay.mock_process), best of 5.

Alone, these cost less than inside a replay (caches are cold there): a replay's own
figures are bench_replay.py's.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_replay  # noqa: E402

from koala_store.replay import judge as judge_module  # noqa: E402
from koala_store.replay import runner  # noqa: E402
from koala_store.replay.mock import PROPAGATION_HEADERS  # noqa: E402
from koala_store.store import open_store  # noqa: E402
from koala_store.wire import http1  # noqa: E402

ROUNDS = 7


def captured_judgements(count: int, workdir: Path) -> list[tuple]:
    """What judge was given for each session of one replay of `count` recorded sessions."""
    bench_replay.build_sut()
    sessions, peers = asyncio.run(bench_replay.record_sessions(count, workdir))
    store = open_store(f"sqlite:///{workdir / 'recording.db'}")
    store.put_many(sessions)
    store.refresh()
    captured: list[tuple] = []
    original = runner.judge

    def keep(*args):
        captured.append(args)
        return original(*args)

    runner.judge = keep
    try:
        summary, _, _ = bench_replay.replay_run(store, peers, "fuzzy", 8, workdir, None, None, "-parts", "off")
    finally:
        runner.judge = original
        store.close()
    if summary.same != count:
        sys.exit(f"the replay was not all same ({summary.same} of {count}): these figures would not be the usual path's")
    return captured


def best_per_item(work, items: int) -> float:
    """Microseconds an item, best of ROUNDS runs of `work` over `items` items."""
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best / items * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="koala-bench-parts-") as folder:
        judged = captured_judgements(args.sessions, Path(folder))

    def judge_all() -> None:
        for given in judged:
            j = judge_module.judge(*given)
            judge_module.conclude(j.comparison, j.differences, j.outbound, given[1].response, j.first.response)

    print(f"{len(judged)} sessions captured from one replay (fuzzy, 8 in flight, all same)")
    print(f"judge + conclude:              {best_per_item(judge_all, len(judged)):7.1f} us a session")

    # The talks as the SUT sent them, session header included (what the mock scans).
    requests = [talk.request for given in judged for talk in given[3]]
    key = "0" * 32
    sent = [r.replace(b"\r\n\r\n", f"\r\nX-Koala-Session: {key}\r\nTraceparent: 00-{key}-{key[:16]}-01\r\n\r\n".encode(), 1) for r in requests]
    compiled = best_per_item(lambda: [http1.take_headers(r, PROPAGATION_HEADERS) for r in sent], len(sent))
    python = best_per_item(lambda: [http1._scan_headers(r, PROPAGATION_HEADERS, True) for r in sent], len(sent))
    print(f"header scan, compiled:         {compiled:7.2f} us a talk ({len(sent)} talks)")
    print(f"header scan, Python reference: {python:7.2f} us a talk")

    starts = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import koala_store.replay.mock_process"], cwd=ROOT, check=True)
        starts.append(time.perf_counter() - started)
    print(f"mock process start-up:         {min(starts):7.2f} s (a new Python importing koala_store.replay.mock_process, best of 5)")


if __name__ == "__main__":
    main()
