"""The faster normalisation (wire.normalize) writes exactly what it wrote before issue 12
(tests/fuzzy_reference.py), and its buckets never separate two requests whose keys (or
details) have the same lexemes: the fuzzy matcher relies on both."""

from __future__ import annotations

import json
import math
import re

import fuzzy_reference as reference
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from matchers_fixtures import http, mysql_query, redis

from koala_store.wire import jsonbody, mysql, normalize
from koala_store.wire.normalize import Normalizer, bucket_of, mask_volatile, normalize_sql
from matchers.fuzzy import _lexemes

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces that normalisation masks, collapses or drops, and neighbours that test its edges.
VOLATILE = [
    "2019-01-22T10:28:33.120Z",
    "2019-07-13 18:40:00+08:00",
    "Tue, 22 Jan 2019 10:28:33 GMT",
    # Every day's first letter starts an HTTP date, inside a word too (the compiled masking
    # checks for one only at these letters).
    *(f"x{day}, 0{n} Feb 2019 10:28:33 GMT" for n, day in enumerate(["Mon", "Wed", "Thu", "Fri", "Sat", "Sun"], 1)),
    "3f1c2e3a-1b2c-4d5e-8f90-0123456789ab",
    "abcdefab-abcd-abcd-abcd-abcdefabcdef",
    "20190122",
    "2019-01-22",
    "1548160113",
    "1563000000123",
    "0af7651916cd43dd8448eb211c80319c",
    "deadbeefdeadbeef",
    "x_1548160113",
    "٣٣٣٣٣٣٣٣٣٣",
    "<num>",
    "< num >",
]
PIECES = st.one_of(
    st.sampled_from(VOLATILE),
    st.text(alphabet="0123456789abcdefABCDEFGMTZxyz-:.,+_ \t\n\"'{}()[]<>?#/*=&;é٣\u00a0\u2003", max_size=10),
    st.sampled_from(["Mon", "Sun", "Jan", "Dec", ", ", "  ", "\r\n", "\x1c", "--", "/*", "*/", "''", "\\'", '\\"']),
)
texts = st.lists(PIECES, max_size=14).map("".join)
SQL_PIECES = st.one_of(
    PIECES,
    st.sampled_from(
        [
            "SELECT ",
            "INSERT INTO t VALUES ",
            "(1, 'a')",
            ", (2, 'b')",
            " IN (1, 2, 3)",
            " WHERE a = ",
            "'x''y'",
            '"q"',
            "0x1F",
            "1e-5",
            "$1",
            "-- c\n",
            "# c\n",
            "/* c */",
        ]
    ),
)
sqls = st.lists(SQL_PIECES, max_size=14).map("".join)
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from([1e-05, 1e16, 1.5e-9, 0.0001, -0.0, 123456789.125, 1e22]),
        texts,
    ),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)


def bodies():
    return st.one_of(
        json_values.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")),
        json_values.map(lambda v: json.dumps(v, indent=1).encode()),
        st.sampled_from([b"[NaN, Infinity]", b'{"a": 1, "a": 2}', b'{"id": 12345678901234567890123}', b"[" * 300 + b"]" * 300, b'"\\ud800"']),
        texts.map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.binary(max_size=40),
    )


http_requests = st.builds(
    lambda method, path, query, headers, ctype, body: http(method, "/" + path + ("?" + query if query else ""), [*headers, ("Content-Type", ctype)], body),
    st.sampled_from(["GET", "POST"]),
    texts.map(lambda t: re.sub(r"[\s?#]", "", t)),
    texts.map(lambda t: re.sub(r"[\s#]", "", t)),
    st.lists(st.tuples(st.sampled_from(["Host", "X-Request-Id", "Accept", "X-Sign", "Expect"]), texts.map(lambda t: re.sub(r"[\r\n]", "", t))), max_size=3),
    st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain", ""]),
    bodies(),
)
requests = st.one_of(
    http_requests,
    st.lists(texts, min_size=1, max_size=4).map(lambda args: redis(*(a.encode("utf-8", "surrogatepass") for a in args))),
    sqls.map(lambda s: mysql_query(s) if s.isascii() else mysql_query(s.encode("utf-8", "replace").decode("utf-8"))),
    st.binary(min_size=1, max_size=60),
)
OPTIONS = st.sampled_from([{}, {"mask_literals": False}, {"mask_volatile": False}, {"volatile_headers": ["x-sign"]}])


