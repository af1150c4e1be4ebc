"""Every Kibana saved object koala-store ships, in one place: data views over the sessions,
comparisons and runs indices, saved searches, Lens visualizations (koala_store.kibana.spec)
and the dashboards "Replay regressions" and "Traffic".

`saved_objects(prefix)` builds them for indices named with `prefix` (the store URL's
`prefix`, `koala` by default); `ndjson(prefix)` is the text `koala kibana export` writes to
kibana/ and `koala kibana install` imports. Shapes are Kibana 8.x exports: Kibana migrates
objects from older versions on import and refuses objects from newer ones, so the migration
versions below are the oldest that carry these shapes (Lens's formBased layers: 8.9).
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from ..store.elastic import sessions_template
from ..store.elastic_runs import RUNS_MAPPING, replays_template
from .spec import Average, Count, DateHistogram, Sum, Terms, Viz, es_filter, kql, lens_attributes

CORE_MIGRATION_VERSION = "8.8.0"
TYPE_MIGRATION_VERSIONS = {"index-pattern": "8.0.0", "search": "8.0.0", "lens": "8.9.0", "dashboard": "8.9.0"}
MINIMUM_KIBANA = (8, 9, 0)  # the newest of the versions above: older Kibanas refuse the lens objects


class DataView(msgspec.Struct, frozen=True):
    key: str
    index: str  # the alias or index after the prefix, e.g. "sessions"
    time_field: str
    name: str


DATA_VIEWS = (
    DataView("sessions", "sessions", "recorded_at", "koala-store sessions"),
    DataView("replays", "replays", "replayed_time", "koala-store replay comparisons"),
    DataView("runs", "runs", "started_time", "koala-store replay runs"),
)


class Search(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    title: str
    data_view: str
    where: str  # KQL
    es_query: dict[str, Any]  # the same condition as an Elasticsearch query (for tests)
    columns: tuple[str, ...]
    sort: tuple[str, str]
    description: str = ""


def _verdict(verdict: str) -> dict[str, str]:
    return {"verdict": verdict}


SEARCHES = (
    Search(
        id="differing-sessions",
        title="Differing sessions (filter run_name for one run)",
        data_view="replays",
        where=kql(_verdict("different")),
        es_query={"bool": {"filter": es_filter(_verdict("different"))}},
        columns=("run_name", "session_id", "endpoint", "differences.path", "recorded_status", "replayed_status"),
        sort=("replayed_time", "desc"),
        description="Sessions whose replay differed from the recording; koala runs show RUN --diff shows one in full.",
    ),
    Search(
        id="replay-errors",
        title="Replay errors",
        data_view="replays",
        where=kql(_verdict("error")),
        es_query={"bool": {"filter": es_filter(_verdict("error"))}},
        columns=("run_name", "session_id", "endpoint", "error"),
        sort=("replayed_time", "desc"),
        description="Sessions the build gave no usable answer for (down, reset, slow).",
    ),
    Search(
        id="server-errors",
        title="Recorded server errors (5xx)",
        data_view="sessions",
        where="inbound.status >= 500",
        es_query={"range": {"inbound.status": {"gte": 500}}},
        columns=("SessionId", "inbound.method", "inbound.path", "inbound.status", "inbound.latency_ms"),
        sort=("recorded_at", "desc"),
    ),
)

VERDICTS = Terms("verdict", 3, "Verdict")
ENDPOINTS = Terms("endpoint", 20, "Endpoint")

REGRESSION_PANELS = (
    Viz(
        id="verdicts-over-time",
        title="Verdicts per run over time",
        data_view="replays",
        chart="bar_stacked",
        x=DateHistogram("replayed_time", "Replayed"),
        split=VERDICTS,
        metrics=(Count(),),
    ),
    Viz(
        id="difference-rate-per-endpoint",
        title="Difference rate per endpoint",
        data_view="replays",
        chart="bar_horizontal_percentage_stacked",
        x=ENDPOINTS,
        split=VERDICTS,
        metrics=(Count(),),
        description="Share of each endpoint's sessions per verdict.",
    ),
    Viz(
        id="top-differing-paths",
        title="Top differing field paths",
        data_view="replays",
        chart="bar_horizontal",
        x=Terms("differences.path", 15, "Field path"),
        metrics=(Count("Differing sessions"),),
        where=_verdict("different"),
    ),
    Viz(
        id="unmatched-calls-per-peer",
        title="Unmatched outbound calls per peer",
        data_view="replays",
        chart="bar",
        x=Terms("unmatched_peers", 10, "Recorded peer"),
        metrics=(Count("Sessions with unmatched calls"),),
        description="Calls the build made that matched no recorded call, by the peer its listener stands for.",
    ),
    Viz(
        id="missed-calls-per-peer",
        title="Missed outbound calls per peer",
        data_view="replays",
        chart="bar",
        x=Terms("missed_peers", 10, "Recorded peer"),
        metrics=(Count("Sessions with missed calls"),),
        description="Recorded calls the build never made (lost writes), by peer.",
    ),
    Viz(
        id="latency-per-endpoint",
        title="Recorded vs replayed latency per endpoint (ms)",
        data_view="replays",
        chart="bar",
        x=ENDPOINTS,
        metrics=(Average("recorded_latency_ms", "Recorded (ms)"), Average("replayed_latency_ms", "Replayed (ms)")),
    ),
    Viz(
        id="runs-table",
        title="Runs",
        data_view="replays",
        chart="table",
        x=Terms("run_name", 50, "Run"),
        metrics=(
            Count("Sessions"),
            Count("Same", _verdict("same")),
            Count("Different", _verdict("different")),
            Count("Error", _verdict("error")),
        ),
    ),
)

TRAFFIC_PANELS = (
    Viz(
        id="sessions-per-endpoint",
        title="Sessions per endpoint over time",
        data_view="sessions",
        chart="bar_stacked",
        x=DateHistogram("recorded_at", "Recorded"),
        split=Terms("inbound.path", 10, "Path"),
        metrics=(Count(),),
    ),
    Viz(
        id="status-codes",
        title="Status codes",
        data_view="sessions",
        chart="pie",
        x=Terms("inbound.status", 10, "Status"),
        metrics=(Count(),),
    ),
    Viz(
        id="outbound-calls-over-time",
        title="Outbound calls over time",
        data_view="sessions",
        chart="line",
        x=DateHistogram("recorded_at", "Recorded"),
        metrics=(Sum("outbound_count", "Outbound calls"),),
    ),
    Viz(
        id="sessions-per-peer",
        title="Sessions calling each outbound peer",
        data_view="sessions",
        chart="bar",
        x=Terms("outbound.peer", 20, "Peer"),
        metrics=(Count(),),
    ),
    Viz(
        id="sessions-per-protocol",
        title="Sessions per outbound protocol",
        data_view="sessions",
        chart="pie",
        x=Terms("outbound.protocol", 5, "Protocol"),
        metrics=(Count(),),
    ),
)

VISUALIZATIONS = REGRESSION_PANELS + TRAFFIC_PANELS


class Dashboard(msgspec.Struct, frozen=True):
    id: str
    title: str
    description: str
    panels: tuple[str, ...]  # ids of visualizations and searches, laid out two per row


DASHBOARDS = (
    Dashboard(
        "replay-regressions",
        "Replay regressions",
        "What changed between recordings and replays: verdicts, field paths, side effects and latency per run (filter run_name for one run).",
        tuple(v.id for v in REGRESSION_PANELS) + ("differing-sessions", "replay-errors"),
    ),
    Dashboard(
        "traffic",
        "Traffic",
        "The recorded sessions: endpoints over time, status codes, outbound calls per peer and protocol.",
        tuple(v.id for v in TRAFFIC_PANELS) + ("server-errors",),
    ),
)


def _flatten(properties: dict[str, Any], parent: str = "") -> dict[str, str]:
    out = {}
    for name, spec in properties.items():
        path = f"{parent}{name}"
        if "properties" in spec:
            out.update(_flatten(spec["properties"], f"{path}."))
        else:
            out[path] = spec.get("type", "object")
    return out


def field_types(prefix: str = "koala") -> dict[str, dict[str, str]]:
    """Data view key -> field path -> mapping type, from the index templates koala-store installs."""
    return {
        "sessions": _flatten(sessions_template(prefix)["template"]["mappings"]["properties"]),
        "replays": _flatten(replays_template(prefix)["template"]["mappings"]["properties"]),
        "runs": _flatten(RUNS_MAPPING["properties"]),
    }


def _object(type_: str, id_: str, attributes: dict[str, Any], references: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "attributes": attributes,
        "coreMigrationVersion": CORE_MIGRATION_VERSION,
        "id": id_,
        "managed": False,
        "references": references,
        "type": type_,
        "typeMigrationVersion": TYPE_MIGRATION_VERSIONS[type_],
    }


def _ids(prefix: str) -> dict[str, str]:
    """Saved object ids, distinct per prefix so two stores can share one Kibana."""
    keys = [f"data-view-{d.key}" for d in DATA_VIEWS] + [s.id for s in SEARCHES] + [v.id for v in VISUALIZATIONS] + [d.id for d in DASHBOARDS]
    return {key: f"{prefix}-store-{key}" for key in keys}


def _data_view(view: DataView, prefix: str, ids: dict[str, str]) -> dict[str, Any]:
    attributes = {
        "title": f"{prefix}-{view.index}",
        "name": view.name if prefix == "koala" else f"{view.name} ({prefix})",
        "timeFieldName": view.time_field,
        "fields": "[]",  # Kibana reads the fields from the indices
        "fieldAttrs": "{}",
        "fieldFormatMap": "{}",
        "runtimeFieldMap": "{}",
        "sourceFilters": "[]",
        "typeMeta": "{}",
        "allowHidden": False,
    }
    return _object("index-pattern", ids[f"data-view-{view.key}"], attributes, [])


INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"


def _search(search: Search, ids: dict[str, str]) -> dict[str, Any]:
    source = {"query": {"query": search.where, "language": "kuery"}, "filter": [], "indexRefName": INDEX_REF}
    attributes = {
        "title": search.title,
        "description": search.description,
        "columns": list(search.columns),
        "sort": [list(search.sort)],
        "grid": {},
        "hideChart": False,
        "isTextBasedQuery": False,
        "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(source, separators=(",", ":"))},
    }
    return _object("search", ids[search.id], attributes, [{"id": ids[f"data-view-{search.data_view}"], "name": INDEX_REF, "type": "index-pattern"}])


def _lens(viz: Viz, ids: dict[str, str], types: dict[str, dict[str, str]]) -> dict[str, Any]:
    reference = {"id": ids[f"data-view-{viz.data_view}"], "name": "indexpattern-datasource-layer-layer1", "type": "index-pattern"}
    return _object("lens", ids[viz.id], lens_attributes(viz, types[viz.data_view]), [reference])


PANEL_WIDTH, PANEL_HEIGHT = 24, 15  # Kibana's grid is 48 columns wide


def _dashboard(dashboard: Dashboard, ids: dict[str, str]) -> dict[str, Any]:
    kinds = {s.id: "search" for s in SEARCHES} | {v.id: "lens" for v in VISUALIZATIONS}
    panels, references = [], []
    for n, key in enumerate(dashboard.panels):
        index = str(n + 1)
        wide = kinds[key] == "search" or key == "runs-table"
        panels.append(
            {
                "type": kinds[key],
                "panelIndex": index,
                "gridData": {"x": 0 if wide else (n % 2) * PANEL_WIDTH, "y": n * PANEL_HEIGHT, "w": 2 * PANEL_WIDTH if wide else PANEL_WIDTH, "h": PANEL_HEIGHT, "i": index},
                "embeddableConfig": {"enhancements": {}},
                "panelRefName": f"panel_{index}",
            }
        )
        references.append({"id": ids[key], "name": f"{index}:panel_{index}", "type": kinds[key]})
    attributes = {
        "title": dashboard.title,
        "description": dashboard.description,
        "panelsJSON": json.dumps(panels, separators=(",", ":")),
        "optionsJSON": json.dumps({"useMargins": True, "syncColors": False, "syncCursor": True, "syncTooltips": False, "hidePanelTitles": False}, separators=(",", ":")),
        "timeRestore": True,
        "timeFrom": "now-7d",
        "timeTo": "now",
        "refreshInterval": {"pause": True, "value": 60000},
        "version": 1,
        "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps({"query": {"query": "", "language": "kuery"}, "filter": []}, separators=(",", ":"))},
    }
    return _object("dashboard", ids[dashboard.id], attributes, references)


def saved_objects(prefix: str = "koala") -> list[dict[str, Any]]:
    """Every saved object, referenced ones before those that reference them."""
    ids = _ids(prefix)
    types = field_types(prefix)
    return (
        [_data_view(view, prefix, ids) for view in DATA_VIEWS]
        + [_search(search, ids) for search in SEARCHES]
        + [_lens(viz, ids, types) for viz in VISUALIZATIONS]
        + [_dashboard(dashboard, ids) for dashboard in DASHBOARDS]
    )


def ndjson(prefix: str = "koala") -> str:
    """The saved objects as Kibana's import reads them: one JSON object per line."""
    return "".join(json.dumps(obj, sort_keys=True, ensure_ascii=False) + "\n" for obj in saved_objects(prefix))
