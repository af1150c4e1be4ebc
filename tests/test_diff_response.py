"""koala_store.diff on inbound responses: status, headers, JSON/text/bytes bodies, the value
rules and every --ignore form. Real HTTP bytes throughout."""

from __future__ import annotations

import gzip
import json

import orjson
import pytest
from factories import http_response

from koala_store import diff
from koala_store.diff import DiffOptions, DiffOptionsError, options_from_cli
from koala_store.errors import KoalaError


def response(body: bytes | dict | list, *, status: int = 200, headers: list[tuple[str, str]] | None = None, content_type: str = "application/json") -> bytes:
    if isinstance(body, (dict, list)):
        body = orjson.dumps(body)
    reason = {200: "OK", 404: "Not Found", 500: "Internal Server Error"}.get(status, "OK")
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers or []]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(body: bytes, size: int = 7, headers: list[tuple[str, str]] | None = None) -> bytes:
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size))
    lines = ["HTTP/1.1 200 OK", "Content-Type: application/json", "Transfer-Encoding: chunked", *(f"{k}: {v}" for k, v in headers or [])]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + chunks + b"0\r\n\r\n"


def paths(diffs: list[diff.Difference]) -> list[str]:
    return [d.path for d in diffs]


def compare(expected, actual, *ignore: str, **options) -> list[diff.Difference]:
    opts = options_from_cli(ignore, **options) if ignore or options else None
    return diff.compare_responses(
        expected if isinstance(expected, bytes) else response(expected), actual if isinstance(actual, bytes) else response(actual), opts
    )


USER = {
    "errno": 0,
    "data": {
        "user": {"uid": 42, "name": "alice", "tier": "gold", "updated_at": 1763780400, "score": 0.1 + 0.2},
        "items": [{"id": 1, "sku": "SKU-1", "price": 9.99}, {"id": 2, "sku": "SKU-2", "price": 5}],
    },
    "served_at": "2025-11-22T03:00:00Z",
}


def changed(doc: dict, path: str, value) -> dict:
    new = json.loads(json.dumps(doc))
    *parents, last = path.split(".")
    node = new
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    node[int(last) if last.isdigit() else last] = value
    return new


# --- status and headers ---------------------------------------------------------------


def test_identical_bytes_have_no_differences():
    raw = response(USER)
    assert diff.compare_responses(raw, bytes(raw)) == []


def test_status_change_is_one_difference_at_status():
    (d,) = compare(response(USER), response(USER, status=500))
    assert (d.path, d.kind, d.expected, d.actual) == ("status", "changed", 200, 500)
    assert "Internal Server Error" in d.note


def test_default_ignored_headers_do_not_count():
    recorded = response(USER, headers=[("Date", "Sat, 22 Nov 2025 03:00:00 GMT"), ("Server", "nginx/1.24"), ("X-Request-Id", "a1"), ("ETag", '"v1"')])
    replayed = response(
        USER,
        headers=[("date", "Sun, 23 Nov 2025 09:00:00 GMT"), ("Server", "nginx/1.25"), ("X-Request-Id", "b2"), ("ETag", '"v2"'), ("traceparent", "00-ab-cd-01")],
    )
    assert compare(recorded, replayed) == []
    assert set(diff.DEFAULT_IGNORED_HEADERS) >= {"date", "server", "content-length", "transfer-encoding", "x-request-id", "etag", "traceparent"}


def test_other_headers_are_compared_case_insensitively():
    recorded = response(USER, headers=[("Cache-Control", "no-store"), ("X-Region", "cn")])
    replayed = response(USER, headers=[("cache-control", "max-age=60"), ("X-Cache", "HIT")])
    diffs = compare(recorded, replayed)
    assert [(d.path, d.kind) for d in diffs] == [("headers.cache-control", "changed"), ("headers.x-cache", "added"), ("headers.x-region", "removed")]
    assert diffs[0].expected == "no-store" and diffs[0].actual == "max-age=60"


