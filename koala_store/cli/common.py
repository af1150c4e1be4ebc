"""What every command shares: the --store option, error reporting, progress bars."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ..errors import KoalaError, Terminated
from ..store import ENV_VAR, SessionStore, open_store
from ..store.elastic_config import scrub

EXIT_OK = 0
EXIT_USER_ERROR = 1
EXIT_PARTIAL = 2

console = Console()
err_console = Console(stderr=True)

STORE_HELP = f"Store URL: sqlite:///path.db (default ./koala.db) or http://host:9200; ${ENV_VAR} sets the default."
StoreOption = typer.Option(None, "--store", envvar=ENV_VAR, help=STORE_HELP, show_default=False)
IndexOption = typer.Option(
    None,
    "--index",
    help="Elasticsearch only: use this index instead of koala-store's own, e.g. rdebug_index where a Koala recorder posts.",
    show_default=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def say(message: str) -> None:
    """A plain line on stdout (never wrapped, never colour-guessed)."""
    console.print(message, highlight=False, soft_wrap=True, markup=False)


def note(message: str) -> None:
    """A plain line on stderr, for counts and remarks around the data on stdout."""
    err_console.print(message, highlight=False, soft_wrap=True, markup=False)


def list_rejected(lines: list[str]) -> None:
    """`rejected N:` and one indented line per rejection, on stderr."""
    if lines:
        note(f"rejected {len(lines)}:")
        for line in lines:
            note(f"  {line}")


def fail(message: str, code: int = EXIT_USER_ERROR) -> typer.Exit:
    """Print one error line (never with a credential in it) and return the Exit to raise."""
    err_console.print("[bold red]error:[/] ", end="")
    note(scrub(message))
    return typer.Exit(code)


def user_errors(command: F) -> F:
    """Turn KoalaError (and unreadable output paths) into one message and exit code 1, and
    Ctrl-C or SIGTERM into one line and 130 or 143."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KoalaError as exc:
            raise fail(str(exc)) from None
        except BrokenPipeError:
            sys.stderr.close()  # output piped into `head`: stop quietly
            raise typer.Exit(EXIT_OK) from None
        except KeyboardInterrupt as exc:
            # Caught here: typer would turn it into a silent exit 130.
            note("interrupted; what was stored or written so far is kept")
            raise typer.Exit(143 if isinstance(exc, Terminated) else 130) from None  # 128 + signal

    return wrapper  # type: ignore[return-value]


def store_from(url: str | None, index: str | None = None, *, readonly: bool = False) -> SessionStore:
    """The store a command works on; read commands open it read-only (nothing is created)."""
    return open_store(url, index=index, readonly=readonly)


def report_skipped(store: SessionStore) -> bool:
    """Name each stored document a read passed over (it does not convert to a session), on
    stderr; return whether there was any (the answer is then partial)."""
    skipped = store.skipped
    if skipped:
        note(f"skipped {len(skipped)} stored documents that cannot be read as sessions:")
        for item in skipped:
            note(f"  {item.document}: {item.reason}")
    return bool(skipped)


def progress_bar(*, transient: bool = True) -> Progress:
    """A progress display on stderr (stdout stays clean for data)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=transient,
    )
