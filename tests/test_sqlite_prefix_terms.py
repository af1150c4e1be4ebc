"""SQLite full text: prefix queries name their terms from the store's term vocabulary
(text_terms, issue 12 item 3), and find exactly what FTS5's own prefix merge finds."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import koala_store.query.text as text_module
from factories import http_call, make_session
from koala_store.query.text import add_terms, searchable_text
from koala_store.store import sqlite as sqlite_module
from koala_store.store.base import StoreWriteError
from koala_store.store.sqlite import SqliteStore
from koala_store.store.sqlite_prepare import prepare_indexed
from koala_store.store.sqlite_schema import COLUMN_NAMES

# ASCII, letters and digits of other scripts (with and without case, final sigma, dotted I,
# the Kelvin sign), marks, non-ASCII spaces and punctuation, a private-use character, invalid
# UTF-8's replacement, and characters Unicode assigned after 6.1 (FTS5's tables).
ALPHABET = "aZ09 _-.:'\"\\/\t\n{}ÉéßøÆΑΣσςΩЖж中文٣İK\u0301\u00a0—«»、\ue000\ufffd\u08a1\u1ab0\U0001f600"
_COMPILED = text_module._compiled_ascii_terms


def fts5_terms(texts: list[str]) -> set[str]:
    """The terms FTS5 itself makes of `texts`, with the store's tokenizer."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='unicode61 remove_diacritics 0')")
    db.executemany("INSERT INTO t (x) VALUES (?)", [(t,) for t in texts])
    db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'row')")
    return {term for (term,) in db.execute("SELECT term FROM v")}


def both_builds(texts: list[str]) -> tuple[set[str], list[str]]:
    """The terms and wide runs of `texts` from the C build and the Python reference, which must agree."""
    python_terms: set[str] = set()
    python_wide = text_module._ascii_terms(texts, python_terms)
    if _COMPILED is not None:
        compiled_terms: set[str] = set()
        assert _COMPILED(texts, compiled_terms) == python_wide
        assert compiled_terms == python_terms
    return python_terms, python_wide


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.text(alphabet=st.characters(max_codepoint=127, blacklist_categories=("Cs",)), max_size=80), max_size=5))
def test_ascii_terms_are_exactly_fts5s(texts: list[str]) -> None:
    terms, wide = both_builds(texts)
    assert wide == []
    assert terms == fts5_terms(texts)


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.text(alphabet=ALPHABET, max_size=60), max_size=6))
def test_wide_runs_are_whole_pieces_between_ascii_separators(texts: list[str]) -> None:
    terms, wide = both_builds(texts)
    # Each run holds a character other than ASCII, and no ASCII separator (it is one piece).
    assert all(not run.isascii() and all(c.isalnum() for c in run if c.isascii()) for run in wide)
    # FTS5 reading the ASCII terms and the wide runs alone makes every term of the texts.
    assert fts5_terms(texts) == terms | fts5_terms(wide)


def index_columns(store: SqliteStore) -> dict[str, int]:
    """FTS5's own vocabulary of the store's index: each term with the columns holding it."""
    store.db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.index_cols USING fts5vocab(main, 'session_text', 'col')")
    held: dict[str, int] = {}
    for term, column in store.db.execute("SELECT term, col FROM temp.index_cols"):
        held[term] = held.get(term, 0) | 1 << COLUMN_NAMES.index(column)
    return held


def vocabulary(store: SqliteStore) -> dict[str, int]:
    return dict(store.db.execute("SELECT term, columns FROM text_terms"))


texts = st.text(alphabet=ALPHABET, max_size=80).map(str.encode)


