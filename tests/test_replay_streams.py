"""The replayer's byte streams (koala_store/replay/streams.py) over real loopback sockets, on
uvloop (what the replay runs on) and on asyncio's own loop: bytes come whole and in order
however they are cut, reads take at most what they ask, the end and the loss of a connection
are told apart, and both directions stop at their limits instead of growing without end."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable

import pytest
import uvloop
from hypothesis import given, settings
from hypothesis import strategies as st

from koala_store.replay.streams import PAUSE_ABOVE, Stream, open_connection, start_server

LOOPS = {"uvloop": uvloop.run, "asyncio": asyncio.run}


@pytest.fixture(params=sorted(LOOPS))
def run(request) -> Callable[[Awaitable], object]:
    return LOOPS[request.param]


async def pair() -> tuple[Stream, asyncio.StreamReader, asyncio.StreamWriter, asyncio.Server]:
    """Our stream as the client of an asyncio server; the server's end of the connection."""
    accepted: asyncio.Queue = asyncio.Queue()
    server = await asyncio.start_server(lambda r, w: accepted.put_nowait((r, w)), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stream, same = await open_connection("127.0.0.1", port)
    assert stream is same
    peer_reader, peer_writer = await accepted.get()
    return stream, peer_reader, peer_writer, server


async def read_all(stream: Stream, size: int, total: int) -> bytes:
    got = bytearray()
    while len(got) < total:
        chunk = await stream.read(size)
        assert chunk, f"the stream ended after {len(got)} of {total} bytes"
        assert len(chunk) <= size
        got += chunk
    return bytes(got)


@settings(max_examples=25, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=20_000),
    cuts=st.lists(st.integers(min_value=1, max_value=5_000), min_size=1, max_size=8),
    size=st.integers(min_value=1, max_value=9_000),
)
def test_bytes_come_whole_and_in_order_however_they_are_sent_and_read(data: bytes, cuts: list[int], size: int) -> None:
    async def go() -> bytes:
        stream, _, peer, server = await pair()
        async with server:
            pos, i = 0, 0
            while pos < len(data):
                peer.write(data[pos : pos + cuts[i % len(cuts)]])
                await peer.drain()
                pos += cuts[i % len(cuts)]
                i += 1
                await asyncio.sleep(0)
            got = await read_all(stream, size, len(data))
            peer.close()
            assert await stream.read(size) == b""  # then the end
            stream.close()
            return got

    assert uvloop.run(go()) == data


def test_a_read_takes_at_most_what_it_asks_and_the_rest_waits(run) -> None:
    async def go() -> None:
        stream, _, peer, server = await pair()
        async with server:
            reading = asyncio.ensure_future(stream.read(4))
            await asyncio.sleep(0.01)  # the read waits first: the bytes are handed to it
            peer.write(b"abcdefgh")
            assert await reading == b"abcd"
            assert await stream.read(100) == b"efgh"
            stream.close()

    run(go())


def test_the_end_is_b_empty_every_time_after_what_came_before_it(run) -> None:
    async def go() -> None:
        stream, _, peer, server = await pair()
        async with server:
            peer.write(b"last words")
            peer.close()
            await asyncio.sleep(0.05)
            assert await stream.read(100) == b"last words"
            assert await stream.read(100) == b""
            assert await stream.read(100) == b""
            stream.close()
            await asyncio.wait_for(stream.wait_closed(), 2)

    run(go())


def test_a_reset_connection_is_an_error_not_an_end(run) -> None:
    async def go() -> None:
        stream, _, peer, server = await pair()
        async with server:
            reading = asyncio.ensure_future(stream.read(100))
            await asyncio.sleep(0.01)
            sock = peer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST
            peer.close()
            with pytest.raises(ConnectionError):
                await asyncio.wait_for(reading, 2)
            with pytest.raises(ConnectionError):
                await stream.read(100)  # and stays one
            stream.write(b"x")
            with pytest.raises(ConnectionError):
                await stream.drain()

    run(go())


def test_a_read_given_up_by_a_timeout_loses_no_bytes(run) -> None:
    async def go() -> None:
        stream, _, peer, server = await pair()
        async with server:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.02):
                    await stream.read(100)
            peer.write(b"late")
            assert await asyncio.wait_for(stream.read(100), 2) == b"late"
            stream.close()

    run(go())


def test_drain_waits_while_the_peer_reads_nothing_and_everything_arrives(run) -> None:
    async def go() -> None:
        stream, peer_reader, _, server = await pair()
        async with server:
            blob = bytes(range(256)) * (32 << 10)  # 8 MiB: more than the socket buffers hold
            stream.write(blob)
            draining = asyncio.ensure_future(stream.drain())
            await asyncio.sleep(0.2)
            assert not draining.done(), "drain returned while the peer had read nothing"
            got = await peer_reader.readexactly(len(blob))
            await asyncio.wait_for(draining, 5)
            assert got == blob
            stream.close()

    run(go())


def test_a_stream_not_being_read_stops_reading_the_socket(run) -> None:
    async def go() -> None:
        stream, _, peer, server = await pair()
        async with server:
            blob = bytes(range(256)) * (128 << 10)  # 32 MiB: more than the kernel's buffers hold
            peer.write(blob)
            sending = asyncio.ensure_future(peer.drain())
            await asyncio.sleep(0.3)
            # Bounded: what arrived before the pause took effect, never the whole 32 MiB.
            assert len(stream._buffer) <= PAUSE_ABOVE + (1 << 18)
            assert not sending.done(), "the peer wrote 32 MiB unhindered: reading was never paused"
            assert await read_all(stream, 1 << 16, len(blob)) == blob  # reading resumes
            await asyncio.wait_for(sending, 5)
            stream.close()

    run(go())


def test_a_server_hands_each_connection_to_its_handler_and_a_failed_one_is_closed(run) -> None:
    async def go() -> None:
        async def handler(reader: Stream, writer: Stream) -> None:
            assert reader is writer
            request = await reader.read(100)
            if request == b"fail":
                raise RuntimeError("the handler broke")
            writer.write(request.upper())
            await writer.drain()
            writer.close()

        server = await start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"hello")
            assert await asyncio.wait_for(reader.read(), 2) == b"HELLO"
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"fail")
            assert await asyncio.wait_for(reader.read(), 2) == b""  # closed, not left hanging
            writer.close()

    run(go())


def test_bytes_handed_to_a_read_cancelled_before_it_ran_go_to_the_next_read(run) -> None:
    async def go() -> None:
        stream, _, peer, server = await pair()
        async with server:
            reading = asyncio.ensure_future(stream.read(4))
            await asyncio.sleep(0.01)
            # In one loop turn: the bytes arrive (the transport's callback, called as the loop
            # calls it) and a timeout cancels the read before it resumes.
            stream.data_received(b"abcdef")
            reading.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reading
            assert await stream.read(100) == b"abcdef"
            stream.close()

    run(go())
