"""The in-Python evaluator agrees with the same oracle table the stores are held to."""

from __future__ import annotations

import pytest

from koala_store.formats import koala
from koala_store.query.evaluate import matches
from koala_store.query.parse import parse
from test_store_contract import QUERIES, fixture_sessions


@pytest.mark.parametrize(("query", "oracle"), QUERIES, ids=[q for q, _ in QUERIES])
def test_evaluator_matches_the_oracle(example_bytes: bytes, query: str, oracle) -> None:
    [example] = koala.loads(example_bytes)
    tree = parse(query)
    for session in fixture_sessions(example):
        assert matches(tree, session) == oracle(session), session.session_id
