"""The replay client's reading of the target's answers, against real sockets: large answers
in linear time, answers cut short as errors (not differences), chunked bodies."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from koala_store.replay.inbound import InboundClient
from koala_store.replay.targets import Address

REQUEST = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"


@contextmanager
def listening(answer_one: Callable[[socket.socket], None]) -> Iterator[int]:
    """A server on a thread: each connection's request is read, then `answer_one(conn)`."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                try:
                    answer_one(conn)
                except OSError:
                    pass  # the client went

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def serving(answer: bytes, *, close: bool = True):
    """A server that answers each request with `answer` (in pieces)."""

    def answer_one(conn: socket.socket) -> None:
        view = memoryview(answer)
        for start in range(0, len(answer), 1 << 20):
            conn.sendall(view[start : start + (1 << 20)])
        if not close:
            conn.recv(1)

    return listening(answer_one)


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


def trickling(first: bytes, then: bytes, every: float):
    """A server that answers each request with `first`, then `then` every `every` seconds
    until the client goes."""

    def answer_one(conn: socket.socket) -> None:
        conn.sendall(first)
        while True:
            time.sleep(every)
            conn.sendall(then)

    return listening(answer_one)


def test_a_head_that_never_ends_is_an_error_after_the_timeout() -> None:
    with trickling(b"HTTP/1.1 200 OK\r\n", b"X-More: 1\r\n", 0.05) as port:
        started = time.monotonic()
        result = send(port, timeout=0.5)
    assert result.error is not None and result.error.endswith("did not answer within 0.5 s")
    assert 0.4 < time.monotonic() - started < 3


def test_a_non_http_answer_streaming_past_the_timeout_is_an_error_not_its_first_part() -> None:
    async def go():
        client = InboundClient(Address("127.0.0.1", port), timeout=0.5)
        try:
            return await client.send(b"PING\r\n")  # not HTTP: the answer ends at an idle gap
        finally:
            await client.close()

    with trickling(b"+PONG\r\n", b"+MORE\r\n", 0.01) as port:  # never a 50 ms gap
        result = asyncio.run(go())
    assert result.error is not None and result.error.endswith("did not answer within 0.5 s")


def test_a_kept_alive_connection_outlives_the_time_limit_of_its_last_request() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async def go() -> list:
        server = await asyncio.start_server(answering, "127.0.0.1", 0)
        client = InboundClient(Address("127.0.0.1", server.sockets[0].getsockname()[1]), timeout=0.2)
        try:
            results = [await client.send(REQUEST)]
            await asyncio.sleep(0.4)  # past the first request's limit, on the same connection
            results.append(await client.send(REQUEST))
            return results + [accepted]
        finally:
            await client.close()
            server.close()

    accepted: list[int] = []

    async def answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        while await reader.read(65536):
            writer.write(answer)
            await writer.drain()

    first, second, connections = asyncio.run(go())
    assert first.error is None and second.error is None and second.response == answer
    assert connections == [1]  # one connection, kept alive
