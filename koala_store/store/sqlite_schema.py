"""The SQLite store's tables, and the migration of a schema 1 store to schema 2.

Schema 2 (issue 12): an index on every keyword column the query language offers, per-call
indexes that carry the session (so `outbound.peer:X` is answered from the index alone), one
full-text row per session in `session_text` (rowid = the session's row id), `text_pending`
for sessions written but not indexed yet, and row ids that follow recorded order, so that
the full-text index walked in rowid order yields sessions in recorded order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from itertools import islice

from .sqlite_blob import SCHEMA as BLOB_SCHEMA

SCHEMA_VERSION = 2
MAX_ROW_ID = 2**63 - 1

SESSIONS = """
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,  -- in recorded order (see SqliteStore._assign_ids)
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
)"""
TABLES = (
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
    + SESSIONS
    + """;
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
CREATE TABLE IF NOT EXISTS text_pending (id INTEGER PRIMARY KEY);
-- Row ids whose indexed text could not be taken out (the session's blob was damaged): never
-- given to another session, which would inherit that text.
CREATE TABLE IF NOT EXISTS text_orphans (id INTEGER PRIMARY KEY);
"""
    + BLOB_SCHEMA
)

# Secondary indexes hold the row id, and row ids follow recorded order: an equality on any of
# these walks its matches already in recorded order.
# The writer's own: where a session goes in recorded order (SqliteStore._slot), and the calls
# of a session it replaces. Both grow at their end as sessions come in recorded order.
WRITER_INDEXES = """
CREATE INDEX IF NOT EXISTS sessions_by_time ON sessions (recorded_at, session_id);
CREATE INDEX IF NOT EXISTS outbound_by_session ON outbound (session);
"""
# Only queries use these. A bulk load drops them and builds them again at its end
# (SqliteStore.bulk_load): each write puts a session's keys on pages scattered over them.
KEYWORD_INDEXES = """
CREATE INDEX IF NOT EXISTS sessions_by_trace ON sessions (trace_id) WHERE trace_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS sessions_by_thread ON sessions (thread_id);
CREATE INDEX IF NOT EXISTS sessions_by_method ON sessions (method);
CREATE INDEX IF NOT EXISTS sessions_by_path ON sessions (path);
CREATE INDEX IF NOT EXISTS sessions_by_query ON sessions (query) WHERE query IS NOT NULL;
CREATE INDEX IF NOT EXISTS sessions_by_host ON sessions (host);
CREATE INDEX IF NOT EXISTS sessions_by_status ON sessions (status);
CREATE INDEX IF NOT EXISTS sessions_by_content_type ON sessions (content_type);
CREATE INDEX IF NOT EXISTS sessions_by_latency ON sessions (latency_ms);
CREATE INDEX IF NOT EXISTS sessions_by_outbound_count ON sessions (outbound_count);
CREATE INDEX IF NOT EXISTS outbound_by_peer ON outbound (peer, session);
CREATE INDEX IF NOT EXISTS outbound_by_protocol ON outbound (protocol, session);
CREATE INDEX IF NOT EXISTS outbound_by_method ON outbound (method, session);
CREATE INDEX IF NOT EXISTS outbound_by_path ON outbound (path, session);
"""
INDEXES = WRITER_INDEXES + KEYWORD_INDEXES
KEYWORD_INDEX_SQL = {statement.split()[5]: statement.strip() for statement in KEYWORD_INDEXES.split(";") if statement.strip()}

# Contentless (the text is in the blob already), no column sizes (nothing ranks by them), and
# detail=full: phrases need positions.
TOKENIZER = "tokenize='unicode61 remove_diacritics 0'"
# The text index's columns, in text_row's order (SqliteStore's inserts and the scratch index).
TEXT_COLUMNS = "inbound_request, inbound_response, outbound_request, outbound_response"
TEXT_TABLE = f"""
CREATE VIRTUAL TABLE IF NOT EXISTS session_text USING fts5(
    {TEXT_COLUMNS},
    content='', columnsize=0, {TOKENIZER});
"""
# FTS5's settings, kept in the index's own session_text_config table. SqliteStore gives them
# to every store it opens for writing, new or older (missing_text_settings):
# - automerge 8 rather than 4 merges segments half as often while indexing (a third faster
#   here) for a few more segments per term lookup;
# - hashsize: FTS5 writes its pending terms out as a new segment whenever their encoded size
#   passes this, 1 MB by default, which a batch of 5,000 ~2 KB sessions (~10 MB of text)
#   passed several times: small segments a transaction for automerge to merge again. 32 MB
#   holds a batch's terms, so a transaction writes one (FTS5 alone, 100k sessions in the
#   store's batches: 9,713 -> 15,946/s, bench_sqlite_store.py). It also bounds, about, the
#   memory a writer's pending terms take.
TEXT_SETTINGS = {"automerge": 8, "hashsize": 32 << 20}
# Every term the full-text index holds (a superset: deleted sessions' terms stay), kept by each
# refresh, so that a prefix query can name its terms: FTS5 answers `warehou*` by merging the
# lists of every such term over every session (1.2 s at 1M sessions), but an OR of the same
# terms walks them together in rowid order and stops after the page it needs. `columns` says
# which of session_text's columns hold the term (a bit each, in TEXT_COLUMNS order): a prefix
# in one field names only the terms of that field. Naming terms the field lacks made FTS5
# read their every entry to the end (outbound.request:sta* at 1M sessions: 767 terms, 4.7 s).
TERMS_TABLE = "CREATE TABLE IF NOT EXISTS text_terms (term TEXT PRIMARY KEY, columns INTEGER NOT NULL) WITHOUT ROWID"
COLUMN_NAMES = [name.strip() for name in TEXT_COLUMNS.split(",")]
ALL_COLUMNS = (1 << len(COLUMN_NAMES)) - 1


def column_mask(columns: list[str]) -> int:
    """The bits of these session_text columns in text_terms.columns."""
    return sum(1 << COLUMN_NAMES.index(column) for column in set(columns))


# The vocabulary of FTS5's own index, by column: text_terms made once in a store made before
# it, or before its columns.
_COLUMN_BIT = " ".join(f"WHEN '{name}' THEN {1 << i}" for i, name in enumerate(COLUMN_NAMES))
INDEXED_TERMS = f"""
DROP TABLE IF EXISTS text_terms;
{TERMS_TABLE};
CREATE VIRTUAL TABLE temp.indexed_terms USING fts5vocab(main, 'session_text', 'col');
INSERT INTO text_terms (term, columns) SELECT term, sum(bit) FROM (SELECT term, CASE col {_COLUMN_BIT} END AS bit FROM temp.indexed_terms) GROUP BY term;
DROP TABLE temp.indexed_terms
"""
# A scratch index with the same tokenizer, and its vocabulary: the terms FTS5 makes of text
# with characters other than ASCII (see sqlite_prepare.fts5_terms).
SCRATCH_TEXT = f"""
CREATE VIRTUAL TABLE IF NOT EXISTS temp.scratch_text USING fts5(x, content='', columnsize=0, {TOKENIZER});
CREATE VIRTUAL TABLE IF NOT EXISTS temp.scratch_terms USING fts5vocab(temp, 'scratch_text', 'row')
"""
# A scratch index shaped as session_text: a few sessions indexed apart, so that a full-text
# condition is checked on them by FTS5 itself (see SqliteStore._held_in_scratch).
SCRATCH_SESSIONS = f"""
CREATE VIRTUAL TABLE IF NOT EXISTS temp.scratch_sessions USING fts5(
    {TEXT_COLUMNS},
    content='', columnsize=0, {TOKENIZER})
"""


def create(db: sqlite3.Connection) -> None:
    """Every table and index of schema 2 (inside the caller's transaction)."""
    for script in (TABLES, INDEXES, TEXT_TABLE, TERMS_TABLE):
        for statement in script.split(";"):
            if statement.strip():
                db.execute(statement)


def missing_keyword_indexes(db: sqlite3.Connection) -> list[str]:
    """The KEYWORD_INDEXES the store lacks: a bulk load's, dropped until it ends."""
    held = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    return [name for name in KEYWORD_INDEX_SQL if name not in held]


def drop_keyword_indexes(db: sqlite3.Connection) -> None:
    """Inside the caller's transaction."""
    for name in KEYWORD_INDEX_SQL:
        db.execute(f"DROP INDEX IF EXISTS {name}")


def create_keyword_indexes(db: sqlite3.Connection, names: list[str], built: Callable[[], None] | None = None) -> None:
    """Build these KEYWORD_INDEXES (inside the caller's transaction), calling `built` after
    each: SQLite sorts the keys once, where a write per session would have touched a page of
    each."""
    for name in names:
        db.execute(KEYWORD_INDEX_SQL[name])
        if built:
            built()


def missing_text_settings(db: sqlite3.Connection) -> dict[str, int]:
    """The TEXT_SETTINGS the full-text index does not have yet (a store made before one)."""
    marks = ",".join("?" * len(TEXT_SETTINGS))
    held = dict(db.execute(f"SELECT k, v FROM session_text_config WHERE k IN ({marks})", list(TEXT_SETTINGS)))
    return {name: value for name, value in TEXT_SETTINGS.items() if held.get(name) != value}


def apply_text_settings(db: sqlite3.Connection, settings: dict[str, int]) -> None:
    """Give the full-text index these settings (inside the caller's transaction)."""
    for name, value in settings.items():
        db.execute("INSERT INTO session_text (session_text, rank) VALUES (?, ?)", (name, value))


def add_terms_table(db: sqlite3.Connection) -> None:
    """text_terms in a schema 2 store made before it, or before its `columns`, filled from the
    index (inside the caller's transaction; 17.6 s at 1M sessions on a busy machine)."""
    for statement in INDEXED_TERMS.split(";"):
        if statement.strip():
            db.execute(statement)


def terms_by_column(db: sqlite3.Connection) -> bool:
    """Whether the store's text_terms says which columns hold each term."""
    return any(row[1] == "columns" for row in db.execute("PRAGMA table_info(text_terms)"))


def recorded_order_ids(keys: Iterator[tuple[int, int]], after: int | None = None) -> Iterator[tuple[int, int]]:
    """(old row id, new row id) for rows given in recorded order as (row id, recorded_at):
    each new id is its recorded_at in nanoseconds, or one above the previous id when that is
    taken, so ids ascend with recorded order and leave gaps for sessions recorded between."""
    previous = after
    for old, recorded_at in keys:
        new = recorded_at if previous is None else max(recorded_at, previous + 1)
        if new > MAX_ROW_ID:
            raise OverflowError("no row id left in recorded order")
        yield old, new
        previous = new


def migrate_from_1(db: sqlite3.Connection) -> None:
    """Schema 1 -> 2 (inside the caller's transaction): renumber sessions in recorded order,
    replace the per-call full-text tables by session_text (every session pending, indexed by
    the next refresh), add the indexes. Blobs stay as they are (LZ4 is still read)."""
    db.execute("CREATE TEMP TABLE renumbered (old INTEGER PRIMARY KEY, new INTEGER NOT NULL)")
    keys = db.execute("SELECT id, recorded_at FROM sessions ORDER BY recorded_at, session_id")
    mapping = recorded_order_ids(iter(keys.fetchone, None))
    while chunk := list(islice(mapping, 10_000)):
        db.executemany("INSERT INTO temp.renumbered (old, new) VALUES (?, ?)", chunk)
    columns = "session_id, recorded_at, thread_id, trace_id, method, path, query, host, status, content_type, latency_ms, request_size, response_size, outbound_count, body"
    db.execute("ALTER TABLE sessions RENAME TO sessions_v1")
    db.execute("DROP INDEX IF EXISTS sessions_by_time")
    db.execute(SESSIONS)
    db.execute(f"INSERT INTO sessions (id, {columns}) SELECT r.new, {columns} FROM sessions_v1 v JOIN temp.renumbered r ON r.old = v.id ORDER BY r.new")
    db.execute("UPDATE outbound SET session = (SELECT r.new FROM temp.renumbered r WHERE r.old = outbound.session)")
    db.execute("DROP TABLE sessions_v1")
    db.execute("DROP TABLE temp.renumbered")
    for table in ("inbound_text", "outbound_text"):
        db.execute(f"DROP TABLE IF EXISTS {table}")
    db.execute("DELETE FROM meta WHERE key = 'text_indexed_upto'")
    create(db)
    db.execute("INSERT INTO text_pending (id) SELECT id FROM sessions")
