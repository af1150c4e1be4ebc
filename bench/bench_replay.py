"""Replay rate against a fast SUT that makes 3 outbound calls per session.

Target (the replay issue): >= 1,000 sessions/s at --concurrency 8.

    .venv/bin/python bench/bench_replay.py [--sessions 5000] [--repeat 3] [--runs fuzzy:1,fuzzy:8,chunk:8]

1. Builds bench/fastsut (Go, standard library only) into .cache/bench/fastsut.
2. Records N sessions by a real run: three small dependency servers (price, stock, review;
   raw asyncio HTTP/1.1 servers answering deterministic JSON, keep-alive) log the exact
   request bytes the SUT sent them and the response bytes they sent back, per connection;
   a keep-alive client sends `GET /item/<id>` to the SUT one at a time and logs the inbound
   pair. Each inbound request and the outbound talks made while it was served become one
   Koala session (CallOutbound Peer = the dependency address the SUT dialed, SocketFD = a
   stand-in number per connection), written with koala_store into a temporary SQLite store.
3. Replays the recording with koala_store.replay.runner.replay (the library call behind
   `koala replay`): the mock listens on fresh loopback ports mapped to the recorded
   dependency addresses, and the SUT is restarted pointing at them. Runs: fuzzy at
   concurrency 1 and 8, chunk at concurrency 8, each --repeat times (the rate varies from
   run to run on a small machine; the median is reported). Every session must come out
   `same`, else a few differences are printed and the exit status is 1.

Columns: summary/s is RunSummary.sessions_per_second, wall/s the sessions over the wall time
of the replay() call; py ms/s is the replayer process's CPU (user + system) per session, py
cpu / py sys its CPU over the wall time, mock the CPU of the mock's own process (when the
run gives it one: koala_store.replay.mock_process) and sut cpu the Go SUT's.

--mock-process auto|on|off sets where the mock runs (koala_store.replay.mock_process).
--settle S sets ReplayOptions.settle (the grace after each response; diagnosis only: the
figures of record use the runner's default). --profile DIR writes a cProfile of each replay
run (the event-loop thread) to DIR and prints its top functions (set KOALA_PURE_PYTHON=1: cProfile
sees nothing inside the modules compiled by Cython, koala_store/_compiled.py); cProfile roughly doubles the
Python cost, so profiled rates are not the benchmark's figures (a sampling profiler such as
`py-spy record --format raw -- .venv/bin/python bench/bench_replay.py ...` distorts less).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import itertools
import json
import os
import pstats
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from email.utils import formatdate
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from koala_store.model import CallFromInbound, CallOutbound, Peer, ReturnInbound, Session  # noqa: E402
from koala_store.replay.runner import ReplayOptions, replay  # noqa: E402
from koala_store.replay.targets import parse_address, parse_mapping  # noqa: E402
from koala_store.store import open_store  # noqa: E402

SUT_SOURCE = ROOT / "bench" / "fastsut"
SUT_BINARY = ROOT / ".cache" / "bench" / "fastsut"
LOOPBACK = "127.0.0.1"
# The SUT runs in a session of its own, as a service does when systemd, a container runtime or
# another terminal starts it, and not in the bench's. It matters on a small machine: Linux's
# scheduler (with autogroup, the default) shares a busy CPU fairly between sessions, and
# within one session between threads, so a SUT in the bench's session would compete with the
# replayer thread by thread. bench_vs_goreplay.py --shared-session sets this False.
SUT_OWN_SESSION = True
DEPENDENCIES = ("price", "stock", "review")
FIRST_FD = 10  # stand-in socket numbers of the SUT's outbound connections, like a real process's
TARGET_RATE = 1000.0
RUNS = (("fuzzy", 1), ("fuzzy", 8), ("chunk", 8))


def put_away(workdir: Path, keep: bool) -> None:
    """A bench's working folder (recording, store, the SUT's logs): kept when asked, else removed."""
    if keep:
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


# --- the SUT -----------------------------------------------------------------------------


def build_sut() -> None:
    SUT_BINARY.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["go", "build", "-o", str(SUT_BINARY), "."], cwd=SUT_SOURCE, check=True)


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: bound at once, so the kernel cannot hand one out twice."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind((LOOPBACK, 0))
        return [s.getsockname()[1] for s in sockets]


class Sut:
    """The Go SUT as a child process, pointed at one address per dependency."""

    def __init__(self, deps: dict[str, str], log: Path, port: int | None = None):
        self.port = port or free_port()
        self.address = f"{LOOPBACK}:{self.port}"
        args = [str(SUT_BINARY), "--listen", self.address]
        for name, address in deps.items():
            args += [f"--{name}", f"http://{address}"]
        self.log = open(log, "ab")
        self.process = subprocess.Popen(args, stdout=self.log, stderr=self.log, start_new_session=SUT_OWN_SESSION)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the SUT exited with {self.process.returncode}; see {self.log.name}")
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=1) as s:
                    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(100).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise SystemExit(f"the SUT did not answer on {self.address} within {timeout:g} s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


# --- recording -----------------------------------------------------------------------------


def dependency_body(name: str, item: int) -> bytes:
    """Deterministic JSON of one dependency for one item."""
    if name == "price":
        doc = {"id": item, "currency": "EUR", "amount_cents": (item * 7919) % 100_000, "tax_rate": 0.2}
    elif name == "stock":
        doc = {"id": item, "warehouse": f"w{item % 7}", "available": (item * 31) % 500, "reserved": (item * 17) % 50}
    else:
        doc = {"id": item, "rating": round(1 + (item % 41) / 10, 1), "count": (item * 13) % 1000, "tags": ["fast", f"t{item % 5}"]}
    return json.dumps(doc, separators=(",", ":")).encode()


async def read_http_message(reader: asyncio.StreamReader, buffer: bytearray) -> tuple[bytes, int] | None:
    """One HTTP/1.1 message framed by its head and Content-Length (enough for this traffic):
    its bytes and the unix ns when its first byte had arrived. None when the peer closed."""
    started = time.time_ns() if buffer else 0
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        data = await reader.read(65536)
        if not data:
            return None
        started = started or time.time_ns()
        buffer += data
    length = 0
    for line in bytes(buffer[:end]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    total = end + 4 + length
    while len(buffer) < total:
        data = await reader.read(65536)
        if not data:
            return None
        buffer += data
    message = bytes(buffer[:total])
    del buffer[:total]
    return message, started


class Recorder:
    """Outbound talks logged by the dependency servers, taken per inbound request."""

    def __init__(self) -> None:
        self.talks: list[CallOutbound] = []
        self.fds = itertools.count(FIRST_FD)

    def take(self) -> list[CallOutbound]:
        talks, self.talks = self.talks, []
        return sorted(talks, key=lambda t: t.occurred_at)


class DependencyServer:
    """A dependency: HTTP/1.1 keep-alive, `GET /<name>/<id>` answers deterministic JSON, and
    every request/response bytes pair is logged as a CallOutbound against its address."""

    def __init__(self, name: str, recorder: Recorder):
        self.name = name
        self.recorder = recorder
        self.server: asyncio.Server | None = None
        self.peer = Peer()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, LOOPBACK, 0)
        self.peer = Peer(LOOPBACK, self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        fd = next(self.recorder.fds)
        buffer = bytearray()
        try:
            while (message := await read_http_message(reader, buffer)) is not None:
                request, occurred_at = message
                line = request.split(b"\r\n", 1)[0].decode("latin-1")
                method, target, _ = line.split(" ", 2)
                prefix = f"/{self.name}/"
                if method == "GET" and target.startswith(prefix) and target[len(prefix) :].isdigit():
                    status, body = "200 OK", dependency_body(self.name, int(target[len(prefix) :]))
                else:
                    status, body = "404 Not Found", b'{"error":"not found"}'
                response = (
                    f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nDate: {formatdate(usegmt=True)}\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode() + body
                writer.write(response)
                await writer.drain()
                self.recorder.talks.append(
                    CallOutbound(
                        action_index=0,  # set when the session is assembled
                        occurred_at=occurred_at,
                        request=request,
                        response=response,
                        peer=self.peer,
                        socket_fd=fd,
                        response_time=time.time_ns(),
                    )
                )
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


async def record_sessions(n: int, workdir: Path) -> tuple[list[Session], dict[str, Peer]]:
    recorder = Recorder()
    deps = [DependencyServer(name, recorder) for name in DEPENDENCIES]
    for dep in deps:
        await dep.start()
    sut = Sut({d.name: d.peer.address for d in deps}, workdir / "sut-record.log")
    sessions: list[Session] = []
    try:
        reader, writer = await asyncio.open_connection(LOOPBACK, sut.port)
        client = writer.get_extra_info("sockname")
        client_peer = Peer(client[0], client[1])
        thread_id = sut.process.pid  # Koala records the serving thread; one stand-in value
        buffer = bytearray()
        recorder.take()
        for item in range(1, n + 1):
            request = (f"GET /item/{item} HTTP/1.1\r\nHost: {sut.address}\r\nUser-Agent: bench-client/1.0\r\nAccept: application/json\r\n\r\n").encode()
            started = time.time_ns()
            writer.write(request)
            await writer.drain()
            message = await read_http_message(reader, buffer)
            if message is None:
                raise SystemExit(f"the SUT closed the connection on /item/{item}")
            response, _ = message
            ended = time.time_ns()
            talks = recorder.take()
            if not response.startswith(b"HTTP/1.1 200 ") or len(talks) != len(DEPENDENCIES):
                raise SystemExit(f"/item/{item}: {response[:200]!r} with {len(talks)} outbound talks")
            for talk in talks:  # each talk was made for this request (a sanity check, not how they are attributed)
                assert f"/{item} HTTP/1.1\r\n".encode() in talk.request, talk.request
            actions = [msgspec.structs.replace(t, action_index=i) for i, t in enumerate(talks)]
            returned = ReturnInbound(action_index=len(actions), occurred_at=ended, response=response)
            sessions.append(
                Session(
                    session_id=f"{started}-{thread_id}",
                    call_from_inbound=CallFromInbound(action_index=0, occurred_at=started, request=request, peer=client_peer),
                    return_inbound=returned,
                    actions=[*actions, returned],
                    thread_id=thread_id,
                )
            )
        writer.close()
    finally:
        sut.stop()
        await asyncio.sleep(0.05)  # the dependency servers see the SUT's connections close
        for dep in deps:
            await dep.stop()
    for session, following in zip(sessions, sessions[1:], strict=False):
        session.next_session_id = following.session_id
    assert len({s.session_id for s in sessions}) == len(sessions)
    return sessions, {d.name: d.peer for d in deps}


# --- replay --------------------------------------------------------------------------------


def show_failures(store, summary, limit: int = 5) -> None:
    shown = 0
    for verdict in ("error", "different"):
        for comparison in store.runs.comparisons(summary.run_id, verdict):
            print(f"    {comparison.session_id} {comparison.endpoint}: {comparison.verdict} {comparison.error or ''}")
            for difference in comparison.differences[:4]:
                print(f"      {difference.path} {difference.kind}: {str(difference.expected)[:160]!r} -> {str(difference.actual)[:160]!r}")
            shown += 1
            if shown >= limit:
                return
    for note in summary.unattributed_talks[:3]:
        print(f"    unattributed talk to {note.peer}: {note.reason}: {note.request[:120]}")


def _run_queue_wait() -> float:
    """Seconds this thread has waited, ready to run, for a core (/proc/.../schedstat's second
    field); NaN where it cannot be read."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as stats:
            return int(stats.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def replay_run(
    store,
    recorded_peers: dict[str, Peer],
    matcher: str,
    concurrency: int,
    workdir: Path,
    profile_dir: Path | None,
    settle: float | None,
    tag: str = "",
    mock_process: str = "auto",
    limit: int | None = None,
):
    # The mock stands in for each recorded dependency on a fresh port; the SUT is pointed there.
    # The mock's ports and the SUT's, all distinct (taken one by one, the kernel may repeat one).
    *listen, sut_port = free_ports(len(recorded_peers) + 1)
    mappings = {name: parse_mapping(f"{LOOPBACK}:{port}={peer.address}") for (name, peer), port in zip(recorded_peers.items(), listen, strict=True)}
    sut = Sut({name: str(m.listen) for name, m in mappings.items()}, workdir / f"sut-{matcher}-c{concurrency}.log", port=sut_port)
    options = ReplayOptions(
        target=parse_address(sut.address, "target"),
        mappings=list(mappings.values()),
        matcher=matcher,
        concurrency=concurrency,
        run_name=f"bench-{matcher}-c{concurrency}{tag}",
        **({} if settle is None else {"settle": settle}),
        mock_process=mock_process,
        limit=limit,
    )
    profiler = cProfile.Profile() if profile_dir else None
    waited_before = _run_queue_wait()
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        summary = replay(store, options)
        if profiler:
            profiler.disable()
        wall = time.perf_counter() - started
        waited = _run_queue_wait() - waited_before
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        mock_after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the mock's process, reaped by replay()
    finally:
        sut.stop()
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the SUT too, once reaped
    cpu = {
        "replayer": (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime),
        "replayer_sys": cpu_after.ru_stime - cpu_before.ru_stime,
        "mock": _cpu(mock_after) - _cpu(children_before),
        "sut": _cpu(children_after) - _cpu(mock_after),
        # Not CPU: the seconds the event loop's thread (this one: replay() runs the loop here)
        # was ready to run but waited for a core; NaN where Linux's schedstat is missing.
        "loop_waited": waited,
    }
    if profiler and profile_dir:
        out = profile_dir / f"replay-{matcher}-c{concurrency}{tag}.prof"
        profiler.dump_stats(out)
        print(f"  profile: {out}")
        stats = pstats.Stats(str(out))
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)
    return summary, wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=5000)
    parser.add_argument("--runs", default=",".join(f"{m}:{c}" for m, c in RUNS), help="MATCHER:CONCURRENCY,... (default %(default)s)")
    parser.add_argument("--profile", type=Path, help="write a cProfile of each replay run here and print its top functions")
    parser.add_argument(
        "--settle", type=float, help="ReplayOptions.settle in seconds (default: the runner's); for diagnosis, the figures of record use the default"
    )
    parser.add_argument("--repeat", type=int, default=3, help="replays per configuration; the median is reported (default %(default)s)")
    parser.add_argument("--mock-process", default="auto", choices=["auto", "on", "off"], help="ReplayOptions.mock_process (default %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (store, SUT logs)")
    args = parser.parse_args()
    runs = [(m, int(c)) for m, c in (item.split(":") for item in args.runs.split(","))]
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)

    build_sut()
    workdir = Path(tempfile.mkdtemp(prefix="koala-bench-replay-"))
    try:
        started = time.perf_counter()
        sessions, peers = asyncio.run(record_sessions(args.sessions, workdir))
        recorded_s = time.perf_counter() - started
        store = open_store(f"sqlite:///{workdir / 'recording.db'}")
        result = store.put_many(sessions)
        store.refresh()
        assert result.stored == len(sessions) and not result.rejected, result
        calls = sum(len(s.outbound_calls) for s in sessions)
        n = len(sessions)
        del sessions, result  # the replay reads them back from the store, like `koala replay`
        print(f"recorded {n} sessions ({calls} outbound calls to {len(peers)} dependencies) in {recorded_s:.1f} s; store {workdir / 'recording.db'}")
        print(f"SUT: {SUT_BINARY} (3 parallel outbound HTTP calls per GET /item/<id>); CPUs: {os.cpu_count()}")
        print()
        print(
            f"{'matcher':<8} {'conc':>4} {'sessions':>8} {'summary/s':>10} {'wall/s':>8} {'wall':>7} {'py ms/s':>8} {'py cpu':>6} {'py sys':>6} {'mock':>5} {'sut cpu':>7}  verdicts"
        )
        ok = True
        rates: dict[tuple[str, int], list[float]] = {}
        for matcher, concurrency in runs:
            for rep in range(args.repeat):
                tag = f"-{rep + 1}" if args.repeat > 1 else ""
                summary, wall, cpu = replay_run(store, peers, matcher, concurrency, workdir, args.profile, args.settle, tag, args.mock_process)
                rates.setdefault((matcher, concurrency), []).append(summary.total / wall)
                verdicts = f"same {summary.same}, different {summary.different}, error {summary.error}, unattributed {summary.unattributed}"
                per_session_ms = cpu["replayer"] * 1000 / max(summary.total, 1)
                print(
                    f"{matcher:<8} {concurrency:>4} {summary.total:>8} {summary.sessions_per_second or 0:>10.1f} {summary.total / wall:>8.1f} {wall:>6.1f}s"
                    f" {per_session_ms:>8.2f} {cpu['replayer'] / wall:>6.0%} {cpu['replayer_sys'] / wall:>6.0%} {cpu['mock'] / wall:>5.0%} {cpu['sut'] / wall:>7.0%}  {verdicts}"
                )
                if summary.same != n or summary.unattributed:
                    ok = False
                    print("  NOT ALL SAME: the figures above do not count; first differences:")
                    show_failures(store, summary)
                sys.stdout.flush()
        store.close()
        print()
        print(f"sessions/s by wall time, median of {args.repeat} (min..max):")
        for (matcher, concurrency), values in rates.items():
            print(f"  {matcher:<6} concurrency {concurrency}: {statistics.median(values):7.0f}/s  ({min(values):.0f}..{max(values):.0f})")
        if ("fuzzy", 8) in rates:
            fuzzy8 = statistics.median(rates[("fuzzy", 8)])
            verdict = "met" if fuzzy8 >= TARGET_RATE else "NOT met"
            print(
                f"target >= {TARGET_RATE:,.0f}/s at concurrency 8 (fuzzy, median): {verdict} ({fuzzy8:,.0f}/s){'' if ok else '; but not every session came out same'}"
            )
        if not ok:
            raise SystemExit(1)
    finally:
        put_away(workdir, args.keep)


if __name__ == "__main__":
    main()
