"""Differential tests: the fast `chunk` (compiled scanner, pure-Python fallback, pruning)
decides exactly as a literal reading of the spec (tests/chunk_reference.py) does.

Same winner, mark, reason, near misses (with their reasons) and state after every call of a
sequence, on random and adversarial sessions: repeated and overlapping chunks, chunk 0
shorter than 16 bytes, a short last chunk, candidates shorter than a chunk, Expect:
100-continue, binary bytes, greetings (empty requests), peers, connections that matched.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest
from chunk_reference import ReferenceChunkSessionMatcher, reference_chunks, reference_expect
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from matchers_fixtures import call, http, session_calls

from matchers import chunk_scan
from matchers.chunk import ChunkSessionMatcher, cut_chunks, has_expect_continue

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SCANNERS = ["compiled", "python"]
PEERS = ["10.0.0.1:80", "10.0.0.2:6379"]

# Pieces that make chunks repeat, overlap, straddle the 16-byte grid and mix text with binary.
PIECES = [
    b"a" * 16,
    b"ab" * 8,
    b"abc" * 6,
    b"aaaaaaaab",
    b"GET /v1/item?id=",
    b"SELECT id FROM t WHERE ",
    b"\r\n",
    b"\r\n\r\n",
    b"Expect: 100-continue\r\n",
    b"0123456789abcdef",
    b"0123456789abcdeX",
    b"\x00\x01\x02\x03" * 4,
    b"\xff\xfe",
    b"~ ~ ~ ~ ~",
    b"x",
    b"yz",
]
pieces = st.one_of(st.sampled_from(PIECES), st.binary(min_size=1, max_size=20), st.text("abcdef {}:,", min_size=1, max_size=24).map(str.encode))
requests = st.lists(pieces, min_size=1, max_size=45).map(b"".join)


def mutate(data: st.DataObject, request: bytes) -> bytes:
    """A drifted copy: bytes replaced, cut, inserted, or the request whole."""
    kind = data.draw(st.sampled_from(["same", "replace", "cut", "insert", "prefix", "shorten"]), label="mutation")
    if kind == "same" or not request:
        return request
    at = data.draw(st.integers(0, len(request) - 1), label="at")
    if kind == "replace":
        return request[:at] + data.draw(st.binary(min_size=1, max_size=8)) + request[at + 1 :]
    if kind == "cut":
        return request[:at] + request[at + data.draw(st.integers(1, 40)) :]
    if kind == "insert":
        return request[:at] + data.draw(pieces) + request[at:]
    if kind == "prefix":
        return data.draw(pieces) + request
    return request[: max(1, at)]


def matchers_for(calls):
    return [ReferenceChunkSessionMatcher(calls, scanner="python")] + [ChunkSessionMatcher(calls, scanner=s) for s in SCANNERS]


def state(session, conns) -> tuple:
    return (session.outs_last, list(session.use_counts), [(c.last, dict(c.identity_counts), c.last_identity, c.matches) for c in conns])


def replay_and_compare(calls, steps) -> list:
    """Run `steps` (request or None for a greeting, connection number, peer) through every
    implementation; every result and the state after each step must be the same."""
    sessions = matchers_for(calls)
    conns = [[s.connection() for _ in range(4)] for s in sessions]
    results = []
    for request, k, peer in steps:
        outcome = []
        for session, cs in zip(sessions, conns, strict=True):
            result = session.greeting(cs[k], peer=peer) if request is None else session.match(request, cs[k], peer=peer)
            outcome.append((result, state(session, cs)))
        reference = outcome[0]
        for name, got in zip(SCANNERS, outcome[1:], strict=True):
            assert got[0] == reference[0], f"{name} scanner: {got[0]} != reference {reference[0]}"
            assert got[1] == reference[1], f"{name} scanner: state {got[1]} != reference {reference[1]}"
        results.append(reference[0])
    return results


@pytest.fixture(autouse=True)
def compiled_is_built():
    assert chunk_scan.COMPILED, "matchers/_chunkscan is not built: run ./scripts/setup.sh (needs gcc and Python headers)"


# --- the cutting ---------------------------------------------------------------------------


@SETTINGS
@given(request=st.one_of(requests, st.binary(max_size=600)))
@example(request=b"\x00" * 250 + b"A" * 9)  # 259 bytes: a 9-byte chunk 0 at the very end
@example(request=b"\x01" + b"B" * 300)
@example(request=b"A" * 8 + b"\x00" + b"C" * 300)
def test_the_cut_is_the_spec_cut(request):
    assert cut_chunks(request) == reference_chunks(request)


heads = st.lists(
    st.one_of(
        st.sampled_from([b"Expect: 100-continue", b"expect:100-Continue", b"EXPECT \t: \t100-CONTINUE", b"X-Expect: 100-continue", b"Expect: 100-"]),
        st.text("Expct: 10-continu\t", max_size=24).map(str.encode),
        st.binary(max_size=12),
    ),
    max_size=5,
)


@SETTINGS
@given(lines=heads, separator=st.sampled_from([b"\r\n", b"\n", b"\r"]), body=st.sampled_from([b"", b"\r\n\r\nExpect: 100-continue"]))
def test_the_expect_test_is_the_spec_test(lines, separator, body):
    request = b"POST /u HTTP/1.1" + separator + separator.join(lines) + body
    assert has_expect_continue(request) == reference_expect(request)


# --- the scanners ------------------------------------------------------------------------------


def literal_hits(chunks: list[bytes], data: bytes) -> tuple[int, int, int]:
    off, head_at, count, at = 0, -1, 0, -1
    for i, chunk in enumerate(chunks):
        pos = data.find(chunk, off)
        if pos >= 0:
            off, at = pos, i
            if i == 0:
                head_at = pos
            else:
                count += 1
    return head_at, count, at


def assert_scanners_agree(chunks, datas):
    expected = [literal_hits(chunks, d) for d in datas]
    positions = list(range(len(datas)))
    for name in SCANNERS:
        assert chunk_scan.SCANNERS[name](datas).scan(chunks, positions) == expected, name


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), alphabet=st.sampled_from([b"ab", b"a\x00", b"abc", b"\x00\xff\x01", b"0123456789abcdef"]))
def test_scanners_agree_with_the_literal_loop(data, alphabet):
    # A tiny alphabet makes chunks occur often, overlapping and out of order.
    text = st.lists(st.sampled_from(list(alphabet)), max_size=300).map(bytes)
    datas = data.draw(st.lists(text, min_size=1, max_size=6), label="datas")
    source = data.draw(text, label="source")
    chunks = []
    for _ in range(data.draw(st.integers(1, 30), label="chunks")):
        kind = data.draw(st.sampled_from(["piece of source", "piece of a data", "free"]))
        pool = source if kind == "piece of source" else datas[data.draw(st.integers(0, len(datas) - 1))]
        if kind == "free" or not pool:
            chunks.append(data.draw(text.filter(bool).map(lambda b: b[:20])))
            continue
        start = data.draw(st.integers(0, len(pool) - 1))
        chunks.append(pool[start : start + data.draw(st.sampled_from([16, 16, 16, 15, 17, 1, 9, 13]))])
    assert_scanners_agree(chunks, datas)


def test_scanners_agree_on_periodic_chunks():
    """Runs of one or two bytes: a chunk occurs at several offsets around one probe of the
    compiled scanner's grid, which must still list them in order."""
    assert_scanners_agree([b"a" * 16], [b"babbaababaaaaaaaaaaaaaaaaababbaababaa"])
    rng = random.Random(5)
    for _ in range(3000):
        alphabet = rng.choice([b"a", b"ab", b"aab", b"abc"])
        datas = [bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(3)]
        source = max(datas, key=len) + alphabet * 16
        chunks = []
        for _ in range(rng.randint(1, 5)):
            start = rng.randint(0, len(source) - 16)
            chunks.append(source[start : start + rng.choice([16, 16, 16, 15, 17])])
        assert_scanners_agree(chunks, datas)


