"""Protocol knowledge shared by summaries, matchers and the replay mock: HTTP/1.x, Redis, MySQL."""

from __future__ import annotations

from . import http1, mysql, resp

HTTP = "http"
REDIS = "redis"
MYSQL = "mysql"
UNKNOWN = "unknown"
PROTOCOLS = (HTTP, REDIS, MYSQL, UNKNOWN)


def guess_protocol(request: bytes, response: bytes = b"", port: int = 0) -> str:
    """Guess the protocol of one outbound talk from its bytes (the port only breaks ties)."""
    return identify(request, response, port)[0]


def identify(request: bytes, response: bytes = b"", port: int = 0) -> tuple[str, object]:
    """The protocol of a talk and what parsing its request gave (the HTTP (method, target),
    the Redis arguments, the MySQL (command, argument)), so callers need not parse twice."""
    if request:
        line = http1.request_line(request)
        if line is not None:
            return HTTP, line
        args = resp.parse_command(request)
        if args and args[0].isalpha():
            return REDIS, args
        command = mysql.command(request)
        if command is not None and (port == 3306 or mysql.packets(response)):
            return MYSQL, command
        return UNKNOWN, None
    if http1.looks_like_response(response):
        return HTTP, None
    if mysql.is_greeting(response):
        return MYSQL, None
    return UNKNOWN, None


__all__ = ["HTTP", "MYSQL", "PROTOCOLS", "REDIS", "UNKNOWN", "guess_protocol", "http1", "identify", "mysql", "resp"]
