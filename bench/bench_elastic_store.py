"""Ingest N synthetic ~2 KB sessions into a local Elasticsearch three ways, in one run:

1. ElasticStore.put_many (summaries, documents, idempotency check, streaming bulk, retries);
2. plain elasticsearch.helpers.bulk of the very same documents (prebuilt, not timed);
3. one POST per session, as Koala's recorder sends them (on a sample: it is slow).

Target (issue 3): put_many >= 0.9 x plain bulk.

    .venv/bin/koala es start --port 19200
    .venv/bin/python bench/bench_elastic_store.py --url http://127.0.0.1:19200 [--sessions 100000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import orjson  # noqa: E402
from elasticsearch import helpers  # noqa: E402
from factories import payload_bytes, varied_sessions  # noqa: E402

from koala_store.formats import koala  # noqa: E402
from koala_store.store.elastic import ElasticStore  # noqa: E402
from koala_store.summary import summarize  # noqa: E402


def fresh_store(url: str) -> ElasticStore:
    return ElasticStore(url, prefix=f"bench{uuid.uuid4().hex[:8]}")


def drop(store: ElasticStore) -> None:
    prefix = store.layout.prefix  # type: ignore[union-attr]
    store.client.options(ignore_status=404).indices.delete(index=f"{prefix}-*")
    store.client.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-sessions")
    store.close()


def run_ours(url: str, sessions) -> float:
    store = fresh_store(url)
    started = time.perf_counter()
    result = store.put_many(sessions)
    store.refresh()
    rate = len(sessions) / (time.perf_counter() - started)
    assert result.stored == len(sessions) and not result.rejected, result.rejected[:3]
    assert store.count() == len(sessions)
    drop(store)
    return rate


def run_plain(url: str, sessions) -> float:
    store = fresh_store(url)
    layout = store.layout
    actions = []
    for session in sessions:  # built before the clock starts: only the bulk is timed
        summary = summarize(session)
        actions.append({"_index": layout.index_for(summary), "_id": session.session_id, "_source": layout.document(session, summary)})
    started = time.perf_counter()
    ok, errors = helpers.bulk(store.client, actions, chunk_size=500, max_chunk_bytes=50 * 1024 * 1024)
    store.refresh()
    rate = len(sessions) / (time.perf_counter() - started)
    assert ok == len(sessions) and not errors
    drop(store)
    return rate


def run_posts(url: str, sessions) -> float:
    """One POST per session into a recorder-style index, as Koala's recorder does."""
    index = f"bench{uuid.uuid4().hex[:8]}-rdebug_index"
    bodies = [orjson.dumps(koala.to_dict(s)) for s in sessions]
    started = time.perf_counter()
    for body in bodies:
        request = urllib.request.Request(f"{url}/{index}/_doc", data=body, headers={"Content-Type": "application/json"}, method="POST")
        urllib.request.urlopen(request).close()
    rate = len(sessions) / (time.perf_counter() - started)
    urllib.request.urlopen(urllib.request.Request(f"{url}/{index}", method="DELETE")).close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:19200")
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--post-sample", type=int, default=5_000, help="sessions sent one POST each")
    args = parser.parse_args()
    n = args.sessions
    sessions = varied_sessions(n, payload=2048)
    print(f"sessions: {n} per round, mean payload {sum(payload_bytes(s) for s in sessions[:1000]) / 1000:.0f} bytes, {args.rounds} rounds")
    ours, plain = [], []
    for round_number in range(args.rounds):
        # Alternate which goes first, so neither always meets the other's leftover merges.
        order = (run_ours, run_plain) if round_number % 2 == 0 else (run_plain, run_ours)
        for runner in order:
            (ours if runner is run_ours else plain).append(runner(args.url, sessions))
        print(f"  round {round_number + 1}: ours {ours[-1]:,.0f}/s, plain bulk {plain[-1]:,.0f}/s")
    ours_rate, plain_rate = statistics.median(ours), statistics.median(plain)
    print(f"ElasticStore.put_many:        {ours_rate:>8,.0f} sessions/s (median)")
    print(f"plain helpers.bulk:           {plain_rate:>8,.0f} sessions/s (median)   ours / plain = {ours_rate / plain_rate:.2f}")
    posted = run_posts(args.url, sessions[: args.post_sample])
    print(f"one POST per session (n={args.post_sample}): {posted:>6,.0f} sessions/s   ours / POST = {ours_rate / posted:.1f}x")


if __name__ == "__main__":
    main()
