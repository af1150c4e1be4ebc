"""Figures for matchers/: per-match latency (p50/p99) and accuracy on a drifted replay.

    .venv/bin/python bench/bench_matchers.py [--latency] [--accuracy] [--strategy NAME] [--sessions N] [--seed S]

Latency: 50 recorded calls of ~1 KB (target p99 < 1 ms for chunk and fuzzy) and 500 of
~8 KB (Koala's cap on a session), each match timed alone with perf_counter_ns; per-session
preprocessing (for_session) is timed apart, since it is done once per session, and so is a
session's first match, which pays for what a strategy prepares on first use (fuzzy's
preparation is lazy; its most, every call normalised, is printed after the table).

Accuracy: bench/matchers_data.drift_set() (deterministic seed) replayed through each
strategy the way the replay runner does it: one ConnectionState per live connection, carried
to the next session while the connection stays open. A live call is right when the matched
call is its true recorded call (or a byte-identical recorded twin: same request and
response), wrong when another call answers it, unmatched otherwise.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import sys
import time
import tracemalloc
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import matchers  # noqa: E402
from matchers import chunk_scan, sim  # noqa: E402
from koala_store import wire  # noqa: E402
from koala_store.replay import heap  # noqa: E402
from matchers_data import drift_set, sized_candidates  # noqa: E402

STRATEGIES = ("chunk", "sim", "fuzzy")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def latency(name: str, count: int, size: int, matches: int, long_lived: bool, explain: bool = True) -> dict[str, float]:
    calls, live = sized_candidates(count, size)
    strategy = matchers.get(name)
    gc.collect()
    t0 = time.perf_counter_ns()
    session = strategy.for_session(calls)
    prep = (time.perf_counter_ns() - t0) / 1e6
    session.explain_matches = explain
    conn = session.connection()
    # The first match pays for what a strategy prepares on first use (fuzzy parses every call
    # then, and normalises the calls of the request's kind it needs): a cold request's cost.
    t0 = time.perf_counter_ns()
    session.match(live[0], conn)
    first = (time.perf_counter_ns() - t0) / 1e6
    wall, cpu = [], []
    matched = 0
    gc.collect()
    for i in range(1, matches + 21):
        request = live[i % len(live)]
        if not long_lived:
            conn = session.connection()
        c, t = time.process_time_ns(), time.perf_counter_ns()
        result = session.match(request, conn)
        t, c = time.perf_counter_ns() - t, time.process_time_ns() - c
        if i > 20:  # warm-up
            wall.append(t / 1e6)
            cpu.append(c / 1e6)
            matched += result.matched
    return {
        "p50": percentile(wall, 50),
        "p99": percentile(wall, 99),
        "cpu_p50": percentile(cpu, 50),
        "cpu_p99": percentile(cpu, 99),
        "prep": prep,
        "first": first,
        "matched": matched / matches,
    }


def fuzzy_full_preparation(count: int, size: int, sessions: int = 6, trim: list[int] | None = None) -> tuple[list[float], list[int]]:
    """for_session, then one request scored against every call: every call normalised and
    encoded, what a replay whose requests drift in every kind of call pays once per session.
    Timed for `sessions` sessions in a row, each with a matcher of its own (ms), with the page
    faults each took: the first pays too for what the process does once (imports on first use,
    regexes compiled), the others are what each further session of a replay pays. With
    `trim`, session k runs with malloc's trim threshold set to trim[k % len(trim)] first."""
    calls, live = sized_candidates(count, size)
    times, faults = [], []
    for k in range(sessions):
        if trim:
            heap.keep_freed_heap(trim[k % len(trim)])
        gc.collect()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter_ns()
        matchers.get("fuzzy").for_session(calls).scores(live[0])
        times.append((time.perf_counter_ns() - t0) / 1e6)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return times, faults


def sim_session_bytes(count: int, size: int, packed: bool) -> int:
    """What sim's session matcher keeps of its calls' vectors, packed or as dicts."""
    calls, _ = sized_candidates(count, size)
    gc.collect()
    tracemalloc.start()
    session = sim.SimSessionMatcher(calls, sim.DEFAULT_THRESHOLD, packed=packed)
    kept = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del session
    return kept