@settings(max_examples=60, deadline=None)
@given(sessions=st.lists(st.tuples(texts, texts, st.lists(st.tuples(texts, texts), max_size=2)), min_size=1, max_size=4))
def test_the_stores_vocabulary_is_its_indexs(sessions) -> None:
    """The same terms as FTS5's index, each with the columns that hold it."""
    with tempfile.TemporaryDirectory() as folder:
        store = SqliteStore(Path(folder) / "k.db")
        made = []
        for i, (request, response, calls) in enumerate(sessions):
            outbound = [http_call(j, 1_000 + j, "POST", "/x", 200, reply) for j, (_, reply) in enumerate(calls)]
            for call, (sent, _) in zip(outbound, calls, strict=True):
                call.request = sent
            made.append(make_session(i, body=request, response_body=response, outbound=outbound))
        store.put_many(made)
        store.refresh()
        assert vocabulary(store) == index_columns(store)
        store.close()


def test_both_builds_list_the_same_terms() -> None:
    texts = ["GET /v1/Item/42?Warehouse=W-7 HTTP/1.1", "naïve Café", "x" * 40 + "Y" * 9, "", " \ue000 ", "id_9 ÉTÉ 中文"]
    terms, wide = both_builds(texts)
    assert wide == ["naïve", "Café", "\ue000", "ÉTÉ", "中文"]
    assert {"get", "v1", "item", "42", "warehouse", "w", "7", "http", "1", "id", "9", "x" * 40 + "y" * 9} == terms


def test_the_compiled_build_takes_a_list_and_a_set() -> None:
    if _COMPILED is None:
        pytest.skip("koala_store/query/_terms.c is not built")
    with pytest.raises(TypeError, match="list of str and a set"):
        _COMPILED("text", set())
    with pytest.raises(TypeError, match="texts as str"):
        _COMPILED([b"bytes"], set())


def prefix_store(path: Path) -> SqliteStore:
    store = SqliteStore(path)
    bodies = [b'{"where":"warehouse%d","note":"order status shipped"}' % i for i in range(30)]
    bodies += [b'{"where":"Warehou","note":"order stalled"}', b'{"where":"wareHOUSING","note":"order"}', b'{"where":"war"}']
    bodies += [b'{"where":"Warehouse\xc3\xa9\xc3\xa9","note":"ordre statut"}']
    store.put_many([make_session(i, response_body=body) for i, body in enumerate(bodies)])
    store.refresh()
    return store


def fts5_prefix_count(store: SqliteStore, match: str) -> int:
    return store.db.execute("SELECT count(*) FROM session_text WHERE session_text MATCH ?", (match,)).fetchone()[0]


def test_a_prefix_finds_what_fts5s_own_prefix_finds(tmp_path: Path) -> None:
    store = prefix_store(tmp_path / "k.db")
    assert store._prefix_terms("warehou") == ("warehou", *sorted(f"warehouse{i}" for i in range(30)), "warehouseéé", "warehousing")
    for query, match in [("warehou*", "warehou*"), ("wareh*", "wareh*"), ("order-sta*", '"order sta" *'), ("zzz*", "zzz*"), ("war*", "war*")]:
        assert store.count(query) == fts5_prefix_count(store, match)
    assert store.count("warehou*") == 33
    assert store.count("order-sta*") == 31
    assert store.count("inbound.response:warehouse1*") == 11  # warehouse1, 10-19
    store.close()


def test_the_plan_names_the_terms(tmp_path: Path) -> None:
    store = prefix_store(tmp_path / "k.db")
    plan = store._plan("warehousi*")
    assert '"warehousing"' in plan.params[0] and "*" not in plan.params[0]
    plan = store._plan("order-sta*")
    assert '"order stalled" OR "order status"' in plan.params[0]
    store.close()


