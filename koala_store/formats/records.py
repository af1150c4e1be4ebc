"""What a format reader yields: a session, or the reason one part of the input was rejected."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import BinaryIO

from msgspec import Struct

from ..model import Session


class Record(Struct):
    """One unit of input: `where` names it inside its source (e.g. "line 12", "record 3")."""

    where: str
    session: Session | None = None
    error: str | None = None
    line: int | None = None  # the line number, for line-based formats (NDJSON)


def write_each(sessions: Iterable[Session], stream: BinaryIO, dumps: Callable[[Session], bytes]) -> int:
    """Write each session as `dumps` renders it; return how many were written."""
    count = 0
    for session in sessions:
        stream.write(dumps(session))
        count += 1
    return count
