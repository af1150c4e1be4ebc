"""Write sessions out of a store in any format, without leaving half-written files behind
and without replacing an existing file unless asked (`force`).

Folder formats name each file after its SessionId, percent-encoded so that every name is
unique, a valid file name, not hidden, and reads back to the SessionId
(`session_id_from_file_name`); names too long for a file system end in a hash instead.
Files get the mode the umask gives new files.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator
from urllib.parse import quote, unquote

from msgspec import Struct, field

from .errors import KoalaError
from .formats import FORMATS, gor, koala, ndjson, replayer
from .model import Session

EXPORT_FORMATS = FORMATS
# Formats written as one file per session into a folder, as Koala's recorder does.
FOLDER_FORMATS = ("koala", "replayer")
# Characters kept as they are in file names; everything else is %XX (UTF-8 bytes).
_SAFE = "-_."
# File systems allow 255 bytes per name; keep room for a suffix and the temporary name.
_MAX_NAME = 200
_HASHED = "~"  # never in an encoded name (it is encoded as %7E), so it marks the long form


class NotWritten(Struct):
    session_id: str
    reason: str


class ExportReport(Struct):
    written: int = 0
    not_written: list[NotWritten] = field(default_factory=list)


def session_file_name(session_id: str) -> str:
    """The file name for a SessionId: percent-encoded (a leading dot too, so no name is
    hidden or `.`/`..`), unique and reversible; a name longer than _MAX_NAME bytes keeps its
    first part and ends in `~` and a hash of the whole id."""
    name = quote(session_id, safe=_SAFE).replace("~", "%7E")  # quote() keeps ~: it marks the long form here
    if name.startswith("."):
        name = "%2E" + name[1:]
    if len(name) > _MAX_NAME:
        digest = hashlib.sha256(session_id.encode()).hexdigest()[:32]
        head = name[: _MAX_NAME - len(digest) - 1]
        head = head[: head.rfind("%")] if "%" in head[-2:] else head  # do not cut an escape in two
        name = f"{head}{_HASHED}{digest}"
    return name


def session_id_from_file_name(name: str) -> str | None:
    """The SessionId a file name encodes, or None for the hashed long form (the file's
    content names the session anyway)."""
    if _HASHED in name:
        return None
    return unquote(name.removesuffix(".json"), errors="strict")


def _new_file_mode() -> int:
    """The mode a new file gets under the current umask (0666 & ~umask)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _place(temp: str, path: Path, force: bool) -> bool:
    """Move a finished file to its name; without `force` never over an existing file (a
    hard link fails if the name exists, with no window between checking and writing).
    Returns whether it was placed."""
    if force:
        os.replace(temp, path)
        return True
    try:
        os.link(temp, path)
    except FileExistsError:
        os.unlink(temp)
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if path.exists():  # a file system without hard links: check, then move
            os.unlink(temp)
            return False
        os.replace(temp, path)
        return True
    os.unlink(temp)
    return True


@contextmanager
def _atomic_file(path: Path, *, compress: bool = False, force: bool = False, placed: list[bool] | None = None) -> Iterator[BinaryIO]:
    """A file that appears under its name only once it is completely written; `placed`
    gets whether it did (False: the name existed and force was not given)."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:100]}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as raw:
            if compress:
                with gzip.GzipFile(fileobj=raw, mode="wb", filename="") as stream:
                    yield stream  # type: ignore[misc]
            else:
                yield raw
        os.chmod(temp, _new_file_mode())
        done = _place(temp, path, force)
        if placed is not None:
            placed.append(done)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def _exists(path: Path) -> str:
    return f"{path} exists; pass --force to replace it"


def export(
    sessions: Iterable[Session],
    fmt: str,
    output: str,
    progress: Callable[[int], None] | None = None,
    *,
    force: bool = False,
) -> ExportReport:
    """Write sessions to `output` (a folder for koala/replayer, a file or - otherwise).
    The report counts exactly the sessions written and names each one that was not."""
    if fmt not in EXPORT_FORMATS:
        raise KoalaError(f"export format {fmt!r} is not one of {', '.join(EXPORT_FORMATS)}")
    report = ExportReport()

    def counted(items: Iterable[Session]) -> Iterator[Session]:
        for session in items:
            if progress:
                progress(1)
            problem = gor.unwritable(session) if fmt == "gor" else None
            if problem:
                report.not_written.append(NotWritten(session.session_id, f"not written as .gor: {problem}; export it as ndjson or koala"))
                continue
            report.written += 1  # handed to the writer (a folder export takes it back if not placed)
            yield session

    if fmt in FOLDER_FORMATS:
        _export_folder(counted(sessions), fmt, output, force, report)
        return report
    writer = gor.write if fmt == "gor" else ndjson.write
    if output == "-":
        writer(counted(sessions), sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return report
    path = Path(output)
    if path.is_dir():
        raise KoalaError(f"{output} is a folder; --format {fmt} writes one file, e.g. -o sessions.{fmt}")
    if not path.parent.exists():
        raise KoalaError(f"cannot write {output}: folder {path.parent} does not exist")
    if path.exists() and not force:
        raise KoalaError(_exists(path))
    placed: list[bool] = []
    try:
        with _atomic_file(path, compress=output.endswith(".gz"), force=force, placed=placed) as stream:
            writer(counted(sessions), stream)
    except PermissionError:
        raise KoalaError(f"cannot write {output}: permission denied") from None
    if not placed[0]:
        raise KoalaError(f"{path} appeared while exporting and was left as it is; nothing was written; pass --force to replace it")
    return report


def _export_folder(sessions: Iterable[Session], fmt: str, output: str, force: bool, report: ExportReport) -> None:
    if output == "-":
        raise KoalaError(f"--format {fmt} writes one file per session; give a folder with -o, not -")
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise KoalaError(f"{output} is a file; --format {fmt} writes one file per session into a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KoalaError(f"cannot create the folder {output}: {exc.strerror}") from None
    for session in sessions:
        data = koala.dumps(session) if fmt == "koala" else replayer.to_replayer(session)
        path = folder / (session_file_name(session.session_id) + (".json" if fmt == "replayer" else ""))
        placed: list[bool] = []
        try:
            with _atomic_file(path, force=force, placed=placed) as stream:
                stream.write(data)
        except PermissionError:
            raise KoalaError(f"cannot write into {output}: permission denied") from None
        if not placed[0]:
            report.written -= 1
            report.not_written.append(NotWritten(session.session_id, _exists(path)))
