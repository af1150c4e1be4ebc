"""Several processes opening the same new SQLite store at once (a recorder and a query, two
ingests): whichever makes the schema, the others find it made and go on."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from koala_store.store.sqlite import SqliteStore

OPENERS = 6
ROUNDS = 3


def _opener(path: Path, start_at: float, n: int) -> subprocess.Popen:
    """A process that, at `start_at`, opens the store for writing and stores one session."""
    code = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from factories import make_session
        from koala_store.store.sqlite import SqliteStore
        while time.time() < {start_at!r}:
            time.sleep(0.0005)
        store = SqliteStore({str(path)!r})
        store.put_many([make_session({n}, session_id="opener-{n}")])
        store.close()
        """
    )
    return subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)


def test_processes_opening_one_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    for round_ in range(ROUNDS):
        path = tmp_path / f"race-{round_}.db"
        start_at = time.time() + 1.5  # after every opener has imported koala_store
        openers = [_opener(path, start_at, n) for n in range(OPENERS)]
        errors = [(p.wait(60), p.stderr.read()) for p in openers]  # type: ignore[union-attr]
        assert all(code == 0 for code, _ in errors), [err for code, err in errors if code]
        store = SqliteStore(str(path), readonly=True)
        try:
            assert sorted(s.session_id for s in store.scan("")) == sorted(f"opener-{n}" for n in range(OPENERS))
        finally:
            store.close()
