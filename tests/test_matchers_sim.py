"""Koala's sim (cosine) strategy: the lexer, the HTTP URI weighting, ties, the threshold."""

from __future__ import annotations

import math

import pytest
from matchers_fixtures import call, http, redis, session_calls

import matchers
from matchers.sim import cosine, tokenize, vectorize

# --- 1. tokens -----------------------------------------------------------------------------------------


def test_runs_of_letters_digits_dot_underscore_are_tokens_other_bytes_one_byte_tokens():
    assert tokenize(b"get user_42.name, x=1\r\n") == [
        b"get",
        b" ",
        b"user_42.name",
        b",",
        b" ",
        b"x",
        b"=",
        b"1",
        b"\r",
        b"\n",
    ]


def test_token_weighs_its_length_per_occurrence_other_bytes_weigh_1():
    assert vectorize(b"abc abc \x00\x00\xff") == {b"abc": 6, b" ": 2, b"\x00": 2, b"\xff": 1}


def test_runs_are_capped_at_128_bytes_the_rest_starts_a_new_token():
    assert tokenize(b"a" * 130) == [b"a" * 128, b"aa"]
    assert tokenize(b"b" * 256) == [b"b" * 128, b"b" * 128]
    assert vectorize(b"a" * 130 + b" " + b"a" * 130) == {b"a" * 128: 256, b"aa": 4, b" ": 1}


def test_unicode_letters_form_tokens_other_characters_are_bytes():
    # Koala's lexer decodes UTF-8: CJK letters are letters, a full-width comma is not.
    order = "订单".encode()
    comma = "，".encode()
    assert tokenize(order + comma + b"42") == [order, comma[:1], comma[1:2], comma[2:], b"42"]
    # Invalid UTF-8 bytes are other bytes.
    assert tokenize(b"ab\xffcd") == [b"ab", b"\xff", b"cd"]


def test_the_128_byte_cap_can_split_a_character_like_koala():
    run = "订".encode() * 50  # 150 bytes
    # The cut falls inside the 43rd character: its orphaned last byte is a one-byte token.
    assert tokenize(run) == [run[:128], run[128:129], run[129:]]


def test_http_uri_and_segments_weigh_len_times_1_plus_header_lines():
    request = http("GET", "/v1/order?city=1", [("Host", "h"), ("Accept", "*/*")])
    vec = vectorize(request)
    factor = 1 + 2
    assert vec[b"/v1/order"] == 9 * factor  # not a lexer token: only the extra weight
    assert vec[b"v1"] == 2 + 2 * factor
    assert vec[b"order"] == 5 + 5 * factor
    assert vec[b"city"] == 4  # the query string gets no extra weight
    assert b"/v1/order?city=1" not in vec


def test_http_weighting_counts_header_lines_only():
    request = b"POST /a HTTP/1.1\r\n\r\nbody line 1\r\nbody line 2\r\n"
    vec = vectorize(request)
    assert vec[b"/a"] == 2 * 1
    assert vec[b"a"] == 1 + 1  # lexer 1, extra 1 * (1 + 0)


def test_non_http_gets_no_uri_weighting():
    plain = vectorize(b"GET /v1/order\r\nHost: h\r\n\r\n")  # no HTTP/1.x: not a request line
    assert b"/v1/order" not in plain
    assert plain[b"order"] == 5


def test_cosine():
    assert cosine({b"a": 1.0, b"b": 1.0}, {b"a": 1.0}) == pytest.approx(1 / math.sqrt(2))
    assert cosine({b"a": 3.0}, {b"a": 5.0}) == pytest.approx(1.0)
    assert cosine({b"a": 1.0}, {b"b": 1.0}) == 0
    assert cosine({}, {b"a": 1.0}) == 0


def test_scores_match_cosine_of_vectors():
    calls = session_calls(redis("GET", "user:42"), redis("SET", "user:42", "alice"), b"")
    session = matchers.get("sim").for_session(calls)
    request = redis("GET", "user:43")
    scores = session.scores(request)
    assert scores[0] == pytest.approx(cosine(vectorize(request), vectorize(calls[0].request)))
    assert scores[1] == pytest.approx(cosine(vectorize(request), vectorize(calls[1].request)))
    assert 2 not in scores  # a greeting is no candidate for a request


# --- 4. threshold --------------------------------------------------------------------------------------


def test_threshold_defaults_to_0_7():
    assert matchers.get("sim").threshold == 0.7


def test_threshold_is_inclusive_and_configurable():
    calls = session_calls(redis("GET", "user:42:profile"))
    request = redis("GET", "user:43:profile")
    score = matchers.get("sim").for_session(calls).scores(request)[0]
    assert 0.7 < score < 1

    at = matchers.get("sim", threshold=score).for_session(calls)
    result = at.match(request, at.connection())
    assert result.matched and result.score == pytest.approx(score)

    above = matchers.get("sim", threshold=min(1.0, score + 0.01)).for_session(calls)
    conn = above.connection()
    result = above.match(request, conn)
    assert not result.matched
    assert result.score == pytest.approx(score)
    assert result.reason.startswith("best cosine ") and "below threshold" in result.reason
    assert result.near_misses[0].position == 0
    assert conn.last == -1