def test_content_type_spelling_does_not_count_but_a_new_type_does():
    assert compare(response(USER, content_type="application/json; charset=UTF-8"), response(USER, content_type="application/json;charset=utf-8")) == []
    (d,) = compare(response(USER), response(USER, content_type="text/plain"))
    assert d.path == "headers.content-type"


def test_headers_can_be_added_to_and_taken_out_of_the_defaults():
    recorded = response(USER, headers=[("X-Cache", "MISS"), ("Date", "Sat, 22 Nov 2025 03:00:00 GMT")])
    replayed = response(USER, headers=[("X-Cache", "HIT"), ("Date", "Sun, 23 Nov 2025 03:00:00 GMT")])
    assert compare(recorded, replayed, ignore_headers=["X-Cache"]) == []
    assert paths(compare(recorded, replayed, compare_headers=["Date"])) == ["headers.date", "headers.x-cache"]
    assert compare(recorded, replayed, "headers.X-Cache") == []  # an --ignore path, any case
    assert compare(recorded, replayed, "x-cache") == []  # a bare name reaches headers too


def test_set_cookie_compares_names_and_flags_not_values_or_expiry():
    recorded = response(USER, headers=[("Set-Cookie", "sid=abc; Path=/; HttpOnly; Expires=Sat, 22 Nov 2025 03:00:00 GMT")])
    same_cookie = response(USER, headers=[("Set-Cookie", "sid=xyz; Path=/; HttpOnly; Expires=Sun, 23 Nov 2025 03:00:00 GMT")])
    assert compare(recorded, same_cookie) == []
    lost_flag = response(USER, headers=[("Set-Cookie", "sid=xyz; Path=/")])
    (d,) = compare(recorded, lost_flag)
    assert (d.path, d.kind) == ("headers.set-cookie.sid", "changed")
    new_cookie = response(USER, headers=[("Set-Cookie", "sid=abc; Path=/; HttpOnly"), ("Set-Cookie", "ab_test=b; Path=/")])
    assert [(d.path, d.kind) for d in compare(recorded, new_cookie)] == [("headers.set-cookie.ab_test", "added")]


# --- JSON bodies ------------------------------------------------------------------------


def test_json_scalar_change_missing_and_added_fields():
    replayed = changed(USER, "data.user.tier", "silver")
    del replayed["data"]["user"]["name"]
    replayed["data"]["user"]["vip"] = True
    diffs = compare(USER, replayed)
    assert [(d.path, d.kind, d.expected, d.actual) for d in diffs] == [
        ("body.data.user.name", "removed", "alice", None),
        ("body.data.user.tier", "changed", "gold", "silver"),
        ("body.data.user.vip", "added", None, True),
    ]


def test_json_type_changes_tell_true_from_1_and_numbers_from_strings():
    diffs = compare({"ok": True, "n": 1, "id": 7}, {"ok": 1, "n": 1.0, "id": "7"})
    assert [(d.path, d.kind) for d in diffs] == [("body.id", "type_changed"), ("body.ok", "type_changed")]


def test_a_number_changing_type_does_not_relabel_the_type_changes_reported_after_it():
    # deepdiff reports 1 -> 1.5 and null -> false in one list; the first is a change of value,
    # the second still a change of JSON type, whichever deepdiff lists first.
    for expected, actual in (({"a": 1, "b": None}, {"a": 1.5, "b": False}), ({"b": None, "a": 1}, {"b": False, "a": 1.5})):
        diffs = compare(expected, actual)
        assert [(d.path, d.kind) for d in diffs] == [("body.a", "changed"), ("body.b", "type_changed")]


def test_key_order_and_whitespace_do_not_count():
    pretty = json.dumps(dict(reversed(list(USER.items()))), indent=2).encode()
    assert compare(USER, response(pretty)) == []


