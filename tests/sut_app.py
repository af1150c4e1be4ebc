"""A small real service for replay tests, run as its own process.

Its outbound requests are fixed bytes (raw sockets), so tests can record exactly what it sends:

    GET  /item/<id>     HTTP GET /price/<id> on --dep, answers {"id", "price"}
    GET  /pair/<id>     HTTP GET /a/<id> then GET /b/<id> on --dep (--swap: b first)
    POST /save/<id>     Redis SET item:<id> <body> on --kv, answers {"saved": id}
    GET  /greet         connects to --db, waits for the server's greeting, sends a query
    GET  /noisy/<id>    {"id", "nonce": random} (noise)
    GET  /echo/<header> {"value": that request header}
    GET  /slow          answers after 3 s
    GET  /reset         closes the connection without answering
    GET  /hold          answers after 0.3 s; GET /peak: the most /hold requests in flight at once

--propagate copies X-Koala-Session onto its outbound HTTP requests. --pool keeps one
long-lived connection to --dep. Regressions: --price-bump N adds N to every price, --swap
makes /pair's calls in the other order, --shout saves values upper-cased, --no-save skips
the Redis write.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import struct
import threading
import time
from http.server import ThreadingHTTPServer

from json_handler import JsonHandler

ARGS: argparse.Namespace
_pool_lock = threading.Lock()
_pool: socket.socket | None = None
_holding = 0
_peak = 0
_hold_lock = threading.Lock()


def hold() -> None:
    global _holding, _peak
    with _hold_lock:
        _holding += 1
        _peak = max(_peak, _holding)
    time.sleep(0.3)
    with _hold_lock:
        _holding -= 1


def dep_request(path: str, session: str | None) -> bytes:
    extra = f"X-Koala-Session: {session}\r\n" if session and ARGS.propagate else ""
    return f"GET {path} HTTP/1.1\r\nHost: dep.internal\r\n{extra}\r\n".encode()


def read_http_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("dependency closed the connection")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("dependency closed mid-body")
        body += chunk
    return body


def call_dep(path: str, session: str | None) -> dict:
    """One HTTP call to the dependency: a new connection each time, or the pooled one."""
    global _pool
    host, port = ARGS.dep.rsplit(":", 1)
    if ARGS.pool:
        with _pool_lock:
            if _pool is None:
                _pool = socket.create_connection((host, int(port)), timeout=5)
            _pool.sendall(dep_request(path, session))
            return json.loads(read_http_response(_pool))
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(dep_request(path, session))
        return json.loads(read_http_response(sock))


def redis_set(key: str, value: bytes) -> bytes:
    host, port = ARGS.kv.rsplit(":", 1)
    command = b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key.encode(), len(value), value)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(command)
        return sock.recv(1024)


def greet_and_query() -> bytes:
    host, port = ARGS.db.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        greeting = sock.recv(1024)  # a MySQL-style server speaks first
        query = b"\x03SELECT 1"
        sock.sendall(struct.pack("<I", len(query))[:3] + b"\x00" + query)
        sock.recv(1024)
        return greeting


class Handler(JsonHandler):
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        session = self.headers.get("X-Koala-Session")
        parts = self.path.strip("/").split("/")
        if parts[0] == "item":
            price = call_dep(f"/price/{parts[1]}", session)["price"] + ARGS.price_bump
            self.answer(200, {"id": parts[1], "price": price})
        elif parts[0] == "pair":
            order = ["b", "a"] if ARGS.swap else ["a", "b"]
            got = {name: call_dep(f"/{name}/{parts[1]}", session)["v"] for name in order}
            self.answer(200, {"id": parts[1], "a": got["a"], "b": got["b"]})
        elif parts[0] == "greet":
            self.answer(200, {"greeting": greet_and_query()[:20].hex()})
        elif parts[0] == "echo":
            self.answer(200, {"value": self.headers.get(parts[1])})
        elif parts[0] == "noisy":
            self.answer(200, {"id": parts[1], "nonce": random.randint(1, 10**9)})
        elif parts[0] == "slow":
            time.sleep(3)
            self.answer(200, {"slow": True})
        elif parts[0] == "hold":
            hold()
            self.answer(200, {"held": True})
        elif parts[0] == "peak":
            self.answer(200, {"peak": _peak})
        elif parts[0] == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        else:
            self.answer(404, {"error": "not found"})

    def do_POST(self) -> None:
        parts = self.path.strip("/").split("/")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if parts[0] == "save":
            if not ARGS.no_save:
                redis_set(f"item:{parts[1]}", body.upper() if ARGS.shout else body)
            self.answer(201, {"saved": parts[1]})
        else:
            self.answer(404, {"error": "not found"})


def main() -> None:
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dep", default="127.0.0.1:1")
    parser.add_argument("--kv", default="127.0.0.1:1")
    parser.add_argument("--db", default="127.0.0.1:1")
    parser.add_argument("--propagate", action="store_true")
    parser.add_argument("--pool", action="store_true")
    parser.add_argument("--swap", action="store_true")
    parser.add_argument("--price-bump", type=int, default=0)
    parser.add_argument("--shout", action="store_true")
    parser.add_argument("--no-save", action="store_true")
    ARGS = parser.parse_args()
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
