"""`koala report RUN`: one self-contained HTML file about a replay run.

Everything is in the file: the page from a Jinja2 template, the charts drawn by plotly.js
taken from the plotly package (embedded once), no fonts, styles or scripts fetched at open
time. Differing sessions are collapsed (<details>) and paged (PAGE_SIZE to a page, the others
`hidden` until paged to, which keeps opening fast), so a run of thousands of sessions stays
usable.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable
from typing import Any

import msgspec
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from ..diff import Difference
from ..diff.exchange import Exchange, Response
from ..formats.document import ns_to_iso
from ..results import DIFFERENT, ERROR, SAME, Comparison, RunSummary
from .bodydiff import body_diff, readable_body
from .notation import json_notation

PAGE_SIZE = 50  # differing sessions on one page
MAX_BODY_SHOWN = 20_000  # characters of each body shown side by side
MAX_VALUE = 400  # characters of an expected or actual value in the differences table
TOP_PATHS = 15
COLOURS = {SAME: "#2e7d32", DIFFERENT: "#e65100", ERROR: "#c62828"}


class EndpointRow(msgspec.Struct):
    endpoint: str
    total: int = 0
    same: int = 0
    different: int = 0
    error: int = 0
    recorded_ms: float = 0.0  # sums while counting, averages once finished
    replayed_ms: float = 0.0
    recorded_n: int = 0
    replayed_n: int = 0

    @property
    def rate(self) -> float:
        return (self.different + self.error) / self.total if self.total else 0.0


class HeaderRow(msgspec.Struct):
    name: str
    expected: str | None
    actual: str | None
    differs: bool


class SessionView(msgspec.Struct):
    """One differing or failed session, ready for the template."""

    comparison: Comparison
    number: int  # 1-based among the sessions shown
    differences: list[tuple[str, str, str, str, str]]  # path, kind, expected, actual, note (JSON notation)
    headers: list[HeaderRow]
    diff_lines: list[tuple[str, str]]  # (css class, line)
    expected_body: str
    actual_body: str | None
    recorded_time: str


class Report(msgspec.Struct):
    summary: RunSummary
    endpoints: list[EndpointRow]
    sessions: list[SessionView]
    suppressed: list[tuple[str, str, str, int]]  # endpoint, path, why, sessions
    top_paths: list[tuple[str, int]]
    charts: dict[str, Any]
    started: str
    finished: str
    duration_s: float | None


def _shown(value: Any) -> str:
    return json_notation(value, MAX_VALUE)


def _cut(text: str) -> str:
    if len(text) <= MAX_BODY_SHOWN:
        return text
    return text[:MAX_BODY_SHOWN] + f"\n… ({len(text) - MAX_BODY_SHOWN} more characters; koala runs show RUN --json has the kept body)"


def _body(response: Response) -> str:
    text = _cut(readable_body(response))
    if response.cut:
        text += f"\n… (the body was {response.size} bytes; the first {len(response.body.encode())} were kept)"
    return text


def _headers(exchange: Exchange | None, differences: list[Difference]) -> list[HeaderRow]:
    if exchange is None:
        return []
    differing = {d.path.split(".", 2)[1] for d in differences if d.path.startswith("headers.")}
    expected = _grouped(exchange.expected.headers)
    actual = _grouped(exchange.actual.headers) if exchange.actual else {}
    names = list(expected) + [n for n in actual if n not in expected]
    return [HeaderRow(n, expected.get(n), actual.get(n), n in differing) for n in names]


def _grouped(headers: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    for name, value in headers:
        out.setdefault(name.lower(), []).append(value)
    return {name: ", ".join(values) for name, values in out.items()}


def _diff_classes(lines: list[str]) -> list[tuple[str, str]]:
    out = []
    for line in lines:
        if line.startswith(("---", "+++")):
            out.append(("file", line))
        elif line.startswith("@@"):
            out.append(("hunk", line))
        elif line.startswith("+"):
            out.append(("add", line))
        elif line.startswith("-"):
            out.append(("del", line))
        elif line.startswith("("):
            out.append(("note", line))
        else:
            out.append(("ctx", line))
    return out


def session_view(comparison: Comparison, number: int) -> SessionView:
    exchange = comparison.exchange
    return SessionView(
        comparison=comparison,
        number=number,
        differences=[(d.path, d.kind, _shown(d.expected), _shown(d.actual), d.note) for d in comparison.differences],
        headers=_headers(exchange, comparison.differences),
        diff_lines=_diff_classes(body_diff(exchange)) if exchange else [],
        expected_body=_body(exchange.expected) if exchange else "",
        actual_body=_body(exchange.actual) if exchange and exchange.actual else None,
        recorded_time=ns_to_iso(comparison.recorded_at)[:23] + "Z" if comparison.recorded_at else "",
    )


def build(summary: RunSummary, comparisons: Iterable[Comparison]) -> Report:
    """Everything the page shows, in one pass over the run's comparisons."""
    endpoints: dict[str, EndpointRow] = {}
    suppressed: Counter[tuple[str, str, str]] = Counter()
    paths: Counter[str] = Counter()
    sessions: list[SessionView] = []
    for comparison in comparisons:
        row = endpoints.get(comparison.endpoint) or endpoints.setdefault(comparison.endpoint, EndpointRow(comparison.endpoint))
        row.total += 1
        setattr(row, comparison.verdict, getattr(row, comparison.verdict) + 1)
        if comparison.recorded_latency_ms is not None:
            row.recorded_ms += comparison.recorded_latency_ms
            row.recorded_n += 1
        if comparison.replayed_latency_ms is not None:
            row.replayed_ms += comparison.replayed_latency_ms
            row.replayed_n += 1
        for path, why in {(s.difference.path, s.why) for s in comparison.suppressed}:
            suppressed[(comparison.endpoint, path, why)] += 1
        paths.update({d.path for d in comparison.differences})
        if comparison.verdict in (DIFFERENT, ERROR):
            sessions.append(session_view(comparison, len(sessions) + 1))
    rows = sorted(endpoints.values(), key=lambda r: (-r.rate, -r.total, r.endpoint))
    for row in rows:
        row.recorded_ms = row.recorded_ms / row.recorded_n if row.recorded_n else 0.0
        row.replayed_ms = row.replayed_ms / row.replayed_n if row.replayed_n else 0.0
    top_paths = sorted(paths.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_PATHS]
    finished = summary.finished_at or summary.started_at
    return Report(
        summary=summary,
        endpoints=rows,
        sessions=sessions,
        suppressed=[(e, p, w, n) for (e, p, w), n in sorted(suppressed.items(), key=lambda kv: (-kv[1], kv[0]))],
        top_paths=top_paths,
        charts=_charts(summary, rows, top_paths),
        started=ns_to_iso(summary.started_at)[:19] + "Z",
        finished=ns_to_iso(finished)[:19] + "Z" if summary.finished_at else "",
        duration_s=(finished - summary.started_at) / 1e9 if summary.finished_at else None,
    )


