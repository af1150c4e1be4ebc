"""`koala replay QUERY --target HOST:PORT ...` and `koala runs list|show`."""

from __future__ import annotations

import re
import sys
from typing import Optional

import msgspec
import typer

from ..diff import options_from_cli
from ..errors import KoalaError
from ..replay.inbound import RequestEdits
from ..replay.junit import write_junit
from ..replay.report import render
from ..replay.results import Comparison
from ..replay.runner import Counts, ReplayOptions, replay
from ..replay.targets import parse_address, parse_mapping
from .common import IndexOption, StoreOption, console, fail, note, progress_bar, say, store_from, user_errors

EXIT_DIFFERENT = 3
runs_app = typer.Typer(help="Replay runs kept in the store.", no_args_is_help=True)


def _rate(text: str | None) -> float | None:
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/s)?\s*", text)
    if not match:
        raise KoalaError(f"--rate {text!r} is not a rate; write e.g. 100/s")
    return float(match.group(1))


def _speed(text: str | None) -> float | None:
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(x|%)?\s*", text)
    if not match:
        raise KoalaError(f"--speed {text!r} is not a speed; write e.g. 2x (twice the recorded pace) or 200%")
    value = float(match.group(1))
    return value / 100 if match.group(2) == "%" else value


@user_errors
def replay_command(
    query: str = typer.Argument(..., help="Lucene query choosing the sessions ('*' for all)."),
    target: str = typer.Option(..., "--target", "-t", help="HOST:PORT of the build under test."),
    outbound: list[str] = typer.Option([], "--outbound", "-o", help="LISTEN=RECORDED_PEER: the mock listens on LISTEN for the dependency the recording shows at RECORDED_PEER (repeatable)."),
    match: str = typer.Option("fuzzy", "--match", envvar="KOALA_REPLAYING_MATCH_STRATEGY", help="Outbound matcher: chunk, sim (Koala's) or fuzzy (ours), or a plugin."),
    threshold: Optional[float] = typer.Option(None, "--threshold", envvar="KOALA_REPLAYING_MATCH_THRESHOLD", help="Matcher threshold (sim: 0.7, fuzzy: 0.8 by default)."),
    concurrency: int = typer.Option(1, "--concurrency", "-c", help="Sessions in flight. Above 1 the SUT must pass X-Koala-Session or traceparent on to its outbound HTTP calls."),
    rate: Optional[str] = typer.Option(None, "--rate", help="At most this many sessions per second, e.g. 100/s."),
    speed: Optional[str] = typer.Option(None, "--speed", help="Replay at the recorded pace times this, e.g. 2x."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1, help="Replay at most this many sessions."),
    bypass: list[str] = typer.Option([], "--bypass", help="RECORDED_PEER whose unmatched calls may reach the real dependency (repeatable)."),
    ignore: list[str] = typer.Option([], "--ignore", help="Difference to ignore: a key name at any depth, a path (body.user.ts, body.items[*].id) or re:REGEX (repeatable)."),
    ignore_header: list[str] = typer.Option([], "--ignore-header", help="Response header to ignore besides Date, Server, Content-Length, X-Request-Id... (repeatable)."),
    compare_header: list[str] = typer.Option([], "--compare-header", help="A header ignored by default to compare anyway (repeatable)."),
    ignore_order: bool = typer.Option(False, "--ignore-order", help="Compare JSON arrays as unordered."),
    float_tolerance: float = typer.Option(0.0, "--float-tolerance", help="Floats this close are equal."),
    timestamp_window: float = typer.Option(120.0, "--timestamp-window", help="Seconds within which timestamp-like values are equal (rdebug: 120; 0 turns it off)."),
    noise_runs: int = typer.Option(0, "--noise-runs", help="Replay each session N more times; what varies among them is noise."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="HOST:PORT of a build of the old code: Diffy's three-way noise rule."),
    run_name: Optional[str] = typer.Option(None, "--run-name", help="A name for this run (koala runs show NAME)."),
    junit: Optional[str] = typer.Option(None, "--junit", help="Also write the run as JUnit XML to this file."),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
    rewrite_url: list[str] = typer.Option([], "--rewrite-url", help="REGEX:REPLACEMENT on the request target, as GoReplay's (repeatable)."),
    set_header: list[str] = typer.Option([], "--set-header", help="'Name: value' set on every inbound request (repeatable)."),
    allow_url: list[str] = typer.Option([], "--allow-url", help="Replay only requests whose target matches (repeatable)."),
    disallow_url: list[str] = typer.Option([], "--disallow-url", help="Skip requests whose target matches (repeatable)."),
    timeout: float = typer.Option(5.0, "--timeout", help="Seconds to wait for the target's answer (GoReplay: 5)."),
    include_incomplete: bool = typer.Option(False, "--include-incomplete", help="Also replay sessions koala record marked incomplete (skipped by default)."),
    store_url: Optional[str] = StoreOption,
    index: Optional[str] = IndexOption,
) -> None:
    """Replay recorded sessions against a build, answer its outbound calls from the recording,
    and report what changed. Exit 0 when every session is the same, 3 when some differ or fail."""
    options = ReplayOptions(
        target=parse_address(target, "--target"),
        query=query,
        mappings=[parse_mapping(m) for m in outbound],
        matcher=match,
        threshold=threshold,
        concurrency=concurrency,
        rate=_rate(rate),
        speed=_speed(speed),
        limit=limit,
        bypass=[parse_address(b, "--bypass") for b in bypass],
        diff=options_from_cli(
            ignore,
            ignore_headers=ignore_header,
            compare_headers=compare_header,
            ignore_order=ignore_order,
            float_tolerance=float_tolerance,
            timestamp_window_s=timestamp_window,
        ),
        noise_runs=noise_runs,
        baseline=parse_address(baseline, "--baseline") if baseline else None,
        run_name=run_name,
        edits=RequestEdits.parse(rewrite_url, set_header),
        allow_url=allow_url,
        disallow_url=disallow_url,
        timeout=timeout,
        include_incomplete=include_incomplete,
    )
    store = store_from(store_url, index)
    try:
        total = store.count(query)
        if options.limit is not None:
            total = min(total, options.limit)
        # The bar appears with the first session, so a run stopped by its pre-flight checks
        # prints its one error line and nothing else.
        bar = progress_bar(transient=True)
        task = bar.add_task("replaying", total=total)

        def progress(counts: Counts) -> None:
            if not bar.live.is_started:
                bar.start()
            done = counts.same + counts.different + counts.error
            bar.update(task, completed=done + counts.skipped, description=f"same {counts.same} different {counts.different} error {counts.error}")

        try:
            summary = replay(store, options, progress)
        except OSError as exc:
            raise KoalaError(str(exc)) from None
        finally:
            if bar.live.is_started:
                bar.stop()
        comparisons = list(store.runs.comparisons(summary.run_id)) if (junit or not as_json) else []
    finally:
        store.close()
    if junit:
        write_junit(junit, summary, comparisons)
    if as_json:
        sys.stdout.buffer.write(msgspec.json.encode(summary) + b"\n")
    else:
        say(render(summary, comparisons))
    if summary.failed:
        raise typer.Exit(EXIT_DIFFERENT)


