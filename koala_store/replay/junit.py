"""A replay run as JUnit XML, for CI systems: one test case per session."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from xml.etree import ElementTree as ET

from ..errors import KoalaError
from ..formats.document import ns_to_iso
from ..report.notation import json_notation
from ..results import DIFFERENT, ERROR, Comparison, RunSummary
from ..words import count


def _describe(comparison: Comparison, limit: int = 20) -> str:
    lines = [f"{d.kind} {d.path}: expected {json_notation(d.expected)}, got {json_notation(d.actual)}" for d in comparison.differences[:limit]]
    more = len(comparison.differences) - limit
    return "\n".join(lines + ([f"... and {more} more"] if more > 0 else []))


def write_junit(path: str, summary: RunSummary, comparisons: Iterable[Comparison]) -> None:
    suite = ET.Element(
        "testsuite",
        name=summary.name,
        tests=str(summary.total),
        failures=str(summary.different),
        errors=str(summary.error),
        timestamp=ns_to_iso(summary.started_at)[:19],  # the JUnit schema's form: ISO 8601, UTC, no zone
    )
    for comparison in comparisons:
        case = ET.SubElement(suite, "testcase", classname=comparison.endpoint, name=comparison.session_id)
        if comparison.replayed_latency_ms is not None:
            case.set("time", f"{comparison.replayed_latency_ms / 1000:.6f}")
        if comparison.verdict == DIFFERENT:
            first = comparison.differences[0] if comparison.differences else None
            message = count(len(comparison.differences), "difference") + (f", first {first.kind} {first.path}" if first else "")
            ET.SubElement(case, "failure", message=message).text = _describe(comparison)
        elif comparison.verdict == ERROR:
            ET.SubElement(case, "error", message=comparison.error or "error")
    tree = ET.ElementTree(ET.Element("testsuites"))
    tree.getroot().append(suite)
    ET.indent(tree)
    try:
        tree.write(Path(path), encoding="utf-8", xml_declaration=True)
    except OSError as exc:
        raise KoalaError(f"cannot write --junit {path}: {exc.strerror}") from None
