"""Record the demo service's traffic by a real run with `koala record`, as Koala sessions in
examples/demo/recording/.

    .venv/bin/python examples/demo/record.py [--out DIR] [--build v1|v2]

Starts a real redis-server on 127.0.0.1:16379 (installing Debian's `redis-server` when it
is missing and we are root), the downstream service on 127.0.0.1:18081 and the service on a
free port, configured with Redis at 127.0.0.1:26379 and the downstream at
http://127.0.0.1:28081, where `koala record` listens:

    koala record --listen 127.0.0.1:18080 --target 127.0.0.1:<service> \\
        --outbound 127.0.0.1:26379=127.0.0.1:16379 --outbound 127.0.0.1:28081=127.0.0.1:18081

So the recorded peers are the real dependencies (127.0.0.1:16379 and 127.0.0.1:18081) and
`koala replay --outbound 127.0.0.1:26379=127.0.0.1:16379 ...` (scripts/demo.sh) takes the
same mappings, with the service pointed at the same addresses as when it was recorded. The
scripted client sends its requests through 127.0.0.1:18080 one at a time on keep-alive
connections; `koala record` stops with SIGTERM (nothing recorded is lost), and the sessions
are exported from its store, one file per session named by its SessionId.

The functions here (SCRIPT, run_script, start_redis, ...) also drive the test that records
the demo for real (tests/test_record_demo.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
LOOPBACK = "127.0.0.1"
# Where the real dependencies listen, i.e. the recorded peers; where the proxies listen (the
# service is configured with these); where clients call.
REDIS_PORT, DOWNSTREAM_PORT = 16379, 18081
REDIS_PROXY_PORT, DOWNSTREAM_PROXY_PORT = 26379, 28081
SERVICE_PORT = 18080

# The scripted traffic: each group runs on one keep-alive client connection, in order.
# Comments give the v1 outcome; all of it is deterministic on a flushed Redis.
Request = tuple[str, str, "dict | str | None"]
SCRIPT: list[list[Request]] = [
    [
        ("GET", "/health", None),
        ("GET", "/users/1", None),  # cache miss: downstream /profiles/1, SET user:1
        ("GET", "/users/1", None),  # cache hit
        ("GET", "/users/2", None),  # miss
        ("GET", "/users/9", None),  # no such profile: 404, nothing cached
        ("GET", "/quote?item=apple&qty=3", None),
        ("GET", "/quote?item=coffee&qty=12", None),  # bulk discount (v2 forgets it)
    ],
    [
        ("POST", "/orders", {"user_id": 1, "item": "apple", "qty": 3}),  # order 1
        ("GET", "/orders/1", None),
        ("POST", "/orders", {"user_id": 2, "item": "notebook", "qty": 10}),  # order 2, discounted
        ("GET", "/orders/2", None),
        ("GET", "/orders/99", None),  # missing: 404 (v2 says 200)
        ("POST", "/orders", {"user_id": 3, "item": "durian", "qty": 1}),  # unknown item: 422
        ("POST", "/orders", "{not json"),  # 400, no outbound call
    ],
    [
        ("GET", "/users/2", None),  # hit, on a new client connection
        ("GET", "/users/3", None),
        ("GET", "/quote?item=banana&qty=10", None),
        ("POST", "/orders", {"user_id": 4, "item": "banana", "qty": 2}),  # order 3
        ("GET", "/orders/3", None),
    ],
    [
        ("GET", "/users/4", None),
        ("GET", "/users/4", None),
        ("GET", "/health", None),
        ("GET", "/quote?item=durian&qty=1", None),  # unknown item: 404
        ("GET", "/orders/1", None),
        ("GET", "/nope", None),  # no such endpoint: 404
    ],
]


# --- the scripted client: raw sockets, so what it sent and received is known exactly ----------


def request_bytes(method: str, path: str, body: dict | str | None, port: int) -> bytes:
    """The request as Python's http.client sends it."""
    head = f"{method} {path} HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\nAccept-Encoding: identity\r\n"
    payload = b""
    if body is not None:
        payload = (body if isinstance(body, str) else json.dumps(body)).encode()
        head += f"Content-Length: {len(payload)}\r\nContent-Type: application/json\r\n"
    return head.encode() + b"\r\n" + payload


def read_response(sock: socket.socket) -> bytes:
    """One whole response (every answer of the demo has Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"the connection closed after {len(data)} bytes of a response")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:] if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the connection closed in the middle of a response body")
        body += chunk
    return head + b"\r\n\r\n" + body


def run_script(port: int, script: list[list[Request]] = SCRIPT) -> list[tuple[bytes, bytes]]:
    """Send the scripted requests to `port`, one at a time; (request, response) bytes of each."""
    exchanges = []
    for group in script:
        with socket.create_connection((LOOPBACK, port), timeout=10) as sock:
            for method, path, body in group:
                request = request_bytes(method, path, body, port)
                sock.sendall(request)
                exchanges.append((request, read_response(sock)))
    return exchanges


# --- the real processes -----------------------------------------------------------------------


def find_redis_server() -> str:
    """The redis-server binary; installs Debian's package when missing and we may."""
    for candidate in (shutil.which("redis-server"), "/usr/bin/redis-server", "/usr/sbin/redis-server"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit("record.py needs redis-server: install it (Debian/Ubuntu: `sudo apt-get install redis-server`) and run again.")
    print("installing redis-server with apt-get ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-q", "redis-server"], check=True, env=env, stdout=subprocess.DEVNULL)
    path = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.access(path, os.X_OK):
        sys.exit("apt-get installed redis-server but no redis-server binary was found; install it by hand and run again.")
    return path


