"""The embedded default store: one SQLite file (./koala.db unless told otherwise).

Layout (sqlite_schema): `sessions` (one row per session: derived columns for queries, each
indexed, the Session itself as a compressed msgpack blob, sqlite_blob), `outbound` (one row
per outbound call, for per-call conditions) and `session_text`, a contentless FTS5 table with
one row per session. Writes go in batches, one transaction each.

Row ids follow recorded order (recorded_at, session_id): a session gets its recorded_at in
nanoseconds as its id, or the nearest free id between its neighbours in recorded order. So
the full-text index, walked in rowid order, yields sessions in the order a search lists them,
and a search with --limit 100 reads 100 matches, not all of them. If no id is free between
two neighbours (thousands of sessions recorded in the same nanoseconds, out of order), the
store stops relying on it (meta `aligned` = 0) and orders by (recorded_at, session_id).

Full text is indexed after the rows are written, like Elasticsearch's refresh: new sessions
are listed in `text_pending`, `refresh()` indexes them in bulk, and every query that searches
text refreshes first (or, read-only, checks the pending sessions' text itself), so answers
are always complete. Ingest stays fast and the index work happens in big batches. A batch
prepared by ingest's worker processes (put_prepared) brings its text rows along and is
indexed in its own transaction: the text needs no second decoding then.

Schema 1 stores are migrated when opened for writing; opened read-only, they are read as
they are (their per-call text index, insertion order), correctly if more slowly.
"""

from __future__ import annotations

import fcntl
import heapq
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property, partial
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote


from ..errors import StoreError
from ..model import Session
from ..query import ir, regex
from ..query.ascii_text import ascii_check
from ..query.evaluate import matches
from .base import Building, IndexesNotBuilt, PutResult, Query, SkipLog, Skipped, StoreWriteError, as_tree
from .sqlite_blob import BlobCodec, Unreadable
from .sqlite_prepare import Prepared, Row, prepare, prepare_indexed, text_row, text_terms
from .sqlite_query import (
    Driven,
    TextCondition,
    TextIndex,
    compile_where,
    decode_text,
    driven,
    session_match,
    text_columns,
    text_leaves,
    text_only,
)
from .sqlite_schema import (
    ALL_COLUMNS,
    MAX_ROW_ID,
    SCHEMA_VERSION,
    SCRATCH_SESSIONS,
    TEXT_COLUMNS,
    add_terms_table,
    apply_text_settings,
    column_mask,
    create,
    create_keyword_indexes,
    drop_keyword_indexes,
    migrate_from_1,
    missing_keyword_indexes,
    missing_text_settings,
    terms_by_column,
)
from .sqlite_tx import transaction

# Bump when searchable_text or the text layout changes: every session is then indexed again.
# (Schema 1 stores used 1 and 2 for their per-call tables.)
TEXT_VERSION = 3
_V1_TEXT_VERSION = "2"
# Sessions per transaction. The keyword indexes on scattered values (trace, path, latency)
# dirty a page per session; a larger batch shares them (ingest at 1M: 1,000 -> 5,000 took
# 6,998 -> 8,232 sessions/s).
BATCH = 5000
# Sessions indexed per refresh transaction: FTS5 writes one segment per transaction and merges
# segments as they pile up, so fewer, bigger transactions index much faster (~20 MB of text).
TEXT_BATCH = 10_000
# A refresh that indexes at least this many sessions, and at least half of the index, ends by
# merging the index's segments (_merge_text_index); a smaller one writes a segment or two.
MERGE_AFTER = TEXT_BATCH
# A prefix with more terms than this is left to FTS5's own merge. An OR of terms costs a
# lookup per term and index segment (761 terms: ~60 ms over 19 segments at 1M sessions) and
# a few KB per term while it runs, but FTS5's merge costs more at every size measured, at 1M
# sessions in one segment: 4,569 terms (s*) 82-126 ms and 49 MB peak against 7.4-30 s and
# 231 MB; 11,112 terms (1*) 379 ms and 82 MB. The limit bounds the OR's memory.
PREFIX_TERMS = 20_000
# Terms a writing connection remembers having committed to text_terms (_note_terms), so that
# a batch upserts only the terms new to it: bounded, the first ones kept (the common ones).
KNOWN_TERMS = 500_000
# A bulk load (bulk_load) drops the keyword indexes when its input is at least this big and
# at least BULK_RATIO times the store's own size (a store is ~0.5x its NDJSON): then building
# them again at the end, which sorts every session's keys, costs less than the writes saved.
# Measured once, 100k sessions into a new store: the writer's CPU 109-121 -> 83-88 us a
# session, the build 12-15 us a session.
BULK_MIN_BYTES = 32 << 20
BULK_RATIO = 4
# ANALYZE only these: statistics of FTS5's shadow tables mislead the plans of its own
# statements (see _forget_text_statistics).
ANALYZED_TABLES = ("sessions", "outbound")
if TYPE_CHECKING:
    from ..results import RunStore

# The row with the highest id. max(id) is read from the end of the table's b-tree; `ORDER BY
# id DESC LIMIT 1` was planned as a scan of the covering index sessions_by_time plus a sort,
# 67 ms per batch at 1M sessions, half the ingest time.
NEWEST_ROW = "SELECT id, recorded_at, session_id FROM sessions WHERE id = (SELECT max(id) FROM sessions)"
_SQL_PARAMS = 500  # stay well under SQLite's bound-parameter limit
_FIRST_ID = -(2**63)  # below every row id
_TIE_GAP = 1 << 16  # id room left after a session recorded in the same nanosecond as the one before
_SORTED = 5000  # matches a search may collect and sort rather than walk every session in order
# A full-text query AND-ed with an indexed keyword starts from the keyword's index (each of
# its sessions read and its text checked: _checked_sessions) only when the keyword matches at
# most this many sessions; otherwise it walks the text matches and checks the keyword. All
# of the keyword's sessions are checked, ~30 us each, where a walk stops after the page (11
# us a walked row at 1M sessions): 200 bounds the check at a few ms. warehou* AND
# inbound.status:404 (200,000 sessions) walks: 14 ms (probing the text index per keyword
# session, 1,203 ms). With inbound.status:503 (109 sessions) walking took 10.5 s and a probe
# per session 3.6 s for a prefix (each probe names every term of it) and 10-17 ms for terms
# and phrases; checking takes ~5 ms for any of them.
_KEYWORD_FIRST_MAX = 200
# A full-text query with a prefix that names many terms, asked for its first few matches: the
# OR of its terms costs a lookup per term before the first match (~16 us a term at 1M
# sessions: s*, 4,569 terms, 73 ms), while checking one session costs about two terms when
# its text is ASCII (~30 us: read, decoded, a regex) and six when not (~100 us: indexed in a
# scratch FTS5 table). So the sessions are first taken in row id order, a window at a time,
# and checked (_first_in_windows), for at most the sessions the OR would cost: a phrase's
# terms times its words, over this. A dense prefix then lists its first 100 in a window or
# two (s* 73 -> 4 ms); a sparse one wastes at most about what the OR costs, then the OR
# lists the rest from where the windows stopped.
_TERMS_PER_SESSION_CHECKED = 3
_WINDOW_MIN = 32  # sessions in the smallest window
# Full text AND other conditions, when no keyword is rare: walk the text matches in rowid
# order and check the rest on each.
_WALK_TEXT = "session_text t CROSS JOIN sessions s ON s.id = t.rowid"


