"""Side effects: what the replayed service did to its dependencies, against the recording.

The mock server reports every live outbound talk as a `Talk` (the peer its listener stands
for, the live connection, the request bytes and the matcher's `MatchResult`, whose
`position` indexes the recorded calls). `compare_outbound` turns those into an
`OutboundReport`:

- attribution: a talk is attributed to the recorded call its match chose, except that among
  byte-identical recorded twins (same peer, request and response) it takes the first one not
  used yet, so two identical GETs answered by the same recording are not "one repeated, one
  missed", nor "reordered";
- `unmatched_call` (`outbound.unmatched[<talk index>]`): a talk that matched nothing;
- `missing_call` (`outbound[<ActionIndex>]`): a recorded call no talk was attributed to. A
  recorded greeting (empty request) answered through `greeting()` is used like any other;
- `repeated_call` (`outbound[<ActionIndex>]`): a recorded call attributed more than once
  (recorded once, made twice: a retried write, say);
- `reordered` (`outbound[<ActionIndex>]`): per peer, walking the talks in live order, a talk
  whose recorded position is lower than one already made on that peer; e.g. recorded A then
  B on one peer, replay made B then A: A is reordered. Repeats are left out of this check;
  calls on different peers may interleave freely (concurrency);
- request changes (`outbound[<ActionIndex>].request...`): each attributed talk's request
  against the recorded request, protocol-aware (koala_store.diff.requests).

Ignore rules apply to all these paths; the counts and lists leave out what they ignore, and
`talks` keeps every talk with its attribution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec

from koala_store.matching import MatchResult, NearMiss
from koala_store.model import CallOutbound
from koala_store.wire import parse_talk
from koala_store.wire.setup import opening_positions

from .difference import CHANGED, MISSING_CALL, REORDERED, REPEATED_CALL, UNMATCHED_CALL, Difference, shown
from .options import DiffOptions, Rules, compile_options
from .paths import format_path, sort_key
from .requests import compare_request, protocol_of

EXCERPT = 200  # bytes of a request shown in report lists


class Talk(msgspec.Struct):
    """One live outbound talk as the mock observed it."""

    peer: str  # the recorded peer "ip:port" the mock listener stands for
    connection: int  # id of the live connection (the runner's numbering)
    request: bytes  # b"" when the mock answered a silent new connection with a greeting
    match: MatchResult
    # Part of a new connection's set-up (koala_store.wire.setup): never a side effect.
    opening: bool = False
    # Set when the answer came from another session's recorded opening of the connection
    # (koala_store.replay.openings); `match.position` then indexes that opening, not ours.
    answered_from: str | None = None
    note: str = ""  # why the mock attributed it to this session, when no header said so


class TalkOutcome(msgspec.Struct):
    """What became of one talk: its attribution and the matcher's figures."""

    talk: int
    peer: str
    connection: int
    action_index: int | None
    position: int | None
    strategy: str
    score: float
    reason: str
    greeting: bool = False
    repeated: bool = False
    reordered: bool = False
    request_changed: bool = False
    opening: bool = False  # connection set-up: not compared
    answered_from: str | None = None  # answered from this session's recorded opening
    note: str = ""  # how the talk was attributed to this session, when no header said so


class UnmatchedTalk(msgspec.Struct):
    talk: int
    peer: str
    connection: int
    protocol: str
    request: str  # escaped excerpt
    score: float
    reason: str
    near_misses: list[NearMiss]


class MissedCall(msgspec.Struct):
    action_index: int
    position: int
    peer: str
    protocol: str
    request: str  # escaped excerpt; "" for a greeting
    greeting: bool = False


class ReorderedCall(msgspec.Struct):
    action_index: int
    talk: int
    peer: str
    recorded_order: list[int]  # ActionIndexes involved, in recorded order
    replayed_order: list[int]  # the same calls, in the order the replay made them


class RepeatedCall(msgspec.Struct):
    action_index: int
    peer: str
    talks: list[int]  # every talk attributed to this recorded call


class RequestChange(msgspec.Struct):
    action_index: int
    talk: int
    peer: str
    protocol: str
    differences: list[Difference]


