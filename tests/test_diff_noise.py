"""koala_store.diff noise rules: --noise-runs suppression and Diffy's three-way rule."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from koala_store import diff
from koala_store.diff import DiffyNoise, Difference, suppress_repeated


def d(path: str, kind: str = "changed") -> Difference:
    return Difference(path, kind, 1, 2)


def response(doc: dict) -> bytes:
    body = orjson.dumps(doc)
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


# --- suppress_repeated ---------------------------------------------------------------------


def test_a_path_that_also_differs_among_runs_is_noise():
    primary = [d("body.token"), d("body.user.tier"), d("status")]
    kept, suppressed = suppress_repeated(primary, [[d("body.token")], []])
    assert [x.path for x in kept] == ["body.user.tier", "status"]
    assert [x.path for x in suppressed] == ["body.token"]


def test_no_runs_or_quiet_runs_suppress_nothing():
    primary = [d("body.a"), d("headers.x-cache", "added")]
    assert suppress_repeated(primary, []) == (primary, [])
    assert suppress_repeated(primary, [[], []]) == (primary, [])


def test_an_ancestor_varying_among_runs_makes_its_fields_noise_but_not_the_reverse():
    kept, suppressed = suppress_repeated([d("body.user.name"), d("body.cart", "removed")], [[d("body.user", "type_changed"), d("body.cart.token")]])
    assert [x.path for x in suppressed] == ["body.user.name"]
    assert [x.path for x in kept] == ["body.cart"]


def test_json_array_indexes_are_generalized_but_call_positions_and_arguments_are_not():
    among = [[d("body.items[0].ts"), d("outbound[3].request.args[2]"), d("outbound[5]", "changed")]]
    primary = [
        d("body.items[7].ts"),  # same field in another element: noise
        d("body.items[7].price"),
        d("outbound[3].request.args[2]"),  # the same argument of the same call: noise
        d("outbound[3].request.args[1]"),  # another argument: kept
        d("outbound[4].request.args[2]"),  # another call: kept
        d("outbound[5]", "missing_call"),  # made in one run only: noise
        d("outbound[3].request.body.list[2]"),
    ]
    kept, suppressed = suppress_repeated(primary, among)
    assert [x.path for x in suppressed] == ["body.items[7].ts", "outbound[3].request.args[2]", "outbound[5]"]
    assert len(kept) == 4


def test_noise_runs_end_to_end_on_responses():
    recorded = response({"user": "alice", "nonce": "r-1", "tier": "gold"})
    first = response({"user": "alice", "nonce": "r-2", "tier": "silver"})
    second = response({"user": "alice", "nonce": "r-3", "tier": "silver"})
    primary = diff.compare_responses(recorded, first)
    among = [diff.compare_responses(first, second)]
    kept, suppressed = suppress_repeated(primary, among)
    assert [x.path for x in kept] == ["body.tier"]
    assert [x.path for x in suppressed] == ["body.nonce"]


# --- Diffy ----------------------------------------------------------------------------------


def fill(noise: DiffyNoise, endpoint: str, total: int, raw: int, noisy: int, path: str = "body.x") -> None:
    """`total` sessions; the path differs vs the target in `raw` of them, vs the baseline in `noisy`."""
    for i in range(total):
        noise.add(endpoint, {path} if i < raw else set(), {path} if i < noisy else set())


@pytest.mark.parametrize(
    "total, raw, noisy, real",
    [
        (100, 10, 0, True),
        (100, 5, 5, False),  # raw == noise
        (100, 4, 5, False),  # raw < noise
        (100, 6, 4, False),  # |6-4| / 10 = 20%: not above 20
        (100, 7, 4, True),  # 3 / 11 = 27%
        (10_000, 3, 0, False),  # 3 / 10000 = 0.03%: not above 0.03
        (10_000, 4, 0, True),  # 0.04%
        (1, 1, 0, True),
    ],
)
def test_diffy_rule_at_its_boundaries(total, raw, noisy, real):
    noise = DiffyNoise()
    fill(noise, "GET /v1/user", total, raw, noisy)
    assert noise.is_real("GET /v1/user", "body.x") is real
    assert noise.counts("GET /v1/user", "body.x") == (raw, noisy, total)


def test_diffy_thresholds_are_configurable_and_endpoints_are_separate():
    noise = DiffyNoise(relative_threshold=50, absolute_threshold=0)
    fill(noise, "GET /a", 100, 7, 4)
    fill(noise, "GET /b", 100, 10, 0)
    assert not noise.is_real("GET /a", "body.x")  # 27% is not above 50%
    assert noise.is_real("GET /b", "body.x")
    assert not noise.is_real("GET /c", "body.x")  # never seen


def test_diffy_split_generalizes_indexes_and_counts_noisy_ancestors():
    noise = DiffyNoise()
    for i in range(50):
        raw = {f"body.items[{i % 3}].price", "body.user.token", "body.tier"}
        # The baseline differs on the whole user object every time, and on prices half the time.
        base = {"body.user"} | ({f"body.items[{i % 5}].price"} if i % 2 else set())
        noise.add("GET /v1/cart", raw, base)
    real, suppressed = noise.split("GET /v1/cart", [d("body.items[1].price"), d("body.user.token"), d("body.tier")])
    assert [x.path for x in real] == ["body.items[1].price", "body.tier"]  # 50 raw vs 25 noise: real
    assert [x.path for x in suppressed] == ["body.user.token"]
    assert noise.counts("GET /v1/cart", "body.items[9].price") == (50, 25, 50)


def test_endpoint_names_mask_ids():
    assert diff.endpoint_of(b"GET /v1/item/12345?x=1 HTTP/1.1\r\nHost: a\r\n\r\n") == "GET /v1/item/{id}"
    assert diff.endpoint_of(b"POST /v1/order/9f1c2a3b-1111-2222-3333-444455556666/pay HTTP/1.1\r\n\r\n") == "POST /v1/order/{id}/pay"
    assert diff.endpoint_of(b"GET /v1/users HTTP/1.1\r\n\r\n") == "GET /v1/users"
    assert diff.endpoint_of(b"*1\r\n$4\r\nPING\r\n") == "unknown"
    assert diff.endpoint_of(b"GET /v1/blob/00000000000000000000000a/abcdefabcdefabcdefab HTTP/1.1\r\n\r\n") == "GET /v1/blob/{id}/abcdefabcdefabcdefab"


# Path segments: hex digits, dashes, other letters and digits beyond ASCII (\d is Unicode's).
_SEGMENT_CHARS = st.sampled_from("0123456789abcdefABCDEF-xyz_.\u0660\u00b2\u0969")


@given(st.text(_SEGMENT_CHARS, max_size=40) | st.uuids().map(str) | st.text(st.sampled_from("0123456789abcdef"), min_size=14, max_size=18))
@settings(max_examples=2000)
def test_an_id_segment_is_told_as_the_regex_alone_tells_it(segment: str) -> None:
    from koala_store.diff.noise import _ID_SEGMENT, _is_id_segment

    assert _is_id_segment(segment) == (_ID_SEGMENT.fullmatch(segment) is not None)
