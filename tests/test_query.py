"""The query language on its own: parsing, typing, dates and the errors users see."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from koala_store.errors import QueryError
from koala_store.query import ir
from koala_store.query.dates import parse_date
from koala_store.query.fields import FIELDS
from koala_store.query.parse import parse
from koala_store.query.text import MAX_INDEXED_BYTES, searchable_text, token_text, tokenize

NOW = 1_763_780_400_000_000_123  # 2025-11-22T03:00:00.000000123Z
DAY = 86_400 * 10**9


def test_empty_and_star_match_everything() -> None:
    assert parse("") == parse("*") == parse("*:*") == ir.MatchAll()


def test_unquoted_paths_are_paths_not_regexps() -> None:
    assert parse("inbound.path:/v1/order") == ir.Term(FIELDS["inbound.path"], "/v1/order")
    assert parse("inbound.path:/v1/*") == ir.Wildcard(FIELDS["inbound.path"], "/v1/*")
    assert parse('inbound.path:"/v1/order"') == ir.Term(FIELDS["inbound.path"], "/v1/order")


def test_methods_compare_upper_cased() -> None:
    assert parse("inbound.method:post") == ir.Term(FIELDS["inbound.method"], "POST")


def test_lucene_default_operator_is_or_with_plus_and_minus() -> None:
    a, b, c = (parse(w) for w in "abc")
    assert parse("a b") == ir.Or((a, b))
    assert parse("+a -b c") == ir.And((a, ir.Not(b)))
    assert parse("-b c") == ir.And((ir.Not(b), c))
    assert parse("a AND NOT b") == ir.And((a, ir.Not(b)))


def test_full_text_terms_tokenize_like_the_index() -> None:
    node = parse('"User:42 ordered"')
    assert isinstance(node, ir.Text) and node.tokens == ("user", "42", "ordered") and not node.prefix
    assert parse("time*") == ir.Text(node.fields, ("time",), True)
    assert parse("order.create").tokens == ("order", "create")


def test_numbers_ranges_and_exists() -> None:
    status = FIELDS["inbound.status"]
    assert parse("inbound.status:[500 TO 599]") == ir.Range(status, gte=500, lte=599)
    assert parse("inbound.status:{500 TO 599}") == ir.Range(status, gt=500, lt=599)
    assert parse("inbound.status:>=500") == ir.Range(status, gte=500)
    assert parse("inbound.status:<500") == ir.Range(status, lt=500)
    assert parse("inbound.status:[500 TO *]") == ir.Range(status, gte=500)
    assert parse("inbound.status:*") == ir.Exists(status)
    assert parse("_exists_:inbound.status") == ir.Exists(status)
    assert parse("inbound.latency_ms:<2.5") == ir.Range(FIELDS["inbound.latency_ms"], lt=2.5)


def test_dates_resolve_to_nanoseconds_with_rounding() -> None:
    assert parse_date("now", now_ns=NOW) == NOW
    assert parse_date("now-1d", now_ns=NOW) == NOW - DAY
    assert parse_date("now/d", now_ns=NOW) == NOW - 123 - 3 * 3600 * 10**9
    assert parse_date("now/d", round_up=True, now_ns=NOW) == NOW - 123 - 3 * 3600 * 10**9 + DAY - 1
    assert parse_date("2025-11-22") == 1_763_769_600 * 10**9
    assert parse_date("2025-11-22", round_up=True) == 1_763_769_600 * 10**9 + DAY - 1
    assert parse_date("2025-11-22T03:00:00+08:00") == (1_763_780_400 - 8 * 3600) * 10**9
    assert parse_date("2025-11-22T03:00:00.5Z", round_up=True) == 1_763_780_400 * 10**9 + 599_999_999
    assert parse_date("2025-01-31||+1M") == parse_date("2025-02-28")
    assert parse_date("1548160113") == parse_date("1548160113000") == parse_date("1548160113000000000")
    day = parse("recorded_at:2025-11-22")
    assert day == ir.Range(FIELDS["recorded_at"], gte=1_763_769_600 * 10**9, lte=1_763_769_600 * 10**9 + DAY - 1)


@pytest.mark.parametrize(
    ("query", "message", "position"),
    [
        ("inbound.stauts:500", "unknown field 'inbound.stauts'; did you mean inbound.status?", 0),
        ("inbound.method:GET AND nope:1", "unknown field 'nope'", 23),
        ("a AND", "cannot parse the query: unexpected end of expression", 5),
        ("a:]", "cannot parse the query: unexpected  ']'", 2),
        ("inbound.status:abc", "inbound.status holds numbers; 'abc' is not one", 15),
        ("inbound.status:2.5", "inbound.status holds whole numbers; '2.5' is not one", 15),
        ("recorded_at:yesterday", "'yesterday' is not a date", 12),
        ("recorded_at:>now-1x", "cannot read the date math '-1x'", 13),
        ("inbound.request:[a TO b]", "inbound.request is full text; ranges need", 16),
        ("ti*me", "a wildcard may only end the term", 0),
        ('"--"', "has no letters or digits", 0),
        ("foo~2", "fuzzy terms (term~N) are not supported", 0),
        ('"a b"~2', "proximity phrases", 0),
        ("[1 TO 2]", "a range needs a field", 0),
        ("inbound.status:/5../", "regular expressions work on keyword fields", 15),
        ("session_id:/[/", "bad regular expression", 11),
        ("inbound.path:/v1/x AND inbound.status:x", "inbound.status holds numbers", 38),
    ],
)
def test_bad_queries_point_at_the_problem(query: str, message: str, position: int) -> None:
    with pytest.raises(QueryError) as caught:
        parse(query)
    assert message in str(caught.value)
    assert caught.value.position == position
    # The message shows the query with a caret under the position.
    assert str(caught.value).endswith(f"  {query}\n  {' ' * position}^")


@given(st.binary(max_size=300) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
@settings(max_examples=1000)
def test_text_sent_to_elasticsearch_splits_into_the_tokens_sqlite_indexes(data: bytes) -> None:
    # Elasticsearch's standard analyzer splits token_text on its spaces and lowercases.
    assert tokenize(token_text(data)) == tokenize(searchable_text(data))


@given(st.binary(max_size=300) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
@settings(max_examples=1000)
def test_searchable_text_is_the_decoded_text_with_control_characters_as_spaces(data: bytes) -> None:
    # Stores indexed by earlier versions take text out of FTS5 by giving it again: it must
    # stay exactly this, whichever way it is computed.
    controls = {code: " " for code in [*range(32), 127]}
    assert searchable_text(data) == data[:MAX_INDEXED_BYTES].decode("utf-8", "replace").translate(controls)
    assert searchable_text(b"a\x00\xe2\x82\x0ab\x7f\xe2\x82\xac") == "a \ufffd b \u20ac"


def test_a_misspelt_field_is_named_with_the_field_meant_even_before_a_path_value() -> None:
    from koala_store.errors import QueryError
    from koala_store.query.parse import parse

    for query in ("inbound.pth:/v1/order", "inbound.pth:x", 'outbund.peer:"10.0.0.7:3306"'):
        with pytest.raises(QueryError) as caught:
            parse(query)
        message = str(caught.value)
        assert message.startswith(f"unknown field {query.split(':')[0]!r}; did you mean "), message
