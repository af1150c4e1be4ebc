"""Replay runs made up for report tests and benchmarks: comparisons built with the real diff
from real response bytes, written through a real store's RunStore."""

from __future__ import annotations

import json
import random

from factories import BASE_NS, http_response
from koala_store import diff
from koala_store.diff.exchange import exchange_of
from koala_store.diff.outbound import MissedCall, OutboundReport
from koala_store.results import Comparison, RunSummary, Suppressed

ENDPOINTS = ["GET /users/{id}", "GET /orders/{id}", "POST /orders", "GET /quote", "GET /search", "PUT /users/{id}", "GET /health", "DELETE /orders/{id}"]


def synthetic_run(sessions: int, *, different_every: int = 3, error_every: int = 97, seed: int = 7) -> tuple[RunSummary, list[Comparison]]:
    """A finished run of `sessions` comparisons: every `different_every`-th differs (body
    changes, some status changes and missed calls), every `error_every`-th failed, and a
    few same sessions had differences suppressed as noise."""
    rng = random.Random(seed)
    run_id = f"synthetic{sessions}"
    comparisons = []
    for i in range(sessions):
        endpoint = ENDPOINTS[i % len(ENDPOINTS)]
        recorded = {"id": i, "name": f"user {i}", "email": f"u{i}@example.com", "items": [{"sku": f"s{j}", "qty": j} for j in range(rng.randint(1, 6))], "active": True}
        comparison = Comparison(
            run_id=run_id,
            session_id=f"{BASE_NS + i * 1000}-{i}",
            endpoint=endpoint,
            verdict="same",
            recorded_at=BASE_NS + i * 1_000_000,
            replayed_at=BASE_NS + 10**12 + i * 1_000_000,
            recorded_status=200,
            replayed_status=200,
            recorded_latency_ms=round(rng.uniform(1, 30), 3),
            replayed_latency_ms=round(rng.uniform(1, 40), 3),
            outbound=OutboundReport(matched=2),
        )
        if i % error_every == error_every - 1:
            comparison.verdict, comparison.error, comparison.replayed_status = "error", "the target did not answer within 5 s", None
        elif i % different_every == 0:
            actual = dict(recorded)
            status = 200
            if i % 4 == 0:
                del actual["email"]
            else:
                actual["active"] = None
            if i % 11 == 0:
                status = 500
            expected_bytes = http_response(200, json.dumps(recorded).encode())
            actual_bytes = http_response(status, json.dumps(actual).encode())
            comparison.differences = diff.compare_responses(expected_bytes, actual_bytes)
            comparison.replayed_status = status
            comparison.exchange = exchange_of(expected_bytes, actual_bytes)
            if i % 7 == 0:
                missed = MissedCall(action_index=3, position=2, peer="10.0.0.8:6379", protocol="redis", request="*3\\r\\n$3\\r\\nSET\\r\\n$6\\r\\nuser:1\\r\\n$2\\r\\nok\\r\\n")
                comparison.outbound = OutboundReport(matched=2, missed=1, missed_calls=[missed], differences=[diff.Difference("outbound[3]", "missing_call", missed.request, None)])
                comparison.differences.append(comparison.outbound.differences[0])
            comparison.verdict = "different"
        elif i % 10 == 1:
            comparison.suppressed = [Suppressed(diff.Difference("body.served_at", "changed", 1795320053, 1795320054), "noise-runs")]
        comparisons.append(comparison)
    counts = {v: sum(1 for c in comparisons if c.verdict == v) for v in ("same", "different", "error")}
    summary = RunSummary(
        run_id=run_id,
        name=f"synthetic-{sessions}",
        started_at=BASE_NS + 10**12,
        finished_at=BASE_NS + 10**12 + sessions * 1_000_000,
        status="finished",
        query="*",
        target="127.0.0.1:8080",
        matcher="fuzzy",
        noise_runs=2,
        total=sessions,
        suppressed=sum(len(c.suppressed) for c in comparisons),
        **counts,
    )
    return summary, comparisons