def test_array_item_changed_added_and_removed():
    replayed = changed(USER, "data.items.1.price", 6)
    assert [(d.path, d.expected, d.actual) for d in compare(USER, replayed)] == [("body.data.items[1].price", 5, 6)]
    longer = json.loads(json.dumps(USER))
    longer["data"]["items"].append({"id": 3, "sku": "SKU-3", "price": 1})
    (d,) = compare(USER, longer)
    assert (d.path, d.kind, d.actual) == ("body.data.items[2]", "added", {"id": 3, "sku": "SKU-3", "price": 1})
    assert [(d.path, d.kind) for d in compare(longer, USER)] == [("body.data.items[2]", "removed")]


def test_scalar_arrays_are_aligned_by_deepdiff():
    diffs = compare({"tags": ["a", "b", "c", "d"]}, {"tags": ["a", "c", "d"]})
    assert [(d.path, d.kind, d.expected) for d in diffs] == [("body.tags[1]", "removed", "b")]


def test_ignore_order_compares_arrays_as_multisets():
    shuffled = json.loads(json.dumps(USER))
    shuffled["data"]["items"].reverse()
    assert paths(compare(USER, shuffled)) == [
        "body.data.items[0].id",
        "body.data.items[0].price",
        "body.data.items[0].sku",
        "body.data.items[1].id",
        "body.data.items[1].price",
        "body.data.items[1].sku",
    ]
    assert compare(USER, shuffled, ignore_order=True) == []
    shuffled["data"]["items"][0]["price"] = 7
    (d,) = compare(USER, shuffled, ignore_order=True)
    assert (d.kind, d.expected, d.actual) == ("changed", 5, 7)


# --- value rules ------------------------------------------------------------------------


def test_floats_are_rounded_to_10_places_by_default():
    assert compare({"x": 0.3}, {"x": 0.1 + 0.2}) == []
    assert compare({"x": 1.00000000001}, {"x": 1.00000000002}) == []  # equal at 10 places
    (d,) = compare({"x": 1.0000000001}, {"x": 1.0000000002})
    assert d.path == "body.x"
    assert compare({"x": 1.0000000001}, {"x": 1.0000000002}, float_places=None) != []
    assert compare({"x": 1.5}, {"x": 1.5004}, float_tolerance=0.001) == []
    assert compare({"x": 1.5}, {"x": 1.502}, float_tolerance=0.001) != []


def test_int_and_float_of_equal_value_are_equal():
    assert compare({"n": 1}, {"n": 1.0}) == []
    (d,) = compare({"n": 1}, {"n": 1.5})
    assert d.kind == "changed"


@pytest.mark.parametrize(
    "recorded, replayed, equal",
    [
        (1763780400, 1763780519, True),  # 119 s apart
        (1763780400, 1763780520, False),  # 120 s: rdebug's window is strict
        (1763780400000, 1763780519999, True),  # milliseconds
        (1763780400000, 1763780520000, False),
        (1763780400, 1763780400100, False),  # seconds against ms: not the same unit
        (120, 200, False),  # small integers are not timestamps
        ("2025-11-22T03:00:00Z", "2025-11-22T03:01:59.5Z", True),
        ("2025-11-22T03:00:00Z", "2025-11-22T05:00:00+02:00", True),  # the same instant
        ("2025-11-22 03:00:00", "2025-11-22T03:05:00", False),
        ("2025-11-22", "2025-11-23", False),  # dates are not timestamps
    ],
)
def test_timestamp_window(recorded, replayed, equal):
    assert (compare({"t": recorded}, {"t": replayed}) == []) is equal


def test_timestamp_window_is_configurable_and_a_clock_offset_covers_old_recordings():
    assert compare({"t": 1763780400}, {"t": 1763780500}, timestamp_window_s=0) != []
    assert compare({"t": 1763780400}, {"t": 1763781000}, timestamp_window_s=3600) == []
    day = 86400
    # Replayed a day later: served_at moved with the clock, created_at came from the mock.
    recorded = {"served_at": 1763780400, "created_at": 1700000000}
    assert compare(recorded, {"served_at": 1763780400 + day + 3, "created_at": 1700000000}, clock_offset_s=day) == []
    assert compare(recorded, {"served_at": 1763780400 + day + 3, "created_at": 1700000000}) != []