@SETTINGS
@given(request=requests, options=OPTIONS)
def test_normalised_forms_are_the_ones_written_before(request, options):
    new, old = Normalizer(**options)(request), reference.Normalizer(**options)(request)
    assert (new.protocol, new.kind, new.key, new.detail, new.expect) == (old.protocol, old.kind, old.key, old.detail, old.expect)


@SETTINGS
@given(text=texts)
def test_masking_is_the_same(text):
    assert mask_volatile(text) == reference.mask_volatile(text)


@SETTINGS
@given(text=st.lists(st.one_of(PIECES, st.sampled_from(VOLATILE)), min_size=12, max_size=40).map(", ".join))
def test_masking_text_full_of_values_is_the_same(text):
    """Past _MAX_RUNS runs of values, one pass of the pattern over the whole text."""
    assert mask_volatile(text) == reference.mask_volatile(text)


# ASCII text, which wire/_normalize.c masks: values and their near misses, touching each other
# and words (boundaries), out-of-range dates, zones cut short, runs one character too short.
ASCII_VOLATILE = [v for v in VOLATILE if v.isascii()] + [
    "Mon, 5 Jan 2019 10:28:33 GMT",
    "Fri, 123 Jan 2019 10:28:33 GMT",
    "Sat, 05 Foo 2019 10:28:33 GMT",
    "Sun, 05 Dec 2019 10:28:33 GM",
    "2019-01-22T10:28:33,5+0800",
    "2019-01-22T10:28:33+08:3",
    "2019-01-22T10:28:33-0",
    "2019-01-22T10:28:3",
    "9999-99-99 99:99:99.",
    "201901220",
    "19991231",
    "18991231",
    "2019-13-01",
    "20191301",
    "20190100",
    "2019-01-32",
    "123456789",
    "abcdef0123456789abcdef",
    "abcdefabcdefabcdef",
    "0123456789abcdeg",
    "0123456789abcde",
    "3f1c2e3a-1b2c-4d5e-8f90-0123456789abc",
]
ASCII_PIECES = st.one_of(
    st.sampled_from(ASCII_VOLATILE),
    st.text(alphabet="0123456789abcdefABCDEFGMSTWZxyz-:.,+_ \t\n{}<>", max_size=8),
    st.sampled_from(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Jan", "Dec", ", ", " GMT", "T", "Z", "-", ":", "2019", "01"]),
)


@SETTINGS
@given(text=st.lists(ASCII_PIECES, max_size=24).map("".join))
def test_compiled_masking_of_ascii_text_is_the_regex(text):
    """wire/_normalize.c against the regex it replaces, one pass over the whole text."""
    compiled = normalize._compiled_mask_ascii
    if compiled is None:
        pytest.skip("koala_store/wire/_normalize.c did not build")
    assert compiled(text) == reference.mask_volatile(text) == normalize._mask_volatile_python(text)


def test_compiled_masking_finds_values_at_every_offset_of_its_windows():
    """The compiled scan tells sixteen positions apart at once (SSE2) and checks the text's
    first byte and last 19 one by one: each value, and values starting with each hex digit
    and day letter, at every offset of a window, after a boundary or inside a word."""
    compiled = normalize._compiled_mask_ascii
    if compiled is None:
        pytest.skip("koala_store/wire/_normalize.c did not build")
    values = ASCII_VOLATILE + [f"{c}123456789abcdef0" for c in "0123456789abcdefABCDEF"] + [f"{c}bcdef01-2345-6789-abcd-ef0123456789" for c in "0aAfF9"]
    values += ["1548160113", "2019-01-22", "Mon, 05 Jan 2019 10:28:33 GMT", "Thu, 05 Jan 2019 10:28:33 GMT"]
    for value in values:
        for fill in (" ", "z", "9", "_", "-", "G"):
            for pad in range(0, 34):
                for tail in ("", " and the rest of it.", "z"):
                    text = fill * pad + value + tail
                    assert compiled(text) == reference.mask_volatile(text), text


def test_compiled_masking_leaves_text_beyond_ascii_to_the_regex():
    compiled = normalize._compiled_mask_ascii
    if compiled is None:
        pytest.skip("koala_store/wire/_normalize.c did not build")
    assert compiled("id 1548160113 é") is None
    assert mask_volatile("id 1548160113 é") == "id <num> é"
    text = "no values here"
    assert compiled(text) is text  # unchanged text is not copied
    with pytest.raises(TypeError, match="mask_ascii"):
        compiled(b"1548160113")


@SETTINGS
@given(text=st.one_of(st.lists(ASCII_PIECES, max_size=24).map("".join), st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=40)))
def test_compiled_bucket_of_ascii_text_is_the_translate_and_hash(text):
    """wire/_normalize.c's bucket: the same hash as the bytes translate keeps, any ASCII byte."""
    compiled = normalize._compiled_bucket_ascii
    if compiled is None:
        pytest.skip("koala_store/wire/_normalize.c did not build")
    assert compiled(text, normalize._BUCKET_DROP) == normalize._bucket_python(text) == hash(text.encode().translate(None, normalize._BUCKET_DROP))


