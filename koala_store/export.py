"""Write sessions out of a store in any format, without leaving half-written files behind."""

from __future__ import annotations

import gzip
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from .errors import KoalaError
from .formats import gor, koala, ndjson, replayer
from .model import Session

EXPORT_FORMATS = ("koala", "replayer", "gor", "ndjson")
# Formats written as one file per session into a folder, as Koala's recorder does.
FOLDER_FORMATS = ("koala", "replayer")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


@contextmanager
def _atomic_file(path: Path, *, compress: bool = False) -> Iterator[BinaryIO]:
    """A file that appears under its name only once it is completely written."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as raw:
            if compress:
                with gzip.GzipFile(fileobj=raw, mode="wb", filename="") as stream:
                    yield stream  # type: ignore[misc]
            else:
                yield raw
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


def session_file_name(session: Session) -> str:
    """Koala names record files by SessionId; keep that, minus characters a file name cannot hold."""
    return _UNSAFE_NAME.sub("_", session.session_id)


def export(
    sessions: Iterable[Session],
    fmt: str,
    output: str,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write sessions to `output` (a folder for koala/replayer, a file or - otherwise)."""
    if fmt not in EXPORT_FORMATS:
        raise KoalaError(f"export format {fmt!r} is not one of {', '.join(EXPORT_FORMATS)}")

    def counted(items: Iterable[Session]) -> Iterator[Session]:
        for session in items:
            yield session
            if progress:
                progress(1)

    if fmt in FOLDER_FORMATS:
        if output == "-":
            raise KoalaError(f"--format {fmt} writes one file per session; give a folder with -o, not -")
        folder = Path(output)
        if folder.exists() and not folder.is_dir():
            raise KoalaError(f"{output} is a file; --format {fmt} writes one file per session into a folder")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise KoalaError(f"cannot create the folder {output}: {exc.strerror}") from None
        count = 0
        for session in counted(sessions):
            data = koala.dumps(session) if fmt == "koala" else replayer.to_replayer(session)
            name = session_file_name(session) + (".json" if fmt == "replayer" else "")
            with _atomic_file(folder / name) as stream:
                stream.write(data)
            count += 1
        return count
    writer = gor.write if fmt == "gor" else ndjson.write
    if output == "-":
        count = writer(counted(sessions), sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return count
    path = Path(output)
    if path.is_dir():
        raise KoalaError(f"{output} is a folder; --format {fmt} writes one file, e.g. -o sessions.{fmt}")
    if not path.parent.exists():
        raise KoalaError(f"cannot write {output}: folder {path.parent} does not exist")
    try:
        with _atomic_file(path, compress=output.endswith(".gz")) as stream:
            return writer(counted(sessions), stream)
    except PermissionError:
        raise KoalaError(f"cannot write {output}: permission denied") from None
