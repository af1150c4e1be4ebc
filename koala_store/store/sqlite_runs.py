"""Replay results in the embedded SQLite store: a `runs` and a `comparisons` table."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator

import msgspec

from ..results import Comparison, RunSummary
from .sqlite_tx import transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_name ON runs (name, started_at);
CREATE TABLE IF NOT EXISTS comparisons (
    run_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    recorded_at INTEGER NOT NULL,
    verdict TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (run_id, session_id)
);
CREATE INDEX IF NOT EXISTS comparisons_by_time ON comparisons (run_id, recorded_at, session_id);
"""

_encode = msgspec.msgpack.Encoder().encode
_run = msgspec.msgpack.Decoder(RunSummary).decode
_comparison = msgspec.msgpack.Decoder(Comparison).decode


class SqliteRunStore:
    def __init__(self, db: sqlite3.Connection):
        self.db = db
        self.db.executescript(SCHEMA)

    def put_run(self, summary: RunSummary) -> None:
        with transaction(self.db):
            self.db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET name = excluded.name, body = excluded.body",
                (summary.run_id, summary.name, summary.started_at, _encode(summary)),
            )

    def put_comparisons(self, comparisons: Iterable[Comparison]) -> None:
        # str(verdict): sqlite3 binds an exact str directly; a StrEnum it first asks for an
        # adapter, which costs two failed attribute lookups a row.
        rows = [(c.run_id, c.session_id, c.recorded_at, str(c.verdict), c.endpoint, _encode(c)) for c in comparisons]
        if not rows:
            return
        with transaction(self.db):
            self.db.executemany("INSERT OR REPLACE INTO comparisons VALUES (?, ?, ?, ?, ?, ?)", rows)

    def runs(self, limit: int = 20) -> list[RunSummary]:
        return [_run(body) for (body,) in self.db.execute("SELECT body FROM runs ORDER BY started_at DESC LIMIT ?", (limit,))]

    def run(self, ref: str) -> RunSummary | None:
        row = self.db.execute("SELECT body FROM runs WHERE run_id = ?", (ref,)).fetchone()
        if row is None:
            row = self.db.execute("SELECT body FROM runs WHERE name = ? ORDER BY started_at DESC LIMIT 1", (ref,)).fetchone()
        return _run(row[0]) if row else None

    def comparisons(self, run_id: str, verdict: str | None = None) -> Iterator[Comparison]:
        after: tuple[int, str] = (-(2**63), "")
        condition = " AND verdict = ?" if verdict else ""
        while True:
            rows = self.db.execute(
                f"SELECT recorded_at, session_id, body FROM comparisons WHERE run_id = ?{condition} "
                "AND (recorded_at, session_id) > (?, ?) ORDER BY recorded_at, session_id LIMIT 500",
                [run_id, *([verdict] if verdict else []), *after],
            ).fetchall()
            for _, _, body in rows:
                yield _comparison(body)
            if len(rows) < 500:
                return
            after = (rows[-1][0], rows[-1][1])
