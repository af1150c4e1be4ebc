"""Several writers opening the same new SQLite store at once (a recorder and a query, two
ingests): whichever makes the file and its schema, the others wait for it and go on.

Threads, each with its own connection, meet SQLite's file locks as processes do (its unix
VFS tracks locks per file, not per connection) and start far faster, so many rounds fit in a
few seconds. Without the fixes, in 100 rounds of 6: some opener fails with "database is
locked" from the switch to WAL, or with "UNIQUE constraint failed" from migrating a store
another opener had just made."""

from __future__ import annotations

import threading
from pathlib import Path

from factories import make_session

from koala_store.store.sqlite import SqliteStore

OPENERS = 6
ROUNDS = 100


def _open_and_store(path: Path, start: threading.Barrier, n: int, errors: list[str]) -> None:
    start.wait()
    try:
        store = SqliteStore(path)
        try:
            store.put_many([make_session(n, session_id=f"opener-{n}")])
        finally:
            store.close()
    except Exception as exc:  # noqa: BLE001  (every failure is the finding)
        errors.append(f"opener {n}: {exc}")


def test_writers_opening_one_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    for round_ in range(ROUNDS):
        path = tmp_path / f"race-{round_}.db"
        start = threading.Barrier(OPENERS)
        errors: list[str] = []
        openers = [threading.Thread(target=_open_and_store, args=(path, start, n, errors)) for n in range(OPENERS)]
        for opener in openers:
            opener.start()
        for opener in openers:
            opener.join(60)
        assert not errors, f"round {round_}: {errors}"
        store = SqliteStore(path, readonly=True)
        try:
            assert sorted(s.session_id for s in store.scan("")) == sorted(f"opener-{n}" for n in range(OPENERS))
        finally:
            store.close()
