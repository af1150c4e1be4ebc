"""Figures for the fuzzy strategy by the way a request is decided, at 500 x 8 KB (and 50 x 1 KB).

    .venv/bin/python bench/bench_fuzzy_paths.py [--matches N] [--reference]

bench_matchers.py times drifted live requests after a warm-up; their keys equal their recorded
call's once normalised, the common case. This one also times what it leaves out: the first
request of each kind in a fresh session (calls are normalised when first needed), requests
whose key equals no recorded one (a value drifted that masking does not hide: every call of
the kind is scored, with a rising cut-off), and requests that match nothing (every call is
scored, for the near misses). `--reference` times the implementation before issue 12 too
(tests/fuzzy_reference.py), on the same requests.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import orjson  # noqa: E402

import matchers  # noqa: E402
from koala_store.wire import parse_request  # noqa: E402
from matchers_data import sized_candidates  # noqa: E402


def reference_strategy():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
    from fuzzy_reference import ReferenceFuzzy

    return ReferenceFuzzy()


def changed_value(request: bytes) -> bytes | None:
    """An HTTP JSON request with one item's quantity changed (not a masked value), framed again."""
    message = parse_request(request)
    body = getattr(message, "body", b"")
    if not body.startswith(b"{"):
        return None
    value = orjson.loads(body)
    value["items"][0]["qty"] = 99
    new = orjson.dumps(value)
    head = request[: len(request) - len(body)].replace(b"Content-Length: %d" % len(body), b"Content-Length: %d" % len(new))
    return head + new


def unmatched(request: bytes) -> bytes | None:
    """An HTTP request of the same method whose body shares little with any recorded one."""
    message = parse_request(request)
    body = getattr(message, "body", b"")
    if not body.startswith(b"{"):
        return None
    new = orjson.dumps({"other": list(range(400))})
    head = request[: len(request) - len(body)].replace(b"Content-Length: %d" % len(body), b"Content-Length: %d" % len(new))
    return head + new


def timed(session, requests: list[bytes]) -> tuple[list[float], list[bool]]:
    walls, matched = [], []
    gc.collect()
    for request in requests:
        t = time.perf_counter_ns()
        result = session.match(request, session.connection())
        walls.append((time.perf_counter_ns() - t) / 1e6)
        matched.append(result.matched)
    return walls, matched


def figures(walls: list[float]) -> str:
    ordered = sorted(walls)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"{p50:>9.3f}{p99:>9.3f}{ordered[-1]:>9.3f}"


def run(name: str, strategy, count: int, size: int, matches: int) -> None:
    calls, live = sized_candidates(count, size)
    t = time.perf_counter_ns()
    session = strategy.for_session(calls)
    prep = (time.perf_counter_ns() - t) / 1e6
    kinds: dict[str, bytes] = {}
    for request in live:
        message = parse_request(request)
        kinds.setdefault(type(message).__name__, request)
    cold, _ = timed(session, list(kinds.values()))
    label = f"{count} x {size // 1024} KB"
    print(f"{label:<12}{name:<11}{'prep':<34}{prep:>9.1f}")
    print(f"{'':<12}{'':<11}{'first request of each kind':<34}{figures(cold)}   ({len(cold)} kinds)")
    cases = {
        "equal key (drifted ids, clocks)": live[:matches],
        "no equal key (a value changed)": [r for r in map(changed_value, live) if r][:matches],
        "matches nothing": [r for r in map(unmatched, live) if r][: max(3, matches // 10)],
    }
    for case, requests in cases.items():
        walls, matched = timed(session, requests)
        print(f"{'':<12}{'':<11}{case:<34}{figures(walls)}   matched {sum(matched)}/{len(matched)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--matches", type=int, default=60, help="requests per case (default 60)")
    parser.add_argument("--reference", action="store_true", help="also time the implementation before issue 12")
    args = parser.parse_args()
    strategies = [("fuzzy", matchers.get("fuzzy"))]
    if args.reference:
        strategies.append(("before", reference_strategy()))
    print(f"fuzzy per decision path, ms per match (wall clock){'':<4}{'p50':>9}{'p99':>9}{'max':>9}")
    for count, size in ((50, 1024), (500, 8192)):
        for name, strategy in strategies:
            run(name, strategy, count, size, args.matches if count == 50 or name != "before" else min(args.matches, 10))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average when done: {load:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
