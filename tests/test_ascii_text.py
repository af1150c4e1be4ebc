"""query.ascii_text decides full-text conditions on ASCII text exactly as FTS5 does (the
SQLite store's scratch index, same tokenizer and columns), and leaves other text to it."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import http_call, make_session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from koala_store.query import ir
from koala_store.query.ascii_text import ascii_check, ascii_phrase
from koala_store.query.fields import FIELDS
from koala_store.store.sqlite import SqliteStore, text_row

TEXT_FIELDS = ("inbound.request", "inbound.response", "outbound.request", "outbound.response")
WORDS = ["order", "orders", "status", "sta", "st", "o", "a1", "1", "x"]
# Words and what separates or joins them: case, digits, `_` (a separator to FTS5), control
# bytes, DEL, and a character beyond ASCII (left to FTS5).
PIECES = [*WORDS, "ORDER", "Status", " ", "-", "_", ",", "\t", "\x00", "\x7f", "\n", "é", '"', "9"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> SqliteStore:
    store = SqliteStore(Path(tmp_path_factory.mktemp("ascii")) / "k.db")
    yield store
    store.close()


def fts5_holds(store: SqliteStore, session, nodes: tuple[ir.Text, ...]) -> bool:
    """FTS5's verdict: the session indexed alone in the scratch index, the conditions matched there."""
    return bool(store._held_in_scratch([(1, *text_row(session))], {1: session}, nodes))


def text_node(fields: list[str], tokens: list[str], prefix: bool) -> ir.Text:
    return ir.Text(tuple(FIELDS[name] for name in fields), tuple(tokens), prefix)


texts = st.lists(st.sampled_from(PIECES), max_size=14).map("".join)
nodes = st.builds(
    text_node,
    st.lists(st.sampled_from(TEXT_FIELDS), min_size=1, max_size=4, unique=True),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
    st.booleans(),
)


def joined(join: type, items: list, negated: list[bool]) -> ir.Node:
    """An AND or OR of `items`; under an AND, those after the first negated where asked."""
    if join is ir.And:
        items = [items[0], *(ir.Not(item) if neg else item for item, neg in zip(items[1:], negated, strict=False))]
    return join(tuple(items))


# Phrases under AND, OR and NOT, as `order status` (an OR), `(a AND b) OR c` and
# `a AND NOT b` parse.
trees = st.recursive(
    nodes,
    lambda children: st.builds(joined, st.sampled_from([ir.And, ir.Or]), st.lists(children, min_size=2, max_size=3), st.lists(st.booleans(), max_size=2)),
    max_leaves=4,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request_body=texts, response=texts, calls=st.lists(st.tuples(texts, texts), max_size=3), conditions=st.lists(trees, min_size=1, max_size=2))
def test_the_ascii_check_agrees_with_fts5(store: SqliteStore, request_body: str, response: str, calls, conditions) -> None:
    outbound = [http_call(i, 1_000 + i, "POST", "/" + target, 200, body.encode()) for i, (target, body) in enumerate(calls)]
    session = make_session(1, body=request_body.encode(), response_body=response.encode(), outbound=outbound)
    checks = [ascii_check(node) for node in conditions]
    assert None not in checks  # the words are ASCII letters and digits
    verdict = ascii_check(ir.And(tuple(conditions))).holds(session)  # all must hold
    if verdict is not None:
        assert verdict == fts5_holds(store, session, tuple(conditions))
    else:  # undecided only when some text is not ASCII
        assert "é" in request_body + response + "".join(t + b for t, b in calls)


def test_a_phrase_never_runs_from_one_call_into_the_next(store: SqliteStore) -> None:
    outbound = [http_call(0, 1_000, "GET", "/a", 200, b"x order"), http_call(1, 2_000, "GET", "/b", 200, b"status y")]
    session = make_session(1, outbound=outbound)
    node = text_node(["outbound.response"], ["order", "status"], False)
    assert ascii_phrase(node).holds(session) is False and not fts5_holds(store, session, (node,))
    assert ascii_phrase(text_node(["outbound.response"], ["status", "y"], False)).holds(session) is True


def test_text_beyond_ascii_is_left_to_fts5() -> None:
    session = make_session(1, response_body='{"note":"ordér"}'.encode())
    assert ascii_phrase(text_node(["inbound.response"], ["order"], True)).holds(session) is None
    # Found in an ASCII text of another field: holds, whatever the other text says.
    assert ascii_phrase(text_node(["inbound.request", "inbound.response"], ["get"], False)).holds(session) is True


def test_tokens_beyond_ascii_get_no_check() -> None:
    assert ascii_phrase(text_node(["inbound.response"], ["ordér"], False)) is None
    assert ascii_phrase(text_node(["inbound.response"], ["k"], False)) is not None


def test_and_is_false_when_one_surely_fails() -> None:
    session = make_session(1, response_body='{"a":"ordér status"}'.encode())
    unknown = text_node(["inbound.response"], ["order"], False)
    holds = text_node(["inbound.request"], ["get"], False)  # the request is ASCII
    fails = text_node(["inbound.request"], ["nowhere"], False)
    assert ascii_check(ir.And((unknown, holds))).holds(session) is None
    assert ascii_check(ir.And((unknown, fails))).holds(session) is False
    assert ascii_check(ir.And((holds,))).holds(session) is True


@pytest.mark.parametrize(
    ("text", "tokens", "prefix"),
    [
        ("orderstatus", ["order", "status"], False),  # one token: no phrase
        ("orderstatus", ["order", "sta"], True),
        ("xorder status", ["order", "status"], False),  # "order" must start its token
        ("order statusx", ["order", "status"], False),  # and "status" end it, without a prefix
        ("order statusx", ["order", "status"], True),
        ("ORDER_status", ["order", "status"], False),  # `_` separates, case folds
        ("order\x00\x7f status", ["order", "status"], False),
        ("a1order 1", ["order", "1"], False),
        ("o", ["o"], True),
    ],
)
def test_where_tokens_start_and_end(store: SqliteStore, text: str, tokens: list[str], prefix: bool) -> None:
    session = make_session(1, response_body=text.encode())
    node = text_node(["inbound.response"], tokens, prefix)
    assert ascii_phrase(node).holds(session) == fts5_holds(store, session, (node,))


def test_and_or_tell_what_they_can() -> None:
    session = make_session(1, response_body='{"a":"ordér status"}'.encode())
    unknown = text_node(["inbound.response"], ["order"], False)  # the response is not ASCII
    holds = text_node(["inbound.request"], ["get"], False)
    fails = text_node(["inbound.request"], ["nowhere"], False)
    assert ascii_check(ir.Or((unknown, holds))).holds(session) is True
    assert ascii_check(ir.Or((unknown, fails))).holds(session) is None
    assert ascii_check(ir.Or((fails, fails))).holds(session) is False
    assert ascii_check(ir.And((unknown, holds))).holds(session) is None
    assert ascii_check(ir.And((holds, ir.Or((fails, holds))))).holds(session) is True
    assert ascii_check(ir.Or((holds, text_node(["inbound.request"], ["ordér"], False)))) is None  # no check for a word beyond ASCII
    assert ascii_check(ir.Not(holds)).holds(session) is False
    assert ascii_check(ir.Not(unknown)).holds(session) is None
    assert ascii_check(ir.And((holds, ir.Not(fails)))).holds(session) is True
    assert ascii_check(ir.Not(text_node(["inbound.request"], ["ordér"], False))) is None
