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

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import lz4.block
import msgspec

from ..errors import StoreError
from ..model import Session
from ..query import ir, regex
from ..query.evaluate import matches
from ..query.text import searchable_text
from ..summary import summarize
from .base import PutResult, Query, Rejected, SkipLog, Skipped, StoreWriteError, as_tree
from .sqlite_query import compile_where, decode_text
from .sqlite_tx import transaction

SCHEMA_VERSION = 1
# Bump when searchable_text changes: the contentless index must then be rebuilt. 2: stores
# written before row ids stayed above the mark may hold rows never indexed, and deletes
# of text never indexed; they are rebuilt once.
TEXT_VERSION = 2
BATCH = 1000
if TYPE_CHECKING:
    from ..results import RunStore

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


class _Unreadable(Exception):
    pass


def _decode(blob: bytes) -> Session:
    try:
        if blob[:1] == _LZ4:
            return _from_msgpack(lz4.block.decompress(blob[1:]))
        return _from_msgpack(blob[1:])
    except (msgspec.MsgspecError, lz4.block.LZ4BlockError, ValueError, MemoryError) as exc:  # any damage to the bytes
        raise _Unreadable(f"its stored form cannot be read ({exc}); the database is damaged or was written by another koala-store version") from None


def _regexp(pattern: str, value: Any) -> int:
    return int(value is not None and regex.fullmatch(pattern, str(value)))


def _text_matches(node: bytes, body: bytes) -> int:
    """A full-text condition on a session the index does not hold yet."""
    try:
        return int(matches(decode_text(node), _decode(body)))
    except _Unreadable:
        return 0  # scans name it; a condition on it is simply false


def _keep_going() -> int:
    # SQLite calls this every few thousand steps of a statement: Python gets to run the
    # signal handlers, so Ctrl-C stops even a long query (it ends it as "interrupted").
    return 0


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


# How SQLite reports a statement that Ctrl-C ended (through _keep_going or a function).
_INTERRUPTED = ("interrupted", "user-defined function raised exception")


