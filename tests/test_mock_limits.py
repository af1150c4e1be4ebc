"""What a hostile or broken local client can cost the outbound mock: connections, bytes,
silence and junk are bounded, nothing is pinned on the session being replayed without a
reason, and the mock goes on answering the service (real sockets, the real mock)."""

from __future__ import annotations

import asyncio
import time


import matchers
from koala_store.replay import mock as mock_module
from koala_store.replay.mock import OutboundMock
from koala_store.replay.runner import ReplayOptions, replay
from koala_store.replay.targets import Address, OutboundMapping
from koala_store.store.sqlite import SqliteStore
from replay_helpers import DEP_PEER, KV_PEER, free_port, item_session, save_session, sut

GET = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"


async def _with_mock(session, check):
    port = free_port()
    mock = OutboundMock([OutboundMapping(Address("127.0.0.1", port), Address(KV_PEER.ip, KV_PEER.port))], matchers.get("fuzzy"))
    await mock.start()
    context = mock.begin(session)
    try:
        return await check(mock, port, context)
    finally:
        mock.end(context)
        await mock.stop()


def _run(session, check):
    return asyncio.run(_with_mock(session, check))


def test_junk_connections_are_bounded_and_never_pinned_on_the_session(monkeypatch) -> None:
    monkeypatch.setattr(mock_module, "MAX_CONNECTIONS", 50)

    async def check(mock, port, context):
        silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(80)]
        await asyncio.sleep(0.3)
        for _, writer in silent:  # held open, saying nothing: only 50 are kept
            writer.close()
        opened = []
        for _ in range(120):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"\x16\x03\x01 junk that is not redis\r\n")
            opened.append((reader, writer))
        await asyncio.sleep(0.5)
        closed = 0
        for reader, writer in opened:
            try:
                if await asyncio.wait_for(reader.read(10), 2) == b"":
                    closed += 1
            except ConnectionError:
                closed += 1  # reset: closed too
            except asyncio.TimeoutError:
                pass
            writer.close()
        # The service's own talk still gets its answer.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.05)  # past the greeting wait
        writer.write(b"*3\r\n$3\r\nSET\r\n$9\r\nitem:good\r\n$1\r\nv\r\n")
        answer = await asyncio.wait_for(reader.read(100), 5)
        writer.close()
        return closed, answer, mock.refused, [t.reason for t in mock.unattributed], list(context.talks)

    session = save_session(0, "good", b"v")
    closed, answer, refused, reasons, talks = _run(session, check)
    assert closed == 120 and answer == b"+OK\r\n"
    assert refused >= 30  # over the cap: closed at once
    assert reasons and all(r.startswith("not redis") for r in reasons)
    assert len(talks) == 1 and talks[0].match.matched  # only the service's SET


def test_an_endless_value_is_cut_at_the_talk_limit(monkeypatch) -> None:
    monkeypatch.setattr(mock_module, "MAX_TALK_BYTES", 1 << 20)

    async def check(mock, port, context):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"*100000000\r\n")
        piece = b"$1\r\nx\r\n" * 1000
        started = time.process_time()
        try:
            for _ in range(200):  # 1.4 MB in 7 KB writes
                writer.write(piece)
                await writer.drain()
        except ConnectionError:
            pass
        try:
            closed = await asyncio.wait_for(reader.read(10), 10) == b""
        except ConnectionError:
            closed = True  # reset while we were still writing: closed too
        writer.close()
        return closed, time.process_time() - started, [t.reason for t in mock.unattributed], list(context.talks)

    closed, cpu, reasons, talks = _run(save_session(0, "x", b"v"), check)
    assert closed and any("over 1 MiB" in r for r in reasons) and talks == []
    assert cpu < 5  # framing looks at each byte a bounded number of times (was quadratic)


def test_deeply_nested_values_do_not_break_the_mock() -> None:
    async def check(mock, port, context):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"*1\r\n" * 200_000 + b":1\r\n")
        await writer.drain()
        await asyncio.wait_for(reader.read(10), 10)
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.05)
        writer.write(b"*3\r\n$3\r\nSET\r\n$6\r\nitem:x\r\n$1\r\nv\r\n")
        answer = await asyncio.wait_for(reader.read(100), 5)
        writer.close()
        return answer

    assert _run(save_session(0, "x", b"v"), check) == b"+OK\r\n"


def test_a_silent_connection_is_closed_after_the_idle_timeout(monkeypatch) -> None:
    monkeypatch.setattr(mock_module, "IDLE_TIMEOUT_S", 0.3)

    async def check(mock, port, context):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.05)
        writer.write(b"*3\r\n$3\r\nSET\r\n$6\r\nitem:x\r\n$1\r\nv\r\n")
        assert await asyncio.wait_for(reader.read(100), 5) == b"+OK\r\n"
        started = time.monotonic()
        closed = await asyncio.wait_for(reader.read(10), 5) == b""
        writer.close()
        return closed, time.monotonic() - started

    closed, waited = _run(save_session(0, "x", b"v"), check)
    assert closed and 0.2 < waited < 3


def test_a_talk_on_a_connection_opened_before_its_session_says_why_it_was_attributed(tmp_path) -> None:
    store = SqliteStore(tmp_path / "k.db")
    store.put_many([item_session(i, f"sku{i}", 10 + i, fd=20) for i in range(3)])
    dep = free_port()
    with sut("--pool", dep=dep) as port:
        summary = replay(store, ReplayOptions(target=Address("127.0.0.1", port), mappings=[OutboundMapping(Address("127.0.0.1", dep), Address(DEP_PEER.ip, DEP_PEER.port))]))
    first, *later = store.runs.comparisons(summary.run_id)
    assert summary.same == 3
    assert first.outbound.talks[0].note == ""
    assert all("opened before this session began" in c.outbound.talks[0].note for c in later)


def test_junk_read_whole_by_an_http_dependency_is_closed_and_reported() -> None:
    """A read that ends like an HTTP head but has no request line is not HTTP: whether it is
    read whole or in parts, the mock closes it and reports it, in both attributions, and
    pins it on no session."""
    recorded = Address(DEP_PEER.ip, DEP_PEER.port)
    junk = [b"\x16\x03\x01 hello\r\n\r\n", b"GET / HTTP/1.1X\r\nHost: a\r\n\r\n", b"not a request line\r\nContent-Length: 0\r\n\r\n"]

    async def main(attribution: str) -> None:
        port = free_port()
        mock = OutboundMock([OutboundMapping(Address("127.0.0.1", port), recorded)], matchers.get("fuzzy"), attribution=attribution)
        await mock.start()
        context = mock.begin(item_session(0, "sku0", 10), "k" * 32)
        try:
            connections = [await asyncio.open_connection("127.0.0.1", port) for _ in junk]
            for (_, writer), data in zip(connections, junk, strict=True):
                writer.write(data)
            # Closed, unanswered (the framer gives a talk it cannot finish 2 s: read together).
            answers = await asyncio.wait_for(asyncio.gather(*(reader.read(10) for reader, _ in connections)), 10)
            assert answers == [b""] * len(junk)
            for _, writer in connections:
                writer.close()
            assert sorted(u.request for u in mock.unattributed) == sorted(junk)
            assert all(u.reason.startswith("not http") for u in mock.unattributed), mock.unattributed
            assert context.talks == []
        finally:
            mock.end(context)
            await mock.stop()

    for attribution in ("single", "header"):
        asyncio.run(main(attribution))