def test_compiled_bucket_of_long_text_and_beyond_ascii():
    compiled = normalize._compiled_bucket_ascii
    if compiled is None:
        pytest.skip("koala_store/wire/_normalize.c did not build")
    long = '{"sku": "SKU-1548160113", "name": "blue lamp"} ' * 2000  # beyond the stack buffer
    assert compiled(long, normalize._BUCKET_DROP) == normalize._bucket_python(long)
    assert compiled("name é", normalize._BUCKET_DROP) is None
    assert bucket_of("name é") == normalize._bucket_python("name é")
    assert compiled("abc", b"a") == hash(b"bc") and compiled("abc", b"c") == hash(b"ab")  # a new drop set is taken
    with pytest.raises(TypeError, match="bucket_ascii"):
        compiled(b"abc", b"")


@SETTINGS
@given(sql=st.text(alphabet="-/*#'x1 \n", max_size=30))
def test_compiled_comment_marker_is_the_three_scans(sql):
    compiled = normalize._compiled_comment_marker
    if compiled is None:
        pytest.skip("koala_store/wire/_normalize.c did not build")
    assert compiled(sql) is ("--" in sql or "/*" in sql or "#" in sql)
    assert compiled(sql + "é") is None


@SETTINGS
@given(query=st.text(alphabet="ab=&;%+2 é", max_size=24))
def test_query_pairs_are_parse_qsl(query):
    """The split without unquoting gives what parse_qsl gives, quoted or not."""
    from urllib.parse import parse_qsl

    assert normalize._query_pairs(query) == parse_qsl(query, keep_blank_values=True)


# ASCII SQL, which wire/_normalize.c tokenises: literals cut short (a string without its
# closing quote, a backslash last), doubled quotes, comments never closed, numbers in every
# form and next to what stops them being one.
ASCII_SQL_PIECES = st.one_of(
    st.sampled_from(["'", '"', "''", '""', "\\", "\\'", "'a''b'", "'a''", "'x", '"y""', "/*", "*/", "/* c */", "--", "-- c", "#", "\n", "/"]),
    st.sampled_from(["0x1F", "0xZ", "0x", "1.5.3", "1e5", "1e5x", "1E-5", "1e+", "1.", ".5", "$1", "a1", "_1", "12", "3.25", "-7", "x.1", "1_"]),
    st.sampled_from(["SELECT ", "INSERT INTO t VALUES ", " WHERE a = ", "(", ")", ", ", " IN (1, 2, 3)", "?"]),
    st.text(alphabet="0123456789abcdefxyzE.,'\"/*-#$_ \t\n\x0b\x1c()", max_size=8),
)


