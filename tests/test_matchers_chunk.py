"""Koala's chunk strategy: every rule of ../shared/spec/koala-matching.md, pinned one by one."""

from __future__ import annotations

import pytest
from matchers_fixtures import call, http, pieces, session_calls

import matchers
from matchers import chunk_scan
from matchers.chunk import cut_chunks, has_expect_continue


@pytest.fixture(autouse=True, params=["compiled", "python"])
def scanner(request, monkeypatch):
    """Every rule holds with both scanners (matchers/chunk_scan.py): the C one and its fallback."""
    if request.param == "compiled":
        assert chunk_scan.COMPILED, "matchers/_chunkscan is not built: run ./scripts/setup.sh (needs gcc and Python headers)"
    monkeypatch.setattr(chunk_scan, "DEFAULT", request.param)
    return request.param


# --- 1. cutting ---------------------------------------------------------------------------------


def test_short_request_is_cut_in_16_byte_chunks_the_last_shorter():
    request = bytes(range(40))
    assert cut_chunks(request) == [request[:16], request[16:32], request[32:]]
    assert cut_chunks(b"x" * 32) == [b"x" * 16, b"x" * 16]
    assert cut_chunks(b"abc") == [b"abc"]


def test_256_bytes_exactly_gets_no_readable_prefix():
    request = b"\x00" * 10 + b"A" * 246
    assert len(request) == 256
    chunks = cut_chunks(request)
    assert chunks[0] == request[:16]
    assert len(chunks) == 16


def test_over_256_bytes_starts_with_the_first_readable_run():
    request = b"\x00\x01\x02" + b"abcdefghijklmnopqrstuvwxyz" + b"\x00" * 240
    assert len(request) > 256
    chunks = cut_chunks(request)
    # Its first 16 bytes are chunk 0; everything up to their end is dropped.
    assert chunks[0] == b"abcdefghijklmnop"
    assert chunks[1] == b"qrstuvwxyz" + b"\x00" * 6
    assert b"".join(chunks[1:]) == request[3 + 16 :]


def test_readable_run_must_be_longer_than_8_bytes():
    eight = b"\x00" + b"A" * 8 + b"\x00"
    request = eight + b"B" * 20 + b"\x00" * 240
    chunks = cut_chunks(request)
    assert chunks[0] == b"B" * 16
    assert chunks[1] == b"B" * 4 + b"\x00" * 12


def test_readable_run_shorter_than_16_is_chunk_0_whole():
    request = b"\x05\x00\x00\x00" + b"SELECT 1+" + b"\x00" * 250
    chunks = cut_chunks(request)
    assert chunks[0] == b"SELECT 1+"
    assert chunks[1] == b"\x00" * 16
    assert b"".join(chunks[1:]) == b"\x00" * 250


def test_printable_means_bytes_32_to_126():
    # Space (32) and "~" (126) are printable; DEL (127) and bytes >= 128 break a run.
    request = b"\x7f" + b"~ ~ ~ ~" + b"\x80" + b" ~" * 8 + b"\x01" * 250
    assert cut_chunks(request)[0] == b" ~" * 8


def test_long_request_without_readable_run_is_cut_plainly():
    request = bytes([0, 200]) * 150
    assert cut_chunks(request) == [request[i : i + 16] for i in range(0, 300, 16)]


# --- scoring ---------------------------------------------------------------------------------------


def match(calls, request, conn=None, session=None):
    session = session or matchers.get("chunk").for_session(calls)
    conn = conn or session.connection()
    return session.match(request, conn), session, conn


def test_fresh_connection_chunk_0_adds_the_number_of_chunks():
    a, b, c = pieces("alpha", "bravo", "charlie")
    result, *_ = match(session_calls(a + b + c), a + b + c)
    assert result.position == 0
    # chunk 0 adds n = 3, the two other hits add 1 each.
    assert result.score == pytest.approx(5 / 3)


