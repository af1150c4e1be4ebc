"""The embedded default store: one SQLite file (./koala.db unless told otherwise).

Layout: `sessions` (one row per session: derived columns for queries, the Session itself as
a msgpack blob), `outbound` (one row per outbound call, for per-call conditions) and two
contentless FTS5 tables for full text. Writes go in batches, one transaction each.

Full text is indexed after the rows are written, like Elasticsearch's refresh: a watermark
records the last session whose text is indexed, `refresh()` indexes the rest, and every
query that searches text refreshes first, so answers are always complete. Ingest stays fast
(tokenizing is most of SQLite's cost) and the index work happens once, in big batches.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from functools import cached_property, lru_cache
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lz4.block
import msgspec

from ..errors import StoreError
from ..model import Session
from ..query import ir
from ..query.text import searchable_text
from ..summary import summarize
from .base import PutResult, Query, Rejected, as_tree
from .sqlite_query import compile_where
from .sqlite_tx import transaction

SCHEMA_VERSION = 1
# Bump when searchable_text changes: the contentless index must then be rebuilt.
TEXT_VERSION = 1
BATCH = 1000
if TYPE_CHECKING:
    from .sqlite_runs import SqliteRunStore

_SQL_PARAMS = 500  # stay well under SQLite's bound-parameter limit
_INT64 = (-(2**63), 2**63 - 1)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL UNIQUE,
    recorded_at INTEGER NOT NULL,
    thread_id INTEGER,
    trace_id TEXT,
    method TEXT,
    path TEXT,
    query TEXT,
    host TEXT,
    status INTEGER,
    content_type TEXT,
    latency_ms REAL,
    request_size INTEGER NOT NULL,
    response_size INTEGER NOT NULL,
    outbound_count INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_time ON sessions (recorded_at, session_id);
CREATE TABLE IF NOT EXISTS outbound (
    id INTEGER PRIMARY KEY,
    session INTEGER NOT NULL,
    peer TEXT,
    protocol TEXT,
    method TEXT,
    path TEXT,
    request_size INTEGER NOT NULL,
    response_size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbound_by_session ON outbound (session);
CREATE VIRTUAL TABLE IF NOT EXISTS inbound_text USING fts5(
    request, response, content='', tokenize='unicode61 remove_diacritics 0');
CREATE VIRTUAL TABLE IF NOT EXISTS outbound_text USING fts5(
    request, response, content='', tokenize='unicode61 remove_diacritics 0');
"""

_to_msgpack = msgspec.msgpack.Encoder().encode
_from_msgpack = msgspec.msgpack.Decoder(Session).decode
# Blob layout: one marker byte, then the msgpack of the Session, LZ4-compressed when that
# is smaller. Recorded traffic is mostly text and shrinks about 3x, and a smaller blob is
# most of what makes writes and scans fast.
_RAW, _LZ4 = b"\x00", b"\x01"


def _encode(session: Session) -> bytes:
    packed = _to_msgpack(session)
    squeezed = lz4.block.compress(packed)
    return _LZ4 + squeezed if len(squeezed) < len(packed) else _RAW + packed


def _decode(blob: bytes) -> Session:
    try:
        if blob[:1] == _LZ4:
            return _from_msgpack(lz4.block.decompress(blob[1:]))
        return _from_msgpack(blob[1:])
    except (msgspec.DecodeError, msgspec.ValidationError, lz4.block.LZ4BlockError) as exc:
        raise StoreError(f"a stored session cannot be read ({exc}); the database is damaged or was written by another koala-store version") from None


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _regexp(pattern: str, value: Any) -> int:
    return int(value is not None and _regex(pattern).fullmatch(str(value)) is not None)


def _none_if_empty(value: str) -> str | None:
    return value or None


