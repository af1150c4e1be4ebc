"""The replay client's reading of the target's answers, against real sockets: large answers
in linear time, answers cut short as errors (not differences), chunked bodies."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from koala_store.replay.inbound import InboundClient
from koala_store.replay.targets import Address

REQUEST = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"


@contextmanager
def serving(answer: bytes, *, close: bool = True, pause_after: int | None = None) -> Iterator[int]:
    """A server that reads one request per connection and writes `answer` (in pieces)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                view = memoryview(answer)
                for start in range(0, len(answer), 1 << 20):
                    conn.sendall(view[start : start + (1 << 20)])
                if not close:
                    conn.recv(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        listener.close()


def send(port: int, timeout: float = 5.0):
    async def go():
        client = InboundClient(Address("127.0.0.1", port), timeout=timeout)
        try:
            return await client.send(REQUEST)
        finally:
            await client.close()

    return asyncio.run(go())


def test_a_40_mb_answer_is_read_whole_within_the_timeout() -> None:
    body = b"x" * (40 << 20)
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    with serving(answer) as port:
        result = send(port, timeout=5)
    assert result.error is None
    assert len(result.response) == len(answer) and result.response.endswith(b"xxxx")


def test_an_answer_shorter_than_its_content_length_is_an_error_naming_the_bytes() -> None:
    with serving(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nhello world") as port:
        result = send(port)
    assert result.error is not None and result.error.endswith("closed the connection after 11 of 1000 body bytes")


def test_a_chunked_answer_cut_short_is_an_error_and_a_whole_one_is_decoded() -> None:
    with serving(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n") as port:
        result = send(port)
    assert result.error is not None and "middle of a chunked body" in result.error
    whole = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n"
    with serving(whole, close=False) as port:
        result = send(port)
    assert result.error is None and result.response == whole


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Le", "closed the connection in the middle of the response head"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP response"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", "Content-Length 'ten', which is not a number"),
    ],
)
def test_broken_answers_are_errors(answer: bytes, error: str) -> None:
    with serving(answer) as port:
        result = send(port)
    assert result.error is not None and error in result.error