def run_latency(strategies: tuple[str, ...]) -> None:
    print("Per-match latency, ms: wall clock (perf_counter) and this process's CPU time (process_time,")
    print("which leaves out time other processes on the box took). Each live request on a fresh connection")
    print("unless noted; a long-lived one makes chunk retry as fresh when the request is before its last match.")
    if "chunk" in strategies:
        print(f"chunk uses the {chunk_scan.DEFAULT} scanner (matchers/chunk_scan.py)")
    print(f"{'case':<28}{'strategy':<9}{'p50':>9}{'p99':>9}{'cpu p50':>9}{'cpu p99':>9}{'prep':>9}{'1st':>9}{'matched':>9}")
    for count, size, matches in ((50, 1024, 2000), (500, 8192, 40)):
        for long_lived, explain in ((False, True), (True, True), (False, False)):
            if (count == 50 and not explain) or (count == 500 and long_lived):
                continue  # the long-lived variant adds little at 500 x 8 KB and takes long
            label = f"{count} x {size // 1024} KB" + (" long-lived conn" if long_lived else "") + ("" if explain else " as replayed")
            for name in strategies:
                r = latency(name, count, size, matches, long_lived, explain)
                print(
                    f"{label:<28}{name:<9}{r['p50']:>9.3f}{r['p99']:>9.3f}{r['cpu_p50']:>9.3f}{r['cpu_p99']:>9.3f}"
                    f"{r['prep']:>9.1f}{r['first']:>9.1f}{r['matched']:>9.0%}"
                )
    print("prep = for_session() once per session (ms); 1st = the session's first match (ms), with what the")
    print("strategy prepares on first use; matched = share of the drifted live requests matched;")
    print("as replayed = as the replay mock asks, without a match's near misses (explain_matches off: the")
    print("decisions are the same, tests/test_matchers_explain.py)")
    if "sim" in strategies and sim.PACKED:
        kept = {packed: sim_session_bytes(500, 8192, packed) for packed in (True, False)}
        print(f"sim, 500 x 8 KB, memory a session keeps (tracemalloc): packed {kept[True] / 1e6:.1f} MB, dicts {kept[False] / 1e6:.1f} MB")
    if "fuzzy" in strategies:
        full, faults = fuzzy_full_preparation(500, 8192)
        print(
            f"fuzzy, 500 x 8 KB, every call parsed, normalised and encoded (the most a session prepares): {full[0]:.1f} ms "
            f"the process's first session, then median {statistics.median(full[1:]):.1f} ms (min {min(full[1:]):.1f}, max {max(full[1:]):.1f}) "
            f"for each of {len(full) - 1} more, {statistics.median(faults[1:]):.0f} page faults each (median)"
        )
        # The replayer's processes keep freed heap (koala_store/replay/heap.py). What a
        # session keeps is what the next one finds, so the two settings alternate in blocks of
        # BLOCK sessions, each block's first left out: the box's drift hits both alike.
        block, default, kept = 4, 128 * 1024, heap.KEEP_BYTES
        trim = ([default] * block + [kept] * block) * 3
        full, faults = fuzzy_full_preparation(500, 8192, sessions=len(trim), trim=trim)
        for label, setting in (("128 KB (glibc's starting threshold, fixed here)", default), (f"{kept >> 20} MB, as the replayer's processes", kept)):
            picked = [k for k in range(len(trim)) if trim[k] == setting and k % block != 0]
            times, counts = [full[k] for k in picked], [faults[k] for k in picked]
            print(
                f"  freed heap kept up to {label}: median {statistics.median(times):.1f} ms (min {min(times):.1f}, max {max(times):.1f}), "
                f"{statistics.median(counts):.0f} page faults each (median), {len(times)} sessions in blocks of {block} alternated"
            )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average when done: {load:.2f} on {os.cpu_count()} CPUs")


def protocol_of(request: bytes, port: int) -> str:
    if not request:
        return "greeting"
    return wire.guess_protocol(request, b"", port) if port != 3306 else "mysql"


