"""Connection set-up talks: what a client says to a dependency before doing any work on a new
connection (a MySQL server's greeting and the client's authentication, Redis HELLO/AUTH/
SELECT/CLIENT SETNAME, session variables), told apart from the service's own work.

Pooled clients open a connection once and reuse it for many requests, so a recording holds a
connection's set-up only in the session that opened it. Replay answers set-up talks from
any recorded opening of the same dependency (koala_store.replay.openings) and never counts
them as side effects; this module decides which talks are set-up.

A connection's *opening* is the run of set-up talks it starts with: classification applies
to that run only, so a `SET` or `PING` a service sends in the middle of its work stays an
ordinary call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..model import CallOutbound
from . import MYSQL, REDIS, UNKNOWN, guess_protocol, http1, mysql, resp

# Redis commands clients send when a connection opens (redis-py, go-redis, Jedis, lettuce).
REDIS_SETUP_COMMANDS = frozenset({b"HELLO", b"AUTH", b"SELECT", b"READONLY", b"READWRITE", b"PING"})
REDIS_SETUP_CLIENT = frozenset(
    {b"SETNAME", b"SETINFO", b"TRACKING", b"MAINT_NOTIFICATIONS", b"NO-EVICT", b"NO-TOUCH", b"REPLY", b"CACHING", b"ID", b"GETNAME", b"INFO"}
)
# MySQL statements drivers run right after authenticating: session variables and server facts.
_MYSQL_SETUP_SQL = re.compile(
    rb"^\s*(?:/\*.*?\*/\s*)*(?:SET\s|SELECT\s+@@|SHOW\s+(?:SESSION\s+|GLOBAL\s+)?VARIABLES\b|SELECT\s+(?:VERSION|CONNECTION_ID|DATABASE)\s*\(\s*\))",
    re.I | re.S,
)
_MYSQL_SETUP_COMMANDS = frozenset({0x02, 0x0E, 0x11, 0x1B})  # INIT_DB, PING, CHANGE_USER, SET_OPTION


def is_setup_request(request: bytes, protocol: str) -> bool:
    """Whether a request a client sends could belong to a connection's opening.

    `protocol` is the dependency's (a MySQL handshake cannot be told from its bytes alone).
    An empty request is a client waiting for the server to speak first: a greeting.
    """
    if not request:
        return True
    if protocol == REDIS or request[:1] == b"*":
        commands = resp.parse_commands(request)
        return commands is not None and all(_redis_setup(args) for args in commands)
    if protocol == MYSQL:
        split = mysql.packets(request)
        if not split:
            return False
        seq, payload = split[0]
        if seq != 0:
            # Commands start at sequence 0; anything else is the authentication exchange
            # (handshake response, TLS request, auth switch or more-data answers).
            return True
        if not payload:
            return False
        if payload[0] == mysql.COM_QUERY:
            return _MYSQL_SETUP_SQL.match(payload[1:]) is not None
        return payload[0] in _MYSQL_SETUP_COMMANDS
    return False


def _redis_setup(args: list[bytes]) -> bool:
    name = args[0].upper()
    if name == b"CLIENT":
        return len(args) > 1 and args[1].upper() in REDIS_SETUP_CLIENT
    return name in REDIS_SETUP_COMMANDS


def peer_protocols(calls: Sequence[CallOutbound]) -> dict[str, str]:
    """The protocol each recorded peer speaks: the first of its talks that tells (a MySQL
    handshake alone does not; the greeting before it does)."""
    out: dict[str, str] = {}
    for call in calls:
        address = call.peer.address
        if out.get(address, UNKNOWN) == UNKNOWN:
            out[address] = guess_protocol(call.request, call.response, call.peer.port)
    return out


def opening_positions(calls: Sequence[CallOutbound]) -> frozenset[int]:
    """Positions of the recorded calls that open a connection in this session: for each
    connection (`ip:port#fd`), the run of set-up talks its first talks in the session form,
    when the first one is set-up (else the connection was opened in an earlier session)."""
    if all(call.request and http1.looks_like_request(call.request) for call in calls):
        return frozenset()  # HTTP/1.x has no set-up talks (the common case, told cheaply)
    out: set[int] = set()
    open_runs: dict[str, bool] = {}  # connection -> still in its opening run
    protocols = peer_protocols(calls)
    for p, call in enumerate(calls):
        identity = call.connection
        if identity in open_runs and not open_runs[identity]:
            continue
        setup = is_setup_request(call.request, protocols[call.peer.address])
        open_runs[identity] = setup
        if setup:
            out.add(p)
    return frozenset(out)


__all__ = ["REDIS_SETUP_CLIENT", "REDIS_SETUP_COMMANDS", "is_setup_request", "opening_positions", "peer_protocols"]
