"""The shortcuts the replay takes for the usual talk and answer give exactly what the long way
gives: one head scan for the session header and the request without it, a request read whole
in one go, responses that differ only in ignored header values, and the run's diff options
with each session's clock offset."""

from __future__ import annotations

import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from koala_store import diff
from koala_store.diff import outbound as outbound_diff
from koala_store.diff.options import with_clock_offset
from koala_store.diff import response as response_diff
from koala_store.diff.outbound import Talk
from koala_store.matching import MatchResult
from koala_store.model import CallOutbound, Peer
from koala_store.replay import mock as mock_module
from koala_store.wire import HTTP, http1, parse_talk
from koala_store.wire.framing import RequestFramer, whole_http_request

NAMES = (b"x-koala-session", b"traceparent")

# Pieces that decide a head's reading: line ends alone and together, colons, spaces in names,
# the headers searched for (in any case), and the framing headers.
_PIECES = [
    b"\r\n",
    b"\r\n\r\n",
    b"\r",
    b"\n",
    b":",
    b" ",
    b"X-Koala-Session:",
    b"x-koala-session: s1",
    b"TRACEPARENT: 00-abc-def-01",
    b"Content-Length: 3",
    b"Content-Length: x",
    b"Transfer-Encoding: chunked",
    b"Host: a",
    b"abc",
]
request_lines = st.sampled_from([b"GET /a HTTP/1.1\r\n", b"POST /b?c=1 HTTP/1.0\r\n", b"GE", b"get / HTTP/1.1\r\n", b""])
messages = st.tuples(request_lines, st.lists(st.one_of(st.sampled_from(_PIECES), st.binary(max_size=4)), max_size=16)).map(lambda t: t[0] + b"".join(t[1]))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_take_headers_is_find_headers_and_without_headers(data: bytes) -> None:
    values, stripped = http1.take_headers(data, NAMES)
    assert values == http1.find_headers(data, NAMES)
    assert stripped == http1.without_headers(data, NAMES)
    if stripped == data:
        assert stripped is data  # nothing taken out: no copy