def test_a_prefix_of_too_many_terms_is_left_to_fts5(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = prefix_store(tmp_path / "k.db")
    monkeypatch.setattr(sqlite_module, "PREFIX_TERMS", 5)
    assert store._prefix_terms("warehouse") is None
    assert store._prefix_terms("warehousi") == ("warehousing",)
    assert '"warehou" *' in store._plan("warehou*").params[0]
    assert store.count("warehou*") == 33
    store.close()


def test_a_store_made_before_the_vocabulary_gets_it_on_opening(tmp_path: Path) -> None:
    store = prefix_store(tmp_path / "k.db")
    store.db.execute("DROP TABLE text_terms")
    store.close()
    readonly = SqliteStore(tmp_path / "k.db", readonly=True)
    assert readonly._text_index().prefix_terms is None  # read-only: FTS5's own prefix
    assert readonly.count("warehou*") == 33
    readonly.close()
    store = SqliteStore(tmp_path / "k.db")
    assert store._prefix_terms("warehou") is not None and len(store._prefix_terms("warehou")) == 33
    assert store.count("warehou*") == 33
    store.close()


def test_a_store_made_before_the_vocabularys_columns_gets_them_on_opening(tmp_path: Path) -> None:
    store = mixed_store(tmp_path / "k.db")
    expected = vocabulary(store)
    every = store._prefix_terms("warehou")
    in_responses = store.count("inbound.response:warehou*")
    store.db.execute("DROP TABLE text_terms")
    store.db.execute("CREATE TABLE text_terms (term TEXT PRIMARY KEY) WITHOUT ROWID")  # as it was made
    store.db.executemany("INSERT INTO text_terms (term) VALUES (?)", [(t,) for t in expected])
    store.close()
    readonly = SqliteStore(tmp_path / "k.db", readonly=True)  # every term in every column
    assert readonly._prefix_terms("warehou", 4) == every and len(every) > 30
    assert readonly.count("inbound.response:warehou*") == in_responses > 30
    assert readonly.count("outbound.request:warehou*") == 0
    readonly.close()
    store = SqliteStore(tmp_path / "k.db")
    assert vocabulary(store) == expected == index_columns(store)
    assert store._prefix_terms("warehou", 4) == ()  # no outbound request holds one
    store.close()


def test_a_prefix_names_only_the_terms_of_its_fields(tmp_path: Path) -> None:
    store = prefix_store(tmp_path / "k.db")
    with_sessions(store, [make_session(60, path="/v1/warehouse-admin", response_body=b'{"x":1}')])
    assert store._prefix_terms("warehou", 1) == ("warehouse",)  # inbound.request: the path only
    plan = store._plan("inbound.request:warehou*")
    assert '"warehouse"' in plan.params[0] and '"warehouse1"' not in plan.params[0]
    assert [s.session_id for s in store.scan("inbound.request:warehou*")] == [make_session(60).session_id]
    # A prefix no term of its fields starts: nothing, without asking FTS5.
    plan = store._plan("outbound.request:warehou*")
    assert plan.found == [] and plan.sql == ""
    assert store.count("outbound.request:warehou*") == 0 and store.count("outbound.request:warehou*", at_most=5) == 0
    assert store.count("order AND NOT outbound.request:warehou*") == store.count("order")
    assert store.count("stalled OR outbound.request:warehou*") == store.count("stalled") == 1
    store.close()


def test_a_term_seen_in_another_column_gains_it(tmp_path: Path) -> None:
    store = prefix_store(tmp_path / "k.db")
    assert vocabulary(store)["stalled"] == 2  # inbound.response
    with_sessions(store, [make_session(61, path="/v1/stalled", response_body=b"{}")])
    assert vocabulary(store)["stalled"] == 3 and vocabulary(store) == index_columns(store)
    store.close()


def test_terms_of_a_batch_that_was_rolled_back_are_noted_by_the_next(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """put_prepared writes only the terms its connection has not committed to text_terms
    yet: terms of a batch that failed after noting them are noted again."""
    store = SqliteStore(tmp_path / "k.db")
    store.put_prepared(prepare_indexed([make_session(0, response_body=b'{"where":"warehouse"}')]))
    failing = make_session(1, path="/v1/warehouse", response_body=b'{"where":"stockroom"}')
    real_set_meta = store._set_meta

    def set_meta_fails(key: str, value: object) -> None:
        if key == "unmerged_text":  # after the batch's terms are noted, in its transaction
            raise sqlite3.OperationalError("disk I/O error")
        real_set_meta(key, value)

    monkeypatch.setattr(store, "_set_meta", set_meta_fails)
    with pytest.raises(StoreWriteError):
        store.put_prepared(prepare_indexed([failing]))
    monkeypatch.undo()
    assert "stockroom" not in vocabulary(store) and vocabulary(store)["warehouse"] == 2
    store.put_prepared(prepare_indexed([failing]))
    # warehouse gained inbound.request (bit 1); stockroom is there; both as FTS5 holds them.
    assert vocabulary(store)["warehouse"] == 3 and vocabulary(store)["stockroom"] == 2
    assert vocabulary(store) == index_columns(store)
    # A batch of known terms in a new column still adds the column.
    store.put_prepared(prepare_indexed([make_session(2, response_body=b'{"where":"x"}', outbound=[http_call(0, 1_000, "GET", "/", 200, b"stockroom")])]))
    assert vocabulary(store)["stockroom"] == 2 | 8 and vocabulary(store) == index_columns(store)
    assert store.count("stockr*") == 2
    store.close()


def test_sessions_indexed_later_add_their_terms(tmp_path: Path) -> None:
    store = prefix_store(tmp_path / "k.db")
    assert store.count("warehou*") == 33
    store.put_many([make_session(100, response_body=b'{"where":"WarehouseNew","more":"\xe4\xb8\xad\xe6\x96\x87text"}')])
    assert store.count("warehousen*") == 1  # a query refreshes the index first
    assert store.count("中文text*") == 1
    assert store.count("warehou*") == 34
    # Read-only, with the session not indexed yet: found by the Python check of pending text.
    store.put_many([make_session(101, response_body=b'{"where":"warehousezz"}')])
    store.close()
    readonly = SqliteStore(tmp_path / "k.db", readonly=True)
    assert readonly.count("warehousez*") == 1
    assert readonly.count("warehou*") == 35
    readonly.close()


def test_the_vocabulary_follows_the_searchable_text(tmp_path: Path) -> None:
    """The store indexes searchable_text(...) of each part; the vocabulary is made from the
    same strings, controls and invalid bytes included."""
    raw = b"ab\x00cd \xff\xfeEF\x1fgh"
    terms: set[str] = set()
    wide = add_terms([searchable_text(raw)], terms)
    assert wide == ["\ufffd\ufffdEF"]
    assert terms | fts5_terms(wide) == fts5_terms([searchable_text(raw)]) == {"ab", "cd", "ef", "gh"}
    store = SqliteStore(tmp_path / "k.db")
    store.put_many([make_session(0, response_body=raw)])
    assert store.count("c*") == store.count("e*") == 1
    assert {"ab", "cd", "ef", "gh"} <= {t for (t,) in store.db.execute("SELECT term FROM text_terms")}
    store.close()


def segments(store: SqliteStore) -> int:
    return store.db.execute("SELECT count(DISTINCT segid) FROM session_text_idx").fetchone()[0]


def test_a_refresh_of_half_the_index_or_more_merges_its_segments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_module, "TEXT_BATCH", 10)  # a segment per 10 sessions
    monkeypatch.setattr(sqlite_module, "MERGE_AFTER", 20)
    store = SqliteStore(tmp_path / "k.db")
    store.put_many([make_session(i, response_body=b'{"where":"warehouse%d"}' % i) for i in range(40)])
    store.refresh()
    assert segments(store) == 1  # 40 new of 40
    store.put_many([make_session(i, response_body=b'{"where":"warehouse%d"}' % i) for i in range(40, 59)])
    store.refresh()
    assert segments(store) == 3  # 19 new: under MERGE_AFTER, two segments more
    store.put_many([make_session(i, response_body=b'{"where":"warehouse%d"}' % i) for i in range(59, 90)])
    store.refresh()
    assert segments(store) == 7  # 31 new of 90 (four segments): under half
    store.put_many([make_session(i, response_body=b'{"where":"warehouse%d"}' % i) for i in range(90, 190)])
    store.refresh()
    assert segments(store) == 1  # 100 new of 190
    assert store.count("warehou*") == 190
    store.db.execute("INSERT INTO session_text (session_text, rank) VALUES ('integrity-check', 0)")  # raises if corrupt
    store.close()


def test_a_common_keyword_walks_the_text_matches_and_a_rare_one_is_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Text AND an indexed keyword: the keyword's sessions are read and checked only while
    it holds at most _KEYWORD_FIRST_MAX sessions; both plans list the same sessions in the
    same order."""
    store = prefix_store(tmp_path / "k.db")
    query = "order AND inbound.method:GET"
    assert store._plan(query).found is not None  # 34 sessions: rare enough
    expected = [s.session_id for s in store.scan(query)]
    monkeypatch.setattr(sqlite_module, "_KEYWORD_FIRST_MAX", 5)
    assert "FROM session_text t CROSS JOIN sessions s" in store._plan(query).sql
    assert [s.session_id for s in store.scan(query)] == expected and len(expected) == 32
    assert store._plan("order AND inbound.path:/nowhere").found == []
    store.close()


# Prefix conditions AND a rare keyword, over columns and text beyond ASCII (folded by FTS5).
PREFIX_AND_KEYWORD = [
    "warehou* AND inbound.method:GET",
    "inbound.response:warehouse1* AND inbound.method:GET",
    "wareh* AND ord* AND inbound.method:GET",
    "warehouseé* AND inbound.method:GET",
    "σ* AND inbound.method:GET",
    "outbound.request:warehou* AND inbound.method:GET",
    "zzz* AND inbound.method:GET",
    "warehou* AND inbound.path:/nowhere",
    "order-sta* AND inbound.method:GET",
    '"order status" AND wareh* AND inbound.method:GET',
    "ware-house* AND inbound.method:GET",
]


def with_sessions(store: SqliteStore, sessions: list) -> SqliteStore:
    store.put_many(sessions)
    store.refresh()
    return store


def mixed_store(path: Path) -> SqliteStore:
    return with_sessions(
        prefix_store(path),
        [
            make_session(40, response_body='{"where":"WAREHOUSEÉ","σ":"ΣΟΦΙΑ"}'.encode()),
            make_session(41, response_body='{"where":"warehouseß İstanbul","note":"ordΣ"}'.encode()),
            make_session(42, response_body='{"where":"ware\\u0301house","note":"σς"}'.encode()),
            make_session(43, response_body='{"where":"ware\u0301house ware-housing","note":"order status"}'.encode()),
        ],
    )


@pytest.mark.parametrize("query", PREFIX_AND_KEYWORD)
def test_a_rare_keyword_checks_a_prefix_on_its_sessions_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, query: str) -> None:
    """A prefix AND a rare keyword is checked on the keyword's few sessions (by a regex on
    ASCII text, else by FTS5 on an index of them alone), instead of probing the whole text
    index once per session with every term of the prefix: the same sessions, in the same
    order, as walking the text matches; count() agrees."""
    store = mixed_store(tmp_path / "k.db")
    assert store._plan(query).found is not None  # no walk: the checked sessions
    checked = [s.session_id for s in store.scan(query)]
    assert store.count(query) == len(checked)
    with monkeypatch.context() as patched:
        patched.setattr(sqlite_module, "_KEYWORD_FIRST_MAX", -1)
        plan = store._plan(query)
        # (A prefix no indexed term of its fields starts matches nothing: nothing to walk.)
        assert "FROM session_text t CROSS JOIN sessions s" in plan.sql or (plan.found == [] and checked == [])
        assert [s.session_id for s in store.scan(query)] == checked
    store.close()


def test_the_checked_sessions_are_the_expected_ones(tmp_path: Path) -> None:
    store = prefix_store(tmp_path / "k.db")
    assert len(list(store.scan("warehou* AND inbound.method:GET"))) == 33
    assert len(list(store.scan("warehouseé* AND inbound.method:GET"))) == 1
    assert len(list(store.scan("order-sta* AND inbound.method:GET"))) == 31
    assert list(store.scan("outbound.request:warehou* AND inbound.method:GET")) == []
    # Terms alone too.
    assert store._plan("order AND inbound.method:GET").found is not None
    assert store.count("order AND inbound.method:GET") == 32
    # The scratch index is filled in one savepoint, released: nothing stays open or indexed.
    assert not store.db.in_transaction
    assert store.db.execute("SELECT count(*) FROM temp.scratch_sessions WHERE scratch_sessions MATCH 'warehou*'").fetchone()[0] == 0
    store.close()


def test_a_scratch_check_never_names_the_prefixs_terms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Naming them reads the store's vocabulary, which the scratch index does not need.
    store = prefix_store(tmp_path / "k.db")
    asked: list[str] = []
    monkeypatch.setattr(SqliteStore, "_prefix_terms", lambda self, prefix, columns=15: asked.append(prefix) or ())
    assert len(list(store.scan("warehou* AND inbound.method:GET"))) == 33
    assert store.count("warehou* AND inbound.method:GET") == 33
    assert asked == []
    store._plan("warehou*")  # text alone walks the text index: the terms are named
    assert asked == ["warehou"]
    store.close()


def test_a_scratch_check_inside_a_transaction_keeps_it_open(tmp_path: Path) -> None:
    prefix_store(tmp_path / "k.db").close()
    store = SqliteStore(tmp_path / "k.db", readonly=True)  # a writable one refreshes first
    store.db.execute("BEGIN")
    assert len(list(store.scan("warehou* AND inbound.method:GET"))) == 33
    assert store.db.in_transaction  # RELEASE ended the savepoint only
    store.db.execute("ROLLBACK")
    store.close()


def test_a_read_only_store_checks_them_too(tmp_path: Path) -> None:
    mixed_store(tmp_path / "k.db").close()
    store = SqliteStore(tmp_path / "k.db", readonly=True)
    query = "wareh* AND inbound.method:GET"
    assert store._plan(query).found is not None
    assert len(list(store.scan(query))) == store.count(query) == 35
    store.close()


# --- the first matches of a costly prefix, found a window of sessions at a time --------


def or_of_terms(self: SqliteStore, plan, limit):
    """_first_in_windows never tried: the OR of the prefix's terms lists every match."""
    return None


