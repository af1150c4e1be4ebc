"""The `koala` command: a thin skin over the library (each command calls one library function).

Exit codes: 0 ok, 1 user error (bad input, bad option, unreachable store), 2 partial (some
inputs rejected, the rest stored); `koala replay` exits 3 when sessions differ or fail.
"""

from __future__ import annotations

import sys

import typer

from . import es, replay, sessions, store
from ..errors import Terminated
from .common import EXIT_USER_ERROR
from .ingest import ingest_command
from .record import record_command
from .serve import serve_command

app = typer.Typer(
    help="koala-store: record, store, replay and diff backend traffic (Koala and GoReplay compatible).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("ingest")(ingest_command)
app.command("replay")(replay.replay_command)
app.command("serve")(serve_command)
app.command("record")(record_command)
app.add_typer(replay.runs_app, name="runs")
app.add_typer(sessions.app, name="sessions")
app.add_typer(store.app, name="store")
app.add_typer(es.app, name="es")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; usage errors exit 1 (click's usual 2 is our 'partial')."""
    try:
        result = app(args=argv, standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt) as exc:
        sys.stderr.write("interrupted; what was stored or written so far is kept\n")
        sys.exit(143 if isinstance(exc, Terminated) else 130)  # 128 + the signal, as shells report
    except typer.TyperException as exc:
        show = getattr(exc, "show", None)
        if show is None:
            raise
        show()
        # `koala` or `koala sessions` alone print help; that is not an error.
        sys.exit(0 if type(exc).__name__ == "NoArgsIsHelpError" else EXIT_USER_ERROR)
    sys.exit(result if isinstance(result, int) else 0)
