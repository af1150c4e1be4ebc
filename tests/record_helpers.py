"""What recording tests share: a tee relay that sees what a dependency really received and
sent (independently of `koala record`), and `koala record` / `koala serve` as real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from replay_helpers import ROOT, free_port, wait_for_port

LOOPBACK = "127.0.0.1"


class TeeConnection:
    def __init__(self, opened_at: float):
        self.opened_at = opened_at
        self.to_dependency = bytearray()
        self.from_dependency = bytearray()


class Tee:
    """A plain threaded TCP relay in front of a real dependency, keeping per connection the
    bytes that reached the dependency and the bytes it answered."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.port = free_port()
        self.connections: list[TeeConnection] = []
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind((LOOPBACK, self.port))
        self._server.listen(64)
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection((LOOPBACK, self.upstream_port))
            record = TeeConnection(time.monotonic())
            with self._lock:
                self.connections.append(record)
            threading.Thread(target=self._copy, args=(client, upstream, record.to_dependency), daemon=True).start()
            threading.Thread(target=self._copy, args=(upstream, client, record.from_dependency), daemon=True).start()

    @staticmethod
    def _copy(source: socket.socket, sink: socket.socket, log: bytearray) -> None:
        try:
            while data := source.recv(65536):
                log += data
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (sink, source):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._server.close()


@contextmanager
def process(command: list[str], port: int | None = None, **kwargs) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(command, **kwargs)
    try:
        if port is not None:
            wait_for_port(port, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def koala_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "koala_store", *args]


def start_koala(*args: str, port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A `koala` command as its own process, once it listens on `port`."""
    proc = subprocess.Popen(koala_command(*args), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    wait_for_port(port, proc)
    return proc


def stop_koala(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 60) -> tuple[int, str]:
    """Stop it with a signal; its exit code and what it printed on stderr."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"{proc.args} did not stop within {timeout} s: {err}") from None
    return proc.returncode, err


def tmp_store(tmp_path: Path, name: str = "rec.db") -> str:
    return f"sqlite:///{tmp_path / name}"
