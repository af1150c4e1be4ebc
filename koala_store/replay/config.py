"""The replay options, declared once: `ReplayConfig`.

Each field is an option as a person writes it (addresses and rates as text), annotated with
how the command line shows it (flags, help, help panel, environment variable). From this one
declaration come the `koala replay` options (koala_store.cli.replay builds the command's
signature from it), the `[replay]` table of a `koala.toml`, and the configuration a run
stores whole, so `koala replay --rerun RUN` repeats it exactly. `to_options` checks every
value once and turns the configuration into the runner's `ReplayOptions`.

Precedence, lowest first: defaults, `./koala.toml` (or `--config FILE`), the stored run
(`--rerun`), environment variables, flags on the command line.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import msgspec

from ..diff import options_from_cli
from ..errors import KoalaError
from .inbound import RequestEdits
from .runner import ReplayOptions
from .targets import parse_address, parse_mapping

PROJECT_FILE = "koala.toml"


class Panel(StrEnum):
    """Help panels of `koala replay --help`, in this order."""

    TARGET = "Target"
    MOCK = "Mock (outbound calls)"
    DIFF = "Diff"
    NOISE = "Noise"
    PACE = "Pace"
    OUTPUT = "Output"


@dataclass(frozen=True)
class Cli:
    """How one option appears on the command line."""

    flags: tuple[str, ...]
    help: str
    panel: Panel
    envvar: str | None = None


def cli(*flags: str, help: str, panel: Panel, envvar: str | None = None) -> Cli:
    return Cli(flags, help, panel, envvar)


class ReplayConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Everything a replay run is given; see the module doc."""

    query: str = "*"
    # --- target ---
    target: Annotated[str | None, cli("--target", "-t", help="HOST:PORT of the build under test.", panel=Panel.TARGET)] = None
    rewrite_url: Annotated[
        list[str], cli("--rewrite-url", help="REGEX:REPLACEMENT on the request target, as GoReplay's (repeatable).", panel=Panel.TARGET)
    ] = []
    set_header: Annotated[list[str], cli("--set-header", help="'Name: value' set on every inbound request (repeatable).", panel=Panel.TARGET)] = []
    allow_url: Annotated[
        list[str], cli("--allow-url", help="Replay only requests whose target matches this regular expression (repeatable).", panel=Panel.TARGET)
    ] = []
    disallow_url: Annotated[
        list[str], cli("--disallow-url", help="Skip requests whose target matches this regular expression (repeatable).", panel=Panel.TARGET)
    ] = []
    timeout: Annotated[float, cli("--timeout", help="Seconds to wait for the target's answer (GoReplay: 5).", panel=Panel.TARGET)] = 5.0
    include_incomplete: Annotated[
        bool, cli("--include-incomplete", help="Also replay sessions koala record marked incomplete (skipped by default).", panel=Panel.TARGET)
    ] = False
    # --- mock ---
    outbound: Annotated[
        list[str],
        cli(
            "--outbound",
            "-o",
            help="LISTEN=RECORDED_PEER: the mock listens on LISTEN for the dependency the recording shows at RECORDED_PEER (repeatable).",
            panel=Panel.MOCK,
        ),
    ] = []
    bypass: Annotated[list[str], cli("--bypass", help="RECORDED_PEER whose unmatched calls may reach the real dependency (repeatable).", panel=Panel.MOCK)] = []
    mock_process: Annotated[
        str,
        cli(
            "--mock-process",
            help="The mock in a process of its own, beside the replayer: auto (--concurrency 2 and up on 4 or more cores, never on 2 or 3), on or off.",
            panel=Panel.MOCK,
        ),
    ] = "auto"
    match: Annotated[
        str,
        cli("--match", help="Outbound matcher: chunk, sim (Koala's) or fuzzy (ours), or a plugin.", panel=Panel.MOCK, envvar="KOALA_REPLAYING_MATCH_STRATEGY"),
    ] = "fuzzy"
    threshold: Annotated[
        float | None,
        cli("--threshold", help="Matcher threshold (sim: 0.7, fuzzy: 0.8 by default).", panel=Panel.MOCK, envvar="KOALA_REPLAYING_MATCH_THRESHOLD"),
    ] = None
    # --- diff ---
    ignore: Annotated[
        list[str],
        cli(
            "--ignore",
            help="Difference to ignore: a key name at any depth, a path (body.user.ts, body.items[*].id) or re:REGEX (repeatable).",
            panel=Panel.DIFF,
        ),
    ] = []
    ignore_header: Annotated[
        list[str],
        cli("--ignore-header", help="Response header to ignore besides Date, Server, Content-Length, X-Request-Id... (repeatable).", panel=Panel.DIFF),
    ] = []
    compare_header: Annotated[list[str], cli("--compare-header", help="A header ignored by default to compare anyway (repeatable).", panel=Panel.DIFF)] = []
    ignore_order: Annotated[bool, cli("--ignore-order", help="Compare JSON arrays as unordered.", panel=Panel.DIFF)] = False
    float_tolerance: Annotated[float, cli("--float-tolerance", help="Floats this close are equal.", panel=Panel.DIFF)] = 0.0
    timestamp_window: Annotated[
        float, cli("--timestamp-window", help="Seconds within which timestamp-like values are equal (rdebug: 120; 0 turns it off).", panel=Panel.DIFF)
    ] = 120.0
    # --- noise ---
    noise_runs: Annotated[int, cli("--noise-runs", help="Replay each session N more times; what varies among them is noise.", panel=Panel.NOISE)] = 0
    baseline: Annotated[str | None, cli("--baseline", help="HOST:PORT of a build of the old code: Diffy's three-way noise rule.", panel=Panel.NOISE)] = None
    # --- pace ---
    concurrency: Annotated[
        int,
        cli(
            "--concurrency",
            "-c",
            help="Sessions in flight. Above 1 the SUT must pass X-Koala-Session or traceparent on to its outbound HTTP calls.",
            panel=Panel.PACE,
        ),
    ] = 1
    rate: Annotated[str | None, cli("--rate", help="At most this many sessions per second, e.g. 100/s.", panel=Panel.PACE)] = None
    speed: Annotated[str | None, cli("--speed", help="Replay at the recorded pace times this, e.g. 2x or 200%.", panel=Panel.PACE)] = None
    limit: Annotated[int | None, cli("--limit", "-n", help="Replay at most this many sessions.", panel=Panel.PACE)] = None
    # --- output ---
    run_name: Annotated[str | None, cli("--run-name", help="A name for this run (koala runs show NAME).", panel=Panel.OUTPUT)] = None
    junit: Annotated[str | None, cli("--junit", help="Also write the run as JUnit XML to this file.", panel=Panel.OUTPUT)] = None
    json: Annotated[bool, cli("--json", help="Print the run summary as JSON.", panel=Panel.OUTPUT)] = False


