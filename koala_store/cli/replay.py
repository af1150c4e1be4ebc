"""`koala replay QUERY --target HOST:PORT ...` and `koala runs list|show`."""

from __future__ import annotations

import inspect
import sys
from types import UnionType
from typing import Any, Optional, Union, get_args, get_origin

import msgspec
import typer

from ..errors import KoalaError
from ..replay.config import Panel, build, from_mapping, load_file, option_specs, project_file, to_options
from ..replay.heap import keep_freed_heap
from ..replay.junit import write_junit
from ..replay.report import render_rich
from ..replay.runner import Counts, replay
from ..results import Comparison, Verdict
from .common import EXIT_PARTIAL, IndexOption, StoreOption, console, fail, note, progress_bar, report_skipped, say, store_from, user_errors

EXIT_DIFFERENT = 3
runs_app = typer.Typer(help="Replay runs kept in the store.", no_args_is_help=True)


def _run_replay(
    query: str | None,
    flags: dict[str, Any],
    config_file: str | None,
    rerun: str | None,
    store_url: str | None,
    index: str | None,
) -> None:
    """`koala replay`: the configuration from its layers (see replay.config), then the run."""
    keep_freed_heap()  # session after session: the next reuses the pages the last one freed
    layers: list[dict[str, Any]] = []
    path = project_file(config_file)
    if path is not None:
        layers.append(load_file(path))
    store = store_from(store_url, index)
    try:
        if rerun is not None:
            previous = store.runs.run(rerun)
            if previous is None:
                raise KoalaError(f"--rerun {rerun}: no replay run {rerun!r} in {store.url}; list them with koala runs list")
            if previous.config is None:
                raise KoalaError(f"--rerun {rerun}: run {previous.run_id} kept no configuration (it was started from Python, not koala replay); give its options again")
            layers.append(from_mapping({k: v for k, v in previous.config.items() if k != "run_name"}, f"run {previous.run_id}"))
        layers.append({**flags, "query": query})
        config = build(*layers)
        if rerun is None and query is None and not any("query" in layer for layer in layers[:-1]):
            raise KoalaError("no query: give the sessions to replay, e.g. koala replay '*' --target HOST:PORT (or --rerun RUN)")
        options = to_options(config)
        total = store.count(config.query)
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
        comparisons = list(store.runs.comparisons(summary.run_id)) if (config.junit or not config.json) else []
        partial = report_skipped(store)  # stored documents that could not be read, named
    finally:
        store.close()
    if config.junit:
        write_junit(config.junit, summary, comparisons)
    if config.json:
        sys.stdout.buffer.write(msgspec.json.encode(summary) + b"\n")
    else:
        console.print(render_rich(summary, comparisons), highlight=False, soft_wrap=True)
    if summary.failed:
        raise typer.Exit(EXIT_DIFFERENT)
    if partial:
        raise typer.Exit(EXIT_PARTIAL)


def _replay_signature() -> inspect.Signature:
    """The command's parameters: one option per ReplayConfig field (help panels, env vars),
    every default None so only what the user gave overrides the other layers."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter(
            "query", keyword, default=typer.Argument(None, help="Lucene query choosing the sessions ('*' for all); optional with --rerun.", show_default=False), annotation=Optional[str]
        )
    ]
    for name, kind, default, spec in option_specs():
        shown = default if default not in (None, [], False) else None
        option = typer.Option(
            None, *spec.flags, help=spec.help + (f" \\[default: {shown}]" if shown is not None else ""), rich_help_panel=spec.panel.value, envvar=spec.envvar, show_default=False
        )
        params.append(inspect.Parameter(name, keyword, default=option, annotation=_optional(kind)))
    params += [
        inspect.Parameter(
            "config_file",
            keyword,
            default=typer.Option(None, "--config", help="Read options from this koala.toml (its \\[replay] table); ./koala.toml is read when present.", rich_help_panel=Panel.OUTPUT.value),
            annotation=Optional[str],
        ),
        inspect.Parameter(
            "rerun",
            keyword,
            default=typer.Option(None, "--rerun", help="Repeat a stored run (id or name) with the configuration it ran with; flags given here override it.", rich_help_panel=Panel.OUTPUT.value),
            annotation=Optional[str],
        ),
        inspect.Parameter("store_url", keyword, default=StoreOption, annotation=Optional[str]),
        inspect.Parameter("index", keyword, default=IndexOption, annotation=Optional[str]),
    ]
    return inspect.Signature(params)


def _optional(kind: Any) -> Any:
    args = [a for a in get_args(kind) if a is not type(None)]
    base = args[0] if args and get_origin(kind) in (Union, UnionType) else kind
    return Optional[base]


@user_errors
def replay_command(**values: Any) -> None:
    """Replay recorded sessions against a build, answer its outbound calls from the recording,
    and report what changed. Exit 0 when every session is the same, 3 when some differ or fail.

    Options also come from ./koala.toml or --config FILE (its \\[replay] table, the same
    names), and --rerun RUN repeats a stored run; flags given here win."""
    query = values.pop("query")
    config_file, rerun = values.pop("config_file"), values.pop("rerun")
    store_url, index = values.pop("store_url"), values.pop("index")
    _run_replay(query, values, config_file, rerun, store_url, index)


replay_command.__signature__ = _replay_signature()  # type: ignore[attr-defined]


@runs_app.command("list")
@user_errors
def runs_list(
    limit: int = typer.Option(20, "--limit", "-n", min=1),
    as_json: bool = typer.Option(False, "--json"),
    store_url: Optional[str] = StoreOption,
) -> None:
    """The newest replay runs."""
    store = store_from(store_url, readonly=True)
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
    verdict: Optional[Verdict] = typer.Option(None, "--verdict", help="Only sessions with this verdict."),
    diff: bool = typer.Option(False, "--diff", help="Also a unified diff of the recorded and replayed bodies of each differing session."),
    store_url: Optional[str] = StoreOption,
) -> None:
    """A run's summary and the sessions that differ."""
    store = store_from(store_url, readonly=True)
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
    console.print(render_rich(summary, comparisons, diff=diff), highlight=False, soft_wrap=True)