def test_scanners_agree_on_many_occurrences_and_long_requests():
    rng = random.Random(12)
    datas = [b"a" * 20_000, (b"ab" * 8 + b"c") * 3000, rng.randbytes(200_000), b"", b"a" * 15, b"a" * 16]
    chunks = [b"a" * 16] * 40 + [b"ab" * 8, b"b" + b"ab" * 7 + b"c", b"a" * 15, b"a" * 17] + [datas[2][i : i + 16] for i in range(0, 200_000, 997)]
    assert_scanners_agree(chunks, datas)
    assert_scanners_agree([b"a"], datas)
    assert_scanners_agree([], datas)


def test_calls_past_the_index_budget_score_the_same():
    """The pure-Python scanner's index covers chunk_scan.INDEX_BUDGET bytes; calls past it are searched in full."""
    rng = random.Random(7)
    letters = bytes.maketrans(bytes(range(256)), b"abcdefghij {}:,-" * 16)
    filler = b"XYZ" * ((chunk_scan.INDEX_BUDGET - 10_000) // 3)  # shares no chunk with the others
    b, c = (rng.randbytes(20_000).translate(letters) for _ in range(2))
    live = c[:5000] + b"DRIFT" + c[5005:]
    results = {}
    for order in ((filler, b, c), (b, c, filler)):
        session = ChunkSessionMatcher(session_calls(*order), scanner="python")
        position = order.index(c)
        indexed = not (session._scanner.unindexed >> position) & 1
        result = session.match(live, session.connection())
        assert result.call.request == c
        results[indexed] = (result.score, [(m.score, m.reason) for m in result.near_misses])
    assert set(results) == {True, False}  # c was indexed in one session and not in the other
    assert results[True] == results[False]


def test_without_the_extension_the_python_scanner_decides():
    """Where _chunkscan was not built (no compiler) the import fails and chunk still matches."""
    code = (
        "import sys; sys.modules['matchers._chunkscan'] = None\n"  # what a missing extension does to the import
        "import matchers; from matchers import chunk_scan; from matchers_fixtures import session_calls\n"
        "session = matchers.get('chunk').for_session(session_calls(b'alpha___________bravo___________', b'other'))\n"
        "result = session.match(b'alpha___________bravo___________', session.connection())\n"
        "print(chunk_scan.COMPILED, type(session._scanner).__name__, result.position, result.reason)\n"
        "try:\n    chunk_scan.scanner_for([], 'compiled')\nexcept matchers.MatcherError as e:\n    print(e)\n"
    )
    tests = os.path.dirname(os.path.abspath(__file__))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tests, timeout=60)
    assert run.returncode == 0, run.stderr
    first, second = run.stdout.splitlines()
    assert first == "False PythonScanner 0 mark 1.50 over 2 chunks"
    assert second.startswith("the compiled chunk scanner is not built; reinstall koala-store with ./scripts/setup.sh")


