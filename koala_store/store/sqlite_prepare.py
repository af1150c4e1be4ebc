"""What the SQLite store makes of a batch of sessions before it touches its database.

Checks, the derived columns of `sessions` and `outbound`, each session's msgpack form, and,
when asked, its full-text row and the terms it adds to `text_terms`. Nothing here reads or
writes the store, so ingest can run `prepare_indexed` in worker processes while one process
writes (ingest.parallel): that work is about half of an ingest's CPU.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec
import zstandard

from ..model import Session
from ..query.text import add_terms, searchable_text
from ..summary import summarize
from .base import Rejected
from .sqlite_blob import blob_of, compressor_for
from .sqlite_query import CALL_SEPARATOR
from .sqlite_schema import COLUMN_NAMES, SCRATCH_TEXT

_INT64 = (-(2**63), 2**63 - 1)
_to_msgpack = msgspec.msgpack.Encoder().encode


class Row(msgspec.Struct):
    columns: tuple[Any, ...]  # the session row without its id and blob
    calls: list[tuple[Any, ...]]  # outbound rows without their ids and session
    packed: bytes  # the session as msgpack (sqlite_blob compresses it); b"" when `blob` is set
    text: tuple[str, str, str, str] | None = None  # its text_row, when prepared for indexing
    blob: bytes | None = None  # its stored form, when prepared with the store's dictionary

    @property
    def key(self) -> tuple[int, str]:
        return (self.columns[1], self.columns[0])  # recorded order: (recorded_at, session_id)


class Prepared(msgspec.Struct):
    rows: dict[str, Row]  # by session_id; the last copy in a batch wins
    rejected: list[Rejected]
    # With text: each term of the rows' text and the columns holding it (sqlite_schema's mask).
    terms: dict[str, int] | None = None


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


def text_row(session: Session) -> tuple[str, str, str, str]:
    """The session_text columns of a session: its inbound request and response, and its calls'
    requests and responses, each call's text apart from the next (CALL_SEPARATOR)."""
    # Written out, not through query.text.field_texts: this runs per session indexed, and
    # the generic form cost ~3 us more a session (~7%).
    calls = session.outbound_calls
    return (
        searchable_text(session.call_from_inbound.request),
        searchable_text(session.response),
        CALL_SEPARATOR.join(searchable_text(call.request) for call in calls),
        CALL_SEPARATOR.join(searchable_text(call.response) for call in calls),
    )


def prepare(batch: list[Session], *, with_text: bool = False, dictionary: bytes | None = None) -> Prepared:
    """Everything about a batch that needs no database: checks, summaries, rows; with_text,
    the text rows and their terms too (terms of characters other than ASCII are made by a
    scratch FTS5 table of this process's own); with the store's committed `dictionary`, the
    blobs too (sqlite_blob.blob_of)."""
    prepared = Prepared({}, [])
    compressor = _compressor(dictionary) if dictionary is not None else None
    for session in batch:
        problem = _check_int64(session)
        if problem:
            prepared.rejected.append(Rejected(session.session_id, problem))
            continue
        summary = summarize(session)
        columns = (
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
        )
        calls = [
            (facts.peer, facts.protocol, _none_if_empty(facts.method), _none_if_empty(facts.path), len(call.request), len(call.response))
            for call, facts in zip(session.outbound_calls, summary.outbound, strict=True)
        ]
        text = text_row(session) if with_text else None
        packed = _to_msgpack(session)
        blob = blob_of(packed, compressor) if compressor is not None else None
        prepared.rows[session.session_id] = Row(columns, calls, b"" if blob is not None else packed, text, blob)
    if with_text:
        prepared.terms = text_terms([row.text for row in prepared.rows.values() if row.text is not None], _scratch())
    return prepared


def prepare_indexed(batch: list[Session], dictionary: bytes | None = None) -> Prepared:
    """prepare(batch, with_text=True, dictionary=...): what ingest's worker processes run."""
    return prepare(batch, with_text=True, dictionary=dictionary)


_last_compressor: tuple[bytes, zstandard.ZstdCompressor] | None = None


def _compressor(dictionary: bytes) -> zstandard.ZstdCompressor:
    """This process's compressor for `dictionary` (a store has one; made once, not per batch)."""
    global _last_compressor
    if _last_compressor is None or _last_compressor[0] != dictionary:
        _last_compressor = (dictionary, compressor_for(dictionary))
    return _last_compressor[1]


def text_terms(texts: list[tuple[str, ...]], db: sqlite3.Connection) -> dict[str, int]:
    """Each term of these text rows, with the columns (a mask by COLUMN_NAMES) holding it."""
    columns_of: dict[str, int] = {}
    for i in range(len(COLUMN_NAMES)):
        terms: set[str] = set()
        wide = add_terms([text[i] for text in texts], terms)
        terms |= fts5_terms(db, set(wide))
        for term in terms:
            columns_of[term] = columns_of.get(term, 0) | 1 << i
    return columns_of


def fts5_terms(db: sqlite3.Connection, runs: set[str]) -> set[str]:
    """The terms FTS5 makes of `runs`: indexed once, together, in a scratch table with
    the store's tokenizer (~0.3 ms a batch, then ~3 us a distinct run of 8 characters;
    paid only for text that is not ASCII)."""
    if not runs:
        return set()
    for statement in SCRATCH_TEXT.split(";"):
        db.execute(statement)
    db.execute("INSERT INTO temp.scratch_text (rowid, x) VALUES (1, ?)", (" ".join(runs),))
    terms = {term for (term,) in db.execute("SELECT term FROM temp.scratch_terms")}
    db.execute("INSERT INTO temp.scratch_text (scratch_text) VALUES ('delete-all')")
    return terms


_scratch_db: sqlite3.Connection | None = None


def _scratch() -> sqlite3.Connection:
    """This process's in-memory database for fts5_terms (a worker has no store open)."""
    global _scratch_db
    if _scratch_db is None:
        _scratch_db = sqlite3.connect(":memory:", isolation_level=None)
    return _scratch_db
