"""NDJSON of session documents (koala_store.formats.document), one per line."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

import orjson

from ..errors import FormatError
from ..model import Session
from .document import from_document, to_document
from .records import Record, write_each


def read(stream: BinaryIO, *, first_line: int = 1) -> Iterator[Record]:
    """One record per non-blank line; a bad line becomes a rejected record named by its
    number (counted from first_line: the stream may be a chunk of a bigger input)."""
    for number, line in enumerate(stream, start=first_line):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            yield Record(where, session=from_document(orjson.loads(line)), line=number)
        except orjson.JSONDecodeError as exc:
            yield Record(where, error=f"not valid JSON: {exc}", line=number)
        except FormatError as exc:
            yield Record(where, error=str(exc), line=number)


def dumps(session: Session) -> bytes:
    return orjson.dumps(to_document(session)) + b"\n"


def write(sessions: Iterable[Session], stream: BinaryIO) -> int:
    return write_each(sessions, stream, dumps)