def test_a_bad_scanner_name_is_one_clear_error():
    from matchers import MatcherError

    with pytest.raises(MatcherError, match="unknown chunk scanner 'fast'; use one of: compiled, python"):
        ChunkSessionMatcher(session_calls(b"abc"), scanner="fast")


def test_the_compiled_scan_names_a_bad_argument():
    from matchers import _chunkscan

    with pytest.raises(TypeError, match="chunk 1 is str, not bytes"):
        _chunkscan.scan([b"abc", "abc"], [b"abc"])
    with pytest.raises(TypeError, match="data 0 is bytearray, not bytes"):
        _chunkscan.scan([b"abc"], [bytearray(b"abc")])
    with pytest.raises(TypeError, match="chunks must be a sequence"):
        _chunkscan.scan(None, [])


# --- whole decisions ---------------------------------------------------------------------------


@SETTINGS
@given(recorded=st.lists(st.one_of(requests, st.just(b"")), min_size=1, max_size=10), data=st.data())
def test_decisions_are_the_references_over_a_sequence_of_calls(recorded, data):
    peers = data.draw(st.lists(st.sampled_from(PEERS), min_size=len(recorded), max_size=len(recorded)), label="peers")
    calls = session_calls(*(call(r, ip=p.split(":")[0], port=int(p.split(":")[1]), fd=3 + i % 2) for i, (r, p) in enumerate(zip(recorded, peers, strict=True))))
    steps = []
    for _ in range(data.draw(st.integers(1, 10), label="steps")):
        kind = data.draw(st.sampled_from(["recorded", "recorded", "new", "greeting"]), label="kind")
        if kind == "greeting":
            request = None
        elif kind == "new":
            request = data.draw(requests, label="new request")
        else:
            request = mutate(data, recorded[data.draw(st.integers(0, len(recorded) - 1), label="which")]) or b"x"
        peer = data.draw(st.one_of(st.none(), st.sampled_from([*PEERS, "10.9.9.9:1"])), label="peer")
        steps.append((request, data.draw(st.integers(0, 3), label="connection"), peer))
    replay_and_compare(calls, steps)


