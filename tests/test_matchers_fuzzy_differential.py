"""fuzzy's fast paths decide as the implementation before issue 12 did (tests/fuzzy_reference.py).

Every request is matched by the reference and by the current matcher forced onto its fast
paths (nothing normalised up front, never "cheap enough to score everything"), and by the
current matcher as configured; the winner, its score and reason, the connection's and the
session's state must be the same. Near misses: the same when every call was scored (always
for a request that matched nothing); on a fast path, calls that tied with the winner, each
with the reason the reference gives it.
"""

from __future__ import annotations

import copy
import random
import sys
from pathlib import Path

import orjson
import pytest
from factories import http_call, make_session, mysql_select, redis_get, redis_set, varied_sessions
from fuzzy_reference import ReferenceFuzzy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from matchers_fixtures import call, http, mysql_query, redis, session_calls

import matchers
from koala_store.model import CallOutbound, Peer
from matchers.fuzzy import FuzzySessionMatcher
from matchers.normalize import Normalizer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from matchers_data import drift_set, sized_candidates  # noqa: E402

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
OPTIONS = [
    {},
    {"threshold": 0.5},
    {"threshold": 1.0},
    {"threshold": 0.0},
    {"mask_literals": False},
    {"mask_volatile": False},
]


class Twins:
    """One session matched by the reference, the forced fast paths and the default matcher."""

    def __init__(self, calls: list[CallOutbound], **options):
        strategy = matchers.get("fuzzy", **options)
        self.reference = ReferenceFuzzy(**options).for_session(calls)
        normalizer = Normalizer(
            volatile_headers=strategy.volatile_headers, mask_literals=strategy.mask_literals, mask_volatile=strategy.mask_volatile
        )
        self.fast = FuzzySessionMatcher(calls, strategy.threshold, normalizer, eager_bytes=0, full_scoring_budget_ns=0)
        self.default = strategy.for_session(calls)
        self.sessions = (self.reference, self.fast, self.default)

    def connections(self, previous: tuple | None = None) -> tuple:
        if previous is None:
            return tuple(s.connection() for s in self.sessions)
        return tuple(s.connection(p) for s, p in zip(self.sessions, previous, strict=True))

    def match(self, request: bytes, conns: tuple, peer: str | None = None) -> None:
        ref, *others = (s.match(request, c, peer=peer) for s, c in zip(self.sessions, conns, strict=True))
        ref_conn, *other_conns = conns
        for session, result, conn in zip(self.sessions[1:], others, other_conns, strict=True):
            assert (result.position, result.score, result.reason) == (ref.position, ref.score, ref.reason), request
            assert result.call is (None if ref.call is None else session.calls[ref.position])
            assert (conn.last, conn.identity_counts, conn.last_identity, conn.matches) == (
                ref_conn.last,
                ref_conn.identity_counts,
                ref_conn.last_identity,
                ref_conn.matches,
            )
            assert (session.outs_last, session.use_counts) == (self.reference.outs_last, self.reference.use_counts)
            if result.near_misses != ref.near_misses:
                self._fast_near_misses(result, ref)

    def greeting(self, conns: tuple, peer: str | None = None) -> None:
        ref, *others = (s.greeting(c, peer=peer) for s, c in zip(self.sessions, conns, strict=True))
        for result in others:
            assert (result.position, result.score, result.reason, result.near_misses) == (ref.position, ref.score, ref.reason, ref.near_misses)

    def _fast_near_misses(self, result, ref) -> None:
        assert result.matched, "a request that matches nothing gets the near misses of every call"
        reference_reasons = {m.position: m.reason for m in ref.near_misses}
        for miss in result.near_misses:
            assert miss.score == result.score, "on a fast path only calls tied with the winner are near misses"
            assert miss.reason.startswith(("tied", "already used")), miss.reason
            if miss.position in reference_reasons:
                assert miss.reason == reference_reasons[miss.position]


# --- the drift set: the benchmark's realistic replays ------------------------------------------


