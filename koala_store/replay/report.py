"""A replay run as text for the terminal: the counts, then each session that differs.

Values show in JSON notation; `render_rich` adds verdict colours (rich prints them only on a
terminal and honours NO_COLOR; piped output is the plain text of `render`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text

from ..formats.document import ns_to_iso
from ..report.bodydiff import body_diff
from ..report.notation import json_notation
from ..results import DIFFERENT, ERROR, SAME, Comparison, RunSummary
from ..words import count

MAX_SHOWN = 60  # characters of an expected or actual value
VERDICT_STYLES = {SAME: "green", DIFFERENT: "bold yellow", ERROR: "bold red"}
DIFF_STYLES = {"+": "green", "-": "red", "@": "cyan"}


def _value(value: Any) -> str:
    return json_notation(value, MAX_SHOWN)  # one line: control characters show as escapes


def summary_lines(summary: RunSummary) -> list[str]:
    seconds = ((summary.finished_at or summary.started_at) - summary.started_at) / 1e9
    lines = [
        f"run {summary.run_id} ({summary.name}) {summary.status}: {count(summary.total, 'session')} replayed against {summary.target}"
        + (f" (baseline {summary.baseline})" if summary.baseline else ""),
        f"  same {summary.same}, different {summary.different}, error {summary.error}"
        + (f", skipped {summary.skipped}" if summary.skipped else "")
        + (f"; {count(summary.suppressed, 'difference')} suppressed as noise" if summary.suppressed else "")
        + (f"; {seconds:.1f} s, {summary.sessions_per_second:g} sessions/s" if summary.sessions_per_second else ""),
        f"  matcher {summary.matcher}"
        + (f" (threshold {summary.threshold:g})" if summary.threshold is not None else "")
        + f", query {summary.query!r}, started {ns_to_iso(summary.started_at)[:19]}Z",
    ]
    if summary.skipped_incomplete:
        lines.append(
            f"  {summary.skipped_incomplete} sessions recorded as incomplete were skipped (outbound talks made while several requests were "
            "in flight could not be attributed); --include-incomplete replays them"
        )
    if summary.unattributed:
        lines.append(f"  {summary.unattributed} outbound talks could not be attributed to a session (closed, unanswered):")
        lines += [f"    {note.peer}: {note.reason}: {note.request[:80]}" for note in summary.unattributed_talks[:5]]
    if summary.differing_paths:
        lines.append("  most frequent differences:")
        lines += [f"    {p.sessions:>5} x {p.endpoint} {p.kind} {p.path}" for p in summary.differing_paths[:10]]
    return lines


def comparison_lines(comparison: Comparison, limit: int = 8, diff: bool = False) -> list[str]:
    head = f"{comparison.verdict.upper():9} {comparison.session_id}  {comparison.endpoint}"
    if comparison.recorded_status != comparison.replayed_status and comparison.replayed_status is not None:
        head += f"  status {comparison.recorded_status} -> {comparison.replayed_status}"
    lines = [head]
    if comparison.verdict == ERROR:
        lines.append(f"    {comparison.error}")
    lines += [f"    note: {note}" for note in comparison.notes]
    for d in comparison.differences[:limit]:
        detail = f"{_value(d.expected)} -> {_value(d.actual)}"
        lines.append(f"    {d.kind:14} {d.path}: {detail}" + (f"  ({d.note})" if getattr(d, "note", "") else ""))
    if len(comparison.differences) > limit:
        lines.append(f"    ... {len(comparison.differences) - limit} more")
    outbound = comparison.outbound
    if outbound is not None:
        sources = sorted({t.answered_from for t in outbound.talks if t.answered_from})
        if sources:
            lines.append(f"    connection set-up: {count(outbound.setup, 'talk')} answered from session {', '.join(sources)}")
        for talk in outbound.unmatched_talks[:3]:
            misses = ", ".join(f"#{m.action_index} {m.score:.2f} ({m.reason})" for m in talk.near_misses[:3]) or "none"
            lines.append(f"    unmatched call to {talk.peer}: {json_notation(talk.request, 72)}; near misses: {misses}")
    if comparison.suppressed:
        lines.append(
            f"    ({count(len(comparison.suppressed), 'difference')} suppressed as noise: {', '.join(sorted({s.difference.path for s in comparison.suppressed})[:5])})"
        )
    if diff:
        if comparison.exchange is not None:
            lines += [f"    {line}" for line in body_diff(comparison.exchange)]
        elif comparison.verdict == DIFFERENT:
            lines.append("    (no bodies kept for this session: it was replayed before koala-store kept them)")
    return lines


def render(summary: RunSummary, comparisons: Iterable[Comparison], limit: int = 50, diff: bool = False) -> str:
    """The run summary and up to `limit` sessions that differ or failed (`diff`: with a
    unified diff of their bodies)."""
    return "\n".join(_lines(summary, comparisons, limit, diff))


def render_rich(summary: RunSummary, comparisons: Iterable[Comparison], limit: int = 50, diff: bool = False) -> Text:
    """`render` with verdicts and diff lines coloured, for rich to print."""
    text = Text()
    for n, line in enumerate(_lines(summary, comparisons, limit, diff)):
        if n:
            text.append("\n")
        word = line.split(" ", 1)[0].lower()
        stripped = line.lstrip()
        if n == 1:  # the counts line: colour each non-zero count by its verdict
            counts = Text(line)
            for verdict, style in VERDICT_STYLES.items():
                counts.highlight_regex(rf"\b{verdict} [1-9]\d*", style)
            text.append_text(counts)
        elif word in VERDICT_STYLES:
            text.append(line[: len(word)], VERDICT_STYLES[word])
            text.append(line[len(word) :])
        elif diff and line.startswith("    ") and stripped[:1] in DIFF_STYLES and not stripped.startswith(("---", "+++")):
            text.append(line, DIFF_STYLES[stripped[0]])
        else:
            text.append(line)
    return text


def _lines(summary: RunSummary, comparisons: Iterable[Comparison], limit: int, diff: bool) -> list[str]:
    lines = summary_lines(summary)
    shown = 0
    for comparison in comparisons:
        if comparison.verdict not in (DIFFERENT, ERROR):
            continue
        if shown == limit:
            lines.append(f"... more sessions differ: koala runs show {summary.run_id} --json")
            break
        lines.append("")
        lines += comparison_lines(comparison, diff=diff)
        shown += 1
    return lines
