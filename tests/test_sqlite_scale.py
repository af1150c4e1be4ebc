"""SQLite schema 2 (issue 12 item 3): row ids in recorded order, indexed plans for every keyword
field, full text read in rowid order for --limit, compact blobs, and schema 1 stores migrated
on a write-open (read as they are when opened read-only).

Plans are checked with EXPLAIN QUERY PLAN on a real file; speed itself is measured by
bench/bench_sqlite_store.py, not here."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import lz4.block
import msgspec
import pytest

from factories import BASE_NS, make_session, varied_sessions
from koala_store.model import Session
from koala_store.query.evaluate import matches
from koala_store.query.parse import parse as parse_query
from koala_store.query.text import searchable_text
from koala_store.store.sqlite import NEWEST_ROW, SqliteStore
from koala_store.summary import summarize

# --- a schema 1 store, written as koala-store wrote it before schema 2 ------------------------

V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY, session_id TEXT NOT NULL UNIQUE, recorded_at INTEGER NOT NULL, thread_id INTEGER,
    trace_id TEXT, method TEXT, path TEXT, query TEXT, host TEXT, status INTEGER, content_type TEXT, latency_ms REAL,
    request_size INTEGER NOT NULL, response_size INTEGER NOT NULL, outbound_count INTEGER NOT NULL, body BLOB NOT NULL);
CREATE INDEX sessions_by_time ON sessions (recorded_at, session_id);
CREATE TABLE outbound (
    id INTEGER PRIMARY KEY, session INTEGER NOT NULL, peer TEXT, protocol TEXT, method TEXT, path TEXT,
    request_size INTEGER NOT NULL, response_size INTEGER NOT NULL);
CREATE INDEX outbound_by_session ON outbound (session);
CREATE VIRTUAL TABLE inbound_text USING fts5(request, response, content='', tokenize='unicode61 remove_diacritics 0');
CREATE VIRTUAL TABLE outbound_text USING fts5(request, response, content='', tokenize='unicode61 remove_diacritics 0');
PRAGMA user_version = 1;
"""


def write_v1_store(path: Path, sessions: list[Session], indexed: int) -> None:
    """Sessions in the order given (row ids 1, 2, ...), LZ4 blobs, the first `indexed` in the
    per-call full-text tables and the watermark after them."""
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    call_id = 0
    for row_id, session in enumerate(sessions, start=1):
        s = summarize(session)
        blob = b"\x01" + lz4.block.compress(msgspec.msgpack.encode(session))
        db.execute(
            "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (row_id, session.session_id, s.recorded_at, session.thread_id, session.trace_id or None, s.method or None, s.path or None,
             s.query or None, s.host or None, s.status, s.content_type or None, s.latency_ms, len(session.call_from_inbound.request),
             len(session.response), len(s.outbound), blob),
        )  # fmt: skip
        if row_id <= indexed:
            db.execute(
                "INSERT INTO inbound_text (rowid, request, response) VALUES (?, ?, ?)",
                (row_id, searchable_text(session.call_from_inbound.request), searchable_text(session.response)),
            )
        for call, facts in zip(session.outbound_calls, s.outbound, strict=True):
            call_id += 1
            db.execute(
                "INSERT INTO outbound VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (call_id, row_id, facts.peer, facts.protocol, facts.method or None, facts.path or None, len(call.request), len(call.response)),
            )
            if row_id <= indexed:
                db.execute(
                    "INSERT INTO outbound_text (rowid, request, response) VALUES (?, ?, ?)",
                    (call_id, searchable_text(call.request), searchable_text(call.response)),
                )
    db.execute("INSERT INTO meta VALUES ('text_version', '2'), ('text_indexed_upto', ?)", (str(indexed),))
    db.commit()
    db.close()


QUERIES = [
    "*",
    "inbound.status:404",
    "inbound.path:/v1/item/*",
    "outbound.protocol:redis AND NOT inbound.method:POST",
    "timeout",
    '"upstream timeout" OR inbound.status:500',
    "wombat timeout inbound.path:/v1/item/*",  # an OR of text and a keyword: branches merged
    "time* AND inbound.status:404 OR wombat",
    "outbound.request:user*",
    "wombat",
]


