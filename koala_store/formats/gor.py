"""GoReplay `.gor` files: request/response records paired by id into inbound-only sessions.

A record is a header line `<type> <id> <timestamp-ns> <latency-ns>` (older files have no
latency), the raw HTTP payload, then the separator. Type 1 is a request, 2 the original
response, 3 a response replayed by gor (not part of a recording; skipped).
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from msgspec import Struct

from ..model import CallFromInbound, ReturnInbound, Session
from .records import Record, write_each

SEPARATOR = "\n🐵🙈🙉\n".encode()
REQUEST, RESPONSE, REPLAYED = b"1", b"2", b"3"
_HEADER = re.compile(rb"^([123]) ([0-9a-fA-F]+) (\d+)(?: (-?\d+))?$")
# A header line followed by an HTTP start line, found inside a payload: a lost separator.
_EMBEDDED_RECORD = re.compile(rb"\n[123] [0-9a-f]{20,40} \d+(?: -?\d+)?\n(?:[A-Z]+ \S+ HTTP/1\.\d\r?\n|HTTP/1\.\d \d{3})")
_SESSION_ID = re.compile(r"^(\d+)-([0-9a-f]{24}|[0-9a-f]{40})$")
# Digits of a nanosecond timestamp that fits in 64 bits (and of any real latency).
_MAX_DIGITS = 19
# Requests waiting for their response; beyond this many the oldest go out without one.
PAIRING_WINDOW = 10_000
_READ_SIZE = 1 << 20


class _Raw(Struct):
    kind: bytes
    gor_id: str
    timestamp: int
    latency: int
    payload: bytes


def _chunks(stream: BinaryIO) -> Iterator[tuple[int, bytes, bool]]:
    """(byte offset, record bytes, terminated) for each record, reading in bounded blocks."""
    buffer = b""
    offset = 0
    while True:
        block = stream.read(_READ_SIZE)
        if not block:
            break
        buffer += block
        start = 0
        while (end := buffer.find(SEPARATOR, start)) >= 0:
            yield offset + start, buffer[start:end], True
            start = end + len(SEPARATOR)
        buffer = buffer[start:]
        offset += start
    if buffer.strip():
        yield offset, buffer, False


def _session(request: _Raw, response: _Raw | None) -> Session:
    session_id = f"{request.timestamp}-{request.gor_id}"
    inbound = CallFromInbound(0, request.timestamp, request=request.payload)
    if response is None:
        # Never answered: Koala writes such a session with null ReturnInbound and Actions.
        return Session(session_id, inbound, None, actions_null=True)
    latency = response.latency
    finished = request.timestamp + latency if latency >= 0 else response.timestamp
    answered = ReturnInbound(0, finished, response=response.payload)
    return Session(session_id, inbound, answered, actions=[answered])


def read(stream: BinaryIO) -> Iterator[Record]:
    """Sessions in the order their responses complete; requests without one come last."""
    pending: OrderedDict[str, tuple[str, _Raw]] = OrderedDict()
    number = 0
    for offset, chunk, terminated in _chunks(stream):
        number += 1
        where = f"record {number} (byte {offset})"
        if not terminated:
            yield Record(where, error="is not followed by the separator '\\n🐵🙈🙉\\n': the file is truncated or the separator is missing")
            continue
        header, _, payload = chunk.partition(b"\n")
        match = _HEADER.match(header.rstrip(b"\r"))
        if match is None:
            shown = header[:60].decode("utf-8", "replace")
            yield Record(where, error=f"header line {shown!r} is not '<type> <id> <timestamp> <latency>'")
            continue
        lost = _EMBEDDED_RECORD.search(payload)
        if lost is not None:
            yield Record(where, error=f"holds the start of another record at byte {offset + len(header) + 1 + lost.start() + 1}: a separator is missing")
            continue
        kind, gor_id, timestamp, latency = match.groups()
        if len(timestamp) > _MAX_DIGITS or len(latency or b"") > _MAX_DIGITS + 1:
            yield Record(
                where,
                error=f"header has a timestamp or latency of {max(len(timestamp), len(latency or b''))} digits; nanoseconds since 1970 have at most {_MAX_DIGITS}",
            )
            continue
        raw = _Raw(kind, gor_id.decode().lower(), int(timestamp), int(latency or -1), payload)
        if kind == REQUEST:
            pending[raw.gor_id] = (where, raw)
            if len(pending) > PAIRING_WINDOW:
                old_where, old = pending.popitem(last=False)[1]
                yield Record(old_where, session=_session(old, None))
        elif kind == RESPONSE:
            found = pending.pop(raw.gor_id, None)
            if found is None:
                yield Record(where, error=f"is a response to request {raw.gor_id}, which is not in the file")
            else:
                yield Record(found[0], session=_session(found[1], raw))
    for where, request in pending.values():
        yield Record(where, session=_session(request, None))


def gor_id(session: Session) -> str:
    """The gor id a session came from, or a stable 24-hex-digit id derived from its SessionId."""
    match = _SESSION_ID.match(session.session_id)
    if match:
        return match.group(2)
    return hashlib.sha1(session.session_id.encode()).hexdigest()[:24]


def unwritable(session: Session) -> str | None:
    """Why a session cannot go into a .gor file so that it reads back, or None. The format
    has no escaping: a payload holding the separator (or ending in part of it), or what reads
    as the start of another record, would split into other records."""
    payloads = [("request", session.call_from_inbound.request)]
    if session.return_inbound.response:
        payloads.append(("response", session.return_inbound.response))
    for what, payload in payloads:
        if (payload + SEPARATOR).find(SEPARATOR) != len(payload):
            return f"its inbound {what} holds GoReplay's record separator ('\\n🐵🙈🙉\\n'), which the format cannot escape"
        if _EMBEDDED_RECORD.search(payload):
            return f"its inbound {what} holds a line that reads as the start of another GoReplay record"
    return None


def dumps(session: Session) -> bytes:
    """A request record and, when the session has a response, its response record."""
    ident = gor_id(session).encode()
    started = session.call_from_inbound.occurred_at
    out = b"1 %s %d -1\n%s%s" % (ident, started, session.call_from_inbound.request, SEPARATOR)
    response = session.return_inbound
    if response is not None and response.response:
        finished = response.occurred_at or started
        out += b"2 %s %d %d\n%s%s" % (ident, finished, max(finished - started, 0), response.response, SEPARATOR)
    return out


def write(sessions: Iterable[Session], stream: BinaryIO) -> int:
    return write_each(sessions, stream, dumps)
