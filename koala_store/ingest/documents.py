"""Session documents as the ingest service receives them: one Koala session per POST (what
Koala's recorder sends), NDJSON batches, and Elasticsearch's bulk format. Every problem is a
DocumentError with a reason code (for metrics) and one sentence naming what is wrong."""

from __future__ import annotations

import binascii
from collections.abc import Iterator
from typing import Any

import orjson

from ..errors import FormatError, KoalaError
from ..formats import document, replayer
from ..model import Session


class DocumentError(KoalaError):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason  # a metrics label: not_json, too_large, not_a_session, bad_bytes, bad_request


def _json_error(exc: orjson.JSONDecodeError) -> DocumentError:
    text = str(exc)
    if "utf-8" in text.lower() or "surrogate" in text.lower():
        return DocumentError("bad_bytes", f"the JSON text is not valid UTF-8 ({text}); Koala writes bytes that are not UTF-8 as \\xHH escapes")
    return DocumentError("not_json", f"not valid JSON: {text}")


def session_from_object(obj: Any) -> Session:
    """A Session from a decoded document: Koala's recorded JSON (with or without our derived
    fields) or a Koala replayer body."""
    if not isinstance(obj, dict):
        raise DocumentError("not_a_session", f"expected a JSON object with a SessionId and a CallFromInbound, got a JSON {type(obj).__name__}")
    if "SessionId" not in obj:
        raise DocumentError("not_a_session", "not a Koala session: Object missing required field `SessionId` - at `$`")
    if "CallFromInbound" not in obj:
        raise DocumentError("not_a_session", "not a Koala session: Object missing required field `CallFromInbound` - at `$`")
    try:
        if replayer.looks_like_replayer(obj):
            return replayer.from_replayer(orjson.dumps(obj))
        return document.from_document(obj)
    except FormatError as exc:
        message = str(exc)
        if "base64" in message.lower():
            raise DocumentError("bad_bytes", f"a byte field is not valid base64 ({message})") from None
        raise DocumentError("not_a_session", message) from None
    except (binascii.Error, UnicodeError) as exc:
        raise DocumentError("bad_bytes", f"a byte field cannot be decoded ({exc})") from None


def parse_session(data: bytes, limit: int) -> Session:
    """One session document (the body of one POST)."""
    if len(data) > limit:
        raise DocumentError("too_large", f"the document is {len(data)} bytes, more than the {limit}-byte limit; raise --max-document or record less")
    if not data.strip():
        raise DocumentError("not_json", "the request has no body; POST one Koala session as JSON")
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise _json_error(exc) from None
    return session_from_object(obj)


def ndjson_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of every non-blank line."""
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.strip():
            yield number, line


class Item:
    """One document of a batch: its session, or why it was refused."""

    __slots__ = ("where", "session", "error", "action", "index", "doc_id")

    def __init__(self, where: str, session: Session | None = None, error: DocumentError | None = None, action: str = "index", index: str = "", doc_id: str | None = None):
        self.where = where
        self.session = session
        self.error = error
        self.action = action
        self.index = index
        self.doc_id = doc_id


def parse_ndjson(data: bytes, limit: int) -> list[Item]:
    items = []
    for number, line in ndjson_lines(data):
        try:
            items.append(Item(f"line {number}", parse_session(line, limit)))
        except DocumentError as exc:
            items.append(Item(f"line {number}", error=exc))
    return items


_BULK_ACTIONS = ("index", "create", "delete", "update")


def parse_bulk(data: bytes, limit: int, default_index: str) -> list[Item]:
    """Elasticsearch's bulk body: an action line, then (for index/create) the document line.
    A malformed action line fails the whole request, as Elasticsearch does."""
    lines = list(ndjson_lines(data))
    items: list[Item] = []
    i = 0
    while i < len(lines):
        number, line = lines[i]
        try:
            action = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise DocumentError("bad_request", f"bulk line {number} is not a JSON action ({exc}); each document needs an action line such as {{\"index\":{{}}}} before it") from None
        if not isinstance(action, dict) or len(action) != 1 or next(iter(action)) not in _BULK_ACTIONS or not isinstance(next(iter(action.values())), dict):
            raise DocumentError("bad_request", f"bulk line {number} is not an action: expected one of index, create, delete, update, e.g. {{\"index\":{{\"_index\":\"sessions\"}}}}")
        kind, meta = next(iter(action.items()))
        index = str(meta.get("_index") or default_index)
        doc_id = meta.get("_id")
        doc_id = str(doc_id) if doc_id is not None else None
        if kind == "delete":
            items.append(Item(f"line {number}", error=DocumentError("bad_request", "delete is not supported here: the ingest service only adds sessions"), action=kind, index=index, doc_id=doc_id))
            i += 1
            continue
        if i + 1 >= len(lines):
            raise DocumentError("bad_request", f"bulk line {number} ({kind}) has no document line after it; the body must end with a newline after the last document")
        doc_number, doc_line = lines[i + 1]
        i += 2
        where = f"line {doc_number}"
        if kind == "update":
            items.append(Item(where, error=DocumentError("bad_request", "update is not supported here: send the whole session with index or create"), action=kind, index=index, doc_id=doc_id))
            continue
        try:
            session = parse_session(doc_line, limit)
            check_id(session, doc_id)
            items.append(Item(where, session, action=kind, index=index, doc_id=doc_id))
        except DocumentError as exc:
            items.append(Item(where, error=exc, action=kind, index=index, doc_id=doc_id))
    return items


def check_id(session: Session, doc_id: str | None) -> None:
    """The store keys sessions by SessionId: an explicit _id must be that."""
    if doc_id is not None and doc_id != session.session_id:
        raise DocumentError("bad_request", f"the document id {doc_id!r} is not the session's SessionId {session.session_id!r}; sessions are stored under their SessionId, so post to /<index>/_doc or use the SessionId as id")


__all__ = ["DocumentError", "Item", "check_id", "parse_bulk", "parse_ndjson", "parse_session", "session_from_object"]
