"""When has a live client finished sending one request? Protocol-aware where the protocol is
known (no waiting on idle gaps), Koala's burst-and-idle-gap rule otherwise. Used by the replay
mock to read the service's outbound talks, and by anything that cuts a live stream into talks
(a recording proxy)."""

from __future__ import annotations

from . import fastcgi, http1, mysql, resp
from .protocol import FASTCGI, HTTP, MYSQL, REDIS, Protocol

# Koala's timings: the first read of a talk waits up to 20 ms on a new connection (then a
# greeting may be due); a burst ends after 3 ms without data.
GREETING_WAIT_S = 0.020
IDLE_GAP_S = 0.003
# A message the protocol says is incomplete is still answered after this long without data.
INCOMPLETE_GAP_S = 2.0


def guess_live_protocol(data: bytes, dependency_protocol: Protocol | str) -> Protocol | str:
    """The protocol of a live request: what its first bytes say, else what the dependency spoke
    when recorded (MySQL packets cannot be told from their bytes alone)."""
    if http1.looks_like_request(data):
        return HTTP
    if data[:1] == b"*" or dependency_protocol == REDIS:
        return REDIS
    if fastcgi.is_request(data):
        return FASTCGI
    if dependency_protocol == MYSQL:
        return MYSQL
    return dependency_protocol


def is_complete(data: bytes, protocol: Protocol | str) -> bool | None:
    """True when `data` holds whole messages of the protocol, False when one is cut short,
    None when the protocol is unknown (fall back to the idle gap)."""
    if protocol == HTTP:
        end = http1.message_length(data)
        return end is not None and end <= len(data)
    if protocol == REDIS:
        return resp.complete_values(data) > 0
    if protocol == MYSQL:
        return mysql.complete_packets_length(data) == len(data) and len(data) >= mysql.HEADER_SIZE
    if protocol == FASTCGI:
        return fastcgi.request_length(data) is not None
    return None
