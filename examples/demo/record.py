"""Record the demo service's traffic by a real run, as Koala sessions in examples/demo/recording/.

    .venv/bin/python examples/demo/record.py [--out DIR]

Starts a real redis-server (installing Debian's `redis-server` when it is missing and we are
root), the downstream service and the v1 service, each on a free loopback port. The service
is configured with Redis at 127.0.0.1:16379 and the downstream at http://127.0.0.1:18081:
capturing TCP proxies listen there and forward to the real servers, so the recorded peers
are the addresses the service dialed (what Koala's in-process recorder records), and the
bytes it sent, Host headers included, are what it sends when its dependencies really live
there. The scripted client reaches the service through a capturing proxy on 127.0.0.1:18080.
Every byte recorded crossed a real socket. Each inbound request becomes one session file
named by its SessionId.

Talk framing follows Koala's recorder: on one connection, the bytes the client side sends
form a talk's request and the bytes received after them its response; a send after a receive
starts the next talk. Requests are sent one at a time, so an outbound talk belongs to the
inbound request being served when it started.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # run from a checkout without installing

from koala_store.formats import koala  # noqa: E402
from koala_store.model import CallFromInbound, CallOutbound, Peer, ReturnInbound, Session  # noqa: E402

# Fixed addresses the service and its clients use (capturing proxies listen there), so the
# recorded peers, and the replay mappings, are the same every run.
REDIS_PORT = 16379
DOWNSTREAM_PORT = 18081
SERVICE_PORT = 18080
LOOPBACK = "127.0.0.1"
FIRST_FD = 10  # stand-in socket numbers for outbound connections start here, like a real process's

# The scripted traffic: each group runs on one keep-alive client connection, in order.
# Comments give the v1 outcome; all of it is deterministic on a flushed Redis.
Request = tuple[str, str, dict | str | None]
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

# --- talks and the proxies that capture them ------------------------------------------------


@dataclass
class Connection:
    number: int  # stable per connection: the SocketFD of outbound talks, the thread of inbound ones
    client: Peer  # the connecting side, as the proxy sees it
    recorded_peer: Peer  # the address the talks are recorded against


@dataclass
class Talk:
    connection: Connection
    occurred_at: int  # first request byte (or first response byte for a greeting)
    request: bytearray = field(default_factory=bytearray)
    response: bytearray = field(default_factory=bytearray)
    response_started: int = 0  # first response byte
    response_time: int = 0  # last response byte


class CaptureProxy:
    """A TCP proxy that forwards both ways and frames each connection's bytes into talks."""

    def __init__(self, upstream: tuple[str, int], recorded_peer: Peer, on_talk: Callable[[Talk], None], numbers: itertools.count) -> None:
        self.upstream = upstream
        self.recorded_peer = recorded_peer
        self.on_talk = on_talk  # called when a talk starts; it keeps filling afterwards
        self.numbers = numbers
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task] = set()  # one per open connection

    async def start(self, port: int = 0) -> int:
        self.server = await asyncio.start_server(self._serve, LOOPBACK, port)
        return self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and let open connections end (their peers have been stopped)."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks, timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        host, port = client_w.get_extra_info("peername")[:2]
        conn = Connection(next(self.numbers), Peer(host, port), self.recorded_peer)
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        current: list[Talk] = []  # the connection's latest talk, shared by both directions

        def sent(data: bytes) -> None:
            now = time.time_ns()
            if not current or current[0].response:  # a send after a receive: the next talk
                current[:] = [Talk(conn, now)]
                self.on_talk(current[0])
            current[0].request += data  # a second send before any answer joins the request

        def received(data: bytes) -> None:
            now = time.time_ns()
            if not current:  # bytes before anything was sent: a greeting, with empty request
                current[:] = [Talk(conn, now)]
                self.on_talk(current[0])
            talk = current[0]
            talk.response_started = talk.response_started or now
            talk.response += data
            talk.response_time = now

        await asyncio.gather(_pump(client_r, up_w, sent), _pump(up_r, client_w, received))


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, record: Callable[[bytes], None]) -> None:
    """Copy one direction, recording each chunk before forwarding it (so it is recorded before
    the other side can react); when the source closes, close the destination too."""
    try:
        while data := await src.read(65536):
            record(data)
            dst.write(data)
            await dst.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        dst.close()


# --- sessions -------------------------------------------------------------------------------


@dataclass
class Recording:
    """Inbound talks and the outbound talks made while each was served."""

    sessions: list[tuple[Talk, list[Talk]]] = field(default_factory=list)
    stray: list[Talk] = field(default_factory=list)  # outbound talks outside any request

    def inbound(self, talk: Talk) -> None:
        self.sessions.append((talk, []))

    def outbound(self, talk: Talk) -> None:
        (self.sessions[-1][1] if self.sessions else self.stray).append(talk)

    def to_sessions(self) -> list[Session]:
        built = [_session(inbound, outbound) for inbound, outbound in self.sessions if inbound.request]
        # NextSessionId links consecutive sessions of one thread (here: one client connection).
        last_on_thread: dict[int, Session] = {}
        for session in built:
            previous = last_on_thread.get(session.thread_id)
            if previous is not None:
                previous.next_session_id = session.session_id
            last_on_thread[session.thread_id] = session
        return built


