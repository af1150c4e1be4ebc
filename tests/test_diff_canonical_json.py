"""The key-order fast path (koala_store/wire/_canonjson.c, body.same_canonical_json): it may
only say "equal" when the object diff finds nothing, and it must say so for the same JSON
with its keys in another order and other whitespace."""

from __future__ import annotations

import json
import random

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_diff_properties import PROPERTY, documents, response, shuffled

from koala_store import diff
from koala_store.diff import body

pytestmark = pytest.mark.skipif(body._canonical is None, reason="koala_store/wire/_canonjson.c did not build")


def canonical(data: bytes) -> bytes | None:
    from koala_store.wire._canonjson import canonical as compiled

    return compiled(data)


@PROPERTY
@given(documents, st.randoms(use_true_random=False))
def test_the_same_json_in_another_key_order_is_equal_without_parsing(doc, rng):
    recorded = orjson.dumps(doc)
    if recorded[:1] not in b"{[":
        return
    # orjson on both sides: json.dumps writes some floats otherwise (1e-08 vs 1e-8), which
    # the form keeps apart as written and the object diff settles.
    replayed = orjson.dumps(shuffled(doc, rng), option=rng.choice([0, orjson.OPT_INDENT_2]))
    if any(orjson.dumps(k) != b'"' + k.encode() + b'"' for k in _keys(doc)):  # escaped keys are left to the parsers
        return
    assert body.same_canonical_json(recorded, b" \n" + replayed + b"\r\n")
    assert canonical(recorded) == orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)  # byte order is code-point order


def _keys(value) -> list[str]:
    if isinstance(value, dict):
        return list(value) + [k for v in value.values() for k in _keys(v)]
    if isinstance(value, list):
        return [k for v in value for k in _keys(v)]
    return []


@PROPERTY
@given(st.binary(max_size=40), st.sampled_from([b"[", b"{", b'{"k":', b"[1,"]))
def test_the_form_is_given_only_for_strict_json(tail, head):
    text = head + tail
    if canonical(text) is not None:
        json.loads(text)  # strict JSON: the standard library reads it too (no NaN, no trailing bytes)


def test_duplicate_keys_keep_their_order_so_the_last_one_still_wins():
    assert canonical(b'{"b":1,"a":2,"a":3}') == b'{"a":2,"a":3,"b":1}'
    assert not body.same_canonical_json(b'{"a":2,"a":3}', b'{"a":3,"a":2}')  # {"a":3} vs {"a":2}
    assert diff.compare_responses(response(b'{"a":2,"a":3}'), response(b'{"a":3,"a":2}')) != []


def test_what_the_form_leaves_to_the_parsers():
    assert canonical(b'{"\\u0061":1}') is None  # an escaped key: "a" and "\u0061" are one key
    assert not body.same_canonical_json(b'{"\\u0061":1,"a":2}', b'{"a":2,"\\u0061":1}')
    assert diff.compare_responses(response(b'{"\\u0061":1,"a":2}'), response(b'{"a":2,"\\u0061":1}')) != []
    for text in [
        b"[NaN]",
        b"[1,]",
        b"[01]",
        b"[1.]",
        b"[.5]",
        b"[1e]",
        b'["\x01"]',
        b'["\\x"]',
        b'["\\u12"]',
        b"[1] x",
        b"[1]\x0c",
        b"[tru]",
        b'{"a" 1}',
        b'{"a":1,}',
    ]:
        assert canonical(text) is None, text
    assert canonical(b'"text"') is None and canonical(b"1") is None  # only objects and arrays
    deep = b"[" * 201 + b"]" * 201
    assert canonical(deep) is None and canonical(b"[" * 200 + b"]" * 200) is not None
    nested = b'{"b":1,"a":' * 199 + b"{}" + b"}" * 199  # objects at every level, each sorted
    assert canonical(nested) == b'{"a":' * 199 + b"{}" + b',"b":1}' * 199
    # Not UTF-8: the parsers refuse it, so the bodies are compared as bytes.
    assert not body.same_canonical_json(b'{"b":"\xc0\xaf","a":1}', b'{"a":1,"b":"\xc0\xaf"}')


def test_tokens_stay_as_written():
    assert not body.same_canonical_json(b"[true]", b"[1]")
    assert not body.same_canonical_json(b"[1]", b"[1.0]")  # the value rules decide that, later
    assert not body.same_canonical_json(b"[18446744073709551617]", b"[18446744073709551616]")
    assert not body.same_canonical_json(b'{"a":"\\u00e9"}', '{"a":"é"}'.encode())  # parsed: equal
    assert diff.compare_responses(response(b'{"b":1,"a":"\\u00e9"}'), response('{"a":"é","b":1}'.encode())) == []
    assert canonical(b' {"b" : [ 1 , 2.50e+3 ] ,\n"a":"x\\n\\"y"} ') == b'{"a":"x\\n\\"y","b":[1,2.50e+3]}'