class OutboundReport(msgspec.Struct):
    """Side effects of one replayed session; `differences` holds them all as Differences."""

    matched: int = 0  # talks attributed to a recorded call
    setup: int = 0  # connection set-up talks answered from another session's recording
    unmatched: int = 0
    missed: int = 0
    reordered: int = 0
    repeated: int = 0
    request_changed: int = 0
    talks: list[TalkOutcome] = msgspec.field(default_factory=list)
    unmatched_talks: list[UnmatchedTalk] = msgspec.field(default_factory=list)
    missed_calls: list[MissedCall] = msgspec.field(default_factory=list)
    reordered_calls: list[ReorderedCall] = msgspec.field(default_factory=list)
    repeated_calls: list[RepeatedCall] = msgspec.field(default_factory=list)
    request_changes: list[RequestChange] = msgspec.field(default_factory=list)
    differences: list[Difference] = msgspec.field(default_factory=list)

    def keep_only(self, kept: Sequence[Difference]) -> OutboundReport:
        """The report restricted to `kept` differences (after noise suppression): list
        entries and counts whose differences were all suppressed go; `talks` stays."""
        paths = {d.path for d in kept}
        changes = []
        for change in self.request_changes:
            diffs = [d for d in change.differences if d.path in paths]
            if diffs:
                changes.append(msgspec.structs.replace(change, differences=diffs))
        unmatched = [u for u in self.unmatched_talks if _unmatched_path(u.talk) in paths]
        kept_kinds = {(d.path, d.kind) for d in kept}
        missed = [m for m in self.missed_calls if (_call_path(m.action_index), MISSING_CALL) in kept_kinds]
        reordered = [r for r in self.reordered_calls if (_call_path(r.action_index), REORDERED) in kept_kinds]
        repeated = [r for r in self.repeated_calls if (_call_path(r.action_index), REPEATED_CALL) in kept_kinds]
        return msgspec.structs.replace(
            self,
            unmatched=len(unmatched),
            missed=len(missed),
            reordered=len(reordered),
            repeated=len(repeated),
            request_changed=len(changes),
            unmatched_talks=unmatched,
            missed_calls=missed,
            reordered_calls=reordered,
            repeated_calls=repeated,
            request_changes=changes,
            differences=[d for d in self.differences if (d.path, d.kind) in kept_kinds],
        )


def _call_path(action_index: int) -> str:
    return f"outbound[{action_index}]"


def _unmatched_path(talk: int) -> str:
    return f"outbound.unmatched[{talk}]"


def attribute(recorded: Sequence[CallOutbound], talks: Sequence[Talk]) -> list[int | None]:
    """The recorded position each talk is attributed to (None: unmatched); see module doc."""
    if len({call.request for call in recorded}) == len(recorded):
        # No two calls share a request, so none are twins: each talk keeps its match's position.
        return [_matched_position(talk, len(recorded)) for talk in talks]
    return _attribute_twins(recorded, talks)


def _matched_position(talk: Talk, count: int) -> int | None:
    p = talk.match.position if talk.match.call is not None and talk.answered_from is None else None
    return p if p is not None and 0 <= p < count else None


def _attribute_twins(recorded: Sequence[CallOutbound], talks: Sequence[Talk]) -> list[int | None]:
    """`attribute` when calls may be twins (byte-identical): the first unused twin of a match."""
    twins: dict[tuple[str, bytes, bytes], list[int]] = {}
    group_of: list[list[int]] = []
    for p, call in enumerate(recorded):
        group = twins.setdefault((call.peer.address, call.request, call.response), [])
        group.append(p)
        group_of.append(group)
    used = [0] * len(recorded)
    out: list[int | None] = []
    for talk in talks:
        p = _matched_position(talk, len(recorded))
        if p is None:
            out.append(None)
            continue
        q = next((g for g in group_of[p] if used[g] == 0), p)
        used[q] += 1
        out.append(q)
    return out


class _Protocols:
    """The protocol of each recorded call, told when first asked (most calls never are)."""

    def __init__(self, recorded: Sequence[CallOutbound]):
        self.recorded = recorded
        self.known: dict[int, str] = {}

    def __getitem__(self, q: int) -> str:
        found = self.known.get(q)
        if found is None:
            call = self.recorded[q]
            found = self.known[q] = protocol_of(call.request, call.response, call.peer.port)
        return found