@pytest.mark.parametrize("use_peer", [False, True])
def test_drift_set_replays_decide_alike(use_peer):
    open_conns: dict[str, tuple] = {}
    for case in drift_set(80, seed=7):
        twins = Twins(case.calls)
        conns: dict[str, tuple] = {}
        for live in case.live:
            if live.conn not in conns:
                conns[live.conn] = twins.connections(open_conns.get(live.conn))
            peer = live.peer if use_peer else None
            if live.greeting:
                twins.greeting(conns[live.conn], peer=peer)
            else:
                twins.match(live.request, conns[live.conn], peer=peer)
        open_conns.update(conns)


def test_large_session_replays_decide_alike():
    # Big bodies (HTTP JSON, multi-row INSERTs whose keys all tie, Redis values), twice each:
    # the second time every call is used, so the tie rules work harder.
    calls, live = sized_candidates(60, 4096, seed=3)
    twins = Twins(calls)
    for request in live + live:
        twins.match(request, twins.connections())


def test_bench_case_uses_the_fast_paths():
    calls, live = sized_candidates(60, 4096, seed=3)
    session = matchers.get("fuzzy").for_session(calls)
    result = session.match(live[0], session.connection())
    assert result.score == 1.0
    assert result.near_misses == ()  # decided by an equal key: nothing else was scored
    assert sum(key is None for key in session._keys) > len(calls) // 2  # most calls never normalised


# --- random sessions: recorded calls, drifted and edited requests ---------------------------------

SKUS = ["SKU0001", "SKU0002", "SKU0003"]


def drift(request: bytes, rng: random.Random) -> bytes:
    """What replays change: ids and clocks (masked), and sometimes a value that is not."""
    text = request.decode("latin-1")
    for old, new in (("1548160113", str(1563000000 + rng.randrange(99))), ("2019-01-22", "2019-07-13"), ("3f1c2e3a", f"{rng.getrandbits(32):08x}")):
        text = text.replace(old, new)
    if rng.random() < 0.3:
        text = text.replace(rng.choice(SKUS), rng.choice(SKUS))
    return text.encode("latin-1")