def test_failure_resets_to_fresh_but_keeps_identity_counts():
    calls = session_calls(call(redis("GET", "a"), fd=7))
    session = matchers.get("sim").for_session(calls)
    conn = session.connection()
    session.match(redis("GET", "a"), conn)
    assert conn.last == 0 and conn.identity_counts == {"10.0.0.9:80#7": 1}
    assert not session.match(b"\x00\x01\x02", conn).matched
    assert conn.last == -1
    assert conn.identity_counts == {"10.0.0.9:80#7": 1}


def test_success_updates_last_outs_last_and_identity_counter():
    calls = session_calls(call(redis("GET", "a"), fd=7), call(redis("GET", "b"), fd=8))
    session = matchers.get("sim").for_session(calls)
    conn = session.connection()
    assert session.match(redis("GET", "b"), conn).position == 1
    assert (conn.last, session.outs_last, conn.identity_counts) == (1, 1, {"10.0.0.9:80#8": 1})
    assert session.match(redis("GET", "a"), conn).position == 0
    assert (conn.last, session.outs_last) == (0, 1)
    assert conn.identity_counts == {"10.0.0.9:80#8": 1, "10.0.0.9:80#7": 1}


# --- 3. ties, in order ----------------------------------------------------------------------------------

A = redis("GET", "config:city:1")
X = redis("HGETALL", "order:7:status")
Y = redis("INCR", "stat:orders")


def test_tie_prefers_the_identity_matched_most_on_this_connection():
    calls = session_calls(call(A, fd=5), call(A, fd=7), call(X, fd=7))
    session = matchers.get("sim").for_session(calls)
    conn = session.connection()
    assert session.match(X, conn).position == 2  # this connection answered from fd 7
    result = session.match(A, conn)
    assert result.position == 1
    assert result.near_misses[0].position == 0
    assert result.near_misses[0].reason == ("tied with the winner, whose recorded connection 10.0.0.9:80#7 matched more often on this connection")


def test_tie_then_first_at_or_after_last_plus_1():
    calls = session_calls(call(A, fd=5), call(X, fd=9), call(A, fd=6))
    session = matchers.get("sim").for_session(calls)
    conn = session.connection()
    session.match(X, conn)  # last = 1; fd 9 is in no tie
    result = session.match(A, conn)
    assert result.position == 2
    assert result.near_misses[0].reason == "tied with the winner but at or before the last match (position 1)"


def test_tie_on_a_fresh_connection_first_at_or_after_outs_last_plus_1():
    calls = session_calls(call(A, fd=5), call(X, fd=9), call(A, fd=6))
    session = matchers.get("sim").for_session(calls)
    session.match(X, session.connection())  # outs_last = 1
    assert session.match(A, session.connection()).position == 2


def test_tie_else_the_first_best():
    calls = session_calls(call(A, fd=5), call(A, fd=6), call(X, fd=9))
    session = matchers.get("sim").for_session(calls)
    session.match(X, session.connection())  # outs_last = 2: no tied call after it
    result = session.match(A, session.connection())
    assert result.position == 0
    assert result.near_misses[0].reason == "tied with the winner, which comes first"


def test_tie_among_equally_counted_identities_takes_the_first_after_last():
    # fd 5 and fd 6 both matched once on this connection; then position order decides.
    calls = session_calls(call(A, fd=5), call(A, fd=6), call(X, fd=5), call(Y, fd=6), call(A, fd=5), call(A, fd=9))
    session = matchers.get("sim").for_session(calls)
    conn = session.connection()
    session.match(X, conn)
    session.match(Y, conn)  # last = 3
    assert session.match(A, conn).position == 4  # first of the counted ones after 3; fd 9 has no count


def test_nothing_consumed_and_state_over_a_long_lived_connection():
    get, event = http("GET", "/v1/config", [("Host", "h")]), http("POST", "/v1/event", [("Host", "h")], b"{}")
    calls = session_calls(call(get, fd=4), call(event, fd=4), call(get, fd=4), call(event, fd=4))
    session = matchers.get("sim").for_session(calls)
    conn = session.connection()
    # Ties go to the first at or after last + 1: the talks walk forward.
    assert [session.match(r, conn).position for r in (get, event, get, event)] == [0, 1, 2, 3]
    # One more: nothing tied after 3, so the first best (calls are reused, not consumed).
    assert session.match(get, conn).position == 0
    assert session.use_counts == [2, 1, 1, 1]