def require_free(port: int, what: str) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            sys.exit(f"port {LOOPBACK}:{port} (for {what}) is in use; stop what listens there and run again.")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, what: str, process: subprocess.Popen | None = None, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{what} did not come up on {LOOPBACK}:{port} within {timeout:.0f} s")


def start_redis(port: int, folder: str) -> subprocess.Popen:
    """A real, empty redis-server without persistence."""
    args = ["--port", str(port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no", "--dir", folder, "--loglevel", "warning"]
    process = subprocess.Popen([find_redis_server(), *args], stdout=subprocess.DEVNULL)
    wait_for_port(port, "redis-server", process)
    return process


def start_downstream(port: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, str(HERE / "downstream.py"), "--port", str(port)])
    wait_for_port(port, "the downstream service", process)
    return process


def start_service(port: int, redis_address: str, downstream_url: str, build: str = "v1") -> subprocess.Popen:
    command = [sys.executable, str(HERE / "service.py"), "--port", str(port), "--build", build, "--redis", redis_address, "--downstream", downstream_url]
    process = subprocess.Popen(command)
    wait_for_port(port, f"the {build} service", process)
    return process


def start_recorder(listen: int, service: int, outbound: list[tuple[int, int]], store: str, spool: str, *extra: str) -> subprocess.Popen:
    """`koala record` as its own process (stopped with SIGTERM: nothing recorded is lost)."""
    command = [sys.executable, "-m", "koala_store", "record", "--listen", f"{LOOPBACK}:{listen}", "--target", f"{LOOPBACK}:{service}", "--store", store, "--spool", spool, "--quiet"]
    for proxy, real in outbound:
        command += ["--outbound", f"{LOOPBACK}:{proxy}={LOOPBACK}:{real}"]
    process = subprocess.Popen([*command, *extra], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    wait_for_port(listen, "koala record", process)
    return process


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def record(out: Path, build: str = "v1", after: Callable[[], None] | None = None) -> int:
    """Record the scripted traffic of `build` into `out` (replacing what is there)."""
    for port, what in ((REDIS_PORT, "Redis"), (DOWNSTREAM_PORT, "the downstream service"), (SERVICE_PORT, "koala record"), (REDIS_PROXY_PORT, "the Redis proxy"), (DOWNSTREAM_PROXY_PORT, "the downstream proxy")):
        require_free(port, what)
    processes: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="koala-demo-") as work:
        store = f"sqlite:///{work}/recording.db"
        try:
            processes.append(start_redis(REDIS_PORT, work))
            processes.append(start_downstream(DOWNSTREAM_PORT))
            service_port = free_port()
            # The service first (it reaches its dependencies lazily), so nothing probes it
            # through the recorder.
            processes.append(start_service(service_port, f"{LOOPBACK}:{REDIS_PROXY_PORT}", f"http://{LOOPBACK}:{DOWNSTREAM_PROXY_PORT}", build))
            recorder = start_recorder(SERVICE_PORT, service_port, [(REDIS_PROXY_PORT, REDIS_PORT), (DOWNSTREAM_PROXY_PORT, DOWNSTREAM_PORT)], store, f"{work}/spool")
            processes.append(recorder)
            exchanges = run_script(SERVICE_PORT)
            print("statuses:", " ".join(response.split(b" ", 2)[1].decode() for _, response in exchanges))
            stop(recorder)
            print(recorder.stderr.read().strip() if recorder.stderr else "")
            if recorder.returncode not in (0, 143):
                sys.exit(f"koala record exited with {recorder.returncode}")
        finally:
            for process in reversed(processes):
                stop(process)
        out.mkdir(parents=True, exist_ok=True)
        for old in out.iterdir():  # a re-recording replaces the previous one
            if old.is_file() and old.name[:1].isdigit():
                old.unlink()
        done = subprocess.run([sys.executable, "-m", "koala_store", "sessions", "export", "*", "--format", "koala", "-o", str(out), "--store", store], cwd=ROOT)
        if done.returncode != 0:
            sys.exit("exporting the recorded sessions failed")
    return len(exchanges)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE / "recording", help="folder for the session files (default: %(default)s)")
    parser.add_argument("--build", choices=("v1", "v2"), default="v1", help="the build to record (the demo's recording is of v1)")
    args = parser.parse_args()
    count = record(args.out, args.build)
    print(f"recorded {count} requests into {args.out}")


if __name__ == "__main__":
    main()
