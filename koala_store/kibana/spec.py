"""One spec per visualization, and from it both what Kibana stores (Lens state) and the
Elasticsearch aggregation that state stands for, so tests run exactly what a panel shows.

A spec is one Lens layer: up to two bucket columns (`x`, then `split`: the X axis and the
breakdown, a pie's slices, a table's rows) and one or more metrics, with an optional filter
(`where`, equality on keyword fields) on the whole visualization or on a count.
"""

from __future__ import annotations

from typing import Any

import msgspec

LAYER = "layer1"


class DateHistogram(msgspec.Struct, frozen=True, tag="date_histogram"):
    field: str
    label: str = ""


class Terms(msgspec.Struct, frozen=True, tag="terms"):
    field: str
    size: int = 10
    label: str = ""


class Count(msgspec.Struct, frozen=True, tag="count"):
    label: str = "Sessions"
    where: dict[str, str] = msgspec.field(default_factory=dict)


class Average(msgspec.Struct, frozen=True, tag="average"):
    field: str
    label: str = ""


class Sum(msgspec.Struct, frozen=True, tag="sum"):
    field: str
    label: str = ""


Bucket = DateHistogram | Terms
Metric = Count | Average | Sum

# Lens chart kinds: XY series types, plus "pie" and "table".
XY_SERIES = ("bar", "bar_stacked", "bar_percentage_stacked", "bar_horizontal", "bar_horizontal_stacked", "bar_horizontal_percentage_stacked", "line")


