"""Socket settings both ends of a replay need: answers without Nagle/delayed-ACK stalls.

A peer that writes a message in two sends (an HTTP head, then its body: Python's
http.server, http.client with a body) has its second send held by Nagle until the first is
acknowledged, and Linux delays that acknowledgement up to 40 ms when the receiver has
nothing to send. Asking for a quick ACK before each read lets the second part through at
once, as it would reach a client that answers in the same process (GoReplay's Go net).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def quickack(writer: asyncio.StreamWriter | Any | None) -> None:
    """Acknowledge what arrives next at once (Linux; a no-op elsewhere). Pass the socket
    (`socket_of(writer)`, kept per connection) where this runs per talk."""
    if _QUICKACK is None or writer is None:
        return
    sock = writer if hasattr(writer, "setsockopt") else socket_of(writer)  # type: ignore[arg-type]
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        except OSError:
            pass  # the connection went; the read that follows says so


def socket_of(writer: asyncio.StreamWriter) -> Any:
    """The connection's socket (uvloop gives a socket-like object of its own)."""
    return writer.get_extra_info("socket")
