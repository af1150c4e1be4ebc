"""Real processes and recordings for replay tests: the test SUT (tests/sut_app.py), the demo
service (examples/demo), free ports, and sessions shaped exactly as the SUT talks."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from factories import BASE_NS, http_response
from koala_store.model import CallFromInbound, CallOutbound, Peer, ReturnInbound, Session

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
DEP_PEER = Peer("10.1.0.5", 8080)  # where the recording says the dependency was
KV_PEER = Peer("10.1.0.6", 6379)
DB_PEER = Peer("10.1.0.7", 3306)


_PORTS_GIVEN: set[int] = set()


def free_port() -> int:
    """A loopback port free now and never given before in this test process: the kernel may
    hand a just-closed port out again, and two of a test's addresses (say the SUT's and a mock's)
    must differ."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port not in _PORTS_GIVEN:
            _PORTS_GIVEN.add(port)
            return port


def wait_for_port(port: int, process: subprocess.Popen | None = None, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@contextmanager
def running(command: list[str], port: int) -> Iterator[subprocess.Popen]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, process)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def sut(*flags: str, **addresses: int) -> Iterator[int]:
    """The test SUT on a free port; `dep=`, `kv=`, `db=` name the mock's ports it should call."""
    port = free_port()
    command = [sys.executable, str(TESTS / "sut_app.py"), "--port", str(port), *flags]
    for name, value in addresses.items():
        command += [f"--{name}", f"127.0.0.1:{value}"]
    with running(command, port):
        yield port


def _inbound(method: str, path: str, body: bytes = b"") -> bytes:
    extra = f"Content-Length: {len(body)}\r\n" if body or method == "POST" else ""
    return f"{method} {path} HTTP/1.1\r\nHost: shop.internal:80\r\n{extra}\r\n".encode() + body


def _dep_call(position: int, at: int, path: str, body: dict, fd: int = 20) -> CallOutbound:
    request = f"GET {path} HTTP/1.1\r\nHost: dep.internal\r\n\r\n".encode()
    return CallOutbound(
        position, at, request=request, response=http_response(200, json.dumps(body).encode()), peer=DEP_PEER, socket_fd=fd, response_time=at + 1000
    )


def _session(index: int, request: bytes, status: int, body: dict, calls: list[CallOutbound], session_id: str | None = None) -> Session:
    at = BASE_NS + index * 1_000_000_000
    response = http_response(status, json.dumps(body).encode())
    return Session(
        session_id=session_id or f"{at}-{index}",
        call_from_inbound=CallFromInbound(0, at, request=request, peer=Peer("10.1.0.2", 50000 + index)),
        return_inbound=ReturnInbound(len(calls), at + 3_000_000, response=response),
        actions=[*calls, ReturnInbound(len(calls), at + 3_000_000, response=response)],
    )


def item_session(index: int, item: str, price: int, fd: int | None = None) -> Session:
    """GET /item/<item>: one call GET /price/<item> answered {"price": price}."""
    at = BASE_NS + index * 1_000_000_000
    call = _dep_call(0, at + 1000, f"/price/{item}", {"price": price}, fd=fd if fd is not None else 20 + index)
    return _session(index, _inbound("GET", f"/item/{item}"), 200, {"id": item, "price": price}, [call])


def pair_session(index: int, item: str) -> Session:
    at = BASE_NS + index * 1_000_000_000
    calls = [_dep_call(0, at + 1000, f"/a/{item}", {"v": 1}), _dep_call(1, at + 2000, f"/b/{item}", {"v": 2}, fd=21)]
    return _session(index, _inbound("GET", f"/pair/{item}"), 200, {"id": item, "a": 1, "b": 2}, calls)


def save_session(index: int, item: str, value: bytes) -> Session:
    at = BASE_NS + index * 1_000_000_000
    key = f"item:{item}".encode()
    request = b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(value), value)
    call = CallOutbound(0, at + 1000, request=request, response=b"+OK\r\n", peer=KV_PEER, socket_fd=30, response_time=at + 2000)
    return _session(index, _inbound("POST", f"/save/{item}", value), 201, {"saved": item}, [call])


def noisy_session(index: int, item: str) -> Session:
    return _session(index, _inbound("GET", f"/noisy/{item}"), 200, {"id": item, "nonce": 12345}, [])


def plain_session(index: int, path: str, body: dict | None = None) -> Session:
    return _session(index, _inbound("GET", path), 200, body or {}, [])


MYSQL_GREETING = b"\x0a\x00\x00\x00\x0a5.7.16-log\x00\x01\x02\x03\x04"


def greet_session(index: int) -> Session:
    at = BASE_NS + index * 1_000_000_000
    greeting = len(MYSQL_GREETING).to_bytes(3, "little") + b"\x00" + MYSQL_GREETING
    query = b"\x03SELECT 1"
    calls = [
        CallOutbound(0, at + 1000, request=b"", response=greeting, peer=DB_PEER, socket_fd=40, response_time=at + 1000),
        CallOutbound(
            1,
            at + 2000,
            request=len(query).to_bytes(3, "little") + b"\x00" + query,
            response=b"\x07\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00",
            peer=DB_PEER,
            socket_fd=40,
        ),
    ]
    return _session(index, _inbound("GET", "/greet"), 200, {"greeting": greeting[:20].hex()}, calls)