def option_specs() -> list[tuple[str, Any, Any, Cli]]:
    """(field, type, default, Cli) of every command-line option, in declaration order."""
    hints = get_type_hints(ReplayConfig, include_extras=True)
    out = []
    for field in msgspec.structs.fields(ReplayConfig):
        metadata = getattr(hints[field.name], "__metadata__", ())
        spec = next((m for m in metadata if isinstance(m, Cli)), None)
        if spec is not None:
            default = field.default if field.default is not msgspec.NODEFAULT else field.default_factory()
            out.append((field.name, hints[field.name].__origin__, default, spec))
    return out


# --- building a configuration ---------------------------------------------------------------


def from_mapping(values: dict[str, Any], source: str) -> dict[str, Any]:
    """Checked values from a file or a stored run: known names (dashes or underscores), the
    right types; one clear error naming the source, the key and the fix otherwise."""
    names = list(ReplayConfig.__struct_fields__)
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in names:
            near = difflib.get_close_matches(name, names, n=1)
            hint = f"; did you mean {near[0]}?" if near else f"; known: {', '.join(names)}"
            raise KoalaError(f"{source}: unknown replay option {key!r}{hint}")
        out[name] = value
    try:
        msgspec.convert(out, ReplayConfig)
    except msgspec.ValidationError as exc:
        raise KoalaError(f"{source}: {_readable(exc)}") from None
    return out


def load_file(path: Path) -> dict[str, Any]:
    """The `[replay]` table of a koala.toml (missing table: nothing)."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KoalaError(f"--config {path}: no such file; give the path of a koala.toml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KoalaError(f"cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise KoalaError(f"{path} is not valid TOML: {exc}") from None
    table = document.get("replay", {})
    if not isinstance(table, dict):
        raise KoalaError(f'{path}: [replay] must be a table of options, e.g. target = "127.0.0.1:8080"')
    return from_mapping(table, f"{path} [replay]")


def project_file(explicit: str | None) -> Path | None:
    """--config FILE, else ./koala.toml when there is one."""
    if explicit:
        return Path(explicit)
    default = Path(PROJECT_FILE)
    return default if default.is_file() else None


def build(*layers: dict[str, Any]) -> ReplayConfig:
    """A configuration from layers of values, later layers winning."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update({k: v for k, v in layer.items() if v is not None})
    try:
        return msgspec.convert(merged, ReplayConfig)
    except msgspec.ValidationError as exc:
        raise KoalaError(_readable(exc)) from None


def _readable(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    match = re.search(r"at `\$\.(\w+)`", text)
    if match:
        return f"replay option {match.group(1)}: {text.split(' - at ')[0]}"
    return text


# --- to the runner's options ----------------------------------------------------------------


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


def to_options(config: ReplayConfig) -> ReplayOptions:
    """The runner's options, every value checked (one clear error naming the option)."""
    if config.target is None:
        raise KoalaError('no target: give --target HOST:PORT (the build under test), or target = "HOST:PORT" under [replay] in koala.toml')
    if config.limit is not None and config.limit < 1:
        raise KoalaError(f"--limit {config.limit}: give 1 or more")
    return ReplayOptions(
        target=parse_address(config.target, "--target"),
        query=config.query,
        mappings=[parse_mapping(m) for m in config.outbound],
        matcher=config.match,
        threshold=config.threshold,
        concurrency=config.concurrency,
        rate=_rate(config.rate),
        speed=_speed(config.speed),
        limit=config.limit,
        bypass=[parse_address(b, "--bypass") for b in config.bypass],
        diff=options_from_cli(
            config.ignore,
            ignore_headers=config.ignore_header,
            compare_headers=config.compare_header,
            ignore_order=config.ignore_order,
            float_tolerance=config.float_tolerance,
            timestamp_window_s=config.timestamp_window,
        ),
        noise_runs=config.noise_runs,
        baseline=parse_address(config.baseline, "--baseline") if config.baseline else None,
        run_name=config.run_name,
        edits=RequestEdits.parse(config.rewrite_url, config.set_header),
        allow_url=list(config.allow_url),
        disallow_url=list(config.disallow_url),
        timeout=config.timeout,
        include_incomplete=config.include_incomplete,
        mock_process=config.mock_process,
        config=msgspec.to_builtins(config),
    )
