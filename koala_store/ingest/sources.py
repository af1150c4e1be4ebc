"""Input sources for ingest: files, folders (a Koala record folder: one session per file)
and stdin, gzip or not; the format is told from the name and the first bytes."""

from __future__ import annotations

import gzip
import io
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from msgspec import Struct

from ..errors import FormatError
from ..formats import gor, koala, ndjson, replayer
from ..formats.records import Record

STDIN = "-"
_PEEK = 1 << 16
_GZIP_MAGIC = b"\x1f\x8b"


class Source(Struct):
    """One input: a file, or stdin; `problem` says why it cannot be read at all."""

    name: str
    path: Path | None = None
    problem: str | None = None


def expand(paths: list[str]) -> Iterator[Source]:
    """Each file to read: folders are walked (hidden files skipped), `-` is stdin."""
    for raw in paths:
        if raw == STDIN:
            yield Source("<stdin>")
            continue
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not files:
                yield Source(raw, path, f"folder {raw} holds no files")
            for file in files:
                yield Source(str(file), file)
        elif path.is_file():
            yield Source(raw, path)
        elif path.exists():
            yield Source(raw, path, "is not a regular file or folder")
        else:
            yield Source(raw, path, "no such file or folder")


def _open(source: Source) -> BinaryIO:
    if source.path is None:
        # On the raw pipe, not on stdin's own buffer: that one waits to fill a whole block,
        # which would hold back the last sessions a live producer sent.
        return io.BufferedReader(getattr(sys.stdin.buffer, "raw", sys.stdin.buffer), _PEEK)  # type: ignore[arg-type]
    return open(source.path, "rb", buffering=_PEEK)


def detect(name: str, head: bytes) -> str | None:
    """The format of an input from its name and first bytes, or None if it cannot be told."""
    lowered = name.lower().removesuffix(".gz")
    if lowered.endswith(".gor"):
        return "gor"
    if lowered.endswith((".ndjson", ".jsonl")):
        return "ndjson"
    stripped = head.lstrip()
    if stripped.startswith(b"["):
        return "koala"
    if stripped.startswith(b"{"):
        first_line = stripped.split(b"\n", 1)[0]
        try:
            obj = orjson.loads(first_line)
        except orjson.JSONDecodeError:
            return "koala"  # an indented object over many lines, as Koala's recorder writes
        if isinstance(obj, dict) and replayer.looks_like_replayer(obj):
            return "replayer"
        # A .json file holds one document even when it is written on one line.
        return "koala" if lowered.endswith(".json") else "ndjson"
    first = head.split(b"\n", 1)[0]
    if gor._HEADER.match(first.rstrip(b"\r")):
        return "gor"
    return None


def _whole_file_records(stream: BinaryIO, fmt: str) -> Iterator[Record]:
    data = stream.read()
    if fmt == "replayer":
        try:
            yield Record("session", session=replayer.from_replayer(data))
        except FormatError as exc:
            yield Record("session", error=str(exc))
        return
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        yield Record("file", error=f"not valid JSON ({exc}); if the file was cut short, record it again")
        return
    items = obj if isinstance(obj, list) else [obj]
    for index, item in enumerate(items):
        where = f"session [{index}]" if isinstance(obj, list) else "session"
        try:
            yield Record(where, session=koala.from_dict(item))
        except FormatError as exc:
            yield Record(where, error=str(exc))


def read_records(source: Source, fmt: str | None = None, *, ndjson_reader: Callable[[BinaryIO], Iterator[Any]] | None = None) -> Iterator[Any]:
    """Every record of one source; problems become records with an error, never exceptions.
    An NDJSON input is read by ndjson_reader when one is given (ingest.parallel's, which
    yields its chunks prepared)."""
    if source.problem:
        yield Record("input", error=source.problem)
        return
    try:
        stream = _open(source)
    except OSError as exc:
        yield Record("input", error=f"cannot be read: {exc.strerror or exc}")
        return
    with stream:
        try:
            if stream.peek(2)[:2] == _GZIP_MAGIC:  # type: ignore[attr-defined]
                stream = io.BufferedReader(gzip.GzipFile(fileobj=stream), _PEEK)  # type: ignore[arg-type]
            head = stream.peek(_PEEK)[:_PEEK]  # type: ignore[attr-defined]
            chosen = fmt or detect(source.name, head)
            if chosen is None:
                yield Record(
                    "input",
                    error="its format cannot be told (not Koala JSON, NDJSON or a .gor file); pass --format koala|replayer|gor|ndjson",
                )
                return
            if chosen == "gor":
                yield from gor.read(stream)
            elif chosen == "ndjson":
                yield from (ndjson_reader or ndjson.read)(stream)
            else:
                yield from _whole_file_records(stream, chosen)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            yield Record("input", error=f"gzip data is corrupt or cut short ({exc})")
        except OSError as exc:
            yield Record("input", error=f"cannot be read: {exc.strerror or exc}")