WINDOWED = ["warehou*", "wareh* AND ord*", "order-sta*", "inbound.response:warehouse1*", "σ*", "warehouseé*", "war*", "zzz*", "warehou* AND inbound.method:GET"]


@pytest.mark.parametrize("query", WINDOWED)
@pytest.mark.parametrize("limit", [1, 5, 40])
@pytest.mark.parametrize("terms_per_session", [1, 0.01])
def test_windows_list_what_the_or_of_the_terms_lists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, query: str, limit: int, terms_per_session: float) -> None:
    """Over ASCII and other text (left to FTS5), dense and sparse prefixes, with a keyword
    whose index lists its sessions in row id order, windows stopped by their budget (and the
    rest listed by the OR) or reaching the end: the same sessions in the same order."""
    store = mixed_store(tmp_path / "k.db")
    monkeypatch.setattr(sqlite_module, "_KEYWORD_FIRST_MAX", 0)  # GET is common here
    monkeypatch.setattr(sqlite_module, "_TERMS_PER_SESSION_CHECKED", terms_per_session)
    monkeypatch.setattr(sqlite_module, "_WINDOW_MIN", 2)
    windowed = [s.session_id for s in store.scan(query, limit=limit)]
    with monkeypatch.context() as patched:
        patched.setattr(SqliteStore, "_first_in_windows", or_of_terms)
        assert [s.session_id for s in store.scan(query, limit=limit)] == windowed
    store.close()