@contextmanager
def _sql_errors(path: Path, *, writing: bool = False) -> Iterator[None]:
    """SQLite's own exceptions as one clear error (or KeyboardInterrupt, for Ctrl-C)."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if str(exc) in _INTERRUPTED:
            raise KeyboardInterrupt from None
        text = str(exc)
        if "full" in text or "I/O" in text:
            hint = "; the disk may be full: free space and run again (what was written before stays)"
        elif "readonly" in text or "read-only" in text:
            hint = "; the file or its folder cannot be written by this user"
        elif "locked" in text or "busy" in text:
            hint = "; another process holds it: try again when it is done"
        else:
            hint = ""
        raise StoreError(f"cannot {'write to' if writing else 'read'} the SQLite store {path}: {text}{hint}") from None
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot use the SQLite store {path}: {exc}; point --store at a koala-store database or a new file") from None


class SqliteStore:
    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.readonly = readonly
        self._skips = SkipLog()
        try:
            self.db = self._open_readonly() if readonly else self._open_for_writing()
            self.db.create_function("koala_regexp", 2, _regexp, deterministic=True)
            self.db.create_function("koala_text", 2, _text_matches, deterministic=True)
            self.db.set_progress_handler(_keep_going, 20_000)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the SQLite store {self.path}: {exc}; point --store at a koala-store database or a new file") from None

    # --- opening -----------------------------------------------------------------------

    def _open_for_writing(self) -> sqlite3.Connection:
        if not self.path.parent.exists():
            raise StoreError(f"cannot open the SQLite store {self.path}: folder {self.path.parent} does not exist; create it or pass another --store")
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA busy_timeout = 30000")
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.execute("PRAGMA cache_size = -65536")
        # Checkpoint every 64 MB of WAL rather than every 4 MB: fewer, larger copies.
        self.db.execute("PRAGMA wal_autocheckpoint = 16384")
        self._migrate()
        return self.db

    def _open_readonly(self) -> sqlite3.Connection:
        """Read without writing a byte: no migration, no file created (mode=ro). A store in a
        folder we cannot write has no -shm file to share; it is then read as immutable."""
        if not self.path.is_file():
            raise StoreError(f"no store at {self.path}; ingest sessions first (koala ingest PATH --store {self.url})")
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        try:
            db, tables = self._probe(uri)
        except sqlite3.OperationalError as exc:
            if "unable to open" not in str(exc) and "readonly" not in str(exc):
                raise
            db, tables = self._probe(uri + "&immutable=1")
        self.db = db
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer koala-store (schema {version}); upgrade koala-store")
        if "sessions" not in tables:
            raise StoreError(f"no koala-store sessions in {self.path}; ingest sessions first (koala ingest PATH --store {self.url})")
        return db

    @staticmethod
    def _probe(uri: str) -> tuple[sqlite3.Connection, set[str]]:
        db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA busy_timeout = 30000")
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db, tables

    def init(self) -> None:
        """The file and its tables exist once a store is opened for writing."""
        if self.readonly:
            raise StoreError(f"{self.path} was opened read-only; open it for writing to create it")
        self.runs  # noqa: B018  (its tables too)

    # --- schema and bookkeeping --------------------------------------------------------

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer koala-store (schema {version}); upgrade koala-store")
        self.db.executescript(_SCHEMA)
        if version != SCHEMA_VERSION:
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
        """Every session row at or below this id has its text indexed; none above it has."""
        if self._meta("text_version") != str(TEXT_VERSION):
            return 0  # (read-only) an index of another version: rely on none of it
        return int(self._meta("text_indexed_upto") or 0)

    @property
    def skipped(self) -> list[Skipped]:
        return self._skips.items

    # --- writing -----------------------------------------------------------------------

    def put_many(self, sessions: Iterable[Session]) -> PutResult:
        """Write in batches of BATCH sessions, one transaction each. A write that fails for
        good (disk full) raises StoreWriteError carrying what the earlier batches stored."""
        self._writable()
        result = PutResult()
        iterator = iter(sessions)
        while batch := list(islice(iterator, BATCH)):
            try:
                with _sql_errors(self.path, writing=True):
                    written = self._write(_prepare(batch))
            except StoreError as exc:
                raise StoreWriteError(str(exc), result) from None
            result.add(written)
        try:
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.OperationalError as exc:
            if str(exc) in _INTERRUPTED:
                raise KeyboardInterrupt from None
            # Otherwise what was committed is durable in the log; a later checkpoint copies it.
        return result

    def _writable(self) -> None:
        if self.readonly:
            raise StoreError(f"{self.path} was opened read-only; this command cannot write to it")

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
            # New rows always go above the full-text mark: a row id at or below it would be
            # taken as indexed and never be (after the newest session was deleted or replaced).
            next_id = max(self.db.execute("SELECT coalesce(max(id), 0) FROM sessions").fetchone()[0], self._text_upto()) + 1
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
        indexed = [i for i in row_ids if i <= upto]  # only these are in the index
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
        """Decoded sessions and their call ids; a session that cannot be decoded is named in
        `skipped` and left out (its text then stays as it is)."""
        marks = ",".join("?" * len(row_ids))
        calls: dict[int, list[int]] = {}
        for call_id, owner in self.db.execute(f"SELECT id, session FROM outbound WHERE session IN ({marks}) ORDER BY id", row_ids):
            calls.setdefault(owner, []).append(call_id)
        for row_id, session_id, body in self.db.execute(f"SELECT id, session_id, body FROM sessions WHERE id IN ({marks}) ORDER BY id", row_ids).fetchall():
            session = self._session(session_id, body)
            if session is not None:
                yield row_id, session, calls.get(row_id, [])

    def _session(self, session_id: str, body: bytes) -> Session | None:
        try:
            return _decode(body)
        except _Unreadable as exc:
            self._skips.add(session_id, str(exc))
            return None

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
        with _sql_errors(self.path):
            return self.db.execute("SELECT count(*) FROM sessions WHERE id > ?", (self._text_upto(),)).fetchone()[0]

    def refresh(self, progress: Callable[[int], None] | None = None) -> None:
        """Index the text of every session written since the last refresh (read-only: none;
        queries then check the unindexed sessions' text themselves)."""
        if self.readonly:
            return
        while True:
            with _sql_errors(self.path, writing=True), transaction(self.db):
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

    def _where(self, query: Query) -> tuple[str, list[Any]]:
        tree = as_tree(query)
        if not ir.uses_text(tree):
            return compile_where(tree)
        self.refresh()  # cheap when nothing is pending; a no-op when read-only
        return compile_where(tree, text_upto=self._text_upto())

    # --- reading -----------------------------------------------------------------------

    def get(self, session_id: str) -> Session | None:
        with _sql_errors(self.path):
            row = self.db.execute("SELECT body FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
        return self._session(session_id, row[0]) if row else None

    def count(self, query: Query = "*") -> int:
        with _sql_errors(self.path):
            where, params = self._where(query)
            return self.db.execute(f"SELECT count(*) FROM sessions s WHERE {where}", params).fetchone()[0]

    def scan(self, query: Query = "*", *, limit: int | None = None, page_size: int = 500) -> Iterator[Session]:
        """Stream matches in recorded order, a page at a time (keyset paging: no open cursor).
        A session that cannot be decoded is named in `skipped` and passed over."""
        with _sql_errors(self.path):
            where, params = self._where(query)
        after: tuple[int, str] | None = None
        remaining = limit
        while remaining is None or remaining > 0:
            size = page_size if remaining is None else min(page_size, remaining)
            keyset = " AND (s.recorded_at, s.session_id) > (?, ?)" if after else ""
            with _sql_errors(self.path):
                rows = self.db.execute(
                    f"SELECT s.recorded_at, s.session_id, s.body FROM sessions s WHERE {where}{keyset} "
                    "ORDER BY s.recorded_at, s.session_id LIMIT ?",
                    [*params, *(after or ()), size],
                ).fetchall()
            for _, session_id, body in rows:
                session = self._session(session_id, body)
                if session is not None:
                    yield session
                    if remaining is not None:
                        remaining -= 1
            if len(rows) < size:
                return
            after = (rows[-1][0], rows[-1][1])

    def outbound_peers(self, query: Query = "*") -> dict[str, int]:
        with _sql_errors(self.path):
            where, params = self._where(query)
            rows = self.db.execute(
                f"SELECT o.peer, count(DISTINCT o.session) FROM outbound o JOIN sessions s ON s.id = o.session WHERE {where} GROUP BY o.peer", params
            ).fetchall()
        return {peer: count for peer, count in rows if peer}

    def delete(self, query: Query) -> int:
        self._writable()
        deleted = 0
        with _sql_errors(self.path, writing=True):
            where, params = self._where(query)
            while True:
                with transaction(self.db):
                    ids = [r[0] for r in self.db.execute(f"SELECT s.id FROM sessions s WHERE {where} LIMIT ?", [*params, BATCH])]
                    self._delete_rows(ids)
                deleted += len(ids)
                if len(ids) < BATCH:
                    return deleted

    @cached_property
    def runs(self) -> "RunStore":
        """Replay runs and comparisons, in the same file (read-only and none yet: none)."""
        from .sqlite_runs import SqliteRunStore

        if self.readonly and not self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'comparisons'").fetchone():
            return _NoRuns()  # type: ignore[return-value]
        with _sql_errors(self.path, writing=not self.readonly):
            return SqliteRunStore(self.db)

    def close(self) -> None:
        self.db.close()


class _NoRuns:
    """The runs of a read-only store that has never had any."""

    def runs(self, limit: int = 20) -> list[Any]:
        return []

    def run(self, ref: str) -> None:
        return None

    def comparisons(self, run_id: str, verdict: str | None = None) -> Iterator[Any]:
        return iter(())