def test_a_large_reordered_body_is_equal_and_one_change_is_found():
    rng = random.Random(3)
    doc = {f"k{i}": {"id": i, "tags": [f"t{j}" for j in range(5)], "n": rng.random()} for i in range(300)}  # 300 members: the growth path
    recorded = orjson.dumps(doc)
    replayed = json.dumps(shuffled(doc, rng), indent=2).encode()
    assert body.same_canonical_json(recorded, replayed)
    assert diff.compare_responses(response(recorded), response(replayed)) == []
    doc["k7"]["id"] = -1
    changed = json.dumps(shuffled(doc, rng)).encode()
    assert not body.same_canonical_json(recorded, changed)
    found = diff.compare_responses(response(recorded), response(changed))
    assert [(d.path, d.expected, d.actual) for d in found] == [("body.k7.id", 7, -1)]


def test_strings_are_scanned_right_whatever_the_position_of_their_special_bytes():
    """The scan reads strings eight bytes at a time: a quote, an escape, a control byte or a
    multi-byte character at any offset must be seen where it is."""
    for size in range(0, 20):
        for at in range(size + 1):
            text = "a" * at + "é𐀀" + "b" * (size - at)
            doc = {"z": text, "k": "x" * at + '"\\' + "y" * size}
            recorded, replayed = orjson.dumps(doc), orjson.dumps(dict(reversed(doc.items())))
            assert canonical(recorded) == orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
            assert body.same_canonical_json(recorded, replayed)
            raw = b'["' + b"c" * at + b"\x01" + b"d" * size + b'"]'
            assert canonical(raw) is None  # a raw control byte is not JSON


def same_tokens(expected: bytes, actual: bytes) -> bool:
    from koala_store.wire._canonjson import same_tokens as compiled

    return compiled(expected, actual)


@PROPERTY
@given(documents, st.sampled_from([0, orjson.OPT_INDENT_2]), st.sampled_from([b"", b" ", b"\n\t\r "]))
def test_the_same_tokens_in_the_same_order_match_in_place(doc, option, pad):
    recorded = orjson.dumps(doc)
    if recorded[:1] not in b"{[" or any(orjson.dumps(k) != b'"' + k.encode() + b'"' for k in _keys(doc)):
        return
    replayed = pad + orjson.dumps(doc, option=option) + pad
    assert same_tokens(recorded, replayed) and same_tokens(replayed, recorded)


@PROPERTY
@given(st.binary(max_size=40), st.binary(max_size=40), st.sampled_from([b"[", b"{", b'{"k":', b"[1,"]))
def test_matching_tokens_mean_both_are_json_with_one_value(tail_a, tail_b, head):
    a, b = head + tail_a, head + tail_b
    if same_tokens(a, b):
        assert json.loads(a) == json.loads(b)  # strict JSON on both sides (no NaN, no trailing bytes)
        assert canonical(a) == canonical(b) is not None


def test_what_does_not_match_in_place():
    assert same_tokens(b'{"a" : [1 ,\n 2.5e+3, "x y"]}', b'{"a":[1,2.5e+3,"x y"]}')
    for a, b in [
        (b"[1]", b"[12]"),  # a token that is a prefix of the other's
        (b"[12]", b"[1 2]"),  # whitespace inside a token
        (b"[true]", b"[truex]"),
        (b'["a b"]', b'["ab"]'),  # whitespace inside a string is the string's
        (b"[1]", b"[1] x"),  # trailing bytes on either side
        (b"[1] x", b"[1]"),
        (b"[1,2", b"[1,2"),  # neither is JSON
        (b"[1]", b"[1]\x0c"),  # form feed is not JSON whitespace
        (b'{"a":1,"b":2}', b'{"b":2,"a":1}'),  # key order: the forms decide
        (b'{"\\u0061":1}', b'{"\\u0061":1}'),  # escaped keys: left to the parsers, as in the form
        (b"[1,2]", b"[1,2,3]"),
        (b"[1,2,3]", b"[1,2]"),
        (b"[" * 201 + b"]" * 201, b"[" * 201 + b"]" * 201),  # deeper than MAX_DEPTH
    ]:
        assert not same_tokens(a, b), (a, b)
    assert same_tokens(b"[" * 200 + b"]" * 200, b"[" * 200 + b"]" * 200)
    # Not UTF-8: the tokens match, but the parsers refuse both, so the diff reads them as bytes.
    assert same_tokens(b'["\xc0\xaf"]', b'[ "\xc0\xaf" ]') and not body.same_canonical_json(b'["\xc0\xaf"]', b'[ "\xc0\xaf" ]')