# --- --ignore forms -----------------------------------------------------------------------


def test_ignore_a_key_name_at_any_depth():
    replayed = changed(changed(USER, "data.user.updated_at", 1), "data.items.0.id", 99)
    replayed["served_at"] = "never"
    assert paths(compare(USER, replayed, "served_at", "updated_at")) == ["body.data.items[0].id"]
    assert compare(USER, replayed, "served_at", "updated_at", "id") == []


def test_a_key_name_never_matches_a_root():
    recorded, replayed = response({"status": "ok"}), response({"status": "ok"}, status=500)
    assert paths(compare(recorded, replayed, "status")) == ["status"]
    assert compare(response({"status": "ok"}), response({"status": "fail"}), "status") == []
    assert compare(recorded, replayed, "re:status") == []


def test_ignore_a_dotted_path_and_everything_below_it():
    replayed = changed(changed(USER, "data.user.tier", "x"), "data.user.name", "bob")
    assert paths(compare(USER, replayed, "body.data.user.tier")) == ["body.data.user.name"]
    assert compare(USER, replayed, "body.data.user") == []
    assert compare(USER, replayed, "body.*.user") == []
    assert compare(USER, replayed, "body.**.tier", "body.**.name") == []


def test_ignore_array_wildcards():
    replayed = changed(changed(USER, "data.items.0.id", 10), "data.items.1.id", 20)
    assert compare(USER, replayed, "body.data.items[*].id") == []
    assert paths(compare(USER, replayed, "body.data.items[0].id")) == ["body.data.items[1].id"]


def test_ignore_paths_inside_arrays_handed_to_deepdiff_whole():
    longer = json.loads(json.dumps(USER))
    longer["data"]["items"].insert(0, {"id": 0, "sku": "SKU-1", "price": 9.99})
    for item in longer["data"]["items"]:
        item["id"] += 100
    # With the ids ignored, the first item is equal and the arrays differ by one item.
    diffs = compare(USER, longer, "body.data.items[*].id")
    assert [(d.path, d.kind) for d in diffs] == [
        ("body.data.items[1].price", "changed"),
        ("body.data.items[1].sku", "changed"),
        ("body.data.items[2]", "added"),
    ]


def test_ignore_regexes_match_whole_paths_or_ancestors():
    replayed = changed(changed(USER, "data.items.0.price", 1), "data.user.tier", "x")
    assert paths(compare(USER, replayed, r"re:body\.data\.items\[\d+\]\.price")) == ["body.data.user.tier"]
    assert paths(compare(USER, replayed, r"re:body\.data\.user")) == ["body.data.items[0].price"]
    assert paths(compare(USER, replayed, r"re:price")) == ["body.data.items[0].price", "body.data.user.tier"]  # full match only


def test_odd_keys_are_quoted_in_paths_and_patterns():
    (d,) = compare({"a.b": 1, "x y": {"": 2}}, {"a.b": 2, "x y": {"": 2}})
    assert d.path == 'body["a.b"]'
    (d,) = compare({"x y": {"": 1}}, {"x y": {"": 2}})
    assert d.path == 'body["x y"][""]'
    assert compare({"a.b": 1}, {"a.b": 2}, 'body["a.b"]') == []
    assert diff.parse_path(d.path) == ("body", "x y", "")


@pytest.mark.parametrize(
    "entry, fragment",
    [
        ("re:body.(", "not a valid regular expression"),
        ("re:[", "not a valid regular expression"),
        ("user.updated_at", "write body.user.updated_at"),
        ("body..x", "not a valid path"),
        ("body.items[x]", "not a valid path"),
        ("", "is empty"),
    ],
)
def test_bad_ignore_entries_raise_one_clear_error(entry, fragment):
    with pytest.raises(DiffOptionsError) as info:
        options_from_cli([entry])
    message = str(info.value)
    assert fragment in message and repr(entry.strip()) in message
    assert isinstance(info.value, KoalaError)