def test_a_dense_prefix_is_found_in_the_first_window_without_naming_its_terms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = prefix_store(tmp_path / "k.db")
    monkeypatch.setattr(sqlite_module, "_TERMS_PER_SESSION_CHECKED", 1)  # 33 terms: a budget of 33 sessions
    asked: list[str] = []
    monkeypatch.setattr(SqliteStore, "_prefix_terms", lambda self, prefix, columns=15: asked.append(prefix) or ())
    plan = store._plan("warehou*", limit=10)
    assert plan.found is not None and plan.resume is None and len(plan.found) == 10
    assert [s.session_id for _, s in plan.found] == [s.session_id for s in store.scan("warehou*", limit=10)]
    assert asked == []  # the OR was never built
    store.close()


def test_a_sparse_prefix_stops_at_its_budget_and_the_or_lists_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SqliteStore(tmp_path / "k.db")
    bodies = [b'{"note":"nothing here"}'] * 40 + [b'{"note":"warehouse%d"}' % i for i in range(12)]
    store.put_many([make_session(i, response_body=body) for i, body in enumerate(bodies)])
    store.refresh()
    monkeypatch.setattr(sqlite_module, "_TERMS_PER_SESSION_CHECKED", 1)  # 12 terms: 12 sessions
    monkeypatch.setattr(sqlite_module, "_WINDOW_MIN", 1)
    plan = store._plan("warehou*", limit=5)
    assert plan.found == [] and plan.resume is not None  # 12 sessions checked, none held it
    listed = [s.session_id for s in store.scan("warehou*", limit=5)]
    assert listed == [make_session(i).session_id for i in range(40, 45)]
    # A budget that reaches the end of the store: every match, and nothing left to list.
    monkeypatch.setattr(sqlite_module, "_TERMS_PER_SESSION_CHECKED", 0.1)
    plan = store._plan("warehou*", limit=20)
    assert len(plan.found) == 12 and plan.resume is None
    store.close()