@SETTINGS
@given(sql=st.lists(ASCII_SQL_PIECES, max_size=20).map("".join), mask_literals=st.booleans())
def test_compiled_sql_text_of_ascii_sql_is_the_regex_split(sql, mask_literals):
    """wire/_normalize.c against mysql.SQL_TOKEN.split and normalize._sql_text."""
    compiled = normalize._compiled_sql_text
    if compiled is None:
        pytest.skip("koala_store/wire/_normalize.c did not build")
    expected = normalize._sql_text(mysql.SQL_TOKEN.split(sql), mask_literals=mask_literals)
    text = compiled(sql, int(mask_literals))
    assert (normalize._collapse_lists(text) if mask_literals else text) == expected
    # Buckets: the masked text buckets as the statement with its strings and comments left
    # out by the regex (the fallback where the statement is not ASCII).
    assert bucket_of(compiled(sql, 1)) == bucket_of(normalize._SQL_STRINGS_AND_COMMENTS.sub("", sql))
    assert bucket_of(compiled(sql, 0)) == bucket_of(normalize._SQL_COMMENTS_BESIDE_STRINGS.sub(r"\g<str>", sql))
    assert normalize_sql(sql, mask_literals=mask_literals) == expected == reference.normalize_sql(sql, mask_literals=mask_literals)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 'a''\\",  # unclosed after a doubled quote and a last backslash: ends at the pair
        "SELECT 'a'' b",  # unclosed after a doubled quote: ends at the pair
        "SELECT 'a b",  # unclosed, no pair: no string, its words and numbers stay tokens
        'SELECT "x\\"y" 12',  # an escaped quote inside
        "SELECT 1.5.3, 1e5x, 0x1F, 0xZ, $1, a1, 1e+, 7 /* open",
        "SELECT 1 -- to the end\nFROM t # mysql\n",
    ],
)
@pytest.mark.parametrize("mask_literals", [True, False])
def test_compiled_sql_text_at_the_edges_the_regex_backtracks_over(sql, mask_literals):
    compiled = normalize._compiled_sql_text
    if compiled is None:
        pytest.skip("koala_store/wire/_normalize.c did not build")
    text = compiled(sql, int(mask_literals))
    expected = normalize._sql_text(mysql.SQL_TOKEN.split(sql), mask_literals=mask_literals)
    assert (normalize._collapse_lists(text) if mask_literals else text) == expected
    assert bucket_of(compiled(sql, 1)) == bucket_of(normalize._SQL_STRINGS_AND_COMMENTS.sub("", sql))


def test_compiled_sql_text_leaves_sql_beyond_ascii_to_the_regex():
    compiled = normalize._compiled_sql_text
    if compiled is None:
        pytest.skip("koala_store/wire/_normalize.c did not build")
    assert compiled("SELECT 'café'", 1) is None
    assert normalize_sql("SELECT 'café', 12", mask_literals=True) == "SELECT ?, ?"
    with pytest.raises(TypeError, match="sql_text_ascii"):
        compiled(b"SELECT 1", 1)
    with pytest.raises(ValueError, match="literals=2"):
        compiled("SELECT 1", 2)  # strings dropped: no longer a form


# Masked SQL near and at its lists: the pieces normalize._SQL_LIST and _SQL_ROWS look at.
MASKED_LIST_PIECES = st.one_of(
    st.sampled_from(["(", ")", "?", ",", " ", "\t", "\x1c", "\n", "+", "x", "(?+)", "(?, ?)", "( ? , ? )", ", ", "(?)", "(?+) , (?+)"]),
    st.text(alphabet="(?+), \t\x1fa", max_size=6),
)


@SETTINGS
@given(text=st.lists(MASKED_LIST_PIECES, max_size=24).map("".join))
@example(text="VALUES (?, ?), (?,?) ,( ?\t, ? ), (?+)")
@example(text="IN (?, ?, x) AND (?,) OR (?) (? ,? ")
@example(text="(?+)(?+), , (?+) ,(?+),")
def test_compiled_list_collapse_is_the_regexes(text):
    """wire/_normalize.c's collapse_lists_ascii against normalize._SQL_LIST and _SQL_ROWS."""
    compiled = normalize._compiled_collapse_lists
    if compiled is None:
        pytest.skip("koala_store/wire/_normalize.c did not build")
    assert compiled(text) == normalize._collapse_lists_python(text)


def test_compiled_list_collapse_leaves_text_beyond_ascii_to_the_regexes():
    compiled = normalize._compiled_collapse_lists
    if compiled is None:
        pytest.skip("koala_store/wire/_normalize.c did not build")
    assert compiled("IN (?, ?) AND name = 'é'") is None
    assert normalize._collapse_lists("IN (?, ?) AND name = 'é'") == "IN (?+) AND name = 'é'"
    assert compiled("VALUES (?, ?), (?, ?)") == "VALUES (?+)"
    with pytest.raises(TypeError, match="collapse_lists_ascii"):
        compiled(b"(?, ?)")


