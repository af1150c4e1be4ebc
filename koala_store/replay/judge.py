"""Judging one replayed session: its answer and its outbound talks against the recording.

Pure (no sockets, no store, no event loop): what the runner does once the SUT has answered
and the mock has the session's talks. Noise runs and a baseline need more sends of the
session; the runner does those between `judge` and `conclude`.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from .. import diff
from ..diff.exchange import exchange_of
from ..diff.options import with_clock_offset
from ..model import Session
from ..results import DIFFERENT, ERROR, SAME, Comparison
from ..wire import response_status
from .inbound import InboundResult


class Judgement(NamedTuple):
    comparison: Comparison
    first: InboundResult  # the replayed answer, with the values masked when recorded masked
    talks: list[diff.Talk]  # likewise
    differences: list[diff.Difference] | None  # None: the SUT gave no answer (verdict error)
    outbound: diff.OutboundReport | None
    options: diff.DiffOptions  # the run's, with this session's clock offset


def judge(
    run_id: str,
    session: Session,
    first: InboundResult,
    talks: list[diff.Talk],
    openings: frozenset[int],
    bypassed: int,
    options: diff.DiffOptions,
    replayed_at: int,
) -> Judgement:
    """Compare the replayed answer and talks with the recording (no verdict yet unless error)."""
    if not options.clock_offset_s and session.recorded_at:
        # Timestamps the SUT writes now are compared with the recording's, shifted by its age
        # (in whole seconds: the window is minutes wide, and sessions share compiled rules).
        options = with_clock_offset(options, float(max((replayed_at - session.recorded_at) // 10**9, 0)))
    recorded = session.response
    # Values masked when recorded (secrets) are masked in the replayed bytes too: not compared.
    replayed_response, talks = diff.as_recorded(session, first.response, talks)
    first = msgspec.structs.replace(first, response=replayed_response)
    comparison = Comparison(
        run_id=run_id,
        session_id=session.session_id,
        endpoint=diff.endpoint_of(session.call_from_inbound.request),
        verdict=SAME,
        recorded_at=session.recorded_at,
        replayed_at=replayed_at,
        recorded_status=response_status(recorded),
        replayed_status=response_status(first.response) if first.response else None,
        recorded_latency_ms=recorded_latency(session),
        replayed_latency_ms=round(first.latency_ms, 3),
        bypassed=bypassed,
    )
    if session.incomplete:
        comparison.notes.append(f"recorded incomplete: {session.incomplete}")
    if session.redactions:
        comparison.notes.append(f"{sum(r.count for r in session.redactions)} values were masked when recorded; they are not compared")
    if first.error is not None:
        comparison.verdict, comparison.error = ERROR, first.error
        comparison.outbound = diff.compare_outbound(session.outbound_calls, talks, options, openings=openings)
        return Judgement(comparison, first, talks, None, None, options)
    if session.answered:
        differences = diff.compare_responses(recorded, first.response, options)
    else:
        # Koala recorded no response (the service closed the connection, the thread shut
        # down, the session was cut): only the side effects can be compared.
        differences = []
        comparison.notes.append("recorded response missing (the service never answered when recorded): only outbound calls compared")
    report = diff.compare_outbound(session.outbound_calls, talks, options, openings=openings)
    return Judgement(comparison, first, talks, differences + report.differences, report, options)


def conclude(comparison: Comparison, differences: list[diff.Difference], outbound: diff.OutboundReport, recorded: bytes, replayed: bytes) -> Comparison:
    """The verdict, from the differences that remain (after any noise was taken out)."""
    comparison.outbound = outbound
    comparison.differences = differences
    comparison.verdict = DIFFERENT if differences else SAME
    if comparison.verdict == DIFFERENT:
        comparison.exchange = exchange_of(recorded, replayed)
    return comparison


def recorded_latency(session: Session) -> float | None:
    if session.return_inbound is None:
        return None
    start, end = session.call_from_inbound.occurred_at, session.return_inbound.occurred_at
    return round((end - start) / 1e6, 3) if start and end >= start else None