def test_windows_are_not_tried_where_they_cannot_pay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = prefix_store(tmp_path / "k.db")
    monkeypatch.setattr(sqlite_module, "_TERMS_PER_SESSION_CHECKED", 1)
    monkeypatch.setattr(sqlite_module, "_KEYWORD_FIRST_MAX", 0)
    assert store._plan("warehou*").found is None  # every match wanted: the OR walks them
    assert store._plan("warehou*", limit=34).found is None  # 33 terms cost less than 34 sessions
    assert store._plan("order", limit=5).found is None  # no prefix
    # A range's sessions are not listed in row id order by an index: the table would be walked.
    assert store._plan("warehou* AND inbound.status:>=200", limit=5).found is None
    assert store._plan("warehou* AND inbound.method:GET", limit=5).found is not None
    store.close()


# --- words joined by OR (`order status`) or negated walk the index too ---------------

TEXT_TREES = [
    "order status",
    "warehou* stalled",
    "(order AND stalled) OR wareh*",
    "zzz* OR σ*",
    "warehouseé* OR ware-housing",
    "inbound.response:warehouse1* OR nothing",
    "(order OR wareh*) AND inbound.method:GET",
    "ordre statut*",
    "order AND NOT stalled",
    "wareh* AND NOT (order status)",
    "NOT order AND war*",
    "(order AND NOT status) OR zzz* OR σ*",
    "warehou* AND NOT warehouse1* AND inbound.method:GET",
]


