"""The `koala` command: a thin skin over the library (each command calls one library function).

Exit codes: 0 ok, 1 user error (bad input, bad option, unreachable store), 2 partial (some
inputs rejected, the rest stored); `koala replay` exits 3 when sessions differ or fail.
"""

from __future__ import annotations

import sys

import typer

from .. import __version__
from ..errors import Terminated
from . import es, kibana, replay, sessions, store
from .common import EXIT_USER_ERROR, fail, say
from .ingest import ingest_command
from .report import report_command
from .record import record_command
from .serve import serve_command

app = typer.Typer(
    help="koala-store: record, store, replay and diff backend traffic (Koala and GoReplay compatible).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        say(f"koala-store {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True, help="Print koala-store's version and exit."),
) -> None:
    """koala-store: record, store, replay and diff backend traffic (Koala and GoReplay compatible)."""

app.command("ingest")(ingest_command)
app.command("replay")(replay.replay_command)
app.command("report")(report_command)
app.command("serve")(serve_command)
app.command("record")(record_command)
app.add_typer(replay.runs_app, name="runs")
app.add_typer(sessions.app, name="sessions")
app.add_typer(store.app, name="store")
app.add_typer(es.app, name="es")
app.add_typer(kibana.app, name="kibana")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; usage errors exit 1 (click's usual 2 is our 'partial')."""
    try:
        result = app(args=argv, standalone_mode=False, prog_name="koala")
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt) as exc:
        sys.stderr.write("interrupted; what was stored or written so far is kept\n")
        sys.exit(143 if isinstance(exc, Terminated) else 130)  # 128 + the signal, as shells report
    except typer.TyperException as exc:
        show = getattr(exc, "show", None)
        if show is None:
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":
            show()  # `koala` or `koala sessions` alone print help; that is not an error
            sys.exit(0)
        # A usage error (missing or bad option) in the style of every other error: one line.
        ctx = getattr(exc, "ctx", None)
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        message = " ".join(message.replace("Value error, ", "").split()).rstrip(".")
        message = message[:1].lower() + message[1:]
        fail(f"{message}; see {ctx.command_path if ctx is not None else 'koala'} --help")
        sys.exit(EXIT_USER_ERROR)
    sys.exit(result if isinstance(result, int) else 0)