def test_take_headers_takes_the_session_header_out() -> None:
    data = b"GET /a HTTP/1.1\r\nHost: a\r\nX-Koala-Session: s1\r\ntraceparent: 00-t-p-01\r\n\r\nbody"
    assert http1.take_headers(data, NAMES) == (["s1", "00-t-p-01"], b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nbody")


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_a_request_read_whole_is_one_the_framer_completes(data: bytes) -> None:
    if whole_http_request(data):
        assert RequestFramer(HTTP).feed(data) is True


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_a_request_line_found_by_the_caller_gives_the_same_answer(data: bytes) -> None:
    """The mock finds the request line once and tells whole_http_request, which then does not
    look again: the answer is the one it gives looking itself."""
    assert whole_http_request(data, request_line=http1.looks_like_request(data)) == whole_http_request(data)


def test_whole_requests_and_not_whole_ones() -> None:
    assert whole_http_request(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
    assert whole_http_request(b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
    assert not whole_http_request(b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nab")  # body to come
    assert not whole_http_request(b"GET /a HTTP/1.1\r\nHost: a\r\n")  # head to come
    # Chunks are the framer's to count, whole or not.
    chunked = b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    assert not whole_http_request(chunked) and RequestFramer(HTTP).feed(chunked) is True


# Responses: a recorded one, and a replayed one changed in the ways an answer changes.
_HEADERS = [
    b"Date: Wed, 02 Dec 2026 14:30:24 GMT",
    b"Date: Thu, 03 Dec 2026 09:00:00 GMT",
    b"date:x",
    b"Server: a",
    b"Server : b",
    b"X-Id: 1",
    b"X-Id: 2",
    b"Content-Type: application/json",
    b"Content-Type: text/plain",
    b"Content-Length: 2",
    b"Content-Length: 9",
    b"Content-Encoding: gzip",
    b"Transfer-Encoding: chunked",
    b"Bad Name: v",
    b"nocolon",
]
status_lines = st.sampled_from([b"HTTP/1.1 200 OK", b"HTTP/1.1 500 Oops", b"HTTP/1.1 100 Continue", b"HTTP/1.1 2x0 OK", b"HTTP/1.0 204"])
bodies = st.sampled_from([b"{}", b'{"a":1}', b'{"a": 1}', b"2\r\n{}\r\n0\r\n\r\n", b"", b"HTTP/1.1 200 OK\r\n\r\n{}"])


def _response(status: bytes, headers: list[bytes], body: bytes, end: bytes) -> bytes:
    return b"\r\n".join([status, *headers]) + end + body


responses = st.builds(_response, status_lines, st.lists(st.sampled_from(_HEADERS), max_size=5), bodies, st.sampled_from([b"\r\n\r\n", b"\r\n\r\n", b"\r\n"]))


@st.composite
def response_pairs(draw: st.DrawFn) -> tuple[bytes, bytes]:
    recorded = draw(responses)
    if draw(st.booleans()):
        return recorded, draw(responses)
    # Mostly alike: some header lines swapped for others, or the body changed.
    end = recorded.find(b"\r\n\r\n")
    if end < 0:
        return recorded, draw(responses)
    lines = recorded[:end].split(b"\r\n")
    for i in range(1, len(lines)):
        change = draw(st.integers(0, 3))
        if change == 0:
            lines[i] = draw(st.sampled_from(_HEADERS))
        elif change == 1:  # the same header, another value (a Date that moved)
            lines[i] = lines[i].partition(b":")[0] + b": " + draw(st.sampled_from([b"later", b"2", b"", b" x "]))
    body = recorded[end + 4 :] if draw(st.booleans()) else draw(bodies)
    return recorded, b"\r\n".join(lines) + b"\r\n\r\n" + body


ignored_sets = st.sampled_from([None, ["date", "server"], ["date", "content-length", "content-type", "x-id"], []])


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(response_pairs(), ignored_sets)
def test_alike_answers_compare_as_the_full_comparison_does(pair: tuple[bytes, bytes], ignored: list[str] | None) -> None:
    recorded, replayed = pair
    options = diff.DiffOptions() if ignored is None else diff.DiffOptions(ignored_headers=ignored)
    quick = diff.compare_responses(recorded, replayed, options)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(http1, "alike_but_header_values", lambda *args: False)
        assert diff.compare_responses(recorded, replayed, options) == quick


def test_an_answer_whose_date_moved_is_the_same_and_other_changes_are_not() -> None:
    recorded = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nDate: Wed, 02 Dec 2026 14:30:24 GMT\r\n\r\n{}"
    moved = recorded.replace(b"14:30:24", b"14:31:00")
    ignored = diff.compile_options(diff.DiffOptions()).ignored_headers - response_diff.BODY_HEADERS
    assert http1.alike_but_header_values(recorded, moved, ignored)
    assert diff.compare_responses(recorded, moved) == []
    # A value the options compare, a status, a framing header: the full comparison decides.
    assert not http1.alike_but_header_values(recorded, recorded.replace(b"200 OK", b"201 OK"), ignored)
    # Content-Length frames the body: even ignored, the diff never lets the shortcut skip it.
    framing_ignored = diff.compile_options(diff.DiffOptions(ignored_headers=["date", "content-length"])).ignored_headers
    assert not http1.alike_but_header_values(recorded, recorded.replace(b"Length: 2", b"Length: 3"), framing_ignored - response_diff.BODY_HEADERS)
    assert [d.path for d in diff.compare_responses(recorded, recorded.replace(b"{}", b"[]"))] == ["body"]


def test_each_session_gets_the_options_with_its_clock_offset() -> None:
    options = diff.DiffOptions(ignore=["a"])
    first = with_clock_offset(options, 12.0)
    assert first.clock_offset_s == 12.0 and first.ignore == ["a"]
    assert with_clock_offset(options, 12.0) is first  # known by identity next time
    assert with_clock_offset(options, 13.0).clock_offset_s == 13.0
    # Options changed in place are seen, not served from the last call.
    options.ignore.append("b")
    assert with_clock_offset(options, 13.0).ignore == ["a", "b"]
    assert options.clock_offset_s == 0.0  # the run's own options are left alone


# --- attributing talks to recorded calls -----------------------------------------------------

_PEERS = [Peer("10.0.0.1", 80), Peer("10.0.0.2", 6379)]


@st.composite
def recordings_and_talks(draw: st.DrawFn) -> tuple[list[CallOutbound], list[Talk]]:
    recorded = [
        CallOutbound(
            i,
            i,
            request=draw(st.sampled_from([b"GET /a", b"GET /b", b"SET k 1", b""])),
            response=draw(st.sampled_from([b"ok", b"no"])),
            peer=draw(st.sampled_from(_PEERS)),
        )
        for i in range(draw(st.integers(0, 6)))
    ]
    talks = []
    for _ in range(draw(st.integers(0, 8))):
        position = draw(st.one_of(st.none(), st.integers(-1, len(recorded))))
        matched = position is not None and 0 <= position < len(recorded) and draw(st.booleans())
        call = recorded[position] if matched else None
        result = MatchResult(call=call, position=position, score=1.0, strategy="fuzzy")
        talks.append(Talk("10.0.0.1:80", 1, b"GET /a", result, answered_from=draw(st.sampled_from([None, None, "s9"]))))
    return recorded, talks


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recordings_and_talks())
def test_talks_are_attributed_as_the_twin_aware_way_does(case: tuple[list[CallOutbound], list[Talk]]) -> None:
    """Without two calls of one request there are no twins: the quick way keeps each match's
    position, which is what the way that looks for twins gives."""
    recorded, talks = case
    assert outbound_diff.attribute(recorded, talks) == outbound_diff._attribute_twins(recorded, talks)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(messages, st.binary(min_size=1, max_size=40)))
def test_an_http_dependency_is_spoken_exactly_when_parse_talk_says_so(data: bytes) -> None:
    """The mock's check that a talk is HTTP: its request line alone, as parse_talk decides."""
    if data:
        assert mock_module._speaks(data, HTTP) == (parse_talk(data, hint=HTTP).protocol == HTTP)


def test_a_replay_collects_garbage_less_often_and_leaves_the_collector_as_it_was() -> None:
    import gc

    from koala_store.replay.runner import YOUNG_COLLECTION_EVERY, run_loop

    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    seen = []

    async def replay():
        seen.append((gc.get_threshold()[0], gc.get_freeze_count() > frozen))
        raise KeyError("the replay failed")

    with pytest.raises(KeyError):
        run_loop(replay())
    assert seen == [(YOUNG_COLLECTION_EVERY, True)]  # during: fewer young collections, the old set aside
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen  # after, even on failure


def test_the_session_queue_is_first_in_first_out_bounded_and_loses_no_wake_up() -> None:
    import asyncio

    from koala_store.replay.runner import SessionQueue

    async def go() -> None:
        queue = SessionQueue(maxsize=2)
        got: list = []

        async def take(n: int) -> None:
            for _ in range(n):
                got.append(await queue.get())

        await queue.put(1)
        await queue.put(2)
        third = asyncio.ensure_future(queue.put(3))
        await asyncio.sleep(0.01)
        assert not third.done()  # full: the put waits for room
        await take(1)
        await asyncio.wait_for(third, 1)
        await take(2)
        assert got == [1, 2, 3]
        # Two takers wait; the first is woken by a put, then cancelled before it runs: the
        # item goes to the second, not left unseen.
        first, second = asyncio.ensure_future(queue.get()), asyncio.ensure_future(queue.get())
        await asyncio.sleep(0.01)
        await queue.put(4)
        first.cancel()
        assert await asyncio.wait_for(second, 1) == 4

    asyncio.run(go())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own nice value is Linux's")
def test_the_store_thread_gives_way_to_the_event_loop(tmp_path) -> None:
    import os
    import threading

    from koala_store.replay.runner import STORE_THREAD_NICE, Replay, ReplayOptions
    from koala_store.replay.targets import parse_address
    from koala_store.store import open_store

    def own_nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    loop_nice = own_nice()
    store = open_store(f"sqlite:///{tmp_path / 'koala.db'}")
    replay = Replay(store, ReplayOptions(target=parse_address("127.0.0.1:9", "target")))
    try:
        store_nice = replay.store_thread.submit(own_nice).result(10)
    finally:
        replay.store_thread.shutdown(wait=True)
        store.close()
    assert store_nice == min(loop_nice + STORE_THREAD_NICE, 19)
    assert own_nice() == loop_nice  # the caller's thread, where the loop runs, keeps its priority