class Viz(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # saved object id
    title: str
    data_view: str  # key of the data view in objects.DATA_VIEWS
    chart: str  # one of XY_SERIES, "pie" or "table"
    x: Bucket
    metrics: tuple[Metric, ...]
    split: Bucket | None = None
    where: dict[str, str] = msgspec.field(default_factory=dict)
    description: str = ""

    def columns(self) -> dict[str, Bucket | Metric]:
        """Column id -> column, in Lens's column order (buckets first)."""
        out: dict[str, Bucket | Metric] = {"x": self.x}
        if self.split is not None:
            out["split"] = self.split
        out.update({f"m{n}": metric for n, metric in enumerate(self.metrics)})
        return out

    def fields(self) -> set[str]:
        """Every document field the visualization reads (for the mapping check)."""
        found = set(self.where)
        for column in self.columns().values():
            if isinstance(column, Count):
                found |= set(column.where)
            else:
                found.add(column.field)
        return found


def kql(where: dict[str, str]) -> str:
    return " and ".join(f'{field} : "{value}"' for field, value in where.items())


def es_filter(where: dict[str, str]) -> list[dict[str, Any]]:
    return [{"term": {field: value}} for field, value in where.items()]


# --- Lens ------------------------------------------------------------------------------


def _label(column: Bucket | Metric) -> str:
    if column.label:
        return column.label
    if isinstance(column, DateHistogram):
        return column.field
    if isinstance(column, Terms):
        return f"Top {column.size} values of {column.field}"
    if isinstance(column, Average):
        return f"Average of {column.field}"
    return f"Sum of {column.field}"  # Sum; Count always has a label


def lens_column(column: Bucket | Metric, field_types: dict[str, str]) -> dict[str, Any]:
    common = {"label": _label(column), "customLabel": bool(column.label)}
    if isinstance(column, DateHistogram):
        return common | {
            "dataType": "date",
            "operationType": "date_histogram",
            "sourceField": column.field,
            "isBucketed": True,
            "scale": "interval",
            "params": {"interval": "auto", "includeEmptyRows": True, "dropPartials": False},
        }
    if isinstance(column, Terms):
        numeric = field_types.get(column.field) in ("integer", "long", "double", "float", "short", "byte")
        return common | {
            "dataType": "number" if numeric else "string",
            "operationType": "terms",
            "sourceField": column.field,
            "isBucketed": True,
            "scale": "ordinal",
            "params": {
                "size": column.size,
                "orderBy": {"type": "column", "columnId": "m0"},  # Lens's default: the first metric
                "orderDirection": "desc",
                "otherBucket": False,
                "missingBucket": False,
                "parentFormat": {"id": "terms"},
            },
        }
    if isinstance(column, Count):
        out = common | {
            "dataType": "number",
            "operationType": "count",
            "sourceField": "___records___",
            "isBucketed": False,
            "scale": "ratio",
            "params": {"emptyAsNull": True},
        }
        if column.where:
            out["filter"] = {"query": kql(column.where), "language": "kuery"}
        return out
    return common | {
        "dataType": "number",
        "operationType": "average" if isinstance(column, Average) else "sum",
        "sourceField": column.field,
        "isBucketed": False,
        "scale": "ratio",
        "params": {"emptyAsNull": True},
    }


def lens_visualization(viz: Viz) -> tuple[str, dict[str, Any]]:
    """(visualizationType, visualization state) for the chart kind."""
    metrics = [f"m{n}" for n in range(len(viz.metrics))]
    if viz.chart == "pie":
        layer = {
            "layerId": LAYER,
            "layerType": "data",
            "primaryGroups": ["x"] + (["split"] if viz.split else []),
            "metrics": metrics,
            "numberDisplay": "value",
            "categoryDisplay": "default",
            "legendDisplay": "default",
            "nestedLegend": False,
        }
        return "lnsPie", {"shape": "donut", "layers": [layer]}
    if viz.chart == "table":
        return "lnsDatatable", {"layerId": LAYER, "layerType": "data", "columns": [{"columnId": c, "isTransposed": False} for c in viz.columns()]}
    if viz.chart not in XY_SERIES:
        raise ValueError(f"unknown chart kind {viz.chart!r}")
    layer = {"layerId": LAYER, "layerType": "data", "seriesType": viz.chart, "xAccessor": "x", "accessors": metrics}
    if viz.split is not None:
        layer["splitAccessor"] = "split"
    state = {
        "legend": {"isVisible": True, "position": "right"},
        "valueLabels": "hide",
        "preferredSeriesType": viz.chart,
        "layers": [layer],
    }
    return "lnsXY", state


def lens_attributes(viz: Viz, field_types: dict[str, str]) -> dict[str, Any]:
    columns = viz.columns()
    visualization_type, visualization = lens_visualization(viz)
    return {
        "title": viz.title,
        "description": viz.description,
        "visualizationType": visualization_type,
        "state": {
            "datasourceStates": {
                "formBased": {
                    "layers": {
                        LAYER: {
                            "columnOrder": list(columns),
                            "columns": {cid: lens_column(c, field_types) for cid, c in columns.items()},
                            "incompleteColumns": {},
                        }
                    }
                }
            },
            "visualization": visualization,
            "query": {"query": kql(viz.where), "language": "kuery"},
            "filters": [],
            "internalReferences": [],
            "adHocDataViews": {},
        },
    }


# --- Elasticsearch ---------------------------------------------------------------------


def _metric_aggs(viz: Viz) -> dict[str, Any]:
    aggs: dict[str, Any] = {}
    for n, metric in enumerate(viz.metrics):
        if isinstance(metric, Count):
            if metric.where:  # a plain count is the bucket's doc_count
                aggs[f"m{n}"] = {"filter": {"bool": {"filter": es_filter(metric.where)}}}
        else:
            aggs[f"m{n}"] = {"avg" if isinstance(metric, Average) else "sum": {"field": metric.field}}
    return aggs


def _bucket_agg(bucket: Bucket, first: Metric, inner: dict[str, Any], interval: str) -> dict[str, Any]:
    if isinstance(bucket, DateHistogram):
        agg: dict[str, Any] = {"date_histogram": {"field": bucket.field, "fixed_interval": interval, "min_doc_count": 1}}
    else:
        # Lens orders terms by the first metric; a filtered count orders by its filter's doc count.
        order = {"_count": "desc"} if isinstance(first, Count) and not first.where else {"m0": "desc"}
        agg = {"terms": {"field": bucket.field, "size": bucket.size, "order": [order, {"_key": "asc"}]}}
    if inner:
        agg["aggs"] = inner
    return agg


def es_search(viz: Viz, filters: list[dict[str, Any]] | None = None, interval: str = "3h") -> dict[str, Any]:
    """The search body (size 0, query, aggs) that computes what the panel shows; `filters`
    stand for the dashboard's filters and time range, `interval` for the one Lens's "auto"
    picks for that range (3 hours for the dashboards' default 7 days)."""
    inner = _metric_aggs(viz)
    if viz.split is not None:
        inner = {"split": _bucket_agg(viz.split, viz.metrics[0], inner, interval)}
    aggs = {"x": _bucket_agg(viz.x, viz.metrics[0], inner, interval)}
    query = {"bool": {"filter": es_filter(viz.where) + list(filters or [])}}
    return {"size": 0, "track_total_hits": True, "query": query, "aggs": aggs}


def rows(viz: Viz, response: dict[str, Any]) -> list[dict[str, Any]]:
    """The search response as the panel's table: one row per bucket (pair), keyed by column
    label: the bucket keys, then each metric's value."""
    labels = {cid: _label(c) for cid, c in viz.columns().items()}

    def values(bucket: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for n, metric in enumerate(viz.metrics):
            key = f"m{n}"
            if isinstance(metric, Count):
                out[labels[key]] = bucket[key]["doc_count"] if metric.where else bucket["doc_count"]
            else:
                out[labels[key]] = bucket[key]["value"]
        return out

    def key(bucket: dict[str, Any]) -> Any:
        return bucket.get("key_as_string", bucket["key"])

    table = []
    for xb in response["aggregations"]["x"]["buckets"]:
        if viz.split is None:
            table.append({labels["x"]: key(xb)} | values(xb))
            continue
        for sb in xb["split"]["buckets"]:
            table.append({labels["x"]: key(xb), labels["split"]: key(sb)} | values(sb))
    return table