def compare_outbound(
    recorded: Sequence[CallOutbound], talks: Sequence[Talk], options: DiffOptions | None = None, *, openings: frozenset[int] | None = None
) -> OutboundReport:
    """Side-effect differences of one replayed session (see the module doc). `openings`:
    `wire.setup.opening_positions(recorded)`, when the caller has it already."""
    rules = compile_options(options)
    protocols = _Protocols(recorded)
    positions = attribute(recorded, talks)
    # Connection set-up recorded here (the session opened a connection) need not happen
    # again at replay: a pooled connection may already be open. Never a side effect.
    if openings is None:
        openings = opening_positions(recorded)
    report = OutboundReport()
    found: list[tuple[tuple, Difference]] = []

    def emit(segments: tuple, diff: Difference) -> None:
        found.append((sort_key(segments), diff))

    uses: dict[int, list[int]] = {}
    last_on_peer: dict[str, list[int]] = {}  # positions made so far on each peer, live order
    for t, (talk, q) in enumerate(zip(talks, positions, strict=True)):
        m = talk.match
        outcome = TalkOutcome(
            talk=t,
            peer=talk.peer,
            connection=talk.connection,
            action_index=None if q is None else recorded[q].action_index,
            position=q,
            strategy=m.strategy,
            score=m.score,
            reason=m.reason,
            greeting=not talk.request and (q is not None or talk.answered_from is not None),
            opening=talk.opening,
            answered_from=talk.answered_from,
            note=talk.note,
        )
        report.talks.append(outcome)
        if talk.answered_from is not None:
            report.setup += 1
            continue
        if q is None:
            _unmatched(report, emit, rules, t, talk)
            continue
        report.matched += 1
        call = recorded[q]
        ai = call.action_index
        uses.setdefault(q, []).append(t)
        if talk.opening or q in openings:
            pass  # set-up: a pooled connection may open in any session, so neither repeated nor reordered
        elif len(uses[q]) > 1:
            outcome.repeated = True
        else:
            made = last_on_peer.setdefault(call.peer.address, [])
            jumped = [p for p in made if p > q]
            if jumped and not rules.ignored(("outbound", ai)):
                outcome.reordered = True
                involved = sorted([q, *jumped])
                entry = ReorderedCall(
                    action_index=ai,
                    talk=t,
                    peer=call.peer.address,
                    recorded_order=[recorded[p].action_index for p in involved],
                    replayed_order=[recorded[p].action_index for p in (*jumped, q)],
                )
                report.reordered_calls.append(entry)
                note = f"recorded before {', '.join(_call_path(recorded[p].action_index) for p in jumped)} on {call.peer.address}, made after"
                emit(("outbound", ai), Difference(_call_path(ai), REORDERED, entry.recorded_order, entry.replayed_order, note))
            made.append(q)
        if talk.request and talk.request != call.request:
            diffs = compare_request(call.request, talk.request, ("outbound", ai, "request"), rules, protocols[q])
            if diffs:
                outcome.request_changed = True
                report.request_changes.append(RequestChange(ai, t, call.peer.address, protocols[q], diffs))
                for d in diffs:
                    emit(("outbound", ai, "request"), d)

    for q, ts in sorted(uses.items()):
        if len(ts) > 1 and q not in openings:
            ai = recorded[q].action_index
            if rules.ignored(("outbound", ai)):
                continue
            report.repeated_calls.append(RepeatedCall(ai, recorded[q].peer.address, ts))
            emit(("outbound", ai), Difference(_call_path(ai), REPEATED_CALL, 1, len(ts), f"recorded once, made {len(ts)} times (talks {ts})"))

    for q, call in enumerate(recorded):
        if q in uses or q in openings or rules.ignored(("outbound", call.action_index)):
            continue
        greeting = not call.request
        report.missed_calls.append(MissedCall(call.action_index, q, call.peer.address, protocols[q], _excerpt(call.request), greeting))
        what = "recorded greeting" if greeting else f"{protocols[q]} call"
        emit(
            ("outbound", call.action_index),
            Difference(_call_path(call.action_index), MISSING_CALL, _excerpt(call.request), None, f"{what} to {call.peer.address} never made"),
        )

    report.unmatched = len(report.unmatched_talks)
    report.missed = len(report.missed_calls)
    report.reordered = len(report.reordered_calls)
    report.repeated = len(report.repeated_calls)
    report.request_changed = len(report.request_changes)
    found.sort(key=lambda item: item[0])
    report.differences = [d for _, d in found]
    return report


def _unmatched(report: OutboundReport, emit: Callable[[tuple, Difference], None], rules: Rules, t: int, talk: Talk) -> None:
    segments = ("outbound", "unmatched", t)
    if rules.ignored(segments):
        return
    m = talk.match
    protocol = protocol_of(talk.request, b"", _port(talk.peer))
    excerpt = _excerpt(talk.request)
    report.unmatched_talks.append(UnmatchedTalk(t, talk.peer, talk.connection, protocol, excerpt, m.score, m.reason, list(m.near_misses)))
    note = f"{protocol} call to {talk.peer} matched no recorded call"
    if m.near_misses:
        best = m.near_misses[0]
        note += f"; closest {_call_path(best.action_index)} (score {best.score:.2f}): {best.reason}"
    elif m.reason:
        note += f": {m.reason}"
    emit(segments, Difference(format_path(segments), UNMATCHED_CALL, None, excerpt, note))


