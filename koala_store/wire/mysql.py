"""MySQL client/server protocol as recorded bytes: packets, greetings, client commands and
the client's handshake response."""

from __future__ import annotations

import re
from typing import NamedTuple

from msgspec import Struct

COM_QUERY = 0x03
COM_STMT_PREPARE = 0x16
COMMAND_NAMES = {
    0x01: "COM_QUIT",
    0x02: "COM_INIT_DB",
    0x03: "COM_QUERY",
    0x0E: "COM_PING",
    0x11: "COM_CHANGE_USER",
    0x16: "COM_STMT_PREPARE",
    0x17: "COM_STMT_EXECUTE",
    0x19: "COM_STMT_CLOSE",
    0x1A: "COM_STMT_RESET",
}
# SQL text as tokens that matter when comparing statements: string and number literals,
# comments (/* */, -- and MySQL's #) and whitespace; everything else is the statement's shape.
# (Strings as runs of plain characters between escapes: the same matches as one character at
# a time, found several times faster.)
SQL_TOKEN = re.compile(
    # Every token starts with one of these (\d and \s as the groups read them): the engine
    # skips other positions at once.
    r"""(?=['"/\-#\d\s])(?:"""
    r"""(?P<str>'[^'\\]*(?:(?:\\.|'')[^'\\]*)*'|"[^"\\]*(?:(?:\\.|"")[^"\\]*)*")"""
    r"|(?P<comment>/\*.*?\*/|--[^\n]*|#[^\n]*)"
    r"|(?P<num>\b0x[0-9a-fA-F]+\b|(?<![\w.$])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.]))"
    r"|(?P<space>\s+))",
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


class Command(Struct, frozen=True):
    """A client command packet: the command byte and its argument (SQL for COM_QUERY)."""

    code: int
    argument: bytes

    @property
    def name(self) -> str:
        return COMMAND_NAMES.get(self.code, f"COM_{self.code:#04x}")

    @property
    def sql(self) -> bytes | None:
        """The statement of COM_QUERY and COM_STMT_PREPARE, else None."""
        return self.argument if self.code in (COM_QUERY, COM_STMT_PREPARE) else None


class Handshake(NamedTuple):
    """What a client's handshake response says that is not random per connection."""

    user: str
    database: str
    plugin: str


def command(data: bytes) -> Command | None:
    """The command of a client command packet (exactly one packet, sequence 0), or None."""
    if len(data) < HEADER_SIZE + 1 or data[3] != 0 or int.from_bytes(data[:3], "little") != len(data) - HEADER_SIZE:
        return None
    return Command(data[4], data[5:])


_CLIENT_CONNECT_WITH_DB = 0x8
_CLIENT_PROTOCOL_41 = 0x200
_CLIENT_SECURE_CONNECTION = 0x8000
_CLIENT_PLUGIN_AUTH = 0x80000
_CLIENT_LENENC_AUTH = 0x200000


def _cstring(payload: bytes, pos: int) -> tuple[bytes, int]:
    end = payload.find(b"\0", pos)
    if end < 0:
        return payload[pos:], len(payload)
    return payload[pos:end], end + 1


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def handshake(data: bytes) -> Handshake | None:
    """User, database and auth plugin of a HandshakeResponse41 packet, or None."""
    split = packets(data)
    if not split or len(split) != 1:
        return None
    seq, payload = split[0]
    if seq not in (1, 2) or len(payload) < 33 or payload[9:32] != bytes(23):
        return None
    caps = int.from_bytes(payload[:4], "little")
    if not caps & _CLIENT_PROTOCOL_41:
        return None
    user, pos = _cstring(payload, 32)
    # The scramble is random per connection: skip it.
    if caps & _CLIENT_LENENC_AUTH and pos < len(payload) and payload[pos] < 0xFB:
        pos += 1 + payload[pos]
    elif caps & _CLIENT_SECURE_CONNECTION and pos < len(payload):
        pos += 1 + payload[pos]
    else:
        _, pos = _cstring(payload, pos)
    db = plugin = b""
    if caps & _CLIENT_CONNECT_WITH_DB:
        db, pos = _cstring(payload, pos)
    if caps & _CLIENT_PLUGIN_AUTH:
        plugin, pos = _cstring(payload, pos)
    return Handshake(_text(user), _text(db), _text(plugin))


def query_text(data: bytes) -> bytes | None:
    """The SQL of a COM_QUERY packet, or None when the bytes are not one."""
    cmd = command(data)
    if cmd is None or cmd.code != COM_QUERY:
        return None
    return cmd.argument


def complete_packets_length(data: bytes) -> int:
    """How many leading bytes form whole packets (the rest is a packet still arriving)."""
    pos = 0
    while pos + HEADER_SIZE <= len(data):
        end = pos + HEADER_SIZE + int.from_bytes(data[pos : pos + 3], "little")
        if end > len(data):
            break
        pos = end
    return pos
