"""Replay results in Elasticsearch: comparisons in daily indices `<prefix>-replays-YYYY.MM.DD`
(alias `<prefix>-replays`, one document per run and session), run summaries in
`<prefix>-runs`. Kibana dashboards read both (see kibana/)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import msgspec
from elasticsearch import Elasticsearch, helpers

from ..formats.document import ns_to_iso
from ..results import Comparison, RunSummary
from .elastic_client import daily_template, point_in_time_hits

KEYWORD = {"type": "keyword", "ignore_above": 1024}
COUNT = {"type": "integer"}


def replays_template(prefix: str) -> dict[str, Any]:
    difference = {"properties": {"path": KEYWORD, "kind": KEYWORD}}  # expected/actual: in _source only
    return daily_template(
        f"{prefix}-replays",
        {
            "dynamic": False,
            "properties": {
                "run_id": KEYWORD,
                "run_name": KEYWORD,
                "session_id": KEYWORD,
                "endpoint": KEYWORD,
                "verdict": KEYWORD,
                "recorded_at": {"type": "long"},
                "replayed_at": {"type": "long"},
                "recorded_time": {"type": "date_nanos"},
                "replayed_time": {"type": "date_nanos"},
                "error": {"type": "text"},
                "recorded_status": COUNT,
                "replayed_status": COUNT,
                "recorded_latency_ms": {"type": "double"},
                "replayed_latency_ms": {"type": "double"},
                "differences": difference,
                "suppressed": {"properties": {"why": KEYWORD, "difference": difference}},
                "outbound": {"properties": {k: COUNT for k in ("matched", "unmatched", "missed", "reordered", "repeated", "request_changed")}},
                "unmatched_peers": KEYWORD,  # recorded peers of the unmatched talks (Kibana: per peer)
                "missed_peers": KEYWORD,  # recorded peers of the calls never made
            },
        },
    )


RUNS_MAPPING = {
    "dynamic": False,
    "properties": {
        "run_id": KEYWORD,
        "name": KEYWORD,
        "status": KEYWORD,
        "target": KEYWORD,
        "baseline": KEYWORD,
        "matcher": KEYWORD,
        "query": {"type": "text"},
        "started_at": {"type": "long"},
        "started_time": {"type": "date_nanos"},
        "finished_time": {"type": "date_nanos"},
        **{k: COUNT for k in ("total", "same", "different", "error", "suppressed", "unattributed", "concurrency", "noise_runs")},
        "sessions_per_second": {"type": "double"},
    },
}
_EXTRA = ("run_name", "recorded_time", "replayed_time", "started_time", "finished_time", "unmatched_peers", "missed_peers")


def _strip(source: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in source.items() if k not in _EXTRA}


class ElasticRunStore:
    def __init__(self, client: Elasticsearch, prefix: str):
        self.client = client
        self.prefix = prefix
        self.alias = f"{prefix}-replays"
        self.runs_index = f"{prefix}-runs"
        self._names: dict[str, str] = {}
        self._created = False  # reads never create: templates and index come with the first write

    def create(self) -> None:
        if self._created:
            return
        self.client.indices.put_index_template(name=self.alias, **replays_template(self.prefix))
        if not self.client.indices.exists(index=self.runs_index):
            self.client.options(ignore_status=400).indices.create(  # 400: created meanwhile by another run
                index=self.runs_index, mappings=RUNS_MAPPING, settings={"number_of_shards": 1, "auto_expand_replicas": "0-1"}
            )
        self._created = True

    def put_run(self, summary: RunSummary) -> None:
        self.create()
        doc = msgspec.to_builtins(summary)
        doc["started_time"] = ns_to_iso(summary.started_at)
        if summary.finished_at:
            doc["finished_time"] = ns_to_iso(summary.finished_at)
        self._names[summary.run_id] = summary.name
        self.client.index(index=self.runs_index, id=summary.run_id, document=doc, refresh="wait_for")

    def put_comparisons(self, comparisons: Iterable[Comparison]) -> None:
        actions = []
        for comparison in comparisons:
            doc = msgspec.to_builtins(comparison)
            doc["run_name"] = self._names.get(comparison.run_id, "")
            doc["recorded_time"] = ns_to_iso(comparison.recorded_at)
            doc["replayed_time"] = replayed = ns_to_iso(comparison.replayed_at)
            if comparison.outbound is not None:
                doc["unmatched_peers"] = sorted({t.peer for t in comparison.outbound.unmatched_talks})
                doc["missed_peers"] = sorted({m.peer for m in comparison.outbound.missed_calls})
            index = f"{self.alias}-{replayed[:10].replace('-', '.')}"
            actions.append({"_index": index, "_id": f"{comparison.run_id}:{comparison.session_id}", "_source": doc})
        if actions:
            self.create()
            helpers.bulk(self.client, actions, refresh="wait_for")

    def runs(self, limit: int = 20) -> list[RunSummary]:
        reply = self.client.search(index=self.runs_index, sort=[{"started_at": "desc"}], size=limit, ignore_unavailable=True)
        return [msgspec.convert(_strip(hit["_source"]), RunSummary) for hit in reply["hits"]["hits"]]

    def run(self, ref: str) -> RunSummary | None:
        query = {"bool": {"should": [{"term": {"run_id": ref}}, {"term": {"name": ref}}], "minimum_should_match": 1}}
        # An id matches exactly one run; a name, the newest run carrying it.
        reply = self.client.search(index=self.runs_index, query=query, sort=[{"started_at": "desc"}], size=10, ignore_unavailable=True)
        hits = reply["hits"]["hits"]
        exact = [h for h in hits if h["_source"].get("run_id") == ref] or hits
        return msgspec.convert(_strip(exact[0]["_source"]), RunSummary) if exact else None

    def comparisons(self, run_id: str, verdict: str | None = None) -> Iterator[Comparison]:
        filters: list[dict[str, Any]] = [{"term": {"run_id": run_id}}]
        if verdict:
            filters.append({"term": {"verdict": verdict}})
        sort = [{"recorded_at": "asc"}, {"session_id": "asc"}]
        for hit in point_in_time_hits(self.client, self.alias, {"bool": {"filter": filters}}, sort):
            yield msgspec.convert(_strip(hit["_source"]), Comparison)