def _check_int64(session: Session) -> str | None:
    """The columns holding session integers are 64-bit; name one that does not fit.

    (Other integers live only in the msgpack blob, which holds 64-bit unsigned too.)
    """
    for name, value in (("CallFromInbound.OccurredAt", session.call_from_inbound.occurred_at), ("ThreadId", session.thread_id)):
        if not _INT64[0] <= value <= _INT64[1]:
            return f"{name} = {value} does not fit in a 64-bit integer"
    return None


class _Prepared(msgspec.Struct):
    # session_id -> (session row without its id, outbound rows without their ids);
    # the blob is the session row's last column.
    rows: dict[str, tuple[tuple[Any, ...], list[tuple[Any, ...]]]]
    rejected: list[Rejected]


def _prepare(batch: list[Session]) -> _Prepared:
    """Everything about a batch that needs no database: checks, summaries, rows, blobs."""
    prepared = _Prepared({}, [])
    for session in batch:
        problem = _check_int64(session)
        if problem:
            prepared.rejected.append(Rejected(session.session_id, problem))
            continue
        summary = summarize(session)
        session_row = (
            session.session_id,
            summary.recorded_at,
            session.thread_id,
            _none_if_empty(session.trace_id),
            _none_if_empty(summary.method),
            _none_if_empty(summary.path),
            _none_if_empty(summary.query),
            _none_if_empty(summary.host),
            summary.status,
            _none_if_empty(summary.content_type),
            summary.latency_ms,
            len(session.call_from_inbound.request),
            len(session.response),
            len(summary.outbound),
            _encode(session),
        )
        calls = [
            (facts.peer, facts.protocol, _none_if_empty(facts.method), _none_if_empty(facts.path), len(call.request), len(call.response))
            for call, facts in zip(session.outbound_calls, summary.outbound, strict=True)
        ]
        prepared.rows[session.session_id] = (session_row, calls)  # the last copy in a batch wins
    return prepared


class SqliteStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        if not self.path.parent.exists():
            raise StoreError(f"cannot open the SQLite store {self.path}: folder {self.path.parent} does not exist; create it or pass another --store")
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA busy_timeout = 30000")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.execute("PRAGMA cache_size = -65536")
            # Checkpoint every 64 MB of WAL rather than every 4 MB: fewer, larger copies.
            self.db.execute("PRAGMA wal_autocheckpoint = 16384")
            self.db.create_function("koala_regexp", 2, _regexp, deterministic=True)
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the SQLite store {self.path}: {exc}; point --store at a koala-store database or a new file") from None

    # --- schema and bookkeeping --------------------------------------------------------

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer koala-store (schema {version}); upgrade koala-store")
        self.db.executescript(_SCHEMA)
        self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        if self._meta("text_version") != str(TEXT_VERSION):
            self._rebuild_text_index()

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, str(value)))

    def _rebuild_text_index(self) -> None:
        with transaction(self.db):
            self.db.execute("INSERT INTO inbound_text (inbound_text) VALUES ('delete-all')")
            self.db.execute("INSERT INTO outbound_text (outbound_text) VALUES ('delete-all')")
            self._set_meta("text_indexed_upto", 0)
            self._set_meta("text_version", TEXT_VERSION)

    def _text_upto(self) -> int:
        return int(self._meta("text_indexed_upto") or 0)

    # --- writing -----------------------------------------------------------------------

    def put_many(self, sessions: Iterable[Session]) -> PutResult:
        """Write in batches of BATCH sessions, one transaction each."""
        result = PutResult()
        iterator = iter(sessions)
        while batch := list(islice(iterator, BATCH)):
            result.add(self._write(_prepare(batch)))
        self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        return result

    def _write(self, prepared: "_Prepared") -> PutResult:
        result = PutResult(rejected=list(prepared.rejected))
        rows = prepared.rows
        with transaction(self.db):
            stale = []
            ids = list(rows)
            for start in range(0, len(ids), _SQL_PARAMS):
                chunk = ids[start : start + _SQL_PARAMS]
                marks = ",".join("?" * len(chunk))
                for row_id, sid, body in self.db.execute(f"SELECT id, session_id, body FROM sessions WHERE session_id IN ({marks})", chunk):
                    if body == rows[sid][0][-1]:
                        result.unchanged += 1
                        del rows[sid]
                    else:
                        stale.append(row_id)
            self._delete_rows(stale)
            next_id = self.db.execute("SELECT coalesce(max(id), 0) + 1 FROM sessions").fetchone()[0]
            next_call = self.db.execute("SELECT coalesce(max(id), 0) + 1 FROM outbound").fetchone()[0]
            session_rows, call_rows = [], []
            for session_row, calls in rows.values():
                session_rows.append((next_id, *session_row))
                for call in calls:
                    call_rows.append((next_call, next_id, *call))
                    next_call += 1
                next_id += 1
            self.db.executemany(f"INSERT INTO sessions VALUES ({','.join('?' * 16)})", session_rows)
            self.db.executemany("INSERT INTO outbound VALUES (?, ?, ?, ?, ?, ?, ?, ?)", call_rows)
        result.stored += len(session_rows)
        return result

    def _delete_rows(self, row_ids: list[int]) -> None:
        """Delete sessions by row id, taking their text out of the index (inside a transaction)."""
        if not row_ids:
            return
        upto = self._text_upto()
        indexed = [i for i in row_ids if i <= upto]
        for start in range(0, len(indexed), _SQL_PARAMS):
            chunk = indexed[start : start + _SQL_PARAMS]
            for row_id, session, call_ids in self._sessions_with_calls(chunk):
                self._unindex(row_id, session, call_ids)
        for start in range(0, len(row_ids), _SQL_PARAMS):
            chunk = row_ids[start : start + _SQL_PARAMS]
            marks = ",".join("?" * len(chunk))
            self.db.execute(f"DELETE FROM outbound WHERE session IN ({marks})", chunk)
            self.db.execute(f"DELETE FROM sessions WHERE id IN ({marks})", chunk)

    def _sessions_with_calls(self, row_ids: list[int]) -> Iterator[tuple[int, Session, list[int]]]:
        marks = ",".join("?" * len(row_ids))
        calls: dict[int, list[int]] = {}
        for call_id, owner in self.db.execute(f"SELECT id, session FROM outbound WHERE session IN ({marks}) ORDER BY id", row_ids):
            calls.setdefault(owner, []).append(call_id)
        for row_id, body in self.db.execute(f"SELECT id, body FROM sessions WHERE id IN ({marks}) ORDER BY id", row_ids).fetchall():
            yield row_id, _decode(body), calls.get(row_id, [])

    # --- full text ---------------------------------------------------------------------

    @staticmethod
    def _texts(session: Session, call_ids: list[int]) -> tuple[tuple[str, str], list[tuple[int, str, str]]]:
        inbound = (searchable_text(session.call_from_inbound.request), searchable_text(session.response))
        calls = [
            (call_id, searchable_text(call.request), searchable_text(call.response))
            for call_id, call in zip(call_ids, session.outbound_calls, strict=True)
        ]
        return inbound, calls

    def _unindex(self, row_id: int, session: Session, call_ids: list[int]) -> None:
        # Contentless FTS5 forgets a row only when given the exact text it indexed.
        inbound, calls = self._texts(session, call_ids)
        self.db.execute("INSERT INTO inbound_text (inbound_text, rowid, request, response) VALUES ('delete', ?, ?, ?)", (row_id, *inbound))
        self.db.executemany("INSERT INTO outbound_text (outbound_text, rowid, request, response) VALUES ('delete', ?, ?, ?)", calls)

    def pending_text(self) -> int:
        """Sessions written but not yet in the full-text index."""
        return self.db.execute("SELECT count(*) FROM sessions WHERE id > ?", (self._text_upto(),)).fetchone()[0]

    def refresh(self, progress: Callable[[int], None] | None = None) -> None:
        """Index the text of every session written since the last refresh."""
        while True:
            with transaction(self.db):
                upto = self._text_upto()
                ids = [r[0] for r in self.db.execute("SELECT id FROM sessions WHERE id > ? ORDER BY id LIMIT ?", (upto, BATCH))]
                if not ids:
                    return
                inbound_rows, call_rows = [], []
                for start in range(0, len(ids), _SQL_PARAMS):
                    for row_id, session, call_ids in self._sessions_with_calls(ids[start : start + _SQL_PARAMS]):
                        inbound, calls = self._texts(session, call_ids)
                        inbound_rows.append((row_id, *inbound))
                        call_rows.extend(calls)
                self.db.executemany("INSERT INTO inbound_text (rowid, request, response) VALUES (?, ?, ?)", inbound_rows)
                self.db.executemany("INSERT INTO outbound_text (rowid, request, response) VALUES (?, ?, ?)", call_rows)
                self._set_meta("text_indexed_upto", ids[-1])
            if progress:
                progress(len(ids))

    def _ready_for(self, tree: ir.Node) -> None:
        if ir.uses_text(tree):
            self.refresh()

    # --- reading -----------------------------------------------------------------------

    def get(self, session_id: str) -> Session | None:
        row = self.db.execute("SELECT body FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
        return _decode(row[0]) if row else None

    def count(self, query: Query = "*") -> int:
        tree = as_tree(query)
        self._ready_for(tree)
        where, params = compile_where(tree)
        return self.db.execute(f"SELECT count(*) FROM sessions s WHERE {where}", params).fetchone()[0]

    def scan(self, query: Query = "*", *, limit: int | None = None, page_size: int = 500) -> Iterator[Session]:
        """Stream matches in recorded order, a page at a time (keyset paging: no open cursor)."""
        tree = as_tree(query)
        self._ready_for(tree)
        where, params = compile_where(tree)
        after: tuple[int, str] | None = None
        remaining = limit
        while remaining is None or remaining > 0:
            size = page_size if remaining is None else min(page_size, remaining)
            keyset = " AND (s.recorded_at, s.session_id) > (?, ?)" if after else ""
            rows = self.db.execute(
                f"SELECT s.recorded_at, s.session_id, s.body FROM sessions s WHERE {where}{keyset} "
                "ORDER BY s.recorded_at, s.session_id LIMIT ?",
                [*params, *(after or ()), size],
            ).fetchall()
            for _, _, body in rows:
                yield _decode(body)
            if len(rows) < size:
                return
            after = (rows[-1][0], rows[-1][1])
            if remaining is not None:
                remaining -= len(rows)

    def outbound_peers(self, query: Query = "*") -> dict[str, int]:
        tree = as_tree(query)
        self._ready_for(tree)
        where, params = compile_where(tree)
        rows = self.db.execute(
            f"SELECT o.peer, count(DISTINCT o.session) FROM outbound o JOIN sessions s ON s.id = o.session WHERE {where} GROUP BY o.peer", params
        )
        return {peer: count for peer, count in rows if peer}

    def delete(self, query: Query) -> int:
        tree = as_tree(query)
        self._ready_for(tree)
        where, params = compile_where(tree)
        deleted = 0
        while True:
            with transaction(self.db):
                ids = [r[0] for r in self.db.execute(f"SELECT s.id FROM sessions s WHERE {where} LIMIT ?", [*params, BATCH])]
                self._delete_rows(ids)
            deleted += len(ids)
            if len(ids) < BATCH:
                return deleted

    @cached_property
    def runs(self) -> "SqliteRunStore":
        """Replay runs and comparisons, in the same file."""
        from .sqlite_runs import SqliteRunStore

        return SqliteRunStore(self.db)

    def close(self) -> None:
        self.db.close()