def run_accuracy(sessions: int, seed: int, strategies: tuple[str, ...]) -> None:
    t0 = time.perf_counter()
    cases = drift_set(sessions, seed)
    calls_total = sum(len(c.live) for c in cases)
    greetings = sum(1 for c in cases for lc in c.live if lc.greeting)
    print(
        f"\nAccuracy on the drift set: {len(cases)} sessions, {calls_total - greetings} live outbound requests "
        f"scored (plus {greetings} greetings), built in {time.perf_counter() - t0:.1f}s"
    )
    for use_peer in (False, True):
        mode = "runner passes the peer" if use_peer else "no peer given (as Koala)"
        print(f"\n  {mode}")
        print(f"  {'strategy':<10}{'right':>9}{'wrong':>7}{'unmatched':>11}{'right resp.':>13}{'greetings':>11}   right by protocol{'':<17}time")
        for name in strategies:
            t1 = time.perf_counter()
            stats, per_proto = replay(matchers.get(name), cases, use_peer)
            elapsed = time.perf_counter() - t1
            n = stats["total"]
            protos = "  ".join(f"{p} {per_proto[p]['right'] / per_proto[p]['total']:.2%}" for p in ("http", "redis", "mysql"))
            print(
                f"  {name:<10}{stats['right'] / n:>9.2%}{stats['wrong']:>7}{stats['unmatched']:>11}{stats['response'] / n:>13.2%}"
                f"{stats['greeting_right']:>8}/{greetings:<2}   {protos}   {elapsed:.1f}s"
            )
    print(
        "\n  right = the true recorded call (or a byte-identical twin); wrong / unmatched = counts of calls;"
        "\n  right resp. = the response bytes sent back are the true ones (a twin with another request counts);"
        "\n  greetings = MySQL greetings answered with the true recorded one (same rules for every strategy)"
    )


def replay(strategy, cases, use_peer: bool):
    open_conns: dict[str, matchers.ConnectionState] = {}
    stats: Counter[str] = Counter()
    per_proto: dict[str, Counter[str]] = defaultdict(Counter)
    for case in cases:
        session = strategy.for_session(case.calls)
        states: dict[str, matchers.ConnectionState] = {}
        for lc in case.live:
            conn = states.get(lc.conn)
            if conn is None:
                previous = open_conns.get(lc.conn)
                conn = states[lc.conn] = session.connection(previous)
            peer = lc.peer if use_peer else None
            result = session.greeting(conn, peer=peer) if lc.greeting else session.match(lc.request, conn, peer=peer)
            truth = case.calls[lc.truth]
            if lc.greeting:
                stats["greeting_right"] += result.position == lc.truth
                continue
            proto = protocol_of(lc.request, truth.peer.port)
            if result.call is None:
                outcome = "unmatched"
            elif result.position == lc.truth or (result.call.request == truth.request and result.call.response == truth.response):
                outcome = "right"
            else:
                outcome = "wrong"
            stats[outcome] += 1
            stats["total"] += 1
            stats["response"] += result.call is not None and result.call.response == truth.response
            per_proto[proto][outcome] += 1
            per_proto[proto]["total"] += 1
        open_conns.update(states)
    return stats, per_proto


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", action="store_true", help="only the latency figures")
    parser.add_argument("--accuracy", action="store_true", help="only the accuracy figures")
    parser.add_argument("--sessions", type=int, default=300, help="sessions in the drift set (default 300)")
    parser.add_argument("--seed", type=int, default=20190122, help="seed of the drift set (default 20190122)")
    parser.add_argument("--strategy", action="append", choices=STRATEGIES, help="only this strategy (repeat for several; default all of them)")
    args = parser.parse_args()
    strategies = tuple(args.strategy) if args.strategy else STRATEGIES
    both = not args.latency and not args.accuracy
    if args.latency or both:
        run_latency(strategies)
    if args.accuracy or both:
        run_accuracy(args.sessions, args.seed, strategies)


if __name__ == "__main__":
    main()
