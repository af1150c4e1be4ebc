"""Queries at the edges (issue 11 item 3 and 5): very wide, very deep, numbers and dates out of
range, and regular expressions that backtracking engines take forever on. Every backend gives
the same answer, or the same one clear QueryError before touching the store."""

from __future__ import annotations

import re
import time

import pytest

from cli_helpers import koala
from factories import varied_sessions
from koala_store.errors import QueryError
from koala_store.query.parse import MAX_DEPTH
from koala_store.store.base import SessionStore
from koala_store.summary import summarize
from stores import BACKENDS, open_test_store

SESSIONS = varied_sessions(60)


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path) -> SessionStore:
    with open_test_store(request.param, tmp_path) as opened:
        opened.put_many(SESSIONS)
        opened.refresh()
        yield opened


def ids(sessions) -> list[str]:
    return [s.session_id for s in sorted(sessions, key=lambda s: (s.recorded_at, s.session_id))]


def test_a_thousand_and_one_or_ed_words(store: SessionStore) -> None:
    query = " OR ".join(f"nosuchword{i}" for i in range(1000)) + " OR alice"
    assert store.count(query) == sum(1 for s in SESSIONS if b"alice" in s.return_inbound.response or any(b"alice" in c.response for c in s.outbound_calls))


def test_a_thousand_and_one_or_ed_terms(store: SessionStore) -> None:
    wanted = {s.session_id for s in SESSIONS[::3]}
    query = " OR ".join(f"session_id:{sid.replace('-', chr(92) + '-')}" for sid in sorted(wanted))
    query += "".join(f" OR inbound.status:{600 + i}" for i in range(1001 - len(wanted)))
    assert [s.session_id for s in store.scan(query)] == ids(s for s in SESSIONS if s.session_id in wanted)
    assert store.count(query) == len(wanted)


def test_two_thousand_not_ed_terms(store: SessionStore) -> None:
    query = " AND ".join(f"NOT inbound.status:{600 + i}" for i in range(1999)) + " AND NOT inbound.method:GET"
    assert store.count(query) == sum(1 for s in SESSIONS if summarize(s).method != "GET")


def test_thousands_of_parentheses_and_nots_are_one_term(store: SessionStore) -> None:
    assert store.count("(" * 3000 + "inbound.method:POST" + ")" * 3000) == sum(1 for s in SESSIONS if summarize(s).method == "POST")
    assert store.count("NOT " * 2001 + "inbound.method:POST") == sum(1 for s in SESSIONS if summarize(s).method != "POST")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("inbound.status:99999999999999999999", "inbound.status holds 64-bit whole numbers; 99999999999999999999 is out of range"),
        ("thread_id:>" + "9" * 5000, "is too long to be a number any store holds"),
        ("inbound.latency_ms:>1e400", "inbound.latency_ms holds finite numbers; 1e400 is not one"),
        ("recorded_at:<3000-01-01", "'3000-01-01' is outside the dates a store can hold (1677-09-21 to 2262-04-11 UTC)"),
        ("recorded_at:>now+100000y", "'now+100000y' is outside the dates a store can hold"),
        ("recorded_at:[" + "9" * 30 + " TO *]", "is outside the dates a store can hold"),
        ("a AND (b OR " * 120 + "c" + ")" * 120, f"the query nests more than {MAX_DEPTH} levels deep"),
        (" OR ".join(f"inbound.status:{i}" for i in range(4097)), "the query has 4097 conditions"),
        (" OR ".join(f"w{i}" for i in range(1025)), "the query has 4100 conditions (a word without a field counts once per text field, 4); at most 4096"),
        ("session_id:/^1763/", "^ is not an anchor here"),
        (r"session_id:/(a)\1/", r"\1 is read differently by Elasticsearch"),
        ("session_id:/(?i)abc/", "(?...) groups and flags are not supported"),
        ("session_id:/" + "a" * 1001 + "/", "at most 1000 are allowed"),
    ],
    ids=lambda v: v[:40] if isinstance(v, str) else v,
)
def test_out_of_range_queries_are_one_clear_error_on_every_store(store: SessionStore, query: str, message: str) -> None:
    with pytest.raises(QueryError) as caught:
        store.count(query)
    assert message in str(caught.value)
    with pytest.raises(QueryError):
        list(store.scan(query))


def test_a_regular_expression_that_backtracks_forever_elsewhere_answers_at_once(store: SessionStore) -> None:
    started = time.monotonic()
    assert store.count(r"session_id:/(.|\w|\d|-)*X/") == 0
    assert store.count(r"session_id:/(.|\w|\d|-)*5/") == sum(1 for s in SESSIONS if s.session_id.endswith("5"))
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("pattern", "oracle"),
    [
        (r"[0-9]+-100\d", r"[0-9]+-100\d"),
        (r"1763780.*-100[0-3]", r"1763780.*-100[0-3]"),
        (r"[^-]+-1000|x@y&z~w#<1>", r"[^-]+-1000|x@y&z~w#<1>"),  # @ & ~ # < > are plain characters on both
        (r"\d{19}-\d{4}", r"\d{19}-\d{4}"),
    ],
)
def test_regular_expressions_mean_the_same_everywhere(store: SessionStore, pattern: str, oracle: str) -> None:
    expected = ids(s for s in SESSIONS if re.fullmatch(oracle, s.session_id, re.S | re.A))
    assert expected, "the oracle should match something"
    assert [s.session_id for s in store.scan(f"session_id:/{pattern}/")] == expected


def test_the_cli_says_it_in_one_line_with_exit_1(capsys, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    assert koala(capsys, "store", "init", "--store", url).code == 0
    for query in ("inbound.status:99999999999999999999", "recorded_at:<3000-01-01", "a AND (b OR " * 200 + "c" + ")" * 200, "thread_id:" + "1" * 5000):
        for command in (["sessions", "search", query], ["sessions", "delete", query, "--yes"], ["sessions", "export", query, "-f", "ndjson", "-o", "-"]):
            run = koala(capsys, *command, "--store", url)
            assert run.code == 1, run.err
            assert run.err.startswith("error: ") and "Traceback" not in run.err