@SETTINGS
@given(
    live=requests.filter(lambda r: len(r) > 32),
    holders=st.integers(0, 7),
    others=st.integers(0, 12),
    data=st.data(),
)
def test_pruning_keeps_the_decision_and_its_near_misses(live, holders, others, data):
    """Fresh passes skip calls without chunk 0 once enough calls hold it; the skipped ones
    must never have been the winner, a tie or a near miss."""
    chunks = cut_chunks(live)
    head = chunks[0]
    recorded = []
    for _ in range(holders):  # hold chunk 0 and some of the rest, in order or not
        picked = data.draw(st.lists(st.sampled_from(chunks), max_size=len(chunks)), label="holder chunks")
        recorded.append(data.draw(st.binary(max_size=4)) + head + b"".join(picked))
    for _ in range(others):  # many of the other chunks, never chunk 0
        picked = data.draw(st.lists(st.sampled_from(chunks[1:] or [b"-"]), max_size=2 * len(chunks)), label="other chunks")
        body = b"".join(picked)
        recorded.append(body.replace(head, b"") or b"-")
    if not recorded:
        recorded.append(live)
    order = data.draw(st.permutations(range(len(recorded))), label="order")
    expect = data.draw(st.booleans(), label="some disagree on Expect")
    calls = session_calls(*(recorded[k] + (b"\r\nExpect: 100-continue\r\n\r\n" if expect and k % 3 == 0 else b"") for k in order))
    steps = [(live, 0, None), (mutate(data, live), 1, None), (live, 0, None), (live, 2, None)]
    replay_and_compare(calls, steps)


def test_hand_made_adversarial_sessions():
    a = b"alpha___________"
    b_ = b"bravo___________"
    c = b"charlie_________"
    expect = http("POST", "/up", [("Host", "h"), ("Expect", "100-continue")], b"x" * 40)
    plain = http("POST", "/up", [("Host", "h")], b"x" * 40)
    cases = [
        # repeated chunks, overlapping hits, a candidate shorter than a chunk, an empty one
        ([a * 3, a[:8], b"", a + a[:8], b_ + a * 2], [(a * 3, 0, None), (a * 2 + b_, 0, None), (None, 1, None), (a[:8], 2, None)]),
        # ties after the session's last match and first to reach
        ([a + b_ + b"-" * 16, a + b"-" * 16 + c, b"other request", a + b_ + c], [(b"other request", 0, None), (a + b_ + c, 1, None), (a + b_ + c, 1, None)]),
        # Expect: 100-continue on both sides
        ([plain, expect, plain, expect, plain], [(expect, 0, None), (plain, 0, None), (expect, 1, None)]),
        # over 256 bytes: a short readable chunk 0 after binary framing; a short last chunk
        (
            [b"\x05\x00\x00\x00SELECT 1+" + b"\x00" * 260 + b"tail", b"\x05\x00\x00\x01SELECT 1+" + b"\x00" * 300, b"SELECT 1+" * 40],
            [(b"\x05\x00\x00\x02SELECT 1+" + b"\x00" * 260 + b"tail", 0, None), (b"SELECT 1+" * 40, 0, None), (b"\x00" * 300, 0, None)],
        ),
        # many fresh candidates, few holding chunk 0 (the pruning has to search the others)
        ([a + b_ + c] + [b_ + c * k for k in range(1, 9)] + [a + c], [(a + b_ + c, 0, None), (a + c, 1, None), (b_ + c, 2, None), (a + b_ + c, 0, None)]),
        # enough calls hold chunk 0 but all disagree on Expect: the others are still searched
        (
            [a + b"\r\nExpect: 100-continue\r\n\r\n" + b_ + c for _ in range(5)] + [b"-" * 16 + b_ + c],
            [(a + b_ + c, 0, None), (a + b_ + c + b"\r\nExpect: 100-continue\r\n\r\n", 1, None)],
        ),
        # many fresh candidates holding chunk 0 with equal scores: ties among the near misses
        ([a + b_ for _ in range(8)] + [b_ * 3], [(a + b_, 0, None), (a + b_ + c, 1, None), (b_ * 3, 2, None)]),
    ]
    for recorded, steps in cases:
        results = replay_and_compare(session_calls(*recorded), steps)
        assert any(r.matched for r in results) and any(r.near_misses for r in results)
