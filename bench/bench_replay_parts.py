"""Parts of a replayed session, timed alone, on the sessions bench/bench_replay.py records.

    .venv/bin/python bench/bench_replay_parts.py [--sessions 3000]

1. Records N sessions of bench/fastsut as bench_replay.py does, and replays them once
   (fuzzy, 8 in flight, the mock in this process), keeping what each session's judge was
   given: the session, the SUT's answer and the mock's talks.
2. Prints, best of 7 rounds over those sessions:
   - judge + conclude (koala_store.replay.judge), microseconds a session;
   - the header scan the mock runs on each outbound HTTP talk (http1.take_headers: the
     session header read and taken out), microseconds a talk, compiled and in Python;
   - the mock answering talks: every session begun in an OutboundMock in this process (header
     attribution), then a client process sends each session's recorded outbound requests,
     session header added, on 8 threads with a keep-alive connection per dependency; the
     mock's CPU (this process's user and system time while the client runs) a talk, best of
     3. What the Python of the mock's talk path costs, apart from the inbound side and judging;
   - how long a new Python process takes to import the mock's own process
     (koala_store.replay.mock_process), best of 5.

Alone, these cost less than inside a replay (caches are cold there): a replay's own
figures are bench_replay.py's.
"""

from __future__ import annotations

import argparse
import asyncio
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_replay  # noqa: E402

import matchers  # noqa: E402
from koala_store.model import Peer, Session  # noqa: E402
from koala_store.replay import judge as judge_module  # noqa: E402
from koala_store.replay import runner  # noqa: E402
from koala_store.replay.inbound import RequestEdits, prepare_request  # noqa: E402
from koala_store.replay.mock import PROPAGATION_HEADERS, OutboundMock  # noqa: E402
from koala_store.replay.targets import Address, parse_mapping  # noqa: E402
from koala_store.store import open_store  # noqa: E402
from koala_store.wire import http1  # noqa: E402

ROUNDS = 7


def as_sent(request: bytes, mock: Address, key: str) -> bytes:
    """A recorded outbound request as the SUT sends it in a replay: to the mock's address,
    carrying the session's header and traceparent (the replayer's own edit of a request,
    inbound.prepare_request, standing in for the SUT passing them on)."""
    return prepare_request(request, mock, RequestEdits(), key)


def captured_judgements(count: int, workdir: Path) -> tuple[list[tuple], list[Session], dict[str, Peer]]:
    """What judge was given for each session of one replay of `count` recorded sessions, and
    the sessions and their dependencies."""
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
    return captured, sessions, peers


# The SUT's stand-in for the mock's figure: sends each job's requests in order, each on its
# thread's keep-alive connection to the request's port, and reads the Content-Length answer.
TALKER = r"""
import pickle, socket, sys, threading
jobs = pickle.load(open(sys.argv[1], "rb"))
def talk(items):
    connections = {}
    for port, request in items:
        sock = connections.get(port)
        if sock is None:
            sock = connections[port] = socket.create_connection(("127.0.0.1", port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(request)
        answer = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                sys.exit("the mock closed a connection: a talk went unanswered")
            answer += chunk
            end = answer.find(b"\r\n\r\n")
            if end >= 0:
                head = answer[:end].lower()
                at = head.find(b"content-length:")
                length = int(head[at + 15 :].split(b"\r\n")[0]) if at >= 0 else 0
                if len(answer) >= end + 4 + length:
                    break
threads = [threading.Thread(target=talk, args=(job,)) for job in jobs]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""


def mock_cpu_per_talk(sessions: list[Session], peers: dict[str, Peer], workdir: Path, threads: int = 8) -> float:
    """The mock's CPU (this process's user + system seconds) a talk, in microseconds."""
    ports = bench_replay.free_ports(len(peers))
    mappings = [parse_mapping(f"{bench_replay.LOOPBACK}:{port}={peer.address}") for peer, port in zip(peers.values(), ports, strict=True)]
    listen = {str(m.recorded_peer): m.listen for m in mappings}

    async def serve() -> float:
        mock = OutboundMock(mappings, matchers.get("fuzzy"), attribution="header")
        await mock.start()
        try:
            jobs: list[list[tuple[int, bytes]]] = [[] for _ in range(threads)]
            contexts = []
            for n, session in enumerate(sessions):
                key = f"{n:032x}"
                contexts.append(mock.begin(session, key))
                for call in session.outbound_calls:
                    to = listen[call.peer.address]
                    jobs[n % threads].append((to.port, as_sent(call.request, to, key)))
            with open(workdir / "talks.pickle", "wb") as out:
                pickle.dump(jobs, out)
            before = resource.getrusage(resource.RUSAGE_SELF)
            talker = await asyncio.create_subprocess_exec(sys.executable, "-c", TALKER, str(workdir / "talks.pickle"))
            if await talker.wait() != 0:
                sys.exit("the talker failed: the mock's figure would not be the usual path's")
            after = resource.getrusage(resource.RUSAGE_SELF)
            talks = [t for c in contexts for t in mock.end(c)]
            if len(talks) != sum(map(len, jobs)) or not all(t.match.matched and t.request == t.match.call.request for t in talks):
                sys.exit("the mock did not match every talk to its recorded bytes: its figure would not be the usual path's")
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            return cpu / len(talks) * 1e6
        finally:
            await mock.stop()

    return runner.run_loop(serve())


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
        judged, sessions, peers = captured_judgements(args.sessions, Path(folder))
        mock_cpu = [mock_cpu_per_talk(sessions, peers, Path(folder)) for _ in range(3)]

    def judge_all() -> None:
        for given in judged:
            j = judge_module.judge(*given)
            judge_module.conclude(j.comparison, j.differences, j.outbound, given[1].response, j.first.response)

    print(f"{len(judged)} sessions captured from one replay (fuzzy, 8 in flight, all same)")
    print(f"judge + conclude:              {best_per_item(judge_all, len(judged)):7.1f} us a session")

    # The talks as the SUT sent them, session header included (what the mock scans).
    requests = [talk.request for given in judged for talk in given[3]]
    sent = [as_sent(r, Address(bench_replay.LOOPBACK, 18080), "0" * 32) for r in requests]
    compiled = best_per_item(lambda: [http1.take_headers(r, PROPAGATION_HEADERS) for r in sent], len(sent))
    python = best_per_item(lambda: [http1._scan_headers(r, PROPAGATION_HEADERS, True) for r in sent], len(sent))
    print(f"header scan, compiled:         {compiled:7.2f} us a talk ({len(sent)} talks)")
    print(f"header scan, Python reference: {python:7.2f} us a talk")
    print(f"mock answering talks:          {min(mock_cpu):7.1f} us of CPU a talk (best of 3: {', '.join(f'{c:.1f}' for c in mock_cpu)})")

    starts = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import koala_store.replay.mock_process"], cwd=ROOT, check=True)
        starts.append(time.perf_counter() - started)
    print(f"mock process start-up:         {min(starts):7.2f} s (a new Python importing koala_store.replay.mock_process, best of 5)")


if __name__ == "__main__":
    main()
