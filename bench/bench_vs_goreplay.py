"""koala replay against GoReplay, side by side: the same sessions, the same Go service.

Target (issue 12): koala replay's rate >= 1.0x GoReplay's at 1, 8 and 32 workers, while
koala mocks every outbound call and diffs every response.

    .venv/bin/python bench/bench_vs_goreplay.py [--sessions 5000] [--workers 1,8,32] [--rounds 3] [--mock-process auto|on|off] [--shared-session] [--keep]

1. Records N sessions of bench/fastsut (GET /item/<id>, three outbound HTTP calls each, to
   three stand-in dependency servers) exactly as bench/bench_replay.py does, into SQLite.
2. Writes their inbound requests to a .gor file (koala's own gor writer; GoReplay reads it).
3. For each worker count, in alternating rounds (koala, goreplay, koala, goreplay...):
   - GoReplay: the SUT calls the real stand-in dependencies (GoReplay cannot mock them) and
     `goreplay --input-file "s.gor|10000%" --input-file-read-depth 20000 --output-http
     http://SUT --output-http-workers W` replays; GoReplay checks nothing. Its rate is the
     sessions the service answered (counted by the dependency servers: 3 calls each) over
     the time from GoReplay's start until the last of them.
   - koala: `koala replay` (the library call) with --concurrency W, the SUT pointed at the
     mock, every response and side effect compared; its rate is sessions over the wall time
     of the replay call. Every session must come out `same`.
Prints each round, with the CPU time a session cost each part (koala: the replayer, its mock's
process when it has one, else the mock is in the replayer's figure, and the SUT; GoReplay:
GoReplay, this process's stand-in dependencies, and the SUT) and their sum, the share of the
replay koala's event-loop thread was ready to run but waited for a core (/proc schedstat), and
the median ratio koala/GoReplay per worker count. On a box whose cores are all busy, the ratio follows
the CPU a session costs each side; with the mock in the replayer's process, the replayer's own
figure bounds koala's rate too (one thread: 1 / its CPU a session).

The SUT and GoReplay each run in a session of their own, as services and a command started
from a terminal do; koala replay runs in this process's session, as `koala replay` from a
terminal would, and the stand-in dependencies in this process. On a busy 2-core box Linux
shares CPU fairly between sessions (autogroup), then between the threads of a session.
--shared-session runs them all in this process's session instead (every thread competing with
every other): the arrangement of this bench before. There koala's event-loop thread waited for
a core 16-19% of its time (/proc/<tid>/schedstat) while the SUT's threads ran, against 12-14%
with the SUT in its own session (both before the store thread was niced, see replay/runner.py).

GoReplay is built by scripts/tools.sh into .cache/tools/bin/goreplay.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_replay  # noqa: E402
from bench_replay import DEPENDENCIES, DependencyServer, Recorder, Sut, _cpu, build_sut, put_away, record_sessions, replay_run  # noqa: E402

from koala_store.formats import gor  # noqa: E402
from koala_store.store import open_store  # noqa: E402

GOREPLAY = ROOT / ".cache" / "tools" / "bin" / "goreplay"


class StandIns:
    """The three dependency servers on their own event loop thread, counting requests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.recorder = Recorder()
        self.deps = [DependencyServer(name, self.recorder) for name in DEPENDENCIES]
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        for dep in self.deps:
            asyncio.run_coroutine_threadsafe(dep.start(), self.loop).result()

    @property
    def addresses(self) -> dict[str, str]:
        return {d.name: d.peer.address for d in self.deps}

    def served(self) -> int:
        return len(self.recorder.talks)

    def reset(self) -> None:
        self.recorder.talks = []

    def stop(self) -> None:
        for dep in self.deps:
            asyncio.run_coroutine_threadsafe(dep.stop(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def goreplay_round(gor_file: Path, sessions: int, workers: int, stand_ins: StandIns, workdir: Path) -> tuple[float, dict[str, float]]:
    """Sessions per second GoReplay drove through the SUT (with real stand-in dependencies), and
    the CPU seconds each part took: GoReplay, this process (the stand-ins), the SUT."""
    sut = Sut(stand_ins.addresses, workdir / f"sut-goreplay-{workers}.log")
    stand_ins.reset()
    wanted = sessions * len(DEPENDENCIES)
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        started = time.perf_counter()
        process = subprocess.Popen(
            [
                str(GOREPLAY),
                "--input-file",
                f"{gor_file}|10000%",
                "--input-file-read-depth",
                "20000",
                "--output-http",
                f"http://{sut.address}",
                "--output-http-workers",
                str(workers),
                "--output-http-timeout",
                "10s",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=bench_replay.SUT_OWN_SESSION,  # as the SUT: see the module doc
        )
        last, last_change = 0, time.perf_counter()
        while True:
            served = stand_ins.served()
            now = time.perf_counter()
            if served != last:
                last, last_change = served, now
            if served >= wanted or now - last_change > 5:
                break
            time.sleep(0.002)
        finished = last_change
        self_after = resource.getrusage(resource.RUSAGE_SELF)
        process.terminate()
        process.wait(10)
        goreplay_after = resource.getrusage(resource.RUSAGE_CHILDREN)  # GoReplay, reaped
    finally:
        sut.stop()
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the SUT too, once reaped
    if last < wanted:
        print(f"  goreplay: only {last // len(DEPENDENCIES)} of {sessions} sessions reached the service")
    cpu = {
        "goreplay": _cpu(goreplay_after) - _cpu(children_before),
        "stand-ins": _cpu(self_after) - _cpu(self_before),
        "sut": _cpu(children_after) - _cpu(goreplay_after),
    }
    return (last / len(DEPENDENCIES)) / (finished - started), cpu


def per_session_ms(cpu: dict[str, float], sessions: int) -> str:
    """Each part's CPU a session, and their sum (what a session costs the box)."""
    parts = " + ".join(f"{name} {seconds / sessions * 1e3:.2f}" for name, seconds in cpu.items())
    return f"{parts} = {sum(cpu.values()) / sessions * 1e3:.2f}"


def side_by_side(args: argparse.Namespace, workdir: Path) -> dict[int, dict[str, list[float]]]:
    """Record, then replay with koala and GoReplay in alternating rounds; the rates of each."""
    sessions, peers = asyncio.run(record_sessions(args.sessions, workdir))
    store = open_store(f"sqlite:///{workdir / 'recording.db'}")
    store.put_many(sessions)
    store.refresh()
    gor_file = workdir / "sessions.gor"
    with open(gor_file, "wb") as out:
        gor.write(sessions, out)
    n = len(sessions)
    del sessions
    print(f"recorded {n} sessions; .gor {gor_file.stat().st_size / 1e6:.1f} MB; workers {args.workers}; {args.rounds} alternating rounds")
    stand_ins = StandIns()
    results: dict[int, dict[str, list[float]]] = {}
    try:
        for workers in (int(w) for w in args.workers.split(",")):
            for round_ in range(args.rounds):
                summary, wall, koala_cpu = replay_run(store, peers, args.matcher, workers, workdir, None, None, f"-vs-{round_}", args.mock_process)
                koala_rate = summary.total / wall
                if summary.same != n:
                    print(f"  koala: only {summary.same} of {n} sessions came out same: this round does not count")
                    continue
                goreplay_rate, goreplay_cpu = goreplay_round(gor_file, n, workers, stand_ins, workdir)
                results.setdefault(workers, {"koala": [], "goreplay": []})
                results[workers]["koala"].append(koala_rate)
                results[workers]["goreplay"].append(goreplay_rate)
                print(
                    f"workers {workers:>2} round {round_ + 1}: koala {koala_rate:7.0f}/s  goreplay {goreplay_rate:7.0f}/s  ratio {koala_rate / goreplay_rate:5.2f}x"
                )
                koala_parts = {"replayer": koala_cpu["replayer"], "mock": koala_cpu["mock"], "sut": koala_cpu["sut"]}
                print(f"  CPU ms a session: koala {per_session_ms(koala_parts, n)}; goreplay {per_session_ms(goreplay_cpu, n)}")
                print(f"  koala's event loop waited for a core {koala_cpu['loop_waited'] / wall:.0%} of the replay")
                sys.stdout.flush()
    finally:
        stand_ins.stop()
        store.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=5000)
    parser.add_argument("--workers", default="1,8,32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--matcher", default="fuzzy")
    parser.add_argument("--mock-process", default="auto", choices=["auto", "on", "off"], help="where koala's mock runs (default %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep the working folder (recording, stores, the SUT's logs)")
    parser.add_argument("--shared-session", action="store_true", help="run the SUT and GoReplay in this process's session (see the module doc)")
    args = parser.parse_args()
    bench_replay.SUT_OWN_SESSION = not args.shared_session
    if not GOREPLAY.exists():
        raise SystemExit(f"{GOREPLAY} is missing: run ./scripts/tools.sh")
    build_sut()
    workdir = Path(tempfile.mkdtemp(prefix="koala-bench-vs-goreplay-"))
    try:
        results = side_by_side(args, workdir)
    finally:
        put_away(workdir, args.keep)
    print()
    print("median sessions/s (koala mocks and diffs everything; GoReplay sends and checks nothing):")
    for workers, rates in results.items():
        koala, goreplay = statistics.median(rates["koala"]), statistics.median(rates["goreplay"])
        ratios = [k / g for k, g in zip(rates["koala"], rates["goreplay"], strict=True)]
        print(f"  {workers:>2} workers: koala {koala:7.0f}/s  goreplay {goreplay:7.0f}/s  ratio {statistics.median(ratios):.2f}x  (target >= 1.0x)")


if __name__ == "__main__":
    main()
