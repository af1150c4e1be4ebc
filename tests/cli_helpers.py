"""Run the `koala` CLI in-process (fast, exit code and output captured) or as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from koala_store.cli import main


@dataclass
class Run:
    code: int
    out: str
    err: str


def koala(capsys: pytest.CaptureFixture[str], *args: str) -> Run:
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


def koala_process(
    *args: str,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    umask: int | None = None,
    mkdir: Path | None = None,
) -> Run:
    if mkdir is not None:
        mkdir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "koala_store", *args],
        input=stdin,
        capture_output=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        cwd=cwd,
        timeout=120,
        umask=-1 if umask is None else umask,
    )
    return Run(done.returncode, done.stdout.decode(), done.stderr.decode())


def interruptible(*args: str, **popen: object) -> subprocess.Popen[bytes]:
    """The `koala` CLI as a real process that Ctrl-C reaches as it would in a terminal. A
    process started in the background by a non-interactive shell (a CI runner's `cmd &`)
    ignores SIGINT, its children inherit that, and Python then keeps ignoring it (as every
    Unix tool does): SIGINT is put back to its default in the child before it runs."""
    return subprocess.Popen(
        [sys.executable, "-m", "koala_store", *args],
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        **popen,  # type: ignore[arg-type]
    )