def _regexp(pattern: str, value: Any) -> int:
    return int(value is not None and regex.fullmatch(pattern, str(value)))


def _keep_going() -> int:
    # SQLite calls this every few thousand steps of a statement: Python gets to run the
    # signal handlers, so Ctrl-C stops even a long query (it ends it as "interrupted").
    return 0


def _page_by_id(where: str) -> str:
    """A page of the sessions matching `where`, in row id (recorded) order, after a keyset."""
    return f"SELECT s.id, s.session_id, s.body FROM sessions s WHERE {where} AND s.id > ? ORDER BY s.id LIMIT ?"


def _walks_rows(db: sqlite3.Connection, sql: str, params: list[Any]) -> bool:
    """Whether SQLite's plan for `sql` visits the sessions table in row id order (no index)."""
    for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params):
        detail = row[-1]
        if detail.startswith(("SCAN s", "SEARCH s ")):
            return "INDEX" not in detail or "INTEGER PRIMARY KEY" in detail
    return False


def _sorts(db: sqlite3.Connection, sql: str, params: list[Any]) -> bool:
    """Whether SQLite's plan for `sql` collects its rows and sorts them (ORDER BY not met by
    the order it reads them in)."""
    return any("USE TEMP B-TREE" in row[-1] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params))


@dataclass
class _Plan:
    """A search's SQL: it ends with a keyset condition and LIMIT ?, filled per page."""

    sql: str
    params: list[Any]
    by_id: bool  # keyset on the row id (recorded order); else on (recorded_at, session_id)
    found: list[tuple[int, Session]] | None = None  # matches already read and decoded, with their row ids
    # With `found`: the row id after which `sql` lists the rest; None when `found` is all of them.
    resume: int | None = None


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


# An AND over an OR of more branches than this is left to one SQL condition.
_MAX_DISTRIBUTED = 16


def _mixed_or(node: ir.Node) -> bool:
    """Whether a node is an OR of full text and other conditions (not full text alone, which
    is one MATCH)."""
    return isinstance(node, ir.Or) and ir.uses_text(node) and not text_only(node)


def _distributed(tree: ir.And) -> ir.Node:
    """`(order OR inbound.status:503) AND inbound.method:GET` as `(order AND
    inbound.method:GET) OR (inbound.status:503 AND inbound.method:GET)`: the same sessions,
    and an OR of full text and other conditions, which SqliteStore lists branch by branch
    (at 1M sessions, --limit 100: 0.27-0.97 s as one SQL condition). The first such OR among
    the AND's conditions is distributed; any other stays inside each branch."""
    for k, item in enumerate(tree.items):
        if _mixed_or(item) and len(item.items) <= _MAX_DISTRIBUTED:
            rest = tree.items[:k] + tree.items[k + 1 :]
            return ir.Or(tuple(ir.And(rest + (branch.items if isinstance(branch, ir.And) else (branch,))) for branch in item.items))
    return tree


BUSY_TIMEOUT_MS = 30_000  # how long a statement waits for another process's lock


