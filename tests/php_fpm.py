"""A real PHP-FPM for FastCGI tests: started on a loopback port with a temporary config (its
workers run as nobody when the tests run as root), serving a small PHP script that echoes
what it got as JSON; and a FastCGI client that records the bytes of each exchange."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from replay_helpers import free_port, running

from koala_store.wire import fastcgi

CANDIDATES = ("/usr/sbin/php-fpm8.2", "php-fpm8.2", "php-fpm")

# Echoes the request as JSON. ?status=N answers N, ?size=N pads the answer (so STDOUT spans
# several records), and every request logs one line, which PHP-FPM sends as STDERR.
SCRIPT = r"""<?php
header('Content-Type: application/json');
error_log('koala-test saw ' . $_SERVER['REQUEST_URI']);
http_response_code(isset($_GET['status']) ? (int) $_GET['status'] : 200);
$body = file_get_contents('php://input');
echo json_encode([
    'method' => $_SERVER['REQUEST_METHOD'],
    'uri' => $_SERVER['REQUEST_URI'],
    'host' => $_SERVER['HTTP_HOST'] ?? '',
    'price' => isset($_GET['price']) ? (int) $_GET['price'] : null,
    'body' => $body === '' ? null : json_decode($body, true),
    'padding' => str_repeat('x', isset($_GET['size']) ? (int) $_GET['size'] : 0),
]);
"""


def find_php_fpm() -> str | None:
    for candidate in CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


@dataclass
class PhpFpm:
    port: int
    root: Path  # the document root, holding index.php

    @property
    def script(self) -> str:
        return str(self.root / "index.php")


@contextmanager
def php_fpm(binary: str) -> Iterator[PhpFpm]:
    """PHP-FPM serving SCRIPT as index.php on 127.0.0.1, stopped afterwards."""
    base = Path(tempfile.mkdtemp(prefix="koala-php-fpm-"))
    base.chmod(0o755)  # the workers (nobody) read the script
    try:
        root = base / "www"
        root.mkdir(mode=0o755)
        (root / "index.php").write_text(SCRIPT)
        (root / "index.php").chmod(0o644)
        port = free_port()
        as_root = os.geteuid() == 0
        (base / "php-fpm.conf").write_text(
            "\n".join(
                [
                    "[global]",
                    f"pid = {base / 'php-fpm.pid'}",
                    f"error_log = {base / 'php-fpm.log'}",
                    "daemonize = no",
                    "[koala]",
                    f"listen = 127.0.0.1:{port}",
                    "pm = static",
                    "pm.max_children = 2",
                    *(["user = nobody", "group = nogroup"] if as_root else []),
                    "php_admin_value[log_errors] = on",
                    "php_admin_value[display_errors] = off",
                    "",
                ]
            )
        )
        with running([binary, "--nodaemonize", "--fpm-config", str(base / "php-fpm.conf"), "-n"], port):
            yield PhpFpm(port, root)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Exchange:
    request: bytes  # the bytes sent, as a recorder between web server and PHP-FPM sees them
    response: bytes  # PHP-FPM's answer, up to and including END_REQUEST
    started_ns: int
    finished_ns: int


def cgi_params(server: PhpFpm, method: str, uri: str, body: bytes = b"", headers: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """What nginx's fastcgi_params send for a request to index.php."""
    path, _, query = uri.partition("?")
    params = [
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", "nginx"),
        ("QUERY_STRING", query),
        ("REQUEST_METHOD", method),
        ("CONTENT_TYPE", "application/json" if body else ""),
        ("CONTENT_LENGTH", str(len(body)) if body else ""),
        ("SCRIPT_FILENAME", server.script),
        ("SCRIPT_NAME", path),
        ("REQUEST_URI", uri),
        ("DOCUMENT_URI", path),
        ("DOCUMENT_ROOT", str(server.root)),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", str(40000 + time.perf_counter_ns() % 20000)),
        ("SERVER_ADDR", "127.0.0.1"),
        ("SERVER_PORT", "80"),
        ("SERVER_NAME", "shop.test"),
        ("REDIRECT_STATUS", "200"),
    ]
    for name, value in (headers or {}).items():
        params.append(("HTTP_" + name.upper().replace("-", "_"), value))
    return params


def fastcgi_exchange(server: PhpFpm, params: list[tuple[str, str]], body: bytes = b"", *, timeout: float = 10) -> Exchange:
    """Send one FastCGI request and read PHP-FPM's answer, framed by END_REQUEST."""
    request = fastcgi.encode_request(params, body)
    started = time.time_ns()
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as conn:
        conn.sendall(request)
        buffer = b""
        while (end := fastcgi.response_length(buffer)) is None:
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionError(f"PHP-FPM closed the connection after {len(buffer)} bytes without END_REQUEST")
            buffer += chunk
    return Exchange(request, buffer[:end], started, time.time_ns())