def _session(inbound: Talk, outbound: list[Talk]) -> Session:
    thread = inbound.connection.number
    actions: list = [
        CallOutbound(
            action_index=i,
            occurred_at=talk.occurred_at,
            request=bytes(talk.request),
            response=bytes(talk.response),
            peer=talk.connection.recorded_peer,
            socket_fd=talk.connection.number,
            response_time=talk.response_time,
        )
        for i, talk in enumerate(outbound)
    ]
    answered = ReturnInbound(len(actions), inbound.response_started or inbound.occurred_at, bytes(inbound.response))
    actions.append(answered)  # Koala repeats ReturnInbound as the last action
    return Session(
        session_id=f"{inbound.occurred_at}-{thread}",
        call_from_inbound=CallFromInbound(0, inbound.occurred_at, request=bytes(inbound.request), peer=inbound.connection.client),
        return_inbound=answered,
        actions=actions,
        thread_id=thread,
    )


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
        # As asyncio's listeners do, so connections of a previous run in TIME_WAIT don't count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            sys.exit(f"port {LOOPBACK}:{port} (for {what}) is in use; stop what listens there and run again.")


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (all held open while choosing, so none repeats)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind((LOOPBACK, 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def wait_until(check: Callable[[], object], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (OSError, redis.RedisError, http.client.HTTPException):
            pass
        if time.monotonic() > deadline:
            sys.exit(f"{what} did not come up within {timeout:.0f} s.")
        time.sleep(0.05)


def http_ok(port: int, path: str) -> bool:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=2)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()  # closing with unread bytes would reset the connection
        return response.status < 500
    finally:
        conn.close()


def run_script(port: int) -> list[int]:
    """Send the scripted requests through the inbound proxy, one at a time; their statuses."""
    statuses = []
    for group in SCRIPT:
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
        for method, path, body in group:
            payload = None if body is None else (body if isinstance(body, str) else json.dumps(body)).encode()
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            response.read()  # the whole answer, so the next request starts a new talk
            statuses.append(response.status)
        conn.close()
    return statuses


async def record(out: Path, build: str = "v1") -> list[Session]:
    redis_server = find_redis_server()
    for port, what in ((REDIS_PORT, "Redis"), (DOWNSTREAM_PORT, "the downstream service"), (SERVICE_PORT, "the service")):
        require_free(port, what)
    real_redis, real_downstream, service_port = free_ports(3)
    python = sys.executable
    processes: list[subprocess.Popen] = []
    proxies: list[CaptureProxy] = []
    with tempfile.TemporaryDirectory(prefix="koala-demo-redis-") as redis_dir:
        try:
            # No persistence: every run starts from an empty, flushed Redis.
            redis_args = ["--port", str(real_redis), "--bind", LOOPBACK, "--save", "", "--appendonly", "no", "--dir", redis_dir]
            processes.append(subprocess.Popen([redis_server, *redis_args, "--loglevel", "warning"], stdout=subprocess.DEVNULL))
            processes.append(subprocess.Popen([python, str(HERE / "downstream.py"), "--port", str(real_downstream)]))
            admin = redis.Redis(host=LOOPBACK, port=real_redis)  # direct, so none of this is recorded
            wait_until(admin.ping, "redis-server")
            admin.flushall()
            admin.close()
            wait_until(lambda: http_ok(real_downstream, "/prices?item=apple"), "the downstream service")

            recording = Recording()
            numbers = itertools.count(FIRST_FD)  # one sequence for all outbound connections
            redis_proxy = CaptureProxy((LOOPBACK, real_redis), Peer(LOOPBACK, REDIS_PORT), recording.outbound, numbers)
            downstream_proxy = CaptureProxy((LOOPBACK, real_downstream), Peer(LOOPBACK, DOWNSTREAM_PORT), recording.outbound, numbers)
            inbound_proxy = CaptureProxy((LOOPBACK, service_port), Peer(LOOPBACK, SERVICE_PORT), recording.inbound, itertools.count(1))
            proxies += [redis_proxy, downstream_proxy, inbound_proxy]
            await redis_proxy.start(REDIS_PORT)
            await downstream_proxy.start(DOWNSTREAM_PORT)
            await inbound_proxy.start(SERVICE_PORT)

            processes.append(
                subprocess.Popen(
                    [python, str(HERE / "service.py"), "--port", str(service_port), "--build", build]
                    + ["--redis", f"{LOOPBACK}:{REDIS_PORT}", "--downstream", f"http://{LOOPBACK}:{DOWNSTREAM_PORT}"]
                )
            )
            # Probe the service directly, not through the proxy, so the probe is not recorded.
            await asyncio.to_thread(wait_until, lambda: http_ok(service_port, "/health"), f"the {build} service")
            statuses = await asyncio.to_thread(run_script, SERVICE_PORT)
            print("statuses:", " ".join(map(str, statuses)))
            if recording.stray:
                sys.exit(f"{len(recording.stray)} outbound talks happened outside any inbound request; not writing a recording.")
        finally:
            for process in reversed(processes):
                process.terminate()
            for process in processes:
                process.wait(timeout=10)
            for proxy in proxies:
                await proxy.close()

    sessions = recording.to_sessions()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():  # a re-recording replaces the previous one
        if old.is_file() and old.name[:1].isdigit():
            old.unlink()
    for session in sessions:
        (out / session.session_id).write_bytes(koala.dumps(session) + b"\n")
    return sessions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE / "recording", help="folder for the session files (default: %(default)s)")
    parser.add_argument("--build", choices=("v1", "v2"), default="v1", help="the build to record (the demo's recording is of v1)")
    args = parser.parse_args()
    sessions = asyncio.run(record(args.out, args.build))
    calls = sum(len(s.outbound_calls) for s in sessions)
    print(f"recorded {len(sessions)} sessions with {calls} outbound calls into {args.out}")


if __name__ == "__main__":
    main()