def general_sql(tree, text):
    """SqliteStore._driven never used: every condition compiled to SQL (each word an IN)."""
    return None


@pytest.mark.parametrize("query", TEXT_TREES)
@pytest.mark.parametrize("limit", [None, 3])
def test_words_joined_by_or_walk_the_index_and_list_what_sql_lists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, query: str, limit: int | None) -> None:
    """Phrases under AND and OR are one MATCH expression, walked in row id order (or checked
    a window at a time): the same sessions in the same order as the general SQL, where each
    word collected every session holding it first (3.3 s for `order status` at 1M)."""
    store = mixed_store(tmp_path / "k.db")
    monkeypatch.setattr(sqlite_module, "_TERMS_PER_SESSION_CHECKED", 0.5)
    monkeypatch.setattr(sqlite_module, "_WINDOW_MIN", 2)
    monkeypatch.setattr(sqlite_module, "_KEYWORD_FIRST_MAX", 0)
    assert store._driven(sqlite_module.as_tree(query), store._text_index()) is not None
    listed = [s.session_id for s in store.scan(query, limit=limit)]
    counted = store.count(query), store.count(query, at_most=2)
    with monkeypatch.context() as patched:
        patched.setattr(SqliteStore, "_driven", staticmethod(general_sql))
        assert [s.session_id for s in store.scan(query, limit=limit)] == listed
        assert (store.count(query), store.count(query, at_most=2)) == counted
    assert listed
    store.close()


