"""Addresses and mappings from the replay command line, each checked with one clear error."""

from __future__ import annotations

import re

from msgspec import Struct

from ..errors import KoalaError

_ADDRESS = re.compile(r"^(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[^:\[\]]*)):(?P<port>\d{1,5})$")


class Address(Struct, frozen=True):
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class OutboundMapping(Struct, frozen=True):
    """`--outbound LISTEN=RECORDED_PEER`: where the mock listens, and which dependency (as the
    recording names it) it stands for."""

    listen: Address
    recorded_peer: Address


def parse_address(text: str, what: str, *, default_host: str | None = None) -> Address:
    """HOST:PORT (or just PORT when a default host is allowed)."""
    value = text.strip()
    if default_host is not None and value.isdigit():
        value = f"{default_host}:{value}"
    match = _ADDRESS.match(value)
    port = int(match.group("port")) if match else 0
    if match is None or not 0 < port < 65536:
        raise KoalaError(f"{what} {text!r} is not HOST:PORT; write e.g. 127.0.0.1:8080")
    host = match.group("v6") or match.group("host") or "127.0.0.1"
    return Address(host, port)


def parse_listen_pair(text: str, right: str, example: str, why: str) -> tuple[Address, Address]:
    """`--outbound LISTEN=RIGHT` (replay's mock and record's proxy): the listen address (a
    bare port means 127.0.0.1) and the address on the right, each checked."""
    listen, sep, other = text.partition("=")
    if not sep:
        raise KoalaError(f"--outbound {text!r} is not LISTEN={right}; write e.g. {example} ({why})")
    return parse_address(listen, "--outbound listen address", default_host="127.0.0.1"), parse_address(other, f"--outbound {right.lower().replace('_', ' ')}")


def parse_mapping(text: str) -> OutboundMapping:
    listen, recorded = parse_listen_pair(
        text, "RECORDED_PEER", "127.0.0.1:16379=10.0.0.8:6379", "the mock listens on the left; the right is the dependency's address in the recording"
    )
    return OutboundMapping(listen, recorded)
