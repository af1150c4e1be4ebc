"""Instructions per workload, counted by valgrind (cachegrind): figures that do not move with
the machine's speed, for comparing two versions of the code on a noisy box.

    .venv/bin/python bench/bench_instructions.py [--tree PATH] [--reps 3] [WORKLOAD ...]

Workloads (default: all):
- fuzzy-prep: fuzzy's full preparation of a 500 x 8 KB session (for_session, then one request
  scored against every call: every call parsed, normalised and encoded);
- fuzzy-encode: encoding every key of that session (matchers/_fuzzylex.c);
- sim-prep: sim's preparation of that session (every call's token vector and its norm);
- sim-match: one sim match in that session (a request's cosine with every call);
- mask: masking the volatile values of that session's requests (wire/_normalize.c);
- canonical: canonical() of a ~4 KB API answer, compact and re-serialised (wire/_canonjson.c);
- diff-equal, diff-reindented, diff-reserialized: compare_responses of one pair of
  bench_diff.py's set of that name (the whole pair: heads, options, body; koala_store/diff/).

Each workload runs in a child process under `valgrind --tool=cachegrind`, once with no
repetition and once with --reps: the difference over --reps is its cost, the setup left out.
--tree measures another checkout (a worktree of an older commit, its C parts built with
`setup.py build_ext --inplace`) with this script's workloads.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def workload(name: str):
    """The workload's setup done; returns the function to repeat."""
    sys.path[:0] = [str(Path.cwd() / "bench"), str(Path.cwd() / "tests")]
    if name == "canonical":
        import random

        import orjson
        from bench_diff import body_doc, reserialize

        from koala_store.wire._canonjson import canonical

        docs = [body_doc(random.Random(11)) for _ in range(1)]
        bodies = [orjson.dumps(docs[0]), reserialize(docs[0])]
        return lambda: [canonical(b) for b in bodies]
    if name.startswith("diff-"):
        import random

        import orjson
        from bench_diff import body_doc, reserialize, response

        from koala_store import diff

        doc = body_doc(random.Random(11))
        recorded = response(orjson.dumps(doc))
        replayed = {
            "diff-equal": response(orjson.dumps(doc), "Sat, 22 Nov 2025 09:13:07 GMT", "0001", "nginx/1.25.3"),
            "diff-reindented": response(orjson.dumps(doc, option=orjson.OPT_INDENT_2), rid="0001"),
            "diff-reserialized": response(reserialize(doc), rid="0001"),
        }[name]
        options = diff.DiffOptions()
        diff.compare_responses(recorded, replayed, options)  # the options compiled: setup
        return lambda: diff.compare_responses(recorded, replayed, options)
    import matchers
    from matchers_data import sized_candidates

    calls, live = sized_candidates(500, 8192)
    if name == "fuzzy-prep":
        return lambda: matchers.get("fuzzy").for_session(calls).scores(live[0])
    if name == "sim-prep":
        return lambda: matchers.get("sim").for_session(calls)
    if name == "sim-match":
        session = matchers.get("sim").for_session(calls)
        return lambda: session.match(live[1], session.connection())
    if name == "mask":
        from koala_store.wire.normalize import mask_volatile

        texts = [c.request.decode("latin-1") for c in calls]
        return lambda: [mask_volatile(t) for t in texts]
    if name == "fuzzy-encode":
        from matchers import fuzzy

        session = matchers.get("fuzzy").for_session(calls)
        session._prepare_calls()
        keys = [p.key for p in session._prepared if p is not None]

        def encode_all() -> None:  # each time into a fresh alphabet, as a new session does
            session._alphabet = {}
            session._lexeme_cache = fuzzy._compiled_lexeme_cache(session._alphabet) if fuzzy._compiled_lexeme_cache else None
            for key in keys:
                session._encode(key, grow=True)

        return encode_all
    raise SystemExit(f"error: unknown workload {name!r}; pick from {', '.join(WORKLOADS)}")


WORKLOADS = ("fuzzy-prep", "fuzzy-encode", "sim-prep", "sim-match", "mask", "canonical", "diff-equal", "diff-reindented", "diff-reserialized")


def instructions(tree: Path, name: str, reps: int) -> int:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", sys.executable, __file__, "--child", name, str(reps)]
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"error: {name} in {tree} failed under valgrind:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        run = workload(sys.argv[2])
        for _ in range(int(sys.argv[3])):
            run()
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workloads", nargs="*", default=list(WORKLOADS), help="which to count (default: all)")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout to measure (default: this one)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions counted (default %(default)s)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("error: valgrind is not installed; install it (Debian: apt-get install valgrind)")
    if args.reps < 1:
        raise SystemExit(f"error: --reps {args.reps}: give 1 or more")
    for name in args.workloads:
        if name not in WORKLOADS:
            raise SystemExit(f"error: unknown workload {name!r}; pick from {', '.join(WORKLOADS)}")
    tree = args.tree.resolve()
    print(f"instructions per run, cachegrind, {tree}:")
    for name in args.workloads:
        each = (instructions(tree, name, args.reps) - instructions(tree, name, 0)) / args.reps
        print(f"  {name:<18} {each / 1e3:>12,.0f} k")


if __name__ == "__main__":
    main()
