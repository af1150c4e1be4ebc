"""What a request's bytes say on their own, parsed once: an HTTP request, Redis commands, a
FastCGI request, a MySQL command or handshake response, or nothing known.

The order is the one rule every consumer shares. A MySQL command packet is recognised by its
shape alone here; whether a talk *is* MySQL also needs the response or the port (wire.talk),
since a few arbitrary bytes can look like one packet.
"""

from __future__ import annotations

from typing import Union

from . import fastcgi, http1, mysql, resp
from .http import HttpRequest

Message = Union[HttpRequest, resp.Commands, fastcgi.Request, mysql.Command, mysql.Handshake]


def parse_request(data: bytes) -> Message | None:
    """The request `data` holds, by the first shape that fits; None for other bytes."""
    if not data:
        return None
    if http1.looks_like_request(data):
        return http1.request(data)
    return parse_other(data)


def parse_other(data: bytes) -> Message | None:
    """`parse_request` for bytes already known not to start with an HTTP/1.x request line."""
    commands = resp.parse_commands(data)
    if commands is not None:
        return resp.Commands(commands)
    if fastcgi.is_request(data):
        return fastcgi.parse_request(data)
    command = mysql.command(data)
    if command is not None:
        return command
    return mysql.handshake(data)
