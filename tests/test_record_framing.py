"""How `koala record` frames what crosses it, with raw-socket services and clients so every
byte is known: pipelined, chunked, 100-continue and close-delimited HTTP, traffic that is
not HTTP, a dependency that greets first, and one-way messages."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from koala_store.model import Session
from koala_store.store import open_store
from record_helpers import LOOPBACK, start_koala, stop_koala, tmp_store
from replay_helpers import free_port


class RawServer:
    """A threaded TCP server; `handle(conn)` serves one connection."""

    def __init__(self, handle: Callable[[socket.socket], None]):
        self.handle = handle
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(10)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                self.handle(conn)
            except (OSError, ValueError, AssertionError):
                pass  # e.g. a readiness probe's empty connection

    def close(self) -> None:
        self.sock.close()


def read_until(conn: socket.socket, marker: bytes, have: bytes = b"") -> bytes:
    data = have
    while marker not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def read_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def record(tmp_path: Path, service: RawServer, client: Callable[[int], None], outbound: list[tuple[int, int]] = ()) -> list[Session]:  # type: ignore[assignment]
    listen = free_port()
    flags = []
    for proxy, real in outbound:
        flags += ["--outbound", f"{LOOPBACK}:{proxy}={LOOPBACK}:{real}"]
    recorder = start_koala("record", "--listen", f"{LOOPBACK}:{listen}", "--target", f"{LOOPBACK}:{service.port}", "--store", tmp_store(tmp_path), "--spool", str(tmp_path / "spool"), "--quiet", *flags, port=listen)
    try:
        client(listen)
        time.sleep(0.3)  # the raw exchanges end on an idle gap
    finally:
        code, err = stop_koala(recorder, signal.SIGTERM)
    assert code == 143, err
    store = open_store(tmp_store(tmp_path))
    sessions = list(store.scan())
    store.close()
    return sessions


def test_pipelined_requests_become_one_session_each(tmp_path: Path) -> None:
    answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nbb"]

    def handle(conn: socket.socket) -> None:
        data = b""
        for answer in answers:
            data = read_until(conn, b"\r\n\r\n", data)
            data = data[data.index(b"\r\n\r\n") + 4 :]
            conn.sendall(answer)

    requests = [b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"]
    got = b""

    def client(port: int) -> None:
        nonlocal got
        with socket.create_connection((LOOPBACK, port), timeout=10) as sock:
            sock.sendall(b"".join(requests))  # both in one write
            got = read_until(sock, b"bb")

    sessions = record(tmp_path, RawServer(handle), client)
    assert got == b"".join(answers)
    assert [(s.call_from_inbound.request, s.response) for s in sessions] == list(zip(requests, answers, strict=True))
    assert sessions[0].thread_id == sessions[1].thread_id


def test_chunked_bodies_and_100_continue(tmp_path: Path) -> None:
    chunked_request = b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    chunked_answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    expect_head = b"PUT /big HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    final = b"HTTP/1.1 204 No Content\r\n\r\n"

    def handle(conn: socket.socket) -> None:
        data = read_until(conn, b"0\r\n\r\n")
        conn.sendall(chunked_answer)
        read_until(conn, b"\r\n\r\n", data[data.index(b"0\r\n\r\n") + 5 :])
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        read_exactly(conn, 5)
        conn.sendall(final)

    def client(port: int) -> None:
        with socket.create_connection((LOOPBACK, port), timeout=10) as sock:
            sock.sendall(chunked_request[:40])
            time.sleep(0.05)
            sock.sendall(chunked_request[40:])
            assert read_until(sock, b"0\r\n\r\n") == chunked_answer
            sock.sendall(expect_head)
            assert read_until(sock, b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"  # the body waits for it
            sock.sendall(b"hello")
            assert read_until(sock, b"\r\n\r\n") == final

    sessions = record(tmp_path, RawServer(handle), client)
    assert [(s.call_from_inbound.request, s.response) for s in sessions] == [
        (chunked_request, chunked_answer),
        (expect_head + b"hello", b"HTTP/1.1 100 Continue\r\n\r\n" + final),
    ]


def test_a_close_delimited_answer_and_traffic_that_is_not_http(tmp_path: Path) -> None:
    def handle(conn: socket.socket) -> None:
        first = conn.recv(100)
        if first.startswith(b"GET"):
            conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")
            return  # closes: the body ends here
        conn.sendall(b"+PONG\r\n")
        conn.recv(100)
        conn.sendall(b"$3\r\nbar\r\n")
        time.sleep(0.3)

    def client(port: int) -> None:
        with socket.create_connection((LOOPBACK, port), timeout=10) as sock:
            sock.sendall(b"GET /old HTTP/1.0\r\n\r\n")
            assert read_until(sock, b"the end") == b"HTTP/1.0 200 OK\r\n\r\nuntil the end"
        with socket.create_connection((LOOPBACK, port), timeout=10) as sock:
            sock.sendall(b"PING\r\n")
            assert sock.recv(100) == b"+PONG\r\n"
            time.sleep(0.25)
            sock.sendall(b"GET foo\r\n")
            assert sock.recv(100) == b"$3\r\nbar\r\n"

    sessions = record(tmp_path, RawServer(handle), client)
    assert [(s.call_from_inbound.request, s.response) for s in sessions] == [
        (b"GET /old HTTP/1.0\r\n\r\n", b"HTTP/1.0 200 OK\r\n\r\nuntil the end"),
        (b"PING\r\n", b"+PONG\r\n"),
        (b"GET foo\r\n", b"$3\r\nbar\r\n"),
    ]


def test_a_greeting_and_one_way_messages(tmp_path: Path) -> None:
    def dependency(conn: socket.socket) -> None:
        conn.sendall(b"HELLO v1\n")  # speaks first
        read_until(conn, b"B\n")  # A then B, no answer in between: one talk
        conn.sendall(b"ok\n")
        read_until(conn, b"C\n")
        conn.sendall(b"done\n")

    dep = RawServer(dependency)
    proxy = free_port()

    def service(conn: socket.socket) -> None:
        if b"\r\n\r\n" not in read_until(conn, b"\r\n\r\n"):
            return  # a readiness probe's empty connection
        with socket.create_connection((LOOPBACK, proxy), timeout=10) as up:
            assert read_until(up, b"\n") == b"HELLO v1\n"
            up.sendall(b"A\n")
            time.sleep(0.05)
            up.sendall(b"B\n")
            read_until(up, b"ok\n")
            up.sendall(b"C\n")
            read_until(up, b"done\n")
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")

    def client(port: int) -> None:
        with socket.create_connection((LOOPBACK, port), timeout=10) as sock:
            sock.sendall(b"GET /talk HTTP/1.1\r\nHost: x\r\n\r\n")
            read_until(sock, b"hi")

    (session,) = record(tmp_path, RawServer(service), client, [(proxy, dep.port)])
    talks = [(c.request, c.response) for c in session.outbound_calls]
    assert talks == [(b"", b"HELLO v1\n"), (b"A\nB\n", b"ok\n"), (b"C\n", b"done\n")]
    assert {c.peer.address for c in session.outbound_calls} == {f"{LOOPBACK}:{dep.port}"}  # the real upstream
    assert len({c.socket_fd for c in session.outbound_calls}) == 1
    assert all(c.occurred_at <= c.response_time for c in session.outbound_calls)
