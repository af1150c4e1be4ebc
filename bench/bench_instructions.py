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
- replay: the replayer's process for one session of bench_replay.py's recording, replayed at
  --concurrency 8 with fuzzy and the mock in the process (every outbound call mocked, every
  response compared and stored). The recording is made once, outside valgrind; the child
  replays its first 400 sessions, then all 1,200, and the difference over 800 is the figure
  (the service is another process: its instructions, and the kernel's, are not counted).
- replay-threads: the replay workload under callgrind with --separate-threads, split into the
  main thread (the event loop: replay() runs it on the calling thread) and the others together
  (the store thread, reading sessions ahead and writing comparisons behind, and uvloop's few
  helpers). The loop's share bounds a replay on one core; the rest can run beside it.

Each workload runs in a child process under `valgrind --tool=cachegrind`, once with no
repetition and once with --reps: the difference over --reps is its cost, the setup left out.
The children run with PYTHONHASHSEED=0 unless it is set: counts then repeat exactly.
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
import tempfile
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


REPLAY_FEW, REPLAY_MANY = 400, 1200  # sessions replayed by the replay workload's two counts


def replay_child(recording: Path, sessions: int) -> None:
    """Replay the first `sessions` of the recording (see the replay workload)."""
    import pickle
    import tempfile

    sys.path[:0] = [str(Path.cwd() / "bench")]
    from bench_replay import replay_run

    from koala_store.store import open_store

    peers = pickle.loads((recording / "peers.pickle").read_bytes())
    store = open_store(f"sqlite:///{recording / 'recording.db'}")
    try:
        with tempfile.TemporaryDirectory() as work:
            summary, _, _ = replay_run(store, peers, "fuzzy", 8, Path(work), None, None, mock_process="off", limit=sessions)
    finally:
        store.close()  # checkpoints the recording's WAL, which grew run after run otherwise
    if summary.same != sessions:
        raise SystemExit(f"error: {summary.same} of {sessions} replayed sessions came out same: {summary}")


def record_child(recording: Path) -> None:
    """Record REPLAY_MANY sessions as bench_replay.py does, into `recording` (see record_for_replay)."""
    import asyncio
    import pickle

    sys.path[:0] = [str(Path.cwd() / "bench")]
    from bench_replay import build_sut, record_sessions

    from koala_store.store import open_store

    recording.mkdir(parents=True, exist_ok=True)
    build_sut()
    sessions, peers = asyncio.run(record_sessions(REPLAY_MANY, recording))
    store = open_store(f"sqlite:///{recording / 'recording.db'}")
    store.put_many(sessions)
    store.refresh()
    store.close()
    (recording / "peers.pickle").write_bytes(pickle.dumps(peers))


def record_for_replay(tree: Path) -> Path:
    """bench_replay.py's recording of REPLAY_MANY sessions, made once into .cache/bench/ by a
    child process (not under valgrind)."""
    recording = ROOT / ".cache" / "bench" / f"instructions-replay-{REPLAY_MANY}"
    if not (recording / "peers.pickle").exists():
        subprocess.run([sys.executable, __file__, "--record", str(recording)], cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, check=True)
    return recording


WORKLOADS = (
    "fuzzy-prep",
    "fuzzy-encode",
    "sim-prep",
    "sim-match",
    "mask",
    "canonical",
    "diff-equal",
    "diff-reindented",
    "diff-reserialized",
    "replay",
    "replay-threads",
)


def under_valgrind(tree: Path, tool: list[str], child: list[str]) -> subprocess.CompletedProcess[str]:
    """This script's `--child ...` run in `tree` under valgrind with the `tool` options."""
    # One string hash seed for every child: with Python's random one, dict and set layouts
    # change from run to run, and fuzzy-prep's count moved by up to ~3M between runs of the
    # same code. PYTHONHASHSEED set outside still wins.
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0")}
    command = ["valgrind", *tool, sys.executable, __file__, "--child", *child]
    return subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)


def instructions(tree: Path, name: str, reps: int, *extra: str) -> int:
    done = under_valgrind(tree, ["--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"], [name, str(reps), *extra])
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"error: {name} in {tree} failed under valgrind:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def instructions_by_thread(tree: Path, sessions: int, recording: Path) -> tuple[int, int]:
    """The replay workload's instructions on the main thread and on all the others, counted by
    callgrind (cachegrind does not tell threads apart)."""
    with tempfile.TemporaryDirectory() as out:
        tool = ["--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}/callgrind"]
        done = under_valgrind(tree, tool, ["replay", str(sessions), str(recording)])
        # One file per thread: callgrind-01 is the main thread, -02 on the threads it started.
        counts = {f.name: _callgrind_total(f) for f in Path(out).glob("callgrind-*")}
    if done.returncode != 0 or "callgrind-01" not in counts:
        raise SystemExit(f"error: replay-threads in {tree} failed under valgrind:\n{done.stderr[-2000:]}")
    main_thread = counts.pop("callgrind-01")
    return main_thread, sum(counts.values())


def _callgrind_total(path: Path) -> int:
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"error: {path} has no summary line; is valgrind's callgrind output format new?")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--record":
        record_child(Path(sys.argv[2]))
        return
    if len(sys.argv) == 5 and sys.argv[1:3] == ["--child", "replay"]:
        replay_child(Path(sys.argv[4]), int(sys.argv[3]))
        return
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
    print(f"instructions per run, valgrind (cachegrind; callgrind for replay-threads), {tree}:")
    for name in args.workloads:
        if name == "replay":  # per session: the difference between two replays' counts
            recording = record_for_replay(tree)
            few, many = (instructions(tree, name, n, str(recording)) for n in (REPLAY_FEW, REPLAY_MANY))
            each = (many - few) / (REPLAY_MANY - REPLAY_FEW)
            print(f"  {name:<18} {each / 1e3:>12,.0f} k a session")
            continue
        if name == "replay-threads":
            recording = record_for_replay(tree)
            (loop_few, rest_few), (loop_many, rest_many) = (instructions_by_thread(tree, n, recording) for n in (REPLAY_FEW, REPLAY_MANY))
            loop, rest = ((many - few) / (REPLAY_MANY - REPLAY_FEW) for few, many in ((loop_few, loop_many), (rest_few, rest_many)))
            print(f"  {name:<18} {loop / 1e3:>12,.0f} k a session on the event loop's thread, {rest / 1e3:,.0f} k on the others (callgrind)")
            continue
        each = (instructions(tree, name, args.reps) - instructions(tree, name, 0)) / args.reps
        print(f"  {name:<18} {each / 1e3:>12,.0f} k")


if __name__ == "__main__":
    main()