def test_bad_options_raise_at_compare_time_too():
    with pytest.raises(DiffOptionsError, match="float_places"):
        diff.compare_responses(response(USER), response({}), DiffOptions(float_places=-2))
    with pytest.raises(DiffOptionsError, match="timestamp_window_s"):
        options_from_cli(timestamp_window_s=float("nan"))
    with pytest.raises(DiffOptionsError, match="ignore-header"):
        options_from_cli(ignore_headers=["bad header"])


def test_options_changed_in_place_are_compiled_again():
    # compile_options knows the options it compiled last by identity: a list changed in place
    # (the struct is frozen, its lists are not) must not keep the old rules.
    options = options_from_cli()
    recorded, replayed = response({"a": 1, "b": 2}), response({"a": 1, "b": 3})
    assert paths(diff.compare_responses(recorded, replayed, options)) == ["body.b"]
    options.ignore.append("b")
    assert diff.compare_responses(recorded, replayed, options) == []
    options.ignore[0] = "a"
    assert paths(diff.compare_responses(recorded, replayed, options)) == ["body.b"]
    headers = [("X-Cache", "MISS")], [("X-Cache", "HIT")]
    assert paths(diff.compare_responses(response(USER, headers=headers[0]), response(USER, headers=headers[1]), options)) == ["headers.x-cache"]
    options.ignored_headers.append("x-cache")
    assert diff.compare_responses(response(USER, headers=headers[0]), response(USER, headers=headers[1]), options) == []
    with pytest.raises(DiffOptionsError, match="empty"):
        options.ignore.append(" ")
        diff.compare_responses(recorded, replayed, options)


def test_options_round_trip_through_json():
    options = options_from_cli(["served_at", "re:body\\.x"], ignore_order=True)
    assert msgspec_roundtrip(options) == options


def msgspec_roundtrip(options: DiffOptions) -> DiffOptions:
    import msgspec

    return msgspec.json.decode(msgspec.json.encode(options), type=DiffOptions)


# --- body framing and non-JSON bodies ------------------------------------------------------


def test_jsonp_is_unwrapped():
    recorded = response(b"cb(" + orjson.dumps(USER) + b");", content_type="application/javascript")
    assert compare(recorded, response(b"cb(" + json.dumps(USER, indent=1).encode() + b")", content_type="application/javascript")) == []
    (d,) = compare(recorded, response(b"cb(" + orjson.dumps(changed(USER, "errno", 1)) + b");", content_type="application/javascript"))
    assert d.path == "body.errno"
    (d,) = compare(recorded, response(USER, content_type="application/javascript"))  # the wrapper went away
    assert (d.path, d.expected, d.actual) == ("body", "cb", None)


def test_chunked_bodies_are_decoded():
    body = orjson.dumps(USER)
    assert compare(response(USER), chunked(body)) == []
    assert compare(chunked(body, 5), chunked(body, 11)) == []
    (d,) = compare(chunked(body), chunked(orjson.dumps(changed(USER, "errno", 3))))
    assert (d.path, d.expected, d.actual) == ("body.errno", 0, 3)


def test_gzip_bodies_are_decoded():
    body = orjson.dumps(USER)
    zipped = response(gzip.compress(body), headers=[("Content-Encoding", "gzip")])
    assert compare(response(body, headers=[("Content-Encoding", "gzip")]), zipped) == []  # one side recorded plain: same body
    (d,) = compare(zipped, response(gzip.compress(orjson.dumps(changed(USER, "errno", 2))), headers=[("Content-Encoding", "gzip")]))
    assert d.path == "body.errno"


def test_text_bodies_differ_once_with_an_excerpt_and_position():
    recorded = response(b"<html>\n<p>Hello alice</p>\n</html>", content_type="text/html")
    replayed = response(b"<html>\n<p>Hello bob</p>\n</html>", content_type="text/html")
    (d,) = compare(recorded, replayed)
    assert (d.path, d.kind) == ("body", "changed")
    assert d.expected.startswith("<html>") and "bob" in d.actual
    assert "line 2, column 10" in d.note