def test_fresh_connection_chunk_0_adds_n_at_any_offset():
    a, b, c = pieces("alpha", "bravo", "charlie")
    result, *_ = match(session_calls(b"xyz" + a + b + c), a + b + c)
    assert result.score == pytest.approx(5 / 3)


def test_matched_connection_chunk_0_at_offset_0_adds_half_the_chunks():
    chunks = pieces(*"abcdefghij")  # 10 chunks
    request = b"".join(chunks)
    calls = session_calls(b"warm-up request", request)
    session = matchers.get("chunk").for_session(calls)
    conn = session.connection()
    assert session.match(b"warm-up request", conn).position == 0
    result = session.match(request, conn)
    assert result.position == 1
    assert result.score == pytest.approx((10 // 2 + 9) / 10)


def test_matched_connection_chunk_0_offset_0_adds_at_least_2():
    a, b = pieces("alpha", "bravo")  # n = 2: n // 2 = 1, so 2
    calls = session_calls(b"warm-up request", a + b)
    session = matchers.get("chunk").for_session(calls)
    conn = session.connection()
    session.match(b"warm-up request", conn)
    result = session.match(a + b, conn)
    assert result.score == pytest.approx((2 + 1) / 2)


def test_matched_connection_chunk_0_elsewhere_adds_1():
    a, b, c = pieces("alpha", "bravo", "charlie")
    calls = session_calls(b"warm-up request", b"zz" + a + b + c)
    session = matchers.get("chunk").for_session(calls)
    conn = session.connection()
    session.match(b"warm-up request", conn)
    result = session.match(a + b + c, conn)
    assert result.position == 1
    assert result.score == pytest.approx(3 / 3)  # 1 + 1 + 1: exactly 1.0 >= 0.85


def test_chunks_must_appear_in_order():
    a, b, c = pieces("alpha", "bravo", "charlie")
    # c comes first in the candidate: after a (at 16) and b (at 32) it is not searched back.
    result, *_ = match(session_calls(c + a + b), a + b + c)
    assert result.score == pytest.approx((3 + 1) / 3)


def test_overlap_allowed_the_search_restarts_at_the_hit():
    # The second chunk is found at the same offset as the first.
    result, *_ = match(session_calls(b"a" * 16), b"a" * 32)
    assert result.score == pytest.approx((2 + 1) / 2)


def test_candidate_shorter_than_a_chunk_never_hits_it():
    a, b = pieces("alpha", "bravo")
    result, *_ = match(session_calls(a[:8], a + b), a + b)
    assert result.position == 1
    assert all(m.position != 0 for m in result.near_misses)


# --- 4. ties -----------------------------------------------------------------------------------------


def test_tie_prefers_the_first_candidate_after_the_sessions_last_match():
    a, b = pieces("alpha", "bravo")
    request = a + b
    calls = session_calls(request, b"other request", request)
    session = matchers.get("chunk").for_session(calls)
    assert session.match(request, session.connection()).position == 0  # outs_last = -1: first
    assert session.match(b"other request", session.connection()).position == 1  # outs_last = 1
    result = session.match(request, session.connection())
    assert result.position == 2
    assert result.near_misses[0].position == 0
    assert result.near_misses[0].reason == "tied with the winner but at or before the session's last match (position 1)"


def test_tie_otherwise_goes_to_the_first_to_reach_the_best_score():
    c0, c1, c2 = pieces("zero", "one", "two")
    filler = b"-" * 16
    request = c0 + c1 + c2
    # Position 0 reaches 4 at chunk 2, position 1 reaches 4 at chunk 1.
    calls = session_calls(c0 + filler + c2, c0 + c1 + filler, b"something else")
    session = matchers.get("chunk").for_session(calls)
    session.match(b"something else", session.connection())  # outs_last = 2: no tie after it
    result = session.match(request, session.connection())
    assert result.position == 1
    assert result.score == pytest.approx(4 / 3)
    assert result.near_misses[0].position == 0
    assert result.near_misses[0].reason == "tied with the winner but reached that score later (chunk 2 vs 1)"

    # In a new session (outs_last = -1) the first tied position wins instead.
    again = matchers.get("chunk").for_session(calls)
    assert again.match(request, again.connection()).position == 0


# --- 5. marks ------------------------------------------------------------------------------------------


def test_fresh_connection_needs_mark_0_1():
    chunks = pieces(*"abcdefghijk")  # 11 chunks
    request = b"".join(chunks)
    only_one_chunk = b"#" * 20 + chunks[5] + b"#" * 20
    result, _, conn = match(session_calls(only_one_chunk), request)
    assert not result.matched
    assert result.score == pytest.approx(1 / 11)
    assert result.reason == "best mark 0.09 below 0.10"
    assert result.near_misses[0].reason == "mark 0.09 below 0.10 (fresh connection)"
    assert conn.last == -1

    ten = b"".join(chunks[:10])  # 1 / 10 = 0.1 is enough
    result, *_ = match(session_calls(only_one_chunk), ten)
    assert result.matched and result.score == pytest.approx(0.1)


def test_no_match_when_nothing_scores():
    result, *_ = match(session_calls(b"abcdefghijklmnopqrstuvwxyz"), b"0123456789" * 3)
    assert not result.matched
    assert result.score == 0
    assert result.reason == "no chunk of the request found in any candidate"
    assert result.near_misses == ()


def test_matched_connection_needs_mark_0_85_else_retries_as_fresh():
    chunks = pieces(*"abcdefghij")  # 10 chunks
    request = b"".join(chunks)
    # Shares chunk 0 at offset 0 and two more: 5 + 2 = 7 -> 0.7 on a matched connection.
    partial = chunks[0] + chunks[1] + b"~" * 64 + chunks[7]
    calls = session_calls(b"warm-up request", partial)
    session = matchers.get("chunk").for_session(calls)
    conn = session.connection()
    session.match(b"warm-up request", conn)
    result = session.match(request, conn)
    # Retried as fresh: 10 + 2 = 12 -> 1.2.
    assert result.position == 1
    assert result.score == pytest.approx(1.2)
    assert result.reason == "mark 0.70 below 0.85 after position 0; retried as a fresh connection: mark 1.20 over 10 chunks"
    assert conn.last == 1


def test_retry_as_fresh_searches_positions_before_last():
    a, b = pieces("alpha", "bravo")
    calls = session_calls(a + b, b"later request")
    session = matchers.get("chunk").for_session(calls)
    conn = session.connection()
    assert session.match(b"later request", conn).position == 1
    result = session.match(a + b, conn)  # nothing after position 1
    assert result.position == 0
    assert result.reason.startswith("no chunk found after position 1; retried as a fresh connection")
    # The fresh retry scores chunk 0 as a fresh connection does.
    assert result.score == pytest.approx(3 / 2)
    assert conn.last == 0


def test_failure_after_retry_resets_the_connection():
    calls = session_calls(b"abcdefghijklmnopqrstuvwxyz")
    session = matchers.get("chunk").for_session(calls)
    conn = session.connection()
    session.match(b"abcdefghijklmnopqrstuvwxyz", conn)
    assert conn.last == 0
    result = session.match(b"0123456789" * 4, conn)
    assert not result.matched
    assert "retried as a fresh connection" in result.reason
    assert conn.last == -1


# --- 2. Expect: 100-continue ------------------------------------------------------------------------


def test_expect_100_continue_detection():
    assert has_expect_continue(http("POST", "/u", [("Expect", "100-continue")]))
    assert has_expect_continue(http("POST", "/u", [("expect", "100-Continue")]))
    assert not has_expect_continue(http("POST", "/u", [("X", "y")], b"Expect: 100-continue"))
    assert not has_expect_continue(b"SET Expect: 100-continue")


def test_candidate_disagreeing_on_expect_never_wins():
    with_expect = http("POST", "/v1/upload", [("Host", "h"), ("Expect", "100-continue")])
    without = http("POST", "/v1/upload", [("Host", "h")])
    calls = session_calls(without, http("POST", "/v1/other", [("Expect", "100-continue")]))
    result, *_ = match(calls, with_expect)
    assert result.position == 1
    assert result.near_misses[0].position == 0
    assert result.near_misses[0].reason == "Expect: 100-continue differs (the request has it)"
    assert result.near_misses[0].score > result.score

    result, *_ = match(session_calls(without), with_expect)
    assert not result.matched
    assert result.reason == "every candidate with a hit disagrees on Expect: 100-continue"

    result, *_ = match(session_calls(with_expect, without), without)
    assert result.position == 1


# --- 6. nothing consumed ------------------------------------------------------------------------------


def test_a_call_can_be_matched_again():
    a, b = pieces("alpha", "bravo")
    calls = session_calls(a + b)
    session = matchers.get("chunk").for_session(calls)
    assert session.match(a + b, session.connection()).position == 0
    assert session.match(a + b, session.connection()).position == 0
    assert session.use_counts == [2]


# --- state over a long-lived connection ----------------------------------------------------------------


def test_repeated_talks_on_a_long_lived_connection_walk_forward():
    get = http("GET", "/v1/config?city=1", [("Host", "10.0.0.5:8000")])
    post = http("POST", "/v1/event", [("Host", "10.0.0.5:8000")], b'{"e":"view"}')
    calls = session_calls(get, post, get, post)
    session = matchers.get("chunk").for_session(calls)
    conn = session.connection()
    # On one connection each talk is searched after the last: positions advance.
    assert [session.match(r, conn).position for r in (get, post, get, post)] == [0, 1, 2, 3]
    assert session.outs_last == 3
    # A second, fresh connection ties 0 and 2; nothing is after outs_last = 3: first to reach.
    other = session.connection()
    assert session.match(get, other).position == 0
    assert session.missed() == []


def test_peer_restricts_candidates_and_keeps_positions():
    a, b = pieces("alpha", "bravo")
    calls = session_calls(call(a + b, ip="10.0.0.1", port=80), call(a + b, ip="10.0.0.2", port=80))
    session = matchers.get("chunk").for_session(calls)
    result = session.match(a + b, session.connection(), peer="10.0.0.2:80")
    assert result.position == 1
    assert result.call.action_index == 2
    assert result.near_misses == ()
    result = session.match(a + b, session.connection(), peer="10.0.0.3:80")
    assert not result.matched
    assert result.reason == "no recorded call with a request recorded for peer 10.0.0.3:80"


def test_matched_connection_searches_only_after_its_last_match():
    chunks = pieces(*"abcdefgh")
    request = b"".join(chunks)
    near = b"".join(chunks[:7]) + b"#" * 16  # misses the last chunk: (4 + 6) / 8 = 1.25 on a matched connection
    calls = session_calls(request, near)
    session = matchers.get("chunk").for_session(calls)
    conn = session.connection()
    assert session.match(request, conn).position == 0
    # The identical call at 0 is not searched any more: the later, weaker one answers.
    result = session.match(request, conn)
    assert result.position == 1
    assert result.score == pytest.approx((8 // 2 + 6) / 8)
    assert result.near_misses == ()


def test_long_binary_framed_requests_match_on_their_readable_prefix():
    sql = "SELECT id, name, phone, level FROM user WHERE id = %d AND status IN (1, 2, 3) " + "AND deleted_at IS NULL " * 10

    def packet(text: str, seq: int) -> bytes:
        body = b"\x03" + text.encode()
        return len(body).to_bytes(3, "little") + bytes([seq]) + body

    recorded = packet(sql % 42, 0)
    live = packet(sql % 42, 0)[:3] + b"\x07" + packet(sql % 42, 0)[4:]  # another sequence byte
    assert len(live) > 256
    chunks = cut_chunks(live)
    assert chunks[0] == b"SELECT id, name,"  # the binary header is dropped
    result, *_ = match(session_calls(recorded), live)
    assert result.position == 0
    n = len(chunks)
    assert result.score == pytest.approx((2 * n - 1) / n)
