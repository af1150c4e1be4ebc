"""Sessions built for tests and benchmarks: realistic HTTP inbound traffic with Redis, MySQL
and HTTP outbound calls, deterministic for a given seed."""

from __future__ import annotations

import random

from koala_store.model import CallFromInbound, CallOutbound, Peer, ReturnInbound, SendUDP, Session

BASE_NS = 1_763_780_400_000_000_000  # 2025-11-22T03:00:00Z


def http_request(method: str, target: str, body: bytes = b"", host: str = "10.0.0.5:8000", extra: str = "") -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n{extra}"
    if body or method in ("POST", "PUT", "PATCH"):
        head += f"Content-Length: {len(body)}\r\nContent-Type: application/json\r\n"
    return head.encode() + b"\r\n" + body


def http_response(status: int, body: bytes, content_type: str = "application/json") -> bytes:
    reason = {200: "OK", 201: "Created", 404: "Not Found", 500: "Internal Server Error"}.get(status, "OK")
    return f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


def resp_command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def mysql_query(sql: bytes) -> bytes:
    payload = b"\x03" + sql
    return len(payload).to_bytes(3, "little") + b"\x00" + payload


def make_session(
    index: int,
    *,
    method: str = "GET",
    path: str = "/v1/user",
    query: str = "",
    status: int = 200,
    body: bytes = b"",
    response_body: bytes = b'{"errno":0}',
    outbound: list[CallOutbound] | None = None,
    at: int | None = None,
    session_id: str | None = None,
) -> Session:
    start = BASE_NS + index * 1_000_000_000 if at is None else at
    target = path + (f"?{query}" if query else "")
    calls = outbound if outbound is not None else []
    response = http_response(status, response_body)
    actions = [*calls, ReturnInbound(len(calls), start + 5_000_000, response=response)]
    return Session(
        session_id=session_id or f"{start}-{1000 + index % 7}",
        call_from_inbound=CallFromInbound(0, start, request=http_request(method, target, body), peer=Peer("10.0.0.2", 40000 + index % 1000)),
        return_inbound=ReturnInbound(len(calls), start + 5_000_000, response=response),
        actions=actions,
        thread_id=1000 + index % 7,
    )


def redis_get(position: int, at: int, key: bytes, value: bytes | None, fd: int = 11) -> CallOutbound:
    reply = b"$-1\r\n" if value is None else b"$%d\r\n%s\r\n" % (len(value), value)
    return CallOutbound(position, at, request=resp_command(b"GET", key), response=reply, peer=Peer("10.0.0.8", 6379), socket_fd=fd, response_time=at + 200_000)


def redis_set(position: int, at: int, key: bytes, value: bytes, fd: int = 11) -> CallOutbound:
    return CallOutbound(position, at, request=resp_command(b"SET", key, value), response=b"+OK\r\n", peer=Peer("10.0.0.8", 6379), socket_fd=fd, response_time=at + 200_000)


def mysql_select(position: int, at: int, sql: bytes, fd: int = 9) -> CallOutbound:
    return CallOutbound(position, at, request=mysql_query(sql), response=b"\x07\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00", peer=Peer("10.0.0.7", 3306), socket_fd=fd, response_time=at + 900_000)


def http_call(position: int, at: int, method: str, target: str, status: int, body: bytes, fd: int = 13) -> CallOutbound:
    return CallOutbound(
        position,
        at,
        request=http_request(method, target, host="10.0.0.9:8080"),
        response=http_response(status, body),
        peer=Peer("10.0.0.9", 8080),
        socket_fd=fd,
        response_time=at + 2_000_000,
    )


def payload_bytes(session: Session) -> int:
    """Bytes a session recorded on the wire: inbound request and response, and every call."""
    total = len(session.call_from_inbound.request) + len(session.return_inbound.response)
    return total + sum(len(c.request) + len(c.response) for c in session.outbound_calls)


def _pad_to(session: Session, size: int, rng: random.Random) -> None:
    """Grow the inbound response body with JSON-ish words until the session carries `size` bytes."""
    missing = size - payload_bytes(session)
    if missing <= 0:
        return
    words = " ".join(rng.choice(_WORDS) for _ in range(missing // 5 + 1)).encode()[:missing]
    head, _, body = session.return_inbound.response.partition(b"\r\n\r\n")
    body += words
    head = head.split(b"\r\nContent-Length:")[0] + b"\r\nContent-Length: %d" % len(body)
    session.return_inbound.response = head + b"\r\n\r\n" + body
    session.actions[-1] = ReturnInbound(session.actions[-1].action_index, session.actions[-1].occurred_at, response=session.return_inbound.response)


_WORDS = "order user cart item stock price total status pending shipped refund coupon region city sku alpha beta gamma".split()


def varied_sessions(count: int, seed: int = 7, payload: int = 0) -> list[Session]:
    """A mix of endpoints, statuses and outbound calls; with `payload`, each session carries
    about that many bytes (its inbound response grows)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        start = BASE_NS + i * 1_000_000_000
        uid = rng.randint(1, 10_000)
        kind = i % 5
        if kind == 0:
            calls = [redis_get(0, start + 1_000_000, b"user:%d" % uid, b"alice")]
            out.append(make_session(i, path="/v1/user", query=f"uid={uid}", outbound=calls, response_body=b'{"errno":0,"name":"alice"}'))
        elif kind == 1:
            calls = [
                mysql_select(0, start + 1_000_000, b"SELECT name FROM user WHERE uid=%d" % uid),
                redis_set(1, start + 2_000_000, b"user:%d" % uid, b"bob"),
            ]
            out.append(make_session(i, method="POST", path="/v1/order", body=b'{"uid":%d}' % uid, outbound=calls, status=201))
        elif kind == 2:
            calls = [http_call(0, start + 1_000_000, "GET", f"/inventory/{uid}", 200, b'{"stock":3}')]
            out.append(make_session(i, path=f"/v1/item/{uid}", outbound=calls, response_body=b'{"stock":3}'))
        elif kind == 3:
            calls = [redis_get(0, start + 1_000_000, b"user:%d" % uid, None)]
            out.append(make_session(i, path="/v1/user", query=f"uid={uid}", outbound=calls, status=404, response_body=b'{"errno":404,"error":"timeout talking to cache"}'))
        else:
            session = make_session(i, method="DELETE", path=f"/v1/order/{uid}", status=500, response_body=b"\x00\x01binary\xff")
            session.actions.insert(0, SendUDP(0, start + 1_000_000, peer=Peer("127.0.0.1", 8125), content=b"order.delete:1|c"))
            out.append(session)
        if payload:
            _pad_to(out[-1], payload, rng)
    return out