def test_masking_a_long_insert_is_the_same():
    rows = ", ".join(
        f"({1548160113000 + i}, 'sku-{i:04x}', 'Tue, 22 Jan 2019 10:28:{i % 60:02d} GMT', {i}, '2019-01-22T10:28:33.{i:03d}Z', 'deadbeef{i:08x}')"
        for i in range(120)
    )
    sql = f"INSERT INTO t (id, sku, at, qty, ts, digest) VALUES {rows}"
    assert mask_volatile(sql) == reference.mask_volatile(sql)
    assert normalize_sql(sql, mask_literals=False) == reference.normalize_sql(sql, mask_literals=False)
    assert mask_volatile(sql).count("<num>") == 120 and mask_volatile(sql).count("<hex>") == 120


@SETTINGS
@given(sql=sqls, mask_literals=st.booleans())
def test_sql_tokens_and_normalised_sql_are_the_same(sql, mask_literals):
    assert [(m.span(), m.lastgroup) for m in mysql.SQL_TOKEN.finditer(sql)] == [(m.span(), m.lastgroup) for m in reference._SQL_TOKEN.finditer(sql)]
    assert normalize_sql(sql, mask_literals=mask_literals) == reference.normalize_sql(sql, mask_literals=mask_literals)


def test_json_bodies_written_by_orjson_only_when_the_text_is_the_same():
    # Floats are where orjson writes otherwise (1e-05 in full, 1e+16 as 1e16).
    for value in ([1e-05, 2.5e-07], {"b": 1e16, "a": 1.5}, [0.1, 123.456, -0.0], {"n": 2**63 - 1}, "é\u2028\x7f"):
        body = orjson.dumps(value)
        expected = json.dumps(jsonbody.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        request = http("POST", "/j", [("Content-Type", "application/json")], body)
        assert Normalizer(mask_volatile=False)(request).key.endswith("\n" + expected)


def test_jsonbody_parse_says_who_read_it():
    assert jsonbody.parse(b'{"a": 1}') == ({"a": 1}, True)
    assert jsonbody.parse(b"[NaN]")[1] is False and math.isnan(jsonbody.parse(b"[NaN]")[0][0])
    assert jsonbody.parse(b"12345678901234567890123") == (12345678901234567890123, False)


def same_lexemes(a: str, b: str) -> bool:
    return _lexemes(a) == _lexemes(b)


def _without_compiled_json_form(make):
    saved, normalize._compiled_canonical = normalize._compiled_canonical, None
    try:
        return make()
    finally:
        normalize._compiled_canonical = saved


def _fits_orjson(value) -> bool:
    try:
        orjson.dumps(value)
        return True
    except orjson.JSONEncodeError:
        return False


# JSON bodies as services write them: keys in any order, whitespace, escapes or not, floats
# in any spelling, keys written twice.
json_bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    json_values.map(lambda v: json.dumps(v, indent=2, ensure_ascii=True).encode()),
    json_values.map(lambda v: orjson.dumps(v) if _fits_orjson(v) else json.dumps(v).encode()),
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "é", "z"]), st.sampled_from(["1", "1E2", "-0.5e-3", "0.0005", "-0", "1e+16", "1.50", '"x"', "[]", "{}", "null"])),
        max_size=5,
    ).map(lambda kv: ("{" + ", ".join(f'"{k}": {v}' for k, v in kv) + "}").encode()),
)


@SETTINGS
@given(body=json_bodies, ctype=st.sampled_from(["application/json", "text/plain", ""]), options=OPTIONS)
def test_json_bodies_bucketed_from_their_canonical_form_keep_their_bucket(body, ctype, options):
    """A body the canonical form takes (no escape, no key twice) is bucketed from it without
    being parsed: the bucket, key and detail are the ones the parse gives."""
    if normalize._compiled_canonical is None:
        pytest.skip("koala_store/wire/_canonjson.c did not build")
    request = http("POST", "/v1/x?b=2&a=1", [("Content-Type", ctype)], body)
    new = Normalizer(**options).prepare(request)
    old = _without_compiled_json_form(lambda: Normalizer(**options).prepare(request))
    assert (new.bucket, new.key, new.detail, new.detail_bucket) == (old.bucket, old.key, old.detail, old.detail_bucket)


