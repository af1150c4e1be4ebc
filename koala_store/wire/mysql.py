"""MySQL client/server protocol as recorded bytes: packets, greetings and COM_QUERY."""

from __future__ import annotations

import re

COM_QUERY = 0x03
# SQL text as tokens that matter when comparing statements: string and number literals,
# comments (/* */, -- and MySQL's #) and whitespace; everything else is the statement's shape.
SQL_TOKEN = re.compile(
    r"""(?P<str>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")"""
    r"|(?P<comment>/\*.*?\*/|--[^\n]*|#[^\n]*)"
    r"|(?P<num>\b0x[0-9a-fA-F]+\b|(?<![\w.$])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.]))"
    r"|(?P<space>\s+)",
    re.S,
)
HEADER_SIZE = 4  # 3-byte little-endian payload length + sequence id


def packets(data: bytes) -> list[tuple[int, bytes]] | None:
    """Split bytes into (sequence id, payload) packets; None unless they split exactly."""
    out = []
    pos = 0
    while pos < len(data):
        if pos + HEADER_SIZE > len(data):
            return None
        size = int.from_bytes(data[pos : pos + 3], "little")
        end = pos + HEADER_SIZE + size
        if end > len(data):
            return None
        out.append((data[pos + 3], data[pos + HEADER_SIZE : end]))
        pos = end
    return out or None


def is_greeting(data: bytes) -> bool:
    """A server handshake packet: sequence 0, protocol version 10, a NUL-ended version string."""
    split = packets(data)
    if not split or len(split) != 1:
        return False
    seq, payload = split[0]
    return seq == 0 and payload[:1] == b"\x0a" and b"\x00" in payload[1:64]


def command(data: bytes) -> tuple[int, bytes] | None:
    """The (command byte, argument) of a client command packet, or None."""
    split = packets(data)
    if not split or len(split) != 1:
        return None
    seq, payload = split[0]
    if seq != 0 or not payload:
        return None
    return payload[0], payload[1:]


def query_text(data: bytes) -> bytes | None:
    """The SQL of a COM_QUERY packet, or None when the bytes are not one."""
    cmd = command(data)
    if cmd is None or cmd[0] != COM_QUERY:
        return None
    return cmd[1]


def complete_packets_length(data: bytes) -> int:
    """How many leading bytes form whole packets (the rest is a packet still arriving)."""
    pos = 0
    while pos + HEADER_SIZE <= len(data):
        end = pos + HEADER_SIZE + int.from_bytes(data[pos : pos + 3], "little")
        if end > len(data):
            break
        pos = end
    return pos
