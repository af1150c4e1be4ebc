"""SQLite full text: every stored session is found by a phrase query, whatever was deleted or
replaced before it (issue 11 item 1), and the index never receives deletes for text it never held."""

from __future__ import annotations

from pathlib import Path

from factories import make_session, varied_sessions
from koala_store.store.sqlite import SqliteStore
from koala_store.store.sqlite_prepare import text_row
from koala_store.store.sqlite_schema import TEXT_SETTINGS


def integrity_ok(store: SqliteStore) -> None:
    store.db.execute("INSERT INTO session_text (session_text, rank) VALUES ('integrity-check', 0)")


def test_a_changed_copy_of_the_newest_session_is_found(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "k.db")
    sessions = varied_sessions(10)
    store.put_many(sessions)
    store.refresh()
    newest = sessions[-1]
    newest.return_inbound.response = b"HTTP/1.1 200 OK\r\n\r\nzebra crossing ahead"
    assert store.put_many([newest]).stored == 1
    store.refresh()
    assert store.count('"zebra crossing"') == 1
    integrity_ok(store)
    store.close()


def test_sessions_after_deleting_the_newest_are_found(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "k.db")
    sessions = varied_sessions(10)
    store.put_many(sessions)
    store.refresh()
    assert store.delete("session_id:" + sessions[-1].session_id.replace("-", "\\-")) == 1
    later = [make_session(100 + i, response_body=b'{"word":"quokka%d"}' % i) for i in range(3)]
    store.put_many(later)
    store.refresh()
    for i in range(3):
        assert store.count(f"quokka{i}") == 1
    # Deleting them takes their text out again, and the index stays consistent.
    assert store.delete("quokka*") == 3
    store.refresh()
    assert store.count("quokka*") == 0
    integrity_ok(store)
    store.close()


def test_unindexed_sessions_are_found_without_a_refresh(tmp_path: Path) -> None:
    """Written but not yet indexed (e.g. an ingest killed before it indexed): a read-only
    store cannot index, and still answers completely."""
    writer = SqliteStore(tmp_path / "k.db")
    writer.put_many(varied_sessions(5))
    writer.refresh()
    writer.put_many([make_session(50, response_body=b'{"word":"wombat"}')])
    reader = SqliteStore(tmp_path / "k.db", readonly=True)
    assert reader.pending_text() == 1
    assert reader.count("wombat") == 1
    assert [s.session_id for s in reader.scan('"wombat" OR inbound.status:404')] == [s.session_id for s in writer.scan("wombat OR inbound.status:404")]
    reader.close()
    writer.close()


def _text_statistics(store: SqliteStore) -> list[tuple[str, str]]:
    return store.db.execute("SELECT tbl, idx FROM sqlite_stat1 WHERE tbl LIKE 'session_text%'").fetchall()


def test_statistics_never_cover_the_full_text_tables(tmp_path: Path) -> None:
    """Statistics of FTS5's shadow tables, taken while they were empty, made SQLite plan
    FTS5's own statements badly: indexing 150k sessions took 72 s instead of 11 s."""
    store = SqliteStore(tmp_path / "k.db")
    store.put_many(varied_sessions(1200))  # past the first ANALYZE
    assert store.db.execute("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'sessions'").fetchone()[0] > 0
    assert _text_statistics(store) == []
    # A store analysed by an older koala-store has them; opening it for writing drops them.
    store.db.execute("ANALYZE session_text_data")
    assert _text_statistics(store) != []
    store.close()
    reopened = SqliteStore(tmp_path / "k.db")
    assert _text_statistics(reopened) == []
    reopened.refresh()
    assert reopened.count("*") == 1200
    reopened.close()


def _segments(store: SqliteStore) -> int:
    return store.db.execute("SELECT count(DISTINCT segid) FROM session_text_idx").fetchone()[0]


def _settings(store: SqliteStore) -> dict[str, int]:
    return dict(store.db.execute("SELECT k, v FROM session_text_config WHERE k IN ('automerge', 'hashsize')"))


def test_a_batch_of_text_is_written_as_one_segment(tmp_path: Path) -> None:
    """FTS5 writes its pending terms out whenever they pass its hashsize (1 MB by default):
    a batch with megabytes of text made a segment per megabyte for automerge to merge again.
    The store's hashsize holds a batch's terms, so a transaction writes one segment."""
    store = SqliteStore(tmp_path / "k.db")
    sessions = varied_sessions(800, payload=6000)  # ~5 MB of text, distinct words in each
    text = sum(len(part) for s in sessions for part in text_row(s))
    assert text > 4 << 20
    store.put_prepared(store.preparer()(sessions))
    assert _segments(store) == 1
    assert store.count("*") == 800
    integrity_ok(store)
    store.close()


def test_a_store_made_before_the_text_settings_gets_them_when_opened_for_writing(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "k.db")
    assert _settings(store) == TEXT_SETTINGS
    store.put_many(varied_sessions(5))
    store.refresh()
    store.db.execute("DELETE FROM session_text_config WHERE k = 'hashsize'")  # as an older store has it
    store.close()
    reader = SqliteStore(tmp_path / "k.db", readonly=True)
    assert _settings(reader) == {"automerge": TEXT_SETTINGS["automerge"]}  # reading writes nothing
    assert reader.count("*") == 5
    reader.close()
    reopened = SqliteStore(tmp_path / "k.db")
    assert _settings(reopened) == TEXT_SETTINGS
    assert reopened.count("*") == 5
    integrity_ok(reopened)
    reopened.close()
