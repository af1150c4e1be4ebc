"""A replay run as text for the terminal: the counts, then each session that differs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..formats.document import ns_to_iso
from .results import DIFFERENT, ERROR, Comparison, RunSummary

MAX_SHOWN = 60  # characters of an expected or actual value


def _value(value: Any) -> str:
    text = repr(value)  # one line: control characters show as escapes
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def summary_lines(summary: RunSummary) -> list[str]:
    seconds = ((summary.finished_at or summary.started_at) - summary.started_at) / 1e9
    lines = [
        f"run {summary.run_id} ({summary.name}) {summary.status}: {summary.total} sessions replayed against {summary.target}"
        + (f" (baseline {summary.baseline})" if summary.baseline else ""),
        f"  same {summary.same}, different {summary.different}, error {summary.error}"
        + (f", skipped {summary.skipped}" if summary.skipped else "")
        + (f"; {summary.suppressed} differences suppressed as noise" if summary.suppressed else "")
        + (f"; {seconds:.1f} s, {summary.sessions_per_second:g} sessions/s" if summary.sessions_per_second else ""),
        f"  matcher {summary.matcher}" + (f" (threshold {summary.threshold:g})" if summary.threshold is not None else "")
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


def comparison_lines(comparison: Comparison, limit: int = 8) -> list[str]:
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
            lines.append(f"    connection set-up: {outbound.setup} talks answered from session {', '.join(sources)}")
        for talk in outbound.unmatched_talks[:3]:
            misses = ", ".join(f"#{m.action_index} {m.score:.2f} ({m.reason})" for m in talk.near_misses[:3]) or "none"
            lines.append(f"    unmatched call to {talk.peer}: {talk.request[:70]!r}; near misses: {misses}")
    if comparison.suppressed:
        lines.append(f"    ({len(comparison.suppressed)} differences suppressed as noise: {', '.join(sorted({s.difference.path for s in comparison.suppressed})[:5])})")
    return lines


def render(summary: RunSummary, comparisons: Iterable[Comparison], limit: int = 50) -> str:
    """The run summary and up to `limit` sessions that differ or failed."""
    lines = summary_lines(summary)
    shown = 0
    for comparison in comparisons:
        if comparison.verdict not in (DIFFERENT, ERROR):
            continue
        if shown == limit:
            lines.append(f"... more sessions differ: koala runs show {summary.run_id} --json")
            break
        lines.append("")
        lines += comparison_lines(comparison)
        shown += 1
    return "\n".join(lines)