def test_long_text_is_cut_around_the_first_difference():
    text = "".join(f"line {i}\n" for i in range(2000)).encode()
    (d,) = compare(response(text, content_type="text/plain"), response(text.replace(b"line 1500\n", b"LINE 1500\n"), content_type="text/plain"))
    assert len(d.expected) < 1200 and "line 1500" in d.expected and "LINE 1500" in d.actual
    assert "line 1501" in d.note


def test_binary_bodies_show_koala_escaped_bytes():
    (d,) = compare(
        response(b"\x00\x01binary\xff", content_type="application/octet-stream"), response(b"\x00\x02binary\xff", content_type="application/octet-stream")
    )
    assert (d.path, d.expected, d.actual) == ("body", "\\x00\\x01binary\\xff", "\\x00\\x02binary\\xff")
    assert "byte 1" in d.note


def test_json_against_an_error_page_is_a_type_change():
    (status, d) = compare(response(USER), response(b"<h1>502 Bad Gateway</h1>", status=500, content_type="text/html"))[::2]
    assert status.path == "status"
    assert (d.path, d.kind) == ("body", "type_changed")
    assert "only the expected body is JSON" in d.note


def test_non_http_responses_are_equal_or_one_difference():
    assert diff.compare_responses(b"+OK\r\n", b"+OK\r\n") == []
    (d,) = diff.compare_responses(b"$5\r\nalice\r\n", b"$3\r\nbob\r\n")
    assert (d.path, d.kind) == ("response", "changed")
    (d,) = diff.compare_responses(response(USER), b"")  # the target answered nothing
    assert d.path == "response" and d.actual == ""
    assert diff.compare_responses(b"\x00\x01", b"\x00\x02", options_from_cli(["re:response"])) == []


def test_huge_values_are_truncated():
    big = {"blob": "x" * 50_000, "list": list(range(5000))}
    (blob, lst) = compare({"blob": "y", "list": []}, big)
    assert blob.actual.endswith("(50000 characters)") and len(blob.actual) < 1100
    # An array that was empty is one difference, and its new value is cut short.
    assert (lst.path, lst.kind, lst.expected, lst.note) == ("body.list", "changed", [], "0 items -> 5000 items")
    assert isinstance(lst.actual, str) and lst.actual.startswith("[0,1,2") and len(lst.actual) < 2100


def test_factories_response_and_example_session_compare_as_expected(example_bytes):
    from koala_store.formats import koala

    (session,) = koala.loads(example_bytes)
    recorded = session.return_inbound.response
    assert diff.compare_responses(recorded, recorded.replace(b'"ts":1548160113', b'"ts":1548160150')) == []
    (d,) = diff.compare_responses(recorded, recorded.replace(b'"name":"alice"', b'"name":"bob"'))
    assert (d.path, d.expected, d.actual) == ("body.name", "alice", "bob")
    assert diff.compare_responses(http_response(200, b'{"a":1}'), http_response(200, b'{"a": 1}')) == []


def test_interim_continue_responses_are_skipped():
    final = response(USER)
    assert compare(b"HTTP/1.1 100 Continue\r\n\r\n" + final, final) == []
    (d,) = compare(b"HTTP/1.1 100 Continue\r\n\r\n" + final, response(USER, status=404))
    assert (d.path, d.expected, d.actual) == ("status", 200, 404)


def test_integers_past_64_bits_compare_exactly():
    (d,) = compare(b'HTTP/1.1 200 OK\r\n\r\n{"id": 123456789012345678901234567890}', b'HTTP/1.1 200 OK\r\n\r\n{"id": 123456789012345678901234567891}')
    assert (d.path, d.expected, d.actual) == ("body.id", 123456789012345678901234567890, 123456789012345678901234567891)
    assert compare(b'HTTP/1.1 200 OK\r\n\r\n{"id": 123456789012345678901234567890}', b'HTTP/1.1 200 OK\r\n\r\n{"id":123456789012345678901234567890}') == []