def test_text_or_a_keyword_is_left_to_sql(tmp_path: Path) -> None:
    store = prefix_store(tmp_path / "k.db")
    assert store._driven(sqlite_module.as_tree("order OR inbound.status:503"), store._text_index()) is None
    assert store._driven(sqlite_module.as_tree("NOT order"), store._text_index()) is None
    store.close()


# --- an OR of text and other conditions: each branch's plan, merged in row id order -----

MIXED_ORS = [
    "order inbound.status:503",
    "warehou* AND inbound.method:POST OR zzz*",
    "σ* OR inbound.path:/v1/nowhere OR inbound.status:503",
    "stalled OR (inbound.status:503 AND NOT order)",
    "NOT order OR inbound.status:503",
    "ordre* OR warehouse1* OR inbound.method:POST",
    # An AND over such an OR: the OR of its branches, each with the AND's other conditions.
    "(order OR inbound.status:503) AND inbound.method:GET",
    "inbound.method:POST AND (warehou* OR inbound.status:503) AND NOT dock",
    "(order OR inbound.status:503) AND (warehouse7 OR inbound.method:POST)",
    "(σ* OR (inbound.status:503 AND order)) AND inbound.method:POST",
]


def or_store(path: Path) -> SqliteStore:
    return with_sessions(
        mixed_store(path),
        [
            make_session(50, status=503, response_body=b'{"where":"warehouse7","note":"order failed"}'),  # holds both sides
            make_session(51, method="POST", response_body=b'{"where":"dock"}'),
            make_session(52, method="POST", status=503, response_body='{"where":"Σ warehouse"}'.encode()),
        ],
    )


@pytest.mark.parametrize("query", MIXED_ORS)
def test_an_or_of_text_and_keywords_merges_its_branches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, query: str) -> None:
    """Each branch is listed by its own plan (text walked or checked, keywords from their
    indexes) and the lists merged in row id order, a session held by two branches once: the
    same sessions, order and counts as one SQL condition over every session."""
    store = or_store(tmp_path / "k.db")
    assert store._or_branches(sqlite_module.as_tree(query)) is not None
    listed = [s.session_id for s in store.scan(query)]
    first = [s.session_id for s in store.scan(query, limit=2)]
    counted = [store.count(query, at_most=n) for n in (0, 1, 1000)]
    with monkeypatch.context() as patched:
        patched.setattr(SqliteStore, "_or_branches", lambda self, tree: None)
        assert [s.session_id for s in store.scan(query)] == listed
        assert [s.session_id for s in store.scan(query, limit=2)] == first
        assert [store.count(query, at_most=n) for n in (0, 1, 1000)] == counted
        assert store.count(query) == len(listed)
    assert len(set(listed)) == len(listed) and listed
    store.close()


def test_only_ors_that_hold_text_and_something_else_are_merged(tmp_path: Path) -> None:
    store = prefix_store(tmp_path / "k.db")
    for query in (
        "order status",
        "inbound.status:503 OR inbound.method:POST",
        "order AND inbound.status:503",
        "(order OR status) AND inbound.status:503",  # one MATCH: the text-only OR joins the keyword's plan
        "(inbound.status:503 OR inbound.method:POST) AND order",
    ):
        assert store._or_branches(sqlite_module.as_tree(query)) is None, query
    store.close()