def oracle(sessions: list[Session], query: str) -> list[str]:
    tree = parse_query(query)
    return [s.session_id for s in sorted(sessions, key=lambda s: (s.recorded_at, s.session_id)) if matches(tree, s)]


def shuffled_sessions(n: int = 60, seed: int = 3) -> list[Session]:
    sessions = varied_sessions(n)
    sessions.append(make_session(500, response_body=b'{"word":"wombat"}'))
    random.Random(seed).shuffle(sessions)
    return sessions


def test_a_schema_1_store_answers_read_only_and_after_its_migration(tmp_path: Path) -> None:
    sessions = shuffled_sessions()
    db = tmp_path / "old.db"
    write_v1_store(db, sessions, indexed=40)  # the last 21 were never indexed
    reader = SqliteStore(db, readonly=True)
    for query in QUERIES:
        assert [s.session_id for s in reader.scan(query, page_size=7)] == oracle(sessions, query), query
        assert reader.count(query) == len(oracle(sessions, query))
    assert reader.codec.committed_dictionary() is None  # no dictionaries table: none to share
    reader.close()
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == 1  # reading changed nothing

    store = SqliteStore(db)  # a write-open migrates
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == 2
    ids = [r[0] for r in store.db.execute("SELECT id FROM sessions ORDER BY recorded_at, session_id")]
    assert ids == sorted(ids) and store._aligned()
    for query in QUERIES:
        assert [s.session_id for s in store.scan(query, page_size=7)] == oracle(sessions, query), query
        assert [s.session_id for s in store.scan(query, limit=5)] == oracle(sessions, query)[:5], query
    assert store.put_many(sessions).unchanged == len(sessions)  # LZ4 blobs still count as the same session
    store.db.execute("INSERT INTO session_text (session_text, rank) VALUES ('integrity-check', 0)")
    store.close()