def _port(address: str) -> int:
    try:
        return int(address.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return 0


def _excerpt(request: bytes) -> str:
    """A request as a person reads it: the Redis command line, the SQL, the HTTP request
    line (wire's readable form); other bytes as escaped text."""
    readable = parse_talk(request).readable()
    if readable is not None:
        return readable if len(readable) <= EXCERPT else readable[:EXCERPT] + "…"
    text = shown(request[:EXCERPT])
    return text + (f"… ({len(request)} bytes)" if len(request) > EXCERPT else "")


def compare_talks(recorded: Sequence[CallOutbound], first: Sequence[Talk], other: Sequence[Talk], options: DiffOptions | None = None) -> list[Difference]:
    """What differs between two replays of one session against the same build (noise).

    Paths are those `compare_outbound` gives for `first`, so `suppress_repeated` can set
    them against the primary differences:

    - `outbound[<ActionIndex>]` when the call is used a different number of times in the two
      runs (made in one, missed in the other; repeated in one), or when, on its peer, the
      calls made before it differ (ordering varies);
    - `outbound[<ActionIndex>].request...` where the requests attributed to the call differ
      between the runs (compared as `compare_outbound` compares them with the recording);
    - `outbound.unmatched[<talk>]` for a talk of `first` that matched nothing when the talk at
      the same place in `other` (the same peer, the same count of talks on it before) did
      match, or does not exist.
    """
    rules = compile_options(options)
    protocols = _Protocols(recorded)
    openings = opening_positions(recorded)
    pos1, pos2 = attribute(recorded, first), attribute(recorded, other)
    out: list[tuple[tuple, Difference]] = []

    def emit(segments: tuple, kind: str, expected: object, actual: object, note: str) -> None:
        if not rules.ignored(segments):
            out.append((sort_key(segments), Difference(format_path(segments), kind, expected, actual, note)))

    uses1 = _uses(pos1)
    uses2 = _uses(pos2)
    for q in sorted((uses1.keys() | uses2.keys()) - openings):
        n1, n2 = len(uses1.get(q, [])), len(uses2.get(q, []))
        ai = recorded[q].action_index
        if n1 != n2:
            emit(("outbound", ai), CHANGED, n1, n2, "times made differs between runs")
            continue
        for t1, t2 in zip(uses1[q], uses2[q], strict=True):
            r1, r2 = first[t1].request, other[t2].request
            if r1 != r2 and r1 and r2:
                for d in compare_request(r1, r2, ("outbound", ai, "request"), rules, protocols[q]):
                    out.append((sort_key(("outbound", ai, "request")), d))

    # Ordering: among the calls both runs made, the ones made before each call on its peer.
    both = (uses1.keys() & uses2.keys()) - openings
    before1, before2 = _before_on_peer(recorded, pos1, both), _before_on_peer(recorded, pos2, both)
    for q in sorted(both):
        if before1[q] != before2[q] and len(uses1[q]) == len(uses2[q]):
            ai = recorded[q].action_index
            e = [recorded[p].action_index for p in sorted(before1[q])]
            a = [recorded[p].action_index for p in sorted(before2[q])]
            emit(("outbound", ai), CHANGED, e, a, "calls made before it on its peer differ between runs")

    # Unmatched talks: compare by (peer, rank among that peer's talks).
    rank2: dict[tuple[str, int], int] = {}
    seen: dict[str, int] = {}
    for t, talk in enumerate(other):
        if talk.answered_from is not None:
            continue  # set-up answered from another session: not this session's talk
        k = seen.get(talk.peer, 0)
        seen[talk.peer] = k + 1
        rank2[(talk.peer, k)] = t
    seen = {}
    for t, talk in enumerate(first):
        if talk.answered_from is not None:
            continue
        k = seen.get(talk.peer, 0)
        seen[talk.peer] = k + 1
        if pos1[t] is not None:
            continue
        t2 = rank2.get((talk.peer, k))
        if t2 is None or pos2[t2] is not None:
            emit(("outbound", "unmatched", t), CHANGED, None, None if t2 is None else recorded[pos2[t2]].action_index, "unmatched in one run only")
    out.sort(key=lambda item: item[0])
    return [d for _, d in out]


def _uses(positions: list[int | None]) -> dict[int, list[int]]:
    uses: dict[int, list[int]] = {}
    for t, q in enumerate(positions):
        if q is not None:
            uses.setdefault(q, []).append(t)
    return uses


def _before_on_peer(recorded: Sequence[CallOutbound], positions: list[int | None], among: set[int]) -> dict[int, frozenset[int]]:
    """For each call in `among` (its first use), the calls of `among` made before it on its peer."""
    made: dict[str, list[int]] = {}
    out: dict[int, frozenset[int]] = {}
    for q in positions:
        if q is None or q in out or q not in among:
            continue
        peer = recorded[q].peer.address
        earlier = made.setdefault(peer, [])
        out[q] = frozenset(earlier)
        earlier.append(q)
    return out