@SETTINGS
@given(body=json_bodies)
def test_a_plain_json_form_is_the_text_the_parse_writes(body):
    if normalize._compiled_canonical is None:
        pytest.skip("koala_store/wire/_canonjson.c did not build")
    form = normalize._plain_json_form(body)
    if form is not None:
        text, by_orjson = normalize._canonical_body(body, "application/json")
        assert form == normalize._stdlib_json(json.loads(body)) == (normalize._exact_json(text, body) if by_orjson else text)


_decimals = st.builds(
    lambda sign, whole, frac, exp: f"{sign}{whole}{'.' + frac if frac else ''}{exp}",
    st.sampled_from(["", "-"]),
    st.one_of(st.just("0"), st.integers(1, 10**18).map(str)),
    st.one_of(st.just(""), st.text(alphabet="0123456789", min_size=1, max_size=18)),
    st.one_of(st.just(""), st.builds(lambda e, n: f"{e}{n}", st.sampled_from(["e", "E", "e+", "e-"]), st.integers(0, 400))),
)


@SETTINGS
@given(token=st.one_of(_decimals, st.floats(allow_nan=False, allow_infinity=False).map(repr)))
@example(token="0.00001")  # repr() writes 1e-05
@example(token="0.00012")
@example(token="0.0001")
@example(token="1.50")
@example(token="0.1234567890123456")
@example(token="1234567890123456.0")
@example(token="12345678901234567.0")
@example(token="-0")
def test_plain_json_takes_a_number_only_as_python_writes_it(token):
    if normalize._compiled_canonical is None:
        pytest.skip("koala_store/wire/_canonjson.c did not build")
    value = json.loads(token)
    python = json.dumps(value)  # what the key shows: repr() for floats, str() for integers
    assert (normalize._compiled_canonical(f"[{token}]".encode(), True) is not None) == (python == token and python not in ("Infinity", "-Infinity"))


def test_the_canonical_form_is_taken_only_for_plain_json():
    if normalize._compiled_canonical is None:
        pytest.skip("koala_store/wire/_canonjson.c did not build")
    assert normalize._plain_json_form(b'{"b": [100.0, 1e-05, "x"], "a": null}') == '{"a":null,"b":[100.0,1e-05,"x"]}'
    for refused in (b'{"a": "\\n"}', b'{"a": 1, "a": 2}', b'"top"', b'{"a": "\xff"}', b"[NaN]", b"", b"[1E2]", b"[1.50]", b"[-0]"):
        assert normalize._plain_json_form(refused) is None, refused


def test_the_compiled_parts_are_in_use_where_they_were_built():
    """A compiled part that fails to import (a circular import, a renamed module) silently
    leaves the slow Python code in place: where the module was built, it must be used."""
    import importlib.util

    from koala_store.diff import body
    from koala_store.query import text
    from koala_store.wire import http1
    from matchers import chunk_scan, fuzzy, sim

    used = {
        "matchers._chunkscan": chunk_scan.COMPILED,
        "matchers._simlex": sim._compiled_lex_ascii,
        "matchers._fuzzylex": fuzzy._compiled_encode_ascii,
        "koala_store.wire._canonjson": body._canonical is not None and normalize._compiled_canonical is not None,
        "koala_store.wire._http1head": http1._parse_head is not http1._split_head
        and http1.looks_like_request is not http1._looks_like_request
        and http1.status_code is not http1._status_code,
        "koala_store.wire._normalize": None
        not in (
            normalize._compiled_mask_ascii,
            normalize._compiled_sql_text,
            normalize._compiled_collapse_lists,
            normalize._compiled_bucket_ascii,
            normalize._compiled_comment_marker,
        ),
        "koala_store.query._terms": text._compiled_ascii_terms is not None,
    }
    for name, in_use in used.items():
        if importlib.util.find_spec(name) is not None:
            assert in_use, f"{name} is built but not used"