@runs_app.command("list")
@user_errors
def runs_list(
    limit: int = typer.Option(20, "--limit", "-n", min=1),
    as_json: bool = typer.Option(False, "--json"),
    store_url: Optional[str] = StoreOption,
) -> None:
    """The newest replay runs."""
    store = store_from(store_url)
    try:
        runs = store.runs.runs(limit)
    finally:
        store.close()
    if as_json:
        for run in runs:
            sys.stdout.buffer.write(msgspec.json.encode(run) + b"\n")
        return
    if not runs:
        note(f"no replay runs in {store.url} yet; run koala replay")
        return
    for run in runs:
        say(f"{run.run_id}  {run.name:28} {run.status:11} total {run.total:>6}  same {run.same:>6}  different {run.different:>6}  error {run.error:>5}  {run.target}")


@runs_app.command("show")
@user_errors
def runs_show(
    run: str = typer.Argument(..., help="A run id or name (the newest run of that name)."),
    as_json: bool = typer.Option(False, "--json", help="The summary, then one comparison per line, as JSON."),
    verdict: Optional[str] = typer.Option(None, "--verdict", help="Only sessions with this verdict: same, different or error."),
    store_url: Optional[str] = StoreOption,
) -> None:
    """A run's summary and the sessions that differ."""
    if verdict is not None and verdict not in ("same", "different", "error"):
        raise fail(f"--verdict {verdict!r} is not one of same, different, error")
    store = store_from(store_url)
    try:
        summary = store.runs.run(run)
        if summary is None:
            raise fail(f"no replay run {run!r} in {store.url}; list them with koala runs list")
        comparisons: list[Comparison] = list(store.runs.comparisons(summary.run_id, verdict))
    finally:
        store.close()
    if as_json:
        out = sys.stdout.buffer
        out.write(msgspec.json.encode(summary) + b"\n")
        for comparison in comparisons:
            out.write(msgspec.json.encode(comparison) + b"\n")
        return
    console.print(render(summary, comparisons), markup=False, highlight=False, soft_wrap=True)
