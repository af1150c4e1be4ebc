"""Builders of recorded calls and request bytes for the matchers tests (plain data, no mocks)."""

from __future__ import annotations

from koala_store.model import CallOutbound, Peer


def call(
    request: bytes,
    response: bytes = b"+OK\r\n",
    *,
    ip: str = "10.0.0.9",
    port: int = 80,
    fd: int = 5,
    index: int = 1,
) -> CallOutbound:
    return CallOutbound(
        action_index=index,
        occurred_at=1548160113000000000 + index,
        request=request,
        response=response,
        peer=Peer(ip=ip, port=port),
        socket_fd=fd,
    )


def session_calls(*requests: bytes | CallOutbound, **kw) -> list[CallOutbound]:
    """Calls in recorded order with ActionIndex 1..n; bytes become calls with `kw`."""
    out = []
    for n, r in enumerate(requests, start=1):
        c = r if isinstance(r, CallOutbound) else call(r, index=n, **kw)
        out.append(
            CallOutbound(
                action_index=n,
                occurred_at=c.occurred_at,
                request=c.request,
                response=c.response or b"resp-%d" % n,
                peer=c.peer,
                socket_fd=c.socket_fd,
            )
        )
    return out


def http(method: str, target: str, headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in (headers or []))]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def redis(*args: str | bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode() if isinstance(a, str) else a
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def mysql_query(sql: str) -> bytes:
    payload = b"\x03" + sql.encode()
    return len(payload).to_bytes(3, "little") + b"\x00" + payload


def pieces(*names: str) -> list[bytes]:
    """Distinct 16-byte chunks, one per name (names shorter than 16 chars)."""
    return [name.encode().ljust(16, b"_")[:16] for name in names]
