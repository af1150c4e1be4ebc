"""A bulk load (SqliteStore.bulk_load, used by ingest): the keyword indexes are dropped while a
big input is written and built again at its end, however it ends, and never under a load
that another process is running. Real SQLite files and real processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from factories import make_session, varied_sessions
from koala_store.formats import ndjson
from koala_store.ingest import ingest
from koala_store.query.evaluate import matches
from koala_store.query.parse import parse as parse_query
from koala_store.store.sqlite import BULK_MIN_BYTES, BULK_RATIO, SqliteStore
from koala_store.store.sqlite_schema import KEYWORD_INDEX_SQL, missing_keyword_indexes
import koala_store.store.sqlite as sqlite_store

ROOT = Path(__file__).resolve().parent.parent
EVERY_INDEX = sorted(KEYWORD_INDEX_SQL)
QUERIES = [
    "inbound.method:PATCH",
    "inbound.path:/v1/rare",
    "trace_id:4bf92f3577b34da6a3ce929d0e0e4736",
    "inbound.status:503",
    "inbound.latency_ms:>=1000",
    'outbound.peer:"10.0.0.9:8080"',
    "outbound.protocol:mysql",
    "outbound.count:2",
    "order AND inbound.status:404",
]


def _sessions() -> list:
    rare = make_session(9000, method="PATCH", path="/v1/rare", query="uid=7", status=503, response_body=b'{"w":"aardvark"}')
    rare.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    return [*varied_sessions(400), rare]


def _expected(sessions: list, query: str) -> list[str]:
    tree = parse_query(query)
    return sorted(s.session_id for s in sessions if matches(tree, s))


def _found(store: SqliteStore, query: str) -> list[str]:
    return sorted(s.session_id for s in store.scan(query))


def _missing(path: Path) -> list[str]:
    reader = SqliteStore(path, readonly=True)
    try:
        return sorted(missing_keyword_indexes(reader.db))
    finally:
        reader.close()


def _uses_an_index(store: SqliteStore, query: str) -> bool:
    plan = store._plan(query)
    keyset = [-(2**63)] if plan.by_id else [-(2**63), ""]
    return any("INDEX" in row[-1] for row in store.db.execute(f"EXPLAIN QUERY PLAN {plan.sql}", [*plan.params, *keyset, 100]))


def test_a_bulk_load_drops_the_keyword_indexes_and_builds_them_again(tmp_path: Path) -> None:
    sessions = _sessions()
    store = SqliteStore(tmp_path / "k.db")
    with store.bulk_load(1 << 40):
        assert sorted(missing_keyword_indexes(store.db)) == EVERY_INDEX
        store.put_many(sessions)
        store.refresh()
        for query in QUERIES:  # answered by scanning meanwhile
            assert _found(store, query) == _expected(sessions, query), query
    assert missing_keyword_indexes(store.db) == []
    for query in QUERIES:
        assert _found(store, query) == _expected(sessions, query), query
    assert _uses_an_index(store, "inbound.path:/v1/rare")
    # The statistics were taken again: they name the indexes built at the end.
    analyzed = {row[0] for row in store.db.execute("SELECT idx FROM sqlite_stat1 WHERE idx IS NOT NULL")}
    assert set(EVERY_INDEX) <= analyzed
    store.close()


def test_only_an_input_several_times_the_store_s_size_drops_them(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "k.db")
    with store.bulk_load(BULK_MIN_BYTES - 1):  # a new store, a small input
        assert missing_keyword_indexes(store.db) == []
    with store.bulk_load(BULK_MIN_BYTES):
        assert sorted(missing_keyword_indexes(store.db)) == EVERY_INDEX
    store.put_many(_sessions())
    size = store.db.execute("PRAGMA page_count").fetchone()[0] * store.db.execute("PRAGMA page_size").fetchone()[0]
    big_input = max(BULK_MIN_BYTES, BULK_RATIO * size)
    with store.bulk_load(big_input - 1):
        assert missing_keyword_indexes(store.db) == []
    with store.bulk_load(big_input):
        assert sorted(missing_keyword_indexes(store.db)) == EVERY_INDEX
    assert missing_keyword_indexes(store.db) == []
    store.close()


def test_a_load_that_fails_still_builds_them(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "k.db")
    with pytest.raises(RuntimeError, match="the input broke"):
        with store.bulk_load(1 << 40):
            store.put_many(_sessions()[:50])
            raise RuntimeError("the input broke")
    assert missing_keyword_indexes(store.db) == []
    assert len(list(store.scan("*"))) == 50
    store.close()


def _loader(path: Path, then: str) -> subprocess.Popen:
    """A process that starts a bulk load into `path`, writes, says so, then runs `then`."""
    code = textwrap.dedent(
        f"""
        import os, sys
        sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "tests")!r}]
        from factories import varied_sessions
        from koala_store.store.sqlite import SqliteStore
        store = SqliteStore({str(path)!r})
        with store.bulk_load(1 << 40):
            store.put_many(varied_sessions(100))
            print("loading", flush=True)
            {then}
        store.close()
        """
    )
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_a_killed_load_s_indexes_are_built_when_the_store_is_next_opened_for_writing(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    loader = _loader(path, "os._exit(9)")
    assert loader.stdout.readline().strip() == "loading"
    assert loader.wait(timeout=60) == 9
    assert _missing(path) == EVERY_INDEX  # reading does not write: they are still out
    store = SqliteStore(path)
    assert missing_keyword_indexes(store.db) == []
    assert len(list(store.scan("thread_id:1003"))) == sum(1 for i in range(100) if i % 7 == 3)
    store.close()


def test_opening_the_store_while_another_process_loads_leaves_its_indexes_out(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    loader = _loader(path, "sys.stdin.readline()")
    try:
        assert loader.stdout.readline().strip() == "loading"
        store = SqliteStore(path)  # opened for writing in the middle of the other's load
        assert sorted(missing_keyword_indexes(store.db)) == EVERY_INDEX
        store.close()
        loader.stdin.write("go on\n")
        loader.stdin.flush()
        assert loader.wait(timeout=60) == 0
    finally:
        loader.kill()
    assert _missing(path) == []


def test_ingest_of_a_big_input_loads_in_bulk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sessions = _sessions()
    source = tmp_path / "in.ndjson"
    source.write_bytes(b"".join(ndjson.dumps(s) for s in sessions))
    monkeypatch.setattr(sqlite_store, "BULK_MIN_BYTES", 1)  # this test's file counts as big
    store = SqliteStore(tmp_path / "k.db")
    missing_while_writing: list[list[str]] = []
    told: list[int] = []
    built: list[list[str]] = []  # what was still missing after each index was built

    def building(indexes: int) -> Callable[[], None]:
        told.append(indexes)
        return lambda: built.append(missing_keyword_indexes(store.db))

    report = ingest(
        [str(source)],
        store,
        workers=0,
        progress=lambda n: missing_while_writing.append(missing_keyword_indexes(store.db)),
        building_indexes=building,
    )
    assert report.stored == len(sessions) and not report.rejected
    assert missing_while_writing and all(sorted(m) == EVERY_INDEX for m in missing_while_writing)
    assert told == [len(EVERY_INDEX)]
    assert [len(m) for m in built] == list(range(len(EVERY_INDEX) - 1, -1, -1))
    assert missing_keyword_indexes(store.db) == []
    store.refresh()
    for query in QUERIES:
        assert _found(store, query) == _expected(sessions, query), query
    store.close()


def test_a_bulk_load_leaves_sqlite_s_own_locks_on_the_database_file(tmp_path: Path) -> None:
    """SQLite holds a shared fcntl lock on a WAL database's file while a connection is open;
    closing any other descriptor of that file in the process would drop it (fcntl locks are
    the process's), and another process could then take the file for itself."""
    path = tmp_path / "k.db"
    store = SqliteStore(path)
    with store.bulk_load(1 << 40):
        store.put_many(_sessions()[:20])
    SqliteStore(path).close()  # another connection in this process opens and closes
    assert missing_keyword_indexes(store.db) == []
    probe = textwrap.dedent(
        f"""
        import fcntl
        with open({str(path)!r}, "r+b") as f:
            try:
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 510, 0x40000002)  # SQLite's shared bytes
                print("free")
            except OSError:
                print("held")
        """
    )
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "held"
    store.close()


def test_indexes_a_load_could_not_build_are_named_and_built_by_the_next_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another connection holds the write lock when the load ends: every session is stored,
    the report says why the indexes are not built, and the next open for writing builds them."""
    sessions = _sessions()
    source = tmp_path / "in.ndjson"
    source.write_bytes(b"".join(ndjson.dumps(s) for s in sessions))
    monkeypatch.setattr(sqlite_store, "BULK_MIN_BYTES", 1)
    path = tmp_path / "k.db"
    store = SqliteStore(path)
    store.db.execute("PRAGMA busy_timeout = 50")
    other = sqlite3.connect(path, isolation_level=None)

    def hold_the_lock(_: int) -> None:
        if not other.in_transaction:
            other.execute("BEGIN IMMEDIATE")  # after the only batch: held when the load ends

    report = ingest([str(source)], store, workers=0, progress=hold_the_lock)
    assert report.stored == len(sessions) and not report.rejected and report.aborted is None
    assert (
        report.unindexed is not None
        and "keyword indexes were not built" in report.unindexed
        and "opening the store for writing builds them" in report.unindexed
    )
    other.execute("ROLLBACK")
    other.close()
    assert sorted(missing_keyword_indexes(store.db)) == EVERY_INDEX
    store.close()
    reopened = SqliteStore(path)
    assert missing_keyword_indexes(reopened.db) == []
    assert len(list(reopened.scan("*"))) == len(sessions)
    reopened.close()