def recorded_pool(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    sku = lambda: rng.choice(SKUS)  # noqa: E731
    uid = lambda: rng.randrange(40, 44)  # noqa: E731
    body = lambda: (  # noqa: E731
        b'{"uid":%d,"request_id":"3f1c2e3a-1b2c-4d5e-8f90-0123456789ab","items":[{"sku":"%s","qty":%d}],"ts":1548160113}'
        % (uid(), sku().encode(), rng.randrange(1, 3))
    )
    pool = [
        http("POST", f"/v1/price?city={rng.randrange(2)}", [("Host", "h:80"), ("Content-Type", "application/json"), ("X-Request-Id", "r1")], body()),
        http("GET", f"/v1/user?uid={uid()}&ts=1548160113", [("Host", "h:80")]),
        http("GET", f"/v1/user?ts=1548160113&uid={uid()}", [("Host", "h:80"), ("Accept", "json")]),
        redis("GET", f"user:{uid()}"),
        redis("SET", f"lock:order:1548160113{rng.randrange(10)}", f"v{rng.randrange(3)}", "NX", "EX", "10"),
        redis("SET", f"cart:{uid()}", body().decode()),
        mysql_query(f"SELECT name FROM user WHERE uid = {uid()}"),
        mysql_query(f"UPDATE user SET seen = '2019-01-22 10:00:0{rng.randrange(3)}' WHERE uid = {uid()}"),
        mysql_query(f"INSERT INTO items (sku, qty) VALUES ('{sku()}', {rng.randrange(3)}), ('{sku()}', 1) /* 3f1c2e3a */"),
        mysql_query(f"SELECT * FROM t WHERE a IN ({uid()}, 2, 3) -- {sku()}"),
        b"\x80\x00hello 1548160113 " + sku().encode(),
    ]
    return pool


@SETTINGS
@given(
    options=st.sampled_from(OPTIONS),
    seed=st.integers(0, 10**6),
    picks=st.lists(st.integers(0, 10), min_size=1, max_size=14),
    plan=st.lists(st.tuples(st.integers(0, 13), st.sampled_from(["same", "drift", "edit", "junk"]), st.integers(0, 2), st.booleans()), min_size=1, max_size=16),
)
def test_random_sessions_decide_alike(options, seed, picks, plan):
    rng = random.Random(seed)
    pools = [recorded_pool(seed), recorded_pool(seed + 1)]
    requests = [pools[rng.randrange(2)][p] for p in picks]
    calls = session_calls(*(call(r, fd=5 + rng.randrange(3), port=6379 if r.startswith(b"*") else 80) for r in requests))
    twins = Twins(calls, **options)
    conns = [twins.connections() for _ in range(3)]
    for index, how, conn, with_peer in plan:
        request = requests[index % len(requests)]
        if how == "drift":
            request = drift(request, rng)
        elif how == "edit":
            data = bytearray(request)
            data[rng.randrange(len(data))] = rng.randrange(256)
            request = bytes(data)
        elif how == "junk":
            request = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        peer = calls[index % len(calls)].peer.address if with_peer else None
        twins.match(request, conns[conn], peer=peer)


def test_factory_sessions_merged_decide_alike():
    # tests/factories.py sessions, their outbound calls merged into one session, replayed
    # drifted and in another order.
    rng = random.Random(11)
    sessions = varied_sessions(60, seed=5)
    calls = [c for s in sessions for c in s.outbound_calls]
    extra = [
        redis_get(0, 1, b"user:7", b"alice"),
        redis_get(0, 2, b"user:7", b"alice", fd=12),
        redis_set(0, 3, b"user:7", b"bob"),
        mysql_select(0, 4, b"SELECT name FROM user WHERE uid=7"),
        http_call(0, 5, "GET", "/inventory/7", 200, b"{}"),
        http_call(0, 6, "GET", "/inventory/7", 200, b"{}", fd=14),
    ]
    calls = session_calls(*(calls + extra))
    twins = Twins(calls)
    conns = [twins.connections() for _ in range(4)]
    order = list(range(len(calls))) * 2
    rng.shuffle(order)
    for p in order:
        request = calls[p].request
        if request:
            twins.match(drift(request, rng) if rng.random() < 0.5 else request, conns[rng.randrange(4)])


def test_sessions_built_by_make_session_keep_their_decisions():
    outbound = [
        CallOutbound(n, n, request=redis("GET", f"k{n % 3}"), response=b"+OK\r\n", peer=Peer("10.0.0.8", 6379), socket_fd=5 + n % 2) for n in range(9)
    ]
    session = make_session(1, outbound=outbound)
    twins = Twins(session.outbound_calls)
    conn = twins.connections()
    for n in (0, 1, 2, 0, 0, 0, 1, 5):
        twins.match(redis("GET", f"k{n}"), conn)


WORDS = ["spicy", "sweet", "sour", "rice", "tofu", "beef", "tea", "cake", "red", "hot"]


def order_body(rng: random.Random, items: int) -> dict:
    return {"uid": rng.randrange(3), "items": [{"sku": rng.choice(SKUS), "name": " ".join(rng.sample(WORDS, 2)), "qty": rng.randrange(1, 4)} for _ in range(items)]}


@SETTINGS
@given(
    seed=st.integers(0, 10**6),
    calls=st.integers(2, 30),
    threshold=st.sampled_from([0.5, 0.8, 0.9]),
    edits=st.lists(st.sampled_from(["value", "add", "drop", "none"]), min_size=1, max_size=8),
)
def test_many_calls_of_one_kind_without_an_equal_key_decide_alike(seed, calls, threshold, edits):
    # Bodies of one endpoint, of many sizes; the live ones change a value, add or drop an
    # item: no equal key, so the pruned search decides (and the best need not be the
    # closest in size).
    rng = random.Random(seed)
    bodies = [order_body(rng, rng.randrange(1, 12)) for _ in range(calls)]
    recorded = [http("POST", "/v1/order", [("Host", "h"), ("Content-Type", "application/json")], orjson.dumps(b)) for b in bodies]
    twins = Twins(session_calls(*recorded), threshold=threshold)
    conn = twins.connections()
    for edit in edits:
        body = copy.deepcopy(rng.choice(bodies))
        if edit == "value":
            body["items"][rng.randrange(len(body["items"]))]["qty"] = 9
        elif edit == "add":
            body["items"].append(order_body(rng, 1)["items"][0])
        elif edit == "drop" and len(body["items"]) > 1:
            body["items"].pop(rng.randrange(len(body["items"])))
        twins.match(http("POST", "/v1/order", [("Host", "h2"), ("Content-Type", "application/json")], orjson.dumps(body)), conn)
