"""sim decides exactly as before issue 12 (tests/sim_reference.py: an inverted index for every
session, float weights): same results, near misses included, on the drift set, a large
session (no index) and random sessions. Koala's decisions are the specification."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from matchers_fixtures import call, http, mysql_query, redis, session_calls
from sim_reference import ReferenceSim


from matchers.sim import INDEX_POSTINGS, PACKED, SimSessionMatcher

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from matchers_data import drift_set, sized_candidates  # noqa: E402


# How the session keeps its vectors: packed (C dot products, the default where the extension
# is built), or dicts with an inverted index, or dicts without one (a dot product per call).
MODES = ["packed", "index", "dicts"] if PACKED else ["index", "dicts"]


def replay_both(calls, requests, threshold: float = 0.7, peers=None, mode: str = MODES[0]) -> None:
    new = SimSessionMatcher(calls, threshold, packed=mode == "packed", index_postings=-1 if mode == "dicts" else INDEX_POSTINGS)
    assert (new._index is not None) == (mode == "index")
    old = ReferenceSim(threshold=threshold).for_session(calls)
    conns = [(new.connection(), old.connection()) for _ in range(3)]
    for i, request in enumerate(requests):
        peer = peers[i] if peers else None
        a_conn, b_conn = conns[i % 3]
        a, b = new.match(request, a_conn, peer=peer), old.match(request, b_conn, peer=peer)
        assert (a.position, a.score, a.reason, a.near_misses) == (b.position, b.score, b.reason, b.near_misses)
        assert (a_conn.last, a_conn.identity_counts) == (b_conn.last, b_conn.identity_counts)
    assert new.scores(requests[0]) == old.scores(requests[0])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("use_peer", [False, True])
def test_drift_set_decides_alike(use_peer, mode):
    for case in drift_set(60, seed=9):
        live = [lc for lc in case.live if not lc.greeting]
        if live:
            replay_both(case.calls, [lc.request for lc in live], peers=[lc.peer for lc in live] if use_peer else None, mode=mode)


@pytest.mark.parametrize("mode", [m for m in MODES if m != "index"])
def test_large_session_decides_alike(mode):
    calls, live = sized_candidates(200, 8192, seed=4)
    assert SimSessionMatcher(calls, 0.7, packed=False)._index is None  # big: a dot product per call
    replay_both(calls, live[:30], mode=mode)


words = st.text(alphabet="abcdefghij0123456789_.-/ ,:\u00e9\u8ba2", min_size=1, max_size=12)
requests = st.one_of(
    st.builds(
        lambda m, p, b: http(m, "/" + p, [("Host", "h")], b), st.sampled_from(["GET", "POST"]), words.map(lambda w: w.replace(" ", "")), st.binary(max_size=200)
    ),
    st.lists(words, min_size=1, max_size=4).map(lambda a: redis("GET", *a)),
    words.map(lambda w: mysql_query(f"SELECT {w} FROM t")),
    st.binary(min_size=1, max_size=300),
    st.text(alphabet=[chr(i) for i in range(128)], min_size=1, max_size=300).map(str.encode),  # ASCII: the fast lexer
    # Runs around Koala's 128-byte cap, alone or in text.
    st.builds(
        lambda n, c, around: around.replace(b"|", bytes([c]) * n),
        st.sampled_from([127, 128, 129, 130, 200, 256, 257, 300]),
        st.sampled_from([ord("a"), ord("."), 0xE8, ord("-")]),
        st.sampled_from([b"|", b"x |;", b"GET /|/b HTTP/1.1\r\nHost: h\r\n\r\n", "订|".encode()]),
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    recorded=st.lists(requests, min_size=1, max_size=8),
    live=st.lists(requests, min_size=1, max_size=6),
    threshold=st.sampled_from([0.0, 0.5, 0.7, 1.0]),
    mode=st.sampled_from(MODES),
    data=st.data(),
)
def test_random_sessions_decide_alike(recorded, live, threshold, mode, data):
    calls = session_calls(*(call(r, fd=5 + i % 2) for i, r in enumerate(recorded)))
    picks = data.draw(st.lists(st.sampled_from(recorded), max_size=4))
    replay_both(calls, live + picks, threshold, mode=mode)


def _python_lex(data: bytes) -> dict[bytes, int]:
    """The weights from matchers.sim.tokenize, the plain token list: runs weigh their length."""
    from matchers.sim import tokenize

    out: dict[bytes, int] = {}
    for token in tokenize(data):
        out[token] = out.get(token, 0) + len(token)
    return out


_ascii_requests = st.one_of(
    st.binary(max_size=400).map(lambda b: bytes(x & 0x7F for x in b)),
    st.lists(st.sampled_from([b"GET", b" ", b"/v1/item", b"\r\n", b"a.b_c", b"x" * 120, b"y" * 9, b"{", b"\x00", b"\x7f"]), max_size=60).map(b"".join),
)


@pytest.mark.skipif(__import__("matchers.sim", fromlist=["_compiled_lex_ascii"])._compiled_lex_ascii is None, reason="matchers/_simlex.c did not build")
@settings(max_examples=400, deadline=None)
@given(_ascii_requests)
def test_the_compiled_lexer_counts_as_the_tokenizer_does(data: bytes) -> None:
    from matchers._simlex import lex_ascii

    vec = lex_ascii(data)
    expected = _python_lex(data)
    longest = max((len(t) for t in data.translate(bytes(b if chr(b).isalnum() or b in b"_." else 32 for b in range(256))).split()), default=0)
    if longest > 128:
        assert vec is None  # runs cut into pieces are left to the Python code
    else:
        assert vec == expected and all(type(w) is int for w in vec.values())


def test_the_compiled_lexer_counts_a_run_alike_wherever_it_stands() -> None:
    """Runs are hashed eight bytes at a time, the last part read as one word when the data holds
    eight more bytes, else byte by byte: both must hash one run alike. Many distinct runs in
    little data grow the table past the size it starts with."""
    lex_ascii = __import__("matchers.sim", fromlist=["_compiled_lex_ascii"])._compiled_lex_ascii
    if lex_ascii is None:
        pytest.skip("matchers/_simlex.c did not build")
    for size in range(1, 20):
        run = bytes(b"abcdefghijklmnopqrstuvwxyz"[:size])
        for data in (run + b" " + run + b"{" * 9 + run, run + b"{" * 9 + run + b" " + run):
            assert lex_ascii(data) == _python_lex(data), data
    many = b" ".join(b"k%d" % i for i in range(5000))
    assert lex_ascii(many) == _python_lex(many)


def test_the_compiled_lexer_leaves_non_ascii_to_python() -> None:
    lex_ascii = __import__("matchers.sim", fromlist=["_compiled_lex_ascii"])._compiled_lex_ascii
    if lex_ascii is None:
        pytest.skip("matchers/_simlex.c did not build")
    assert lex_ascii("héllo wörld".encode()) is None
    assert lex_ascii(b"a" * 129) is None
    assert lex_ascii(b"a" * 128 + b" a") == {b"a" * 128: 128, b" ": 1, b"a": 1}
    with pytest.raises(TypeError):
        lex_ascii("text")


def test_the_compiled_sum_of_squares_is_the_exact_sum_or_none() -> None:
    """_norm's compiled sum must be Python's exact one, and must give up (None) where a
    64-bit sum would not be exact, or on a weight that is not an int."""
    sim = __import__("matchers.sim", fromlist=["_compiled_sum_of_squares"])
    sum_of_squares = sim._compiled_sum_of_squares
    if sum_of_squares is None:
        pytest.skip("matchers/_simlex.c did not build")
    assert sum_of_squares({}) == 0
    assert sum_of_squares({b"a": 3, b"b": 4}) == 25
    assert sum_of_squares({b"a": -3}) == 9
    big = 3_037_000_499  # its square fits in 63 bits, its square doubled does not
    assert sum_of_squares({b"a": big}) == big * big
    assert sum_of_squares({b"a": big, b"b": big}) is None
    assert sum_of_squares({b"a": 3_037_000_500}) is None  # the square alone overflows
    assert sum_of_squares({b"a": 1 << 70}) is None
    assert sum_of_squares({b"a": 2.0}) is None
    assert sum_of_squares({b"a": True}) is None  # not exactly an int
    with pytest.raises(TypeError):
        sum_of_squares([1, 2])
    for vec in ({b"a": 3, b"b": 4.5}, {b"a": 1 << 40, b"b": 1 << 40}):  # Python sums these
        assert sim._norm(vec) == math.sqrt(sum(w * w for w in vec.values()))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.binary(max_size=4), st.integers(min_value=-(1 << 40), max_value=1 << 40), max_size=30))
def test_norm_is_the_exact_root_of_the_sum_of_squares(vec: dict[bytes, int]) -> None:
    from matchers.sim import _norm

    assert _norm(vec) == math.sqrt(sum(w * w for w in vec.values()))


needs_packed = pytest.mark.skipif(not PACKED, reason="matchers/_simlex.c did not build")


@needs_packed
@settings(max_examples=300, deadline=None)
@given(st.one_of(requests, _ascii_requests))
def test_a_packed_vector_holds_the_dict_vector_and_its_norm(data: bytes) -> None:
    from matchers._simlex import unpacked

    from matchers.sim import _norm, pack_vector, vectorize

    packed, norm = pack_vector(data)
    vec = vectorize(data)
    assert unpacked(packed) == vec
    assert norm == _norm(vec)


@needs_packed
@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(requests, _ascii_requests), min_size=1, max_size=5), st.one_of(requests, _ascii_requests))
def test_packed_dot_products_are_the_exact_sums(calls: list[bytes], request: bytes) -> None:
    from matchers._simlex import dots

    from matchers.sim import pack_vector, vectorize

    vec = vectorize(request)
    expected = [sum(w * vec.get(t, 0) for t, w in vectorize(c).items()) for c in calls]
    got = dots(pack_vector(request)[0], [pack_vector(c)[0] for c in calls])
    assert got == expected and all(type(d) is int for d in got)


@needs_packed
def test_uri_weights_add_to_runs_and_to_one_byte_tokens_alike() -> None:
    """A segment that is a run adds to the run's token; the URI `/` to the one-byte token."""
    from matchers._simlex import lex_packed, unpacked

    from matchers.sim import pack_vector, vectorize

    for request in (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", b"GET /a/-/a.b/a?x=1 HTTP/1.1\r\nA: b\r\nC: d\r\n\r\n", b"GET /new/x HTTP/1.1\r\n\r\n"):
        assert unpacked(pack_vector(request)[0]) == vectorize(request)
    packed, squares = lex_packed(b"a-a", [(b"-", 5), (b"a", 1), (b"zz", 4)])
    assert unpacked(packed) == {b"a": 3, b"-": 6, b"zz": 4}
    assert squares == 9 + 36 + 16


@needs_packed
def test_packed_vectors_refuse_what_they_cannot_hold() -> None:
    from matchers._simlex import dots, lex_packed, pack, unpacked

    with pytest.raises(ValueError, match="int in"):
        pack({b"a": 2.5})
    with pytest.raises(ValueError, match="int in"):
        pack({b"a": 1 << 48})
    with pytest.raises(ValueError, match="int in"):
        lex_packed(b"a", [(b"a", -1)])
    with pytest.raises(TypeError):
        pack({"a": 1})
    with pytest.raises(TypeError):
        lex_packed("a", [])
    with pytest.raises(TypeError):
        lex_packed(b"a", [(b"a",)])
    good = pack({b"a": 1})[0]
    with pytest.raises(ValueError, match="not a packed vector"):
        dots(good, [good + b"x"])
    with pytest.raises(TypeError, match="packed vector"):
        dots(good, [None])
    with pytest.raises(ValueError, match="not a packed vector"):
        unpacked(b"\xff" * 16)
    # A head of one entry (16 bytes), the entry (hash, weight, at, len: 24 bytes), the token:
    # an entry whose token would start past the end is refused, not read.
    assert len(good) == 16 + 24 + 1
    stray = good[:32] + (5).to_bytes(4, "little") + good[36:]
    for attempt in (lambda: unpacked(stray), lambda: dots(good, [stray]), lambda: dots(stray, [good])):
        with pytest.raises(ValueError, match="passes its end"):
            attempt()
    assert lex_packed("é".encode(), []) is None  # not ASCII: Python's lexer answers


def test_packed_vectors_without_the_extension_are_one_clear_error(monkeypatch) -> None:
    from matchers import sim
    from matchers.base import MatcherError

    monkeypatch.setattr(sim, "_compiled_dots", None)
    calls = session_calls(call(redis("GET", "k")))
    with pytest.raises(MatcherError, match="packed=False"):
        SimSessionMatcher(calls, 0.7, packed=True)
    assert SimSessionMatcher(calls, 0.7, packed=False).scores(redis("GET", "k"))[0] == pytest.approx(1.0)