@SETTINGS
@given(first=requests, second=requests, options=OPTIONS)
def test_requests_whose_keys_have_the_same_lexemes_share_a_bucket(first, second, options):
    normalizer = Normalizer(**options)
    a, b = normalizer.prepare(first), normalizer.prepare(second)
    if same_lexemes(a.key, b.key):
        assert a.bucket == b.bucket
    if same_lexemes(a.detail, b.detail):
        assert a.detail_bucket == b.detail_bucket


# Swaps normalisation may make invisible: values of one mask, blanks (the lexer skips all
# of Python's), SQL comments and literals.
ALIKE = [
    ["1548160113", "1563000000123", "<num>", "٣٣٣٣٣٣٣٣٣٣", "x"],
    ["2019-01-22T10:28:33.120Z", "2019-07-13 18:40:00+08:00", "Tue, 22 Jan 2019 10:28:33 GMT", "<time>"],
    ["3f1c2e3a-1b2c-4d5e-8f90-0123456789ab", "abcdefab-abcd-abcd-abcd-abcdefabcdef", "<uuid>"],
    [" ", "  ", "\t", "\n", "\r\n", "\xa0", "\u2003", "\x1c", ""],
    ["", "/* c */", "-- c\n", "# c\n", " /*x*/ "],
    ["'a'", "'b''c'", "42", "0x1F", "1e-5", '"q"'],
]
CLASSES = st.integers(0, len(ALIKE) - 1).flatmap(lambda k: st.tuples(st.just(k), st.integers(0, len(ALIKE[k]) - 1)))
SHAPES = st.lists(st.one_of(CLASSES, PIECES), min_size=1, max_size=12)


def build(protocol: str, shape: list, pick) -> bytes:
    text = "".join(pick(p) if isinstance(p, tuple) else p for p in shape)
    data = text.encode("utf-8", "surrogatepass")
    if protocol == "http":
        path = re.sub(r"[\s?#]", "", text) or "p"
        query = re.sub(r"[\s#]", "", text)
        return http("POST", f"/{path}?q={query}", [("Content-Type", "application/json")], json.dumps({"v": text, "w": [text]}).encode())
    if protocol == "redis":
        return redis(b"SET", b"k:" + data, data)
    if protocol == "mysql":
        return mysql_query("SELECT a FROM t WHERE " + text.encode("utf-8", "replace").decode("utf-8"))
    return text.encode("latin-1", "replace")


@SETTINGS
@given(protocol=st.sampled_from(["http", "redis", "mysql", "unknown"]), shape=SHAPES, data=st.data(), options=OPTIONS)
def test_drifted_requests_share_their_buckets(protocol, shape, data, options):
    # The same request twice, the second with some pieces swapped for others of their class:
    # when the keys (details) still have the same lexemes, the buckets must agree.
    drift = {i: data.draw(st.integers(0, len(ALIKE[p[0]]) - 1)) for i, p in enumerate(shape) if isinstance(p, tuple)}
    first = build(protocol, shape, lambda p: ALIKE[p[0]][p[1]])
    shape2 = [(p[0], drift[i]) if isinstance(p, tuple) else p for i, p in enumerate(shape)]
    second = build(protocol, shape2, lambda p: ALIKE[p[0]][p[1]])
    normalizer = Normalizer(**options)
    a, b = normalizer.prepare(first), normalizer.prepare(second)
    if same_lexemes(a.key, b.key):
        assert a.bucket == b.bucket
    if same_lexemes(a.detail, b.detail):
        assert a.detail_bucket == b.detail_bucket


def test_buckets_tell_apart_what_masking_keeps():
    assert bucket_of("GET /v1/user") != bucket_of("GET /v1/users")
    assert bucket_of("uid=1548160113") == bucket_of("uid=1563000000")  # masked alike
    sql = Normalizer().prepare(mysql_query("SELECT name FROM user WHERE uid = 42 AND s = 'x'"))
    assert sql.bucket == Normalizer().prepare(mysql_query("SELECT  name FROM user WHERE uid = 7 AND s = 'yy' -- c")).bucket
    assert sql.bucket != Normalizer().prepare(mysql_query("SELECT mail FROM user WHERE uid = 42")).bucket