def test_row_ids_follow_recorded_order_whatever_order_sessions_arrive_in(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "k.db")
    sessions = shuffled_sessions(80)
    at = BASE_NS + 5 * 1_000_000_000
    ties = [make_session(900 + i, at=at, session_id=f"{at}-tie-{i:02d}") for i in (5, 1, 9, 3)]  # same nanosecond
    for start in range(0, len(sessions), 9):  # small batches, each out of order with the last
        store.put_many(sessions[start : start + 9] + ties[start // 9 : start // 9 + 1])
    everything = sessions + ties
    keys = [tuple(r) for r in store.db.execute("SELECT recorded_at, session_id FROM sessions ORDER BY id")]
    assert keys == sorted(keys) and len(keys) == len(everything)
    assert store._aligned()
    for query in QUERIES:
        assert [s.session_id for s in store.scan(query, limit=6)] == oracle(everything, query)[:6], query
    store.close()


def test_when_no_id_is_left_between_two_sessions_order_still_holds(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "k.db")
    at = BASE_NS
    first = [make_session(1, at=at, session_id="a"), make_session(2, at=at + 1, session_id="c", response_body=b'{"w":"numbat"}')]
    store.put_many(first)  # ids at and at + 1: nothing between them
    late = make_session(3, at=at, session_id="b", response_body=b'{"w":"numbat"}')  # recorded between them
    store.put_many([late])
    assert not store._aligned()
    everything = [*first, late]
    for query in ("*", "numbat", "numbat AND inbound.status:200", "numbat OR inbound.status:404"):
        assert [s.session_id for s in store.scan(query, page_size=1)] == oracle(everything, query)
    store.close()


def _plan_details(store: SqliteStore, query: str) -> list[str]:
    plan = store._plan(query)
    keyset = [-(2**63)] if plan.by_id else [-(2**63), ""]
    return [row[-1] for row in store.db.execute(f"EXPLAIN QUERY PLAN {plan.sql}", [*plan.params, *keyset, 100])]


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> SqliteStore:
    """2,500 sessions with a few rare values: enough rows that plans are what they are at scale."""
    sessions = varied_sessions(2500)
    rare = make_session(9000, method="PATCH", path="/v1/rare", query="uid=7", status=503, response_body=b'{"w":"aardvark"}')
    rare.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    store = SqliteStore(tmp_path_factory.mktemp("big") / "k.db")
    store.put_many([*sessions, rare])
    store.refresh()
    yield store
    store.close()


@pytest.mark.parametrize(
    "query",
    [
        'session_id:"1763780400000000000-1000"',
        "trace_id:4bf92f3577b34da6a3ce929d0e0e4736",
        "thread_id:1003",
        "inbound.method:PATCH",
        "inbound.path:/v1/rare",
        "inbound.path:/v1/item/12*",
        'inbound.query:"uid=7"',
        'inbound.host:"10.0.0.5:8000"',
        "inbound.status:503",
        'inbound.content_type:"application/json"',
        "inbound.latency_ms:>=1000",
        "recorded_at:[2025-11-22T03:00:00 TO 2025-11-22T03:01:00]",
        'outbound.peer:"10.0.0.9:8080"',
        "outbound.protocol:mysql",
        "outbound.method:SELECT",
        'outbound.path:"/inventory/42"',
        "outbound.path:user\\:12*",
        "outbound.count:2",
        "inbound.path:/v1/rare AND NOT inbound.status:404",
    ],
)
def test_every_keyword_field_is_answered_from_an_index(big: SqliteStore, query: str) -> None:
    details = _plan_details(big, query)
    assert not any(d.startswith("SCAN s") or "INTEGER PRIMARY KEY (rowid>?)" in d for d in details), details
    assert any("INDEX" in d for d in details), details


@pytest.mark.parametrize("query", ["order", '"errno 0"', "inbound.response:timeout", "aardvark"])
def test_full_text_is_read_from_its_index_in_recorded_order(big: SqliteStore, query: str) -> None:
    details = _plan_details(big, query)
    assert details[0].startswith("SCAN t VIRTUAL TABLE") and "TEMP B-TREE" not in " ".join(details), details
    everything = [s.session_id for s in big.scan(query)]
    assert [s.session_id for s in big.scan(query, limit=100)] == everything[:100]


def test_full_text_with_a_selective_keyword_starts_from_the_keyword(big: SqliteStore) -> None:
    """The keyword's few sessions are read from its index, in row id order, and checked."""
    ran: list[str] = []
    big.db.set_trace_callback(ran.append)
    try:
        plan = big._plan("timeout AND inbound.status:503")
    finally:
        big.db.set_trace_callback(None)
    assert plan.found is not None and [s.session_id for _, s in plan.found] == [s.session_id for s in big.scan("timeout AND inbound.status:503")]
    read = [sql for sql in ran if sql.startswith("SELECT s.id, s.session_id, s.body FROM sessions s WHERE")]
    assert len(read) == 1, ran
    details = [row[-1] for row in big.db.execute(f"EXPLAIN QUERY PLAN {read[0]}")]
    assert "sessions_by_status" in details[0] and "TEMP B-TREE" not in " ".join(details), details


def test_blobs_share_a_dictionary_and_older_blobs_stay_readable(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "k.db")
    few = [make_session(10_000 + i) for i in range(3)]
    store.put_many(few)  # too few to train a dictionary from
    many = varied_sessions(600, seed=8, payload=2048)
    store.put_many(many)
    assert store.db.execute("SELECT count(*) FROM blob_dictionaries").fetchone()[0] == 1
    mean = store.db.execute(
        "SELECT avg(length(body)) FROM sessions WHERE session_id IN (SELECT session_id FROM sessions ORDER BY id DESC LIMIT 100)"
    ).fetchone()[0]
    assert mean < 1000  # 2 KB sessions; LZ4 alone made them ~1.5 KB
    store.close()
    reader = SqliteStore(tmp_path / "k.db", readonly=True)
    for session in [*few, *many[:50]]:
        assert reader.get(session.session_id) == session
    reader.close()


def test_a_damaged_session_s_id_is_never_given_out_again(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "k.db")
    at = BASE_NS
    store.put_many([make_session(1, at=at, session_id="x", response_body=b'{"w":"quagga"}')])
    store.refresh()
    store.db.execute("UPDATE sessions SET body = x'02deadbeef' WHERE session_id = 'x'")
    assert store.delete("session_id:x") == 1  # its text cannot be taken out of the index
    assert store.db.execute("SELECT id FROM text_orphans").fetchall() == [(at,)]
    store.put_many([make_session(2, at=at, session_id="y")])  # would have taken the same id
    assert store.db.execute("SELECT id FROM sessions").fetchall() != [(at,)]
    assert store.count("quagga") == 0
    store.close()


def test_a_frame_naming_a_dictionary_the_store_lacks_is_passed_over_and_named(tmp_path: Path) -> None:
    import zstandard

    sessions = varied_sessions(5)
    write_v1_store(tmp_path / "old.db", sessions, indexed=5)
    trained = zstandard.train_dictionary(2048, [b"GET /v1/user?uid=%d HTTP/1.1" % i * 8 for i in range(300)])
    frame = b"\x02" + zstandard.ZstdCompressor(dict_data=trained).compress(b"x" * 100)
    db = sqlite3.connect(tmp_path / "old.db")
    db.execute("UPDATE sessions SET body = ? WHERE session_id = ?", (frame, sessions[2].session_id))
    db.commit()
    db.close()
    reader = SqliteStore(tmp_path / "old.db", readonly=True)
    assert [s.session_id for s in reader.scan("*")] == [s.session_id for s in sessions if s is not sessions[2]]
    assert [s.document for s in reader.skipped] == [sessions[2].session_id]
    reader.close()


def test_the_newest_row_is_read_without_scanning(big: SqliteStore) -> None:
    """Every batch written asks for the newest row: at 1M sessions a scan of an index plus a
    sort made that 67 ms per batch, half the ingest time."""
    details = [row[-1] for row in big.db.execute(f"EXPLAIN QUERY PLAN {NEWEST_ROW}")]
    assert not any(d.startswith("SCAN") or "TEMP B-TREE" in d for d in details), details
    newest = max(big.db.execute("SELECT id, recorded_at, session_id FROM sessions").fetchall())
    assert big.db.execute(NEWEST_ROW).fetchone() == newest


# Statistics as a 1M-session store had them after ingest (sampled by analysis_limit, so each
# index reports a different row count).
_STATS_AT_1M = [
    ("sessions", "sessions_by_path", "539980 2"),
    ("sessions", "sessions_by_time", "305325 1 1"),
    ("sessions", "sessions_by_host", "611800 535"),
    ("sessions", "sessions_by_status", "561344 1001"),
    ("sessions", "sqlite_autoindex_sessions_1", "617148 1"),
    ("outbound", "outbound_by_path", "1370655 4 1"),
    ("outbound", "outbound_by_session", "698088 2"),
]


def test_a_prefix_is_read_from_its_index_whatever_the_statistics(tmp_path: Path) -> None:
    """With those statistics SQLite walks every row for a page (it needs the blob, so the
    path index does not cover it) although it would use the index for the ids alone: the
    check that chooses between the two must ask about the page's own select list."""
    store = SqliteStore(tmp_path / "k.db")
    sessions = varied_sessions(600)
    store.put_many(sessions)
    store.db.execute("ANALYZE sessions")  # creates sqlite_stat1
    store.db.execute("DELETE FROM sqlite_stat1")
    store.db.executemany("INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (?, ?, ?)", _STATS_AT_1M)
    store.db.execute("ANALYZE sqlite_schema")
    for query in ("inbound.path:/v1/item/12*", "outbound.path:user\\:12*"):
        details = _plan_details(store, query)
        assert any("INDEX" in d for d in details) and not any(d.startswith("SCAN s") for d in details), (query, details)
        assert [s.session_id for s in store.scan(query, page_size=7)] == oracle(sessions, query)
    store.close()


def test_a_dictionary_is_trained_from_at_most_train_samples_spread_over_the_batch() -> None:
    from koala_store.store.sqlite_blob import TRAIN_SAMPLES, training_samples

    for size in (200, TRAIN_SAMPLES, TRAIN_SAMPLES + 1, 5000, 5001):
        batch = [b"%d" % i for i in range(size)]
        picked = training_samples(batch)
        assert len(picked) <= TRAIN_SAMPLES and picked[0] == batch[0]
        assert len(picked) == size if size <= TRAIN_SAMPLES else len(picked) > TRAIN_SAMPLES // 2
        if size > TRAIN_SAMPLES:
            assert int(picked[-1]) > size // 2  # from the whole batch, not its start
    assert training_samples([]) == []