def _charts(summary: RunSummary, endpoints: list[EndpointRow], top_paths: list[tuple[str, int]]) -> dict[str, Any]:
    """plotly.js figures (data and layout) as plain JSON."""
    layout = {"margin": {"l": 40, "r": 10, "t": 30, "b": 40}, "height": 320, "font": {"family": "system-ui, sans-serif", "size": 12}}
    verdicts = {
        "data": [
            {
                "type": "bar",
                "x": ["same", "different", "error"],
                "y": [summary.same, summary.different, summary.error],
                "marker": {"color": [COLOURS[SAME], COLOURS[DIFFERENT], COLOURS[ERROR]]},
                "text": [summary.same, summary.different, summary.error],
                "textposition": "auto",
            }
        ],
        "layout": layout | {"title": {"text": "Sessions per verdict"}},
    }
    shown = list(reversed(top_paths))  # plotly draws horizontal bars bottom-up
    paths = {
        "data": [{"type": "bar", "orientation": "h", "y": [p for p, _ in shown], "x": [n for _, n in shown], "marker": {"color": COLOURS[DIFFERENT]}}],
        "layout": layout | {"title": {"text": "Top differing field paths (sessions)"}, "margin": {"l": 200, "r": 10, "t": 30, "b": 40}},
    }
    latency = {
        "data": [
            {"type": "bar", "name": "recorded", "x": [r.endpoint for r in endpoints], "y": [round(r.recorded_ms, 3) for r in endpoints]},
            {"type": "bar", "name": "replayed", "x": [r.endpoint for r in endpoints], "y": [round(r.replayed_ms, 3) for r in endpoints]},
        ],
        "layout": layout | {"title": {"text": "Average latency per endpoint (ms)"}, "barmode": "group", "margin": {"l": 40, "r": 10, "t": 30, "b": 90}},
    }
    return {"verdicts": verdicts, "paths": paths, "latency": latency}


@functools.cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("koala_store.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ms"] = lambda v: "" if v is None else f"{v:,.1f}"
    return env


@functools.cache
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs  # imported when a report is made: it reads 4.6 MB

    return get_plotlyjs()


def render_html(summary: RunSummary, comparisons: Iterable[Comparison]) -> str:
    report = build(summary, comparisons)
    template = _environment().get_template("report.html.j2")
    return template.render(r=report, s=report.summary, page_size=PAGE_SIZE, colours=COLOURS, plotly_js=_plotly_js(), pages=_pages(len(report.sessions)))


def _pages(count: int) -> int:
    return max(1, -(-count // PAGE_SIZE))

