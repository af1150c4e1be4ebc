"""Recording proxy overhead: the Go service of bench/ (bench/fastsut: each GET /item/<id> makes
three outbound HTTP calls, passing X-Koala-Session on) measured alone and behind
`koala record` (reverse proxy in front, one TCP proxy per dependency, every session spooled
with fsync and stored in SQLite).

    .venv/bin/python bench/bench_record.py [--latency-requests 2000] [--connections 16] [--duration 5]

Load comes from bench/loadgen (Go), so the client is not the limit; the dependencies are
loadgen's Go dependency server. Printed:
- latency: one connection, requests one at a time: p50/p90/p99 of the service alone and
  through the proxy, and the added latency (difference of the percentiles);
- throughput: --connections keep-alive connections for --duration seconds: requests/s of
  the service alone and through the proxy (recording on), and the sessions stored.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from koala_store.store import open_store  # noqa: E402

LOOPBACK = "127.0.0.1"
CACHE = ROOT / ".cache" / "bench"
SUT = CACHE / "fastsut"
LOADGEN = CACHE / "loadgen"


def build() -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    for name, binary in (("fastsut", SUT), ("loadgen", LOADGEN)):
        subprocess.run(["go", "build", "-o", str(binary), "."], cwd=ROOT / "bench" / name, check=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_for(port: int, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"{what} did not listen on {port}")


def start(command: list[str], port: int, what: str, **kwargs) -> subprocess.Popen:
    process = subprocess.Popen(command, **kwargs)
    wait_for(port, process, what)
    return process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def load(url: str, *args: str) -> dict:
    done = subprocess.run([str(LOADGEN), "load", "--url", url, *args], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def measure(url: str, latency_requests: int, connections: int, duration: float) -> tuple[dict, dict]:
    load(url, "--requests", "200")  # warm-up: connections, pools, caches
    latency = load(url, "--connections", "1", "--requests", str(latency_requests))
    throughput = load(url, "--connections", str(connections), "--duration", f"{duration}s")
    return latency, throughput


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-requests", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    if shutil.which("go") is None:
        raise SystemExit("bench_record needs Go to build bench/fastsut and bench/loadgen")
    build()
    work = Path(tempfile.mkdtemp(prefix="koala-bench-record-"))
    processes: list[subprocess.Popen] = []
    try:
        dep_port = free_port()
        processes.append(start([str(LOADGEN), "deps", "--listen", f"{LOOPBACK}:{dep_port}"], dep_port, "the dependencies"))

        # The service alone.
        alone_port = free_port()
        alone = start([str(SUT), "--listen", f"{LOOPBACK}:{alone_port}", "--deps", f"http://{LOOPBACK}:{dep_port}"], alone_port, "fastsut", stderr=subprocess.DEVNULL)
        processes.append(alone)
        base_latency, base_throughput = measure(f"http://{LOOPBACK}:{alone_port}", args.latency_requests, args.connections, args.duration)
        stop(alone)

        # The service behind koala record.
        service, listen, dep_proxy = free_port(), free_port(), free_port()
        sut = start([str(SUT), "--listen", f"{LOOPBACK}:{service}", "--deps", f"http://{LOOPBACK}:{dep_proxy}"], service, "fastsut", stderr=subprocess.DEVNULL)
        processes.append(sut)
        store = f"sqlite:///{work / 'bench.db'}"
        recorder = start(
            [sys.executable, "-m", "koala_store", "record", "--listen", f"{LOOPBACK}:{listen}", "--target", f"{LOOPBACK}:{service}",
             "--outbound", f"{LOOPBACK}:{dep_proxy}={LOOPBACK}:{dep_port}", "--store", store, "--spool", str(work / "spool"), "--quiet", "--drain", "120"],
            listen, "koala record", cwd=ROOT, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        processes.append(recorder)
        rec_latency, rec_throughput = measure(f"http://{LOOPBACK}:{listen}", args.latency_requests, args.connections, args.duration)
        stop(recorder)
        report = recorder.stderr.read().strip().splitlines()[-1] if recorder.stderr else ""
        stop(sut)
        store_handle = open_store(store)
        stored = store_handle.count()
        incomplete = store_handle.count("*") - sum(1 for s in store_handle.scan() if not s.incomplete)
        store_handle.close()
    finally:
        for process in processes:
            stop(process)
        shutil.rmtree(work, ignore_errors=True)

    print(f"latency, one connection, {args.latency_requests} requests (ms): alone | through koala record | added")
    for key in ("p50_ms", "p90_ms", "p99_ms"):
        print(f"  {key[:-3]:4} {base_latency[key]:7.3f} | {rec_latency[key]:7.3f} | {rec_latency[key] - base_latency[key]:+7.3f}")
    print(f"throughput, {args.connections} connections, {args.duration:g} s (requests/s): alone | through koala record (recording on)")
    print(f"  {base_throughput['rps']:9.0f} | {rec_throughput['rps']:9.0f}  ({rec_throughput['rps'] / base_throughput['rps']:.2f} of alone); p99 {base_throughput['p99_ms']:.2f} ms | {rec_throughput['p99_ms']:.2f} ms")
    print(f"  errors: {base_throughput['errors']} | {rec_throughput['errors']}; sessions stored: {stored} ({incomplete} incomplete)")
    print(f"  koala record: {report}")


if __name__ == "__main__":
    main()