def _switch_to_wal(db: sqlite3.Connection) -> None:
    """`PRAGMA journal_mode = WAL`, waiting out other processes. On a new file the switch
    needs an exclusive lock, and while another process opening the same new file is making
    the same switch, SQLite answers SQLITE_BUSY ("database is locked") at once, without its
    busy timeout (seen in CI: several processes opening one new store together). So retry
    for as long as any other statement would wait."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause = 0.001
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


class SqliteStore:
    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.readonly = readonly
        self._skips = SkipLog()
        self._known_terms: dict[str, int] = {}  # see _note_terms
        try:
            self.db = self._open_readonly() if readonly else self._open_for_writing()
            self.db.create_function("koala_regexp", 2, _regexp, deterministic=True)
            self.db.create_function("koala_text", 2, self._text_matches, deterministic=True)
            self.db.set_progress_handler(_keep_going, 20_000)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the SQLite store {self.path}: {exc}; point --store at a koala-store database or a new file") from None

    # --- opening -----------------------------------------------------------------------

    def _open_for_writing(self) -> sqlite3.Connection:
        if not self.path.parent.exists():
            raise StoreError(f"cannot open the SQLite store {self.path}: folder {self.path.parent} does not exist; create it or pass another --store")
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _switch_to_wal(self.db)
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.execute("PRAGMA cache_size = -65536")
        # Checkpoint every 256 MB of WAL rather than every 4 MB: an index page that many
        # batches touch is copied once (ingest at 1M: 8,232 -> 9,396 sessions/s). The log
        # file is cut back to 64 MB after each checkpoint.
        self.db.execute("PRAGMA wal_autocheckpoint = 65536")
        self.db.execute("PRAGMA journal_size_limit = 67108864")
        self.codec = BlobCodec(self.db)
        self._migrate()
        self.restore_keyword_indexes()  # a bulk load that did not end (killed) left them out
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
        self.codec = BlobCodec(db)
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer koala-store (schema {version}); upgrade koala-store")
        if "sessions" not in tables:
            raise StoreError(f"no koala-store sessions in {self.path}; ingest sessions first (koala ingest PATH --store {self.url})")
        self.schema = max(version, 1)
        return db

    @staticmethod
    def _probe(uri: str) -> tuple[sqlite3.Connection, set[str]]:
        db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
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
        if version < SCHEMA_VERSION:
            with _sql_errors(self.path, writing=True), transaction(self.db):
                # Asked again under the write lock: another process opening the same new
                # store may have made it since (migrating a made store as schema 1 fails).
                if self.db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                    has_sessions = self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sessions'").fetchone()
                    if has_sessions:
                        migrate_from_1(self.db)
                    else:
                        create(self.db)
                    self._set_meta("aligned", 1)
                    self._set_meta("text_version", TEXT_VERSION)
                    self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self.schema = SCHEMA_VERSION
        if not self._has_table("text_terms") or not terms_by_column(self.db):
            with _sql_errors(self.path, writing=True), transaction(self.db):
                add_terms_table(self.db)
        if settings := missing_text_settings(self.db):  # a new store, or one made before one of them
            with _sql_errors(self.path, writing=True), transaction(self.db):
                apply_text_settings(self.db, settings)
        self._forget_text_statistics()
        if self._meta("text_version") != str(TEXT_VERSION):
            self._rebuild_text_index()

    def _forget_text_statistics(self) -> None:
        """Drop statistics a plain ANALYZE (before the fix) took of the full-text shadow
        tables, usually while they were empty: with them SQLite plans FTS5's own statements
        badly and indexing slowed tenfold past ~100k sessions."""
        if not self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone():
            return
        if not self.db.execute("SELECT 1 FROM sqlite_stat1 WHERE tbl LIKE 'session_text%' LIMIT 1").fetchone():
            return  # the usual case: no write transaction on every open
        with _sql_errors(self.path, writing=True), transaction(self.db):
            gone = self.db.execute("DELETE FROM sqlite_stat1 WHERE tbl LIKE 'session_text%'").rowcount
        if gone:
            self.db.execute("ANALYZE sqlite_schema")  # reload the statistics without them

    # --- bulk loads ---------------------------------------------------------------------

    @contextmanager
    def bulk_load(self, incoming_bytes: int, building: Building | None = None) -> Iterator[None]:
        """Writes of `incoming_bytes` of input, with the keyword indexes dropped while they
        run when that is worth it (BULK_MIN_BYTES, BULK_RATIO) and built again at the end,
        whatever ends it (`building`: see restore_keyword_indexes). Queries meanwhile give
        the same answers, by scanning. A process killed meanwhile leaves them out until the
        store is next opened for writing."""
        # A shared flock on a file beside the database (_bulk_marker) tells other processes a
        # load is running, so that opening the store does not build the indexes under it; two
        # loads share it, and the last to end builds them. Not on the database file itself:
        # closing any descriptor of it would drop the fcntl locks SQLite holds on it here.
        marker = None
        if not self.readonly and self._worth_deferring(incoming_bytes):
            try:
                marker = self._bulk_marker.open("ab")
            except OSError:
                pass  # no marker, no bulk load: the writes keep the indexes up to date
        if marker is None:
            yield
            return
        with marker:
            fcntl.flock(marker, fcntl.LOCK_SH)
            with _sql_errors(self.path, writing=True), transaction(self.db):
                drop_keyword_indexes(self.db)
            try:
                yield
            except BaseException:
                fcntl.flock(marker, fcntl.LOCK_UN)
                try:
                    self.restore_keyword_indexes(building)
                except (KeyboardInterrupt, StoreError):
                    pass  # the first failure is the one to tell; the next open builds them
                raise
            fcntl.flock(marker, fcntl.LOCK_UN)
            try:
                self.restore_keyword_indexes(building)
            except StoreError as exc:
                raise IndexesNotBuilt(f"the keyword indexes were not built ({exc}); opening the store for writing builds them") from None

    def _worth_deferring(self, incoming_bytes: int) -> bool:
        page_count = self.db.execute("PRAGMA page_count").fetchone()[0]
        page_size = self.db.execute("PRAGMA page_size").fetchone()[0]
        return incoming_bytes >= max(BULK_MIN_BYTES, BULK_RATIO * page_count * page_size)

    def restore_keyword_indexes(self, building: Building | None = None) -> None:
        """Build the keyword indexes a bulk load dropped, unless one is still running, and
        take the statistics SQLite plans with again (they name each index). `building` is
        told how many it builds and returns what to call after each (a progress bar's)."""
        if not (missing := missing_keyword_indexes(self.db)) or self._bulk_load_running():
            return
        built = building(len(missing)) if building else None
        with _sql_errors(self.path, writing=True), transaction(self.db):
            create_keyword_indexes(self.db, missing, built)
        self._analyze_quietly(0, now=True)

    @property
    def _bulk_marker(self) -> Path:
        return self.path.with_name(self.path.name + "-bulk")

    def _bulk_load_running(self) -> bool:
        try:
            probe = self._bulk_marker.open("rb")
        except FileNotFoundError:
            return False  # no load ever ran here
        with probe:
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(probe, fcntl.LOCK_UN)
            return False

    def _has_table(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, str(value)))

    def _rebuild_text_index(self) -> None:
        """Forget the indexed text and list every session as pending (the next refresh
        indexes them all)."""
        with _sql_errors(self.path, writing=True), transaction(self.db):
            self.db.execute("INSERT INTO session_text (session_text) VALUES ('delete-all')")
            self.db.execute("INSERT OR IGNORE INTO text_pending (id) SELECT id FROM sessions")
            self._set_meta("text_version", TEXT_VERSION)

    def _aligned(self) -> bool:
        """Whether row ids follow recorded order (schema 2, and no id was ever out of room)."""
        return self.schema >= 2 and self._meta("aligned") == "1"

    def _text_index(self) -> TextIndex:
        if self.schema < 2:
            # Schema 1, read-only: rows above the mark are not in its per-call index.
            indexed = self._meta("text_version") == _V1_TEXT_VERSION
            return TextIndex(per_session=False, upto=int(self._meta("text_indexed_upto") or 0) if indexed else 0)
        if self._meta("text_version") != str(TEXT_VERSION):
            return TextIndex(pending=True, nothing_indexed=True)  # read-only, an index of another version
        pending = self.db.execute("SELECT 1 FROM text_pending LIMIT 1").fetchone() is not None
        # Read-only stores made before text_terms answer prefixes with FTS5's own merge.
        return TextIndex(pending=pending, prefix_terms=self._prefix_terms if self._has_table("text_terms") else None)

    def _prefix_terms(self, prefix: str, columns: int = ALL_COLUMNS) -> tuple[str, ...] | None:
        """The indexed terms that start with `prefix` held in any of `columns` (a mask:
        sqlite_schema.column_mask), in order; None when there are more than PREFIX_TERMS
        (FTS5's own prefix merge is then left to answer)."""
        terms: list[str] = []
        # Terms sharing a prefix are one range in the table's (code point) order. A store
        # made read-only before text_terms.columns has every term in every column.
        in_columns, params = self._in_columns(columns)
        for (term,) in self.db.execute(f"SELECT term FROM text_terms WHERE term >= ?{in_columns} ORDER BY term", (prefix, *params)):
            if not term.startswith(prefix):
                break
            if len(terms) == PREFIX_TERMS:
                return None
            terms.append(term)
        return tuple(terms)

    def _in_columns(self, columns: int) -> tuple[str, tuple[int, ...]]:
        """The condition on text_terms that keeps the terms held in any of `columns` (none
        for all of them, or in a store made read-only before text_terms.columns)."""
        if columns == ALL_COLUMNS or not terms_by_column(self.db):
            return "", ()
        return " AND columns & ?", (columns,)

    def _text_matches(self, node: bytes, body: bytes) -> int:
        """A full-text condition on a session the index does not hold yet."""
        try:
            return int(matches(decode_text(node), self.codec.decode(body)))
        except Unreadable:
            return 0  # scans name it; a condition on it is simply false

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
            self._put(prepare(batch), result)
        self._analyze_quietly(result.stored)
        # No checkpoint here: ingest calls this per 1,000 sessions, and copying the log each
        # time rewrote every index page per call (a third of the ingest time at 150k). SQLite
        # checkpoints every wal_autocheckpoint pages, and when the last connection closes.
        return result

    def preparer(self) -> Callable[[list[Session]], Prepared]:
        """What ingest runs on the next batch, in a worker process, before put_prepared writes
        it: picklable, and with the store's dictionary once one is committed, so the worker
        compresses the blobs too (asked again for each batch: the first ones train it)."""
        dictionary = self.codec.committed_dictionary()
        return prepare_indexed if dictionary is None else partial(prepare_indexed, dictionary=dictionary)

    def put_prepared(self, prepared: Prepared) -> PutResult:
        """Write one batch made by preparer() in one transaction, its text indexed in that
        transaction too (put_many leaves that to refresh). Fails as put_many does."""
        self._writable()
        result = PutResult()
        self._put(prepared, result)
        self._analyze_quietly(result.stored)
        return result

    def _put(self, prepared: Prepared, result: PutResult) -> None:
        try:
            with _sql_errors(self.path, writing=True):
                written = self._write(prepared)
        except StoreError as exc:
            raise StoreWriteError(str(exc), result) from None
        result.add(written)

    def _analyze_quietly(self, stored: int, *, now: bool = False) -> None:
        try:
            self._analyze(stored, now=now)
        except sqlite3.Error as exc:
            if str(exc) in _INTERRUPTED:
                raise KeyboardInterrupt from None
            # Statistics only steer plans; the sessions are committed.

    def _analyze(self, stored: int, *, now: bool = False) -> None:
        """Refresh the statistics SQLite plans with once the store has doubled since they were
        taken (or `now`): with them it starts from the most selective of two indexed
        conditions. Sampled (analysis_limit), so it takes milliseconds whatever the size."""
        grown = int(self._meta("written_since_analyze") or 0) + stored
        if not now and grown < max(1000, int(self._meta("analyzed_sessions") or 0)):
            if stored:
                self._set_meta("written_since_analyze", grown)
            return
        self.db.execute("PRAGMA analysis_limit = 1000")
        for table in ANALYZED_TABLES:
            self.db.execute(f"ANALYZE {table}")
        total = self.db.execute("SELECT count(*) FROM sessions").fetchone()[0]
        with transaction(self.db):
            self._set_meta("analyzed_sessions", total)
            self._set_meta("written_since_analyze", 0)

    def _writable(self) -> None:
        if self.readonly:
            raise StoreError(f"{self.path} was opened read-only; this command cannot write to it")

    def _write(self, prepared: Prepared) -> PutResult:
        result = PutResult(rejected=list(prepared.rejected))
        rows = prepared.rows
        try:
            with transaction(self.db):
                # Blobs made by a worker with the store's dictionary are kept as they are.
                blobs = {sid: row.blob for sid, row in rows.items() if row.blob is not None}
                loose = [sid for sid, row in rows.items() if row.blob is None]
                if loose:
                    blobs.update(zip(loose, self.codec.compress([rows[sid].packed for sid in loose]), strict=True))
                stale = []
                ids = list(rows)
                for start in range(0, len(ids), _SQL_PARAMS):
                    chunk = ids[start : start + _SQL_PARAMS]
                    marks = ",".join("?" * len(chunk))
                    for row_id, sid, body in self.db.execute(f"SELECT id, session_id, body FROM sessions WHERE session_id IN ({marks})", chunk):
                        if body == blobs[sid] or self._same(body, blobs[sid]):
                            result.unchanged += 1
                            del rows[sid]
                        else:
                            stale.append(row_id)
                self._delete_rows(stale)
                stored = self._insert(sorted(rows.values(), key=lambda row: row.key), blobs)
                result.stored += stored
                noted: dict[str, int] = {}
                if prepared.terms is not None:  # indexed as written: refresh merges them in time
                    noted = self._note_terms(prepared.terms)
                    self._set_meta("unmerged_text", int(self._meta("unmerged_text") or 0) + stored)
            self._remember_terms(noted)
        except BaseException:
            self.codec.forget()  # a dictionary stored by this transaction is gone with it
            raise
        return result

    def _same(self, body: bytes, blob: bytes) -> bool:
        """Whether a stored blob (perhaps written by an older version, or with other
        compression) holds the same session as the new blob `blob`."""
        try:
            return self.codec.decode(body) == self.codec.decode(blob)
        except Unreadable:
            return False

    def _insert(self, rows: list[Row], blobs: dict[str, bytes]) -> int:
        """Insert rows given in recorded order, with ids in recorded order (inside a transaction)."""
        if not rows:
            return 0
        orphans = {r[0] for r in self.db.execute("SELECT id FROM text_orphans")}
        last = self.db.execute(NEWEST_ROW).fetchone()
        top = last[0] if last else None  # the highest id in use, and its recorded_at
        top_at = last[1] if last else None
        aligned = self._aligned()
        appended: list[tuple[int, Row]] = []
        for row in rows:
            if aligned and last is not None and row.key < (last[1], last[2]):
                new = self._slot(row.key, orphans)  # recorded before the newest: between its neighbours
                if new is not None:
                    self._insert_rows([(new, row)], blobs)
                    continue
                aligned = False
                self._set_meta("aligned", 0)
            if not aligned:
                new = 1 if top is None else top + 1
            elif top is None or row.key[0] > top_at:
                new = row.key[0] if top is None else max(row.key[0], top + 1)
            else:
                new = top + _TIE_GAP  # recorded in the same nanosecond: room for others to come
            while new in orphans:
                new += 1
            if new > MAX_ROW_ID:
                raise StoreError("no row id is left for a new session; copy the sessions to a new store (koala store copy)")
            appended.append((new, row))
            top, top_at = new, row.key[0]
        self._insert_rows(appended, blobs)
        return len(rows)

    def _slot(self, key: tuple[int, str], orphans: set[int]) -> int | None:
        """A free id between the neighbours of `key` in recorded order: its recorded_at when
        that lies between them, else halfway (room on both sides for more); None when there
        is none."""
        before = self.db.execute(
            "SELECT id FROM sessions WHERE (recorded_at, session_id) < (?, ?) ORDER BY recorded_at DESC, session_id DESC LIMIT 1", key
        ).fetchone()
        after = self.db.execute("SELECT id FROM sessions WHERE (recorded_at, session_id) > (?, ?) ORDER BY recorded_at, session_id LIMIT 1", key).fetchone()
        low = before[0] + 1 if before else _FIRST_ID + 1
        high = after[0] - 1 if after else MAX_ROW_ID
        new = key[0] if low <= key[0] <= high else (low + high) // 2
        while new in orphans and new < high:
            new += 1
        while new in orphans and new > low:
            new -= 1
        return new if low <= new <= high and new not in orphans else None

    def _insert_rows(self, placed: list[tuple[int, Row]], blobs: dict[str, bytes]) -> None:
        if not placed:
            return
        next_call = self.db.execute("SELECT coalesce(max(id), 0) + 1 FROM outbound").fetchone()[0]
        session_rows, call_rows = [], []
        for row_id, row in placed:
            session_rows.append((row_id, *row.columns, blobs[row.columns[0]]))
            for call in row.calls:
                call_rows.append((next_call, row_id, *call))
                next_call += 1
        self.db.executemany(f"INSERT INTO sessions VALUES ({','.join('?' * 16)})", session_rows)
        self.db.executemany("INSERT INTO outbound VALUES (?, ?, ?, ?, ?, ?, ?, ?)", call_rows)
        self.db.executemany("INSERT INTO text_pending (id) VALUES (?)", ((row_id,) for row_id, row in placed if row.text is None))
        texts = [(row_id, *row.text) for row_id, row in placed if row.text is not None]
        if texts:
            self.db.executemany(f"INSERT INTO session_text (rowid, {TEXT_COLUMNS}) VALUES (?, ?, ?, ?, ?)", texts)

    def _delete_rows(self, row_ids: list[int]) -> None:
        """Delete sessions by row id, taking their text out of the index (inside a transaction)."""
        for start in range(0, len(row_ids), _SQL_PARAMS):
            chunk = row_ids[start : start + _SQL_PARAMS]
            marks = ",".join("?" * len(chunk))
            pending = {r[0] for r in self.db.execute(f"SELECT id FROM text_pending WHERE id IN ({marks})", chunk)}
            indexed = [i for i in chunk if i not in pending]  # only these are in the index
            if indexed:
                self._unindex(indexed)
            self.db.execute(f"DELETE FROM text_pending WHERE id IN ({marks})", chunk)
            self.db.execute(f"DELETE FROM outbound WHERE session IN ({marks})", chunk)
            self.db.execute(f"DELETE FROM sessions WHERE id IN ({marks})", chunk)

    def _unindex(self, row_ids: list[int]) -> None:
        # Contentless FTS5 forgets a row only when given the exact text it indexed. A session
        # that cannot be decoded keeps its text there; its id is never given out again.
        marks = ",".join("?" * len(row_ids))
        for row_id, session_id, body in self.db.execute(f"SELECT id, session_id, body FROM sessions WHERE id IN ({marks})", row_ids).fetchall():
            session = self._session(session_id, body)
            if session is None:
                self.db.execute("INSERT OR IGNORE INTO text_orphans (id) VALUES (?)", (row_id,))
                continue
            self.db.execute(
                f"INSERT INTO session_text (session_text, rowid, {TEXT_COLUMNS}) VALUES ('delete', ?, ?, ?, ?, ?)",
                (row_id, *text_row(session)),
            )

    def _session(self, session_id: str, body: bytes) -> Session | None:
        try:
            return self.codec.decode(body)
        except Unreadable as exc:
            self._skips.add(session_id, str(exc))
            return None

    # --- full text ---------------------------------------------------------------------

    def pending_text(self) -> int:
        """Sessions written but not yet in the full-text index."""
        with _sql_errors(self.path):
            if self.schema < 2:
                text = self._text_index()
                return self.db.execute("SELECT count(*) FROM sessions WHERE id > ?", (text.upto,)).fetchone()[0]
            return self.db.execute("SELECT count(*) FROM text_pending").fetchone()[0]

    def refresh(self, progress: Callable[[int], None] | None = None) -> None:
        """Index the text of every session written since the last refresh (read-only: none;
        queries then check the unindexed sessions' text themselves)."""
        if self.readonly:
            return
        indexed = 0
        while True:
            with _sql_errors(self.path, writing=True), transaction(self.db):
                ids = [r[0] for r in self.db.execute("SELECT id FROM text_pending ORDER BY id LIMIT ?", (TEXT_BATCH,))]
                if not ids:
                    break
                texts = []
                for start in range(0, len(ids), _SQL_PARAMS):
                    chunk = ids[start : start + _SQL_PARAMS]
                    marks = ",".join("?" * len(chunk))
                    for row_id, session_id, body in self.db.execute(f"SELECT id, session_id, body FROM sessions WHERE id IN ({marks})", chunk):
                        session = self._session(session_id, body)
                        if session is not None:
                            texts.append((row_id, *text_row(session)))
                    self.db.execute(f"DELETE FROM text_pending WHERE id IN ({marks})", chunk)
                self.db.executemany(
                    f"INSERT INTO session_text (rowid, {TEXT_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                    texts,
                )
                noted = self._note_terms(text_terms([text[1:] for text in texts], self.db))
            self._remember_terms(noted)
            indexed += len(ids)
            if progress:
                progress(len(ids))
        # Sessions put_prepared indexed as it wrote them count as indexed by this refresh.
        indexed += int(self._meta("unmerged_text") or 0)
        if indexed >= MERGE_AFTER and indexed * 2 >= self._indexed_sessions():
            self._merge_text_index()

    def _note_terms(self, columns_of: dict[str, int]) -> dict[str, int]:
        """Note terms in text_terms, each with the columns holding it (text_terms' masks),
        and return those it wrote: the rest this connection has committed there already
        (_known_terms). A batch of the bench's sessions has ~20,000 terms and, past the
        first few batches, ~4,500 new ones (counted once); each upsert costs SQLite a
        b-tree lookup."""
        known = self._known_terms
        fresh = {term: mask for term, mask in columns_of.items() if known.get(term, 0) & mask != mask}
        # A term already there keeps its columns and gains these (an UPDATE only when new).
        self.db.executemany(
            "INSERT INTO text_terms (term, columns) VALUES (?, ?) ON CONFLICT (term) DO UPDATE SET columns = columns | excluded.columns "
            "WHERE columns & excluded.columns != excluded.columns",
            fresh.items(),
        )
        return fresh

    def _remember_terms(self, noted: dict[str, int]) -> None:
        """After the transaction that noted them commits: these terms are in text_terms with
        at least these columns. That stays true while the store is open: text_terms only
        grows (a store made before it gets it when opened for writing, before any write).
        Up to KNOWN_TERMS terms (~100 bytes each); a term known already still gains columns."""
        known = self._known_terms
        for term, mask in noted.items():
            if term in known or len(known) < KNOWN_TERMS:
                known[term] = known.get(term, 0) | mask

    def _indexed_sessions(self) -> int:
        return self.db.execute("SELECT (SELECT count(*) FROM sessions) - (SELECT count(*) FROM text_pending)").fetchone()[0]

    def _merge_text_index(self) -> None:
        """Merge the full-text index into one segment. Each FTS5 segment costs a lookup per
        term of a prefix's OR: `warehou*` at 1M sessions takes ~60 ms over 19 segments and
        ~11 ms over one. Done only after a refresh that indexed at least half of the index,
        so its cost (30 s of a 540 s load of 1M: bench_sqlite_store.py --rebuild) stays in
        proportion to the work just done."""
        with _sql_errors(self.path, writing=True), transaction(self.db):
            self.db.execute("INSERT INTO session_text (session_text) VALUES ('optimize')")
            self._set_meta("unmerged_text", 0)

    def _where(self, query: Query) -> tuple[str, list[Any]]:
        return compile_where(as_tree(query), self._text_for(as_tree(query)))

    def _text_for(self, tree: ir.Node) -> TextIndex:
        """The text index as a query on `tree` sees it: caught up first when writable."""
        if ir.uses_text(tree):
            self.refresh()  # cheap when nothing is pending; a no-op when read-only
        return self._text_index()

    def _plan(self, query: Query, limit: int | None = None) -> _Plan:
        """The SQL that lists a query's matches in recorded order, a page at a time. `limit`:
        how many the caller wants at most (None: all), which picks the plan for the first."""
        tree = as_tree(query)
        text = self._text_for(tree)
        if not self._aligned():
            where, params = compile_where(tree, text)
            keyset = "(s.recorded_at, s.session_id) > (?, ?)"
            return _Plan(
                f"SELECT s.recorded_at, s.session_id, s.body FROM sessions s WHERE {where} AND {keyset} ORDER BY s.recorded_at, s.session_id LIMIT ?",
                params,
                False,
            )
        plan = self._driven(tree, text)
        if plan is None:
            where, params = compile_where(tree, text)
            if self._few_by_index(where, params):
                # Collect them from the index (no ORDER BY inside: SQLite then uses it), then
                # read them in row id order.
                where = f"s.id IN (SELECT s.id FROM sessions s WHERE {where})"
            return _Plan(_page_by_id(where), params, True)
        rare = self._rare_keyword_plan(plan)
        if rare is not None:
            return _Plan("", [], True, found=rare)
        windows = self._first_in_windows(plan, limit) if limit is not None else None
        if windows is not None and windows[1] is None:
            return _Plan("", [], True, found=windows[0])
        # Walk the full-text matches in rowid order; stop when the page is full. (Its MATCH
        # is made after the windows: a prefix's terms are read only when the walk is run.)
        if plan.match is None:  # a prefix no term of its fields starts
            return _Plan("", [], True, found=[] if windows is None else windows[0])
        sql = f"SELECT s.id, s.session_id, s.body FROM {_WALK_TEXT} WHERE t.session_text MATCH ? AND {plan.where} AND t.rowid > ? ORDER BY t.rowid LIMIT ?"
        if windows is not None:
            return _Plan(sql, [plan.match, *plan.params], True, found=windows[0], resume=windows[1])
        return _Plan(sql, [plan.match, *plan.params], True)

    @staticmethod
    def _driven(tree: ir.Node, text: TextIndex) -> Driven | None:
        """The full-text-driven plan (sqlite_query.driven) when the index holds every session."""
        return driven(tree, text) if text.per_session and not text.pending else None

    def _rare_keyword_plan(self, plan: Driven) -> list[tuple[int, Session]] | None:
        """For full text AND a keyword that holds few sessions (_keyword_rare): those of its
        sessions whose text holds the conditions (_checked_sessions). None when the keyword
        is not rare."""
        if not (plan.keyword_first and self._keyword_rare(plan.where, plan.params)):
            return None
        return self._checked_sessions(plan)

    def _checked_sessions(self, plan: Driven) -> list[tuple[int, Session]]:
        """The few sessions a rare keyword holds (_keyword_rare) whose text holds the plan's
        full-text conditions (_holding_text), in row id order. A probe of the whole text index
        per session would name every term of a prefix each time (20-33 ms a probe for the
        761 of warehou* at 1M sessions, 87 ms for the phrases of order-sta*)."""
        rows = self.db.execute(f"SELECT s.id, s.session_id, s.body FROM sessions s WHERE {plan.where} ORDER BY s.id", plan.params).fetchall()
        return self._holding_text(rows, plan.texts)

    def _holding_text(self, rows: list[tuple[int, str, bytes]], texts: tuple[TextCondition, ...]) -> list[tuple[int, Session]]:
        """Those of `rows` (row id, session id, body; in row id order) whose text holds every
        condition of `texts`, with their decoded sessions. Told on ASCII texts by a regex
        (query.ascii_text: ~30 us a session, read and decoded), else by FTS5 on an index of
        those sessions alone (scratch_sessions: the same columns, tokenizer and text_row;
        ~100 us each)."""
        check = ascii_check(ir.And(tuple(texts)))
        held: list[tuple[int, Session]] = []
        entries, read = [], {}
        for row_id, session_id, body in rows:
            session = self._session(session_id, body)
            if session is None:
                continue  # named in skipped, and no condition holds on it
            verdict = check.holds(session) if check is not None else None
            if verdict:
                held.append((row_id, session))
            elif verdict is None:
                entries.append((row_id, *text_row(session)))
                read[row_id] = session  # kept for the listing: not read and decoded again
        if entries:
            held += self._held_in_scratch(entries, read, texts)
            held.sort(key=lambda pair: pair[0])
        return held

    def _held_in_scratch(self, entries: list[tuple[Any, ...]], read: dict[int, Session], texts: tuple[TextCondition, ...]) -> list[tuple[int, Session]]:
        """Those sessions of `entries` (row id and text_row) whose text holds every condition
        of `texts`, told by FTS5 on a scratch index of them."""
        self.db.execute(SCRATCH_SESSIONS)
        # One transaction for the rows (a savepoint, so also inside a write): in autocommit
        # each insert would commit, and FTS5 writes and merges a segment per row (33 ms for
        # the 109 sessions of inbound.status:503 at 1M sessions, 5 ms together).
        self.db.execute("SAVEPOINT scratch")
        try:
            self.db.executemany(f"INSERT INTO temp.scratch_sessions (rowid, {TEXT_COLUMNS}) VALUES (?, ?, ?, ?, ?)", entries)
            match = session_match(texts)  # FTS5's own prefixes: few terms here
            held = self.db.execute("SELECT rowid FROM temp.scratch_sessions WHERE scratch_sessions MATCH ? ORDER BY rowid", (match,))
            return [(row_id, read[row_id]) for (row_id,) in held]
        finally:
            if self.db.in_transaction:  # else SQLite rolled back by itself, on an error
                self.db.execute("INSERT INTO temp.scratch_sessions (scratch_sessions) VALUES ('delete-all')")
                self.db.execute("RELEASE scratch")

    def _window_budget(self, plan: Driven) -> int:
        """How many sessions checking in windows may cost before the OR of the plan's prefix
        terms is cheaper (see _TERMS_PER_SESSION_CHECKED): 0 without a prefix. An estimate: the
        terms are counted on the vocabulary's index, not read."""
        words = 0
        for node in text_leaves(plan.texts):
            if node.prefix:
                prefix = node.tokens[-1]
                in_columns, params = self._in_columns(column_mask(text_columns(node)))
                count = f"SELECT count(*) FROM text_terms WHERE term >= ? AND term < ?{in_columns}"
                words += self.db.execute(count, (prefix, prefix + "\U0010ffff", *params)).fetchone()[0] * len(node.tokens)
        return int(words / _TERMS_PER_SESSION_CHECKED)

    def _first_in_windows(self, plan: Driven, limit: int) -> tuple[list[tuple[int, Session]], int | None] | None:
        """The first `limit` matches of a full-text plan with a costly prefix, found by
        checking the sessions that hold its other conditions a window at a time, in row id
        order (_holding_text). Returns them, and the row id the windows reached when their
        budget ran out short of `limit` (the rest is then listed from there by the OR); None
        when the OR of the terms is cheaper than finding `limit` matches this way
        (_window_budget)."""
        if plan.text_index is None or plan.text_index.prefix_terms is None or limit <= 0:
            return None  # a store made before text_terms: no count of a prefix's terms
        budget = self._window_budget(plan)
        if budget < limit:
            return None
        window = f"SELECT s.id, s.session_id, s.body FROM sessions s WHERE {plan.where} AND s.id > ? ORDER BY s.id LIMIT ?"
        probe = [*plan.params, _FIRST_ID, limit]
        if plan.where != "1" and (_walks_rows(self.db, window, probe) or _sorts(self.db, window, probe)):
            # Only an index that lists the other conditions' sessions in row id order (an
            # equality) finds a window's sessions at once: walking the table for a rare
            # range, or sorting a common one, may cost more than the OR.
            return None
        found: list[tuple[int, Session]] = []
        after, checked, size = _FIRST_ID, 0, max(limit, _WINDOW_MIN)
        while checked < budget:
            ask = min(size, budget - checked)
            rows = self.db.execute(window, [*plan.params, after, ask]).fetchall()
            found += self._holding_text(rows, plan.texts)
            if len(found) >= limit or len(rows) < ask:
                return found[:limit], None  # all the caller wants, or every session checked
            after, checked = rows[-1][0], checked + len(rows)
            # The next window: what the density seen so far says the rest needs, and a margin.
            wanted = (limit - len(found)) * checked // max(len(found), 1)
            size = max(wanted + wanted // 4, _WINDOW_MIN)
        return found, after

    def _keyword_rare(self, where: str, params: list[Any]) -> bool:
        """Whether the sessions `where` holds are few enough to check the text of each
        (_KEYWORD_FIRST_MAX); the count stops there, on the keyword's index."""
        probe = f"SELECT count(*) FROM (SELECT 1 FROM sessions s WHERE {where} LIMIT ?)"
        return self.db.execute(probe, [*params, _KEYWORD_FIRST_MAX + 1]).fetchone()[0] <= _KEYWORD_FIRST_MAX

    def _few_by_index(self, where: str, params: list[Any]) -> bool:
        """Whether a query SQLite would answer by walking every session in row id order (it
        picks that for a range or a prefix, whose size it cannot know) is better answered
        from an index and sorted: when that index holds at most _SORTED matches. The count
        stops there, so asking costs at most that many index entries."""
        # Asked of the page query itself: with `s.id` alone the index covers the query and
        # SQLite picks it, while for the page (which reads the blob) it walks every row.
        if where == "1" or not _walks_rows(self.db, _page_by_id(where), [*params, _FIRST_ID, 100]):
            return False
        probe = f"SELECT count(*) FROM (SELECT 1 FROM sessions s WHERE {where} LIMIT ?)"
        if _walks_rows(self.db, probe, [*params, 1]):
            return False  # no index helps either
        return self.db.execute(probe, [*params, _SORTED + 1]).fetchone()[0] <= _SORTED

    # --- reading -----------------------------------------------------------------------

    def get(self, session_id: str) -> Session | None:
        with _sql_errors(self.path):
            row = self.db.execute("SELECT body FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
        return self._session(session_id, row[0]) if row else None

    def count(self, query: Query = "*", *, at_most: int | None = None) -> int:
        """How many sessions match (see SessionStore.count). Full text AND a rare keyword is
        counted the way _plan lists it (the keyword's few sessions checked, not every text
        match counted first: warehou* AND inbound.status:503 at 1M sessions took 11.8 s).
        With at_most, full text is counted by walking its matches in rowid order until
        at_most + 1 are found: `warehou*` at 1M counts every one of its matches in 7.8 s."""
        bound = "" if at_most is None else " LIMIT ?"
        more = [] if at_most is None else [at_most + 1]
        tree = as_tree(query)
        with _sql_errors(self.path):
            branches = self._or_branches(tree)
        if branches is not None and at_most is not None:
            return sum(1 for _ in self._merged(branches, at_most + 1, 500, decode=False))
        with _sql_errors(self.path):
            text = self._text_for(tree)
            plan = self._driven(tree, text)
            rare = self._rare_keyword_plan(plan) if plan is not None else None
            if rare is not None:
                return len(rare) if at_most is None else min(len(rare), at_most + 1)
            if plan is not None and plan.match is None:
                return 0  # a prefix no term of its fields starts
            if plan is not None and at_most is not None:
                sql = f"SELECT count(*) FROM (SELECT 1 FROM {_WALK_TEXT} WHERE t.session_text MATCH ? AND {plan.where}{bound})"
                return self.db.execute(sql, [plan.match, *plan.params, *more]).fetchone()[0]
            where, params = compile_where(tree, text)
            return self.db.execute(f"SELECT count(*) FROM (SELECT 1 FROM sessions s WHERE {where}{bound})", [*params, *more]).fetchone()[0]

    def scan(self, query: Query = "*", *, limit: int | None = None, page_size: int = 500) -> Iterator[Session]:
        """Stream matches in recorded order, a page at a time (keyset paging: no open cursor).
        A session that cannot be decoded is named in `skipped` and passed over."""
        tree = as_tree(query)
        with _sql_errors(self.path):
            branches = self._or_branches(tree)
        rows = self._rows(tree, limit, page_size) if branches is None else self._merged(branches, limit, page_size)
        for _, session in rows:
            yield session  # type: ignore[misc]

    def _or_branches(self, tree: ir.Node) -> tuple[ir.Node, ...] | None:
        """The branches of a query that is an OR of full text and other conditions (`order
        inbound.status:503`, `refund coup* AND inbound.status:404`), listed by merging each
        branch's own plan in row id order; None for any other query. As one SQL condition,
        each text branch would collect every session holding it first (1.9 s and 7.8 s for
        those two at 1M sessions). An AND holding such an OR is listed as the OR of its
        branches, each with the AND's other conditions (_distributed)."""
        if isinstance(tree, ir.And):
            tree = _distributed(tree)
        if _mixed_or(tree) and self._aligned():
            return tree.items
        return None

    def _merged(self, branches: tuple[ir.Node, ...], limit: int | None, page_size: int, *, decode: bool = True) -> Iterator[tuple[Any, Session | None]]:
        """The rows of every branch (_rows), merged in row id order, each session once."""
        merged = heapq.merge(*(self._rows(branch, limit, page_size, decode=decode) for branch in branches), key=lambda row: row[0])
        last = None
        listed = 0
        for row in merged:
            if row[0] != last:
                last = row[0]
                yield row
                listed += 1
                if listed == limit:
                    return

    def _rows(self, tree: ir.Node, limit: int | None, page_size: int, *, decode: bool = True) -> Iterator[tuple[Any, Session | None]]:
        """The query's matches as (key, session): the key is the row id, or (recorded_at,
        session id) where row ids do not follow recorded order. Without `decode`, sessions
        listed by SQL are not decoded (None), only counted."""
        with _sql_errors(self.path):
            plan = self._plan(tree, limit)
        after: tuple[Any, ...] = (_FIRST_ID,) if plan.by_id else (_FIRST_ID, "")
        remaining = limit
        if plan.found is not None:
            first = plan.found[:limit]
            yield from first
            if plan.resume is None:
                return
            after = (plan.resume,)
            remaining = None if limit is None else limit - len(first)
        while remaining is None or remaining > 0:
            size = page_size if remaining is None else min(page_size, remaining)
            with _sql_errors(self.path):
                rows = self.db.execute(plan.sql, [*plan.params, *after, size]).fetchall()
            for key, session_id, body in rows:
                session = self._session(session_id, body) if decode else None
                if session is not None or not decode:
                    yield (key if plan.by_id else (key, session_id)), session
                    if remaining is not None:
                        remaining -= 1
            if len(rows) < size:
                return
            after = (rows[-1][0],) if plan.by_id else (rows[-1][0], rows[-1][1])

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
