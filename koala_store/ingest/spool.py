"""The durable spool between accepting a session and storing it, shared by `koala serve` and
`koala record`.

Sessions are appended to segment files in one folder; `append` returns only once its
sessions are on disk (fsync), which is when the service may answer 201/202. Concurrent
appends share one fsync (group commit, on one writer thread). A segment is sealed when it is
big enough or has been open `seal_after` seconds; the flusher (koala_store.ingest.flush)
moves sealed segments into the store in batches and deletes a segment only once every
session in it is stored. The spool is bounded: past `max_bytes`, `append` raises SpoolFull
(the service answers 429) and nothing is dropped.

Record layout: 4-byte little-endian payload length, 4-byte CRC-32 of the payload, then the
payload (the Session as msgpack). Recovery on open keeps every whole record and cuts a torn
tail (a kill -9 in the middle of a write, never acknowledged) off the segment it ends.
"""

from __future__ import annotations

import fcntl
import os
import queue
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import msgspec

from ..errors import KoalaError
from ..model import Session

_HEADER = struct.Struct("<II")
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Session).decode
SUFFIX = ".seg"
MAX_RECORD = 1 << 30


class SpoolFull(KoalaError):
    """The spool holds `max_bytes` already: the caller must come back later."""


class SpoolError(KoalaError):
    """The spool folder cannot be used (in use by another process, not writable)."""


def encode_records(sessions: list[Session]) -> bytes:
    out = bytearray()
    for session in sessions:
        payload = _encode(session)
        out += _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
    return bytes(out)


def _whole_records(data: bytes) -> tuple[list[bytes], int]:
    """The payloads of the whole, intact records at the start of `data`, and where they end."""
    payloads = []
    pos = 0
    while pos + _HEADER.size <= len(data):
        size, crc = _HEADER.unpack_from(data, pos)
        end = pos + _HEADER.size + size
        if size > MAX_RECORD or end > len(data):
            break
        payload = data[pos + _HEADER.size : end]
        if zlib.crc32(payload) != crc:
            break
        payloads.append(payload)
        pos = end
    return payloads, pos


class _Append:
    __slots__ = ("data", "count", "future")

    def __init__(self, data: bytes, count: int):
        self.data = data
        self.count = count
        self.future: Future[None] = Future()


class Spool:
    def __init__(self, folder: str | Path, *, max_bytes: int = 1 << 30, segment_bytes: int = 8 << 20, seal_after: float = 0.2, fsync: bool = True):
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.seal_after = seal_after
        self.fsync = fsync
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(self.folder / "LOCK", "a+")
        except OSError as exc:
            raise SpoolError(f"cannot use spool folder {self.folder}: {exc.strerror or exc}; pass --spool DIR with a writable folder") from None
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            raise SpoolError(f"spool folder {self.folder} is in use by another koala serve or koala record; give each its own --spool DIR") from None
        self._mutex = threading.Lock()
        self._sealed: list[Path] = []  # oldest first, ready to flush
        self._sizes: dict[Path, int] = {}
        self._counts: dict[Path, int] = {}
        self._reserved = 0  # bytes queued for the writer, not yet on disk
        self.recovered_sessions = 0
        self.recovered_torn_bytes = 0
        self._recover()
        self._active: Path | None = None
        self._active_file = None
        self._active_since = 0.0
        self._queue: queue.Queue[_Append | None] = queue.Queue()
        self._closed = False
        self._writer = threading.Thread(target=self._write_loop, name="koala-spool-writer", daemon=True)
        self._writer.start()

    # --- state -------------------------------------------------------------------------

    def _recover(self) -> None:
        """Every segment left by a previous run is pending; a torn tail is cut off."""
        numbers = []
        for path in sorted(self.folder.glob(f"*{SUFFIX}")):
            data = path.read_bytes()
            payloads, end = _whole_records(data)
            if end < len(data):
                self.recovered_torn_bytes += len(data) - end
                with open(path, "r+b") as handle:
                    handle.truncate(end)
                    os.fsync(handle.fileno())
            if not payloads:
                path.unlink()
                continue
            self._sealed.append(path)
            self._sizes[path] = end
            self._counts[path] = len(payloads)
            self.recovered_sessions += len(payloads)
            numbers.append(int(path.stem))
        self._next = max(numbers, default=0) + 1
        self._sync_folder()

    def _sync_folder(self) -> None:
        if not self.fsync:
            return
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @property
    def bytes(self) -> int:
        """Bytes on disk or on their way there, not yet stored."""
        with self._mutex:
            return sum(self._sizes.values()) + self._reserved

    @property
    def sessions(self) -> int:
        """Sessions in the spool, not yet stored."""
        with self._mutex:
            return sum(self._counts.values())

    def count(self, segment: Path) -> int:
        """Sessions in one segment."""
        with self._mutex:
            return self._counts.get(segment, 0)

    def sealed(self) -> list[Path]:
        with self._mutex:
            return list(self._sealed)

    # --- appending ---------------------------------------------------------------------

    def submit(self, sessions: list[Session]) -> Future[None]:
        """Queue sessions for the disk; the future completes once they are fsynced. Raises
        SpoolFull (nothing queued) when they would take the spool past `max_bytes`."""
        data = encode_records(sessions)
        with self._mutex:
            if self._closed:
                raise SpoolError("the spool is closed")
            held = sum(self._sizes.values()) + self._reserved
            if held + len(data) > self.max_bytes and held > 0:
                raise SpoolFull(f"the spool holds {held} bytes (limit {self.max_bytes}); the store is not keeping up or is down")
            self._reserved += len(data)
        item = _Append(data, len(sessions))
        self._queue.put(item)
        return item.future

    def append(self, sessions: list[Session]) -> None:
        """Sessions on disk before this returns (see `submit`)."""
        self.submit(sessions).result()

    def _write_loop(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self.seal_after / 2 if self.seal_after else None)
            except queue.Empty:
                self._seal_if_due()
                continue
            if item is None:
                self._seal()
                return
            batch = [item]
            size = len(item.data)
            while size < (4 << 20):
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(more)
                size += len(more.data)
            try:
                self._write(batch)
            except OSError as exc:
                error = SpoolError(f"cannot write to spool folder {self.folder}: {exc.strerror or exc}")
                with self._mutex:
                    self._reserved -= size
                for done in batch:
                    done.future.set_exception(error)
                continue
            for done in batch:
                done.future.set_result(None)
            self._seal_if_due()

    def _write(self, batch: list[_Append]) -> None:
        if self._active_file is None:
            self._active = self.folder / f"{self._next:012d}{SUFFIX}"
            self._next += 1
            self._active_file = open(self._active, "ab")
            self._active_since = time.monotonic()
            created = True
        else:
            created = False
        data = b"".join(item.data for item in batch)
        self._active_file.write(data)
        self._active_file.flush()
        if self.fsync:
            os.fdatasync(self._active_file.fileno())
            if created:
                self._sync_folder()  # the new file's name is durable too
        with self._mutex:
            assert self._active is not None
            self._reserved -= len(data)
            self._sizes[self._active] = self._sizes.get(self._active, 0) + len(data)
            self._counts[self._active] = self._counts.get(self._active, 0) + sum(item.count for item in batch)

    def _seal_if_due(self) -> None:
        if self._active_file is None:
            return
        assert self._active is not None
        if self._sizes.get(self._active, 0) >= self.segment_bytes or time.monotonic() - self._active_since >= self.seal_after:
            self._seal()

    def _seal(self) -> None:
        if self._active_file is None:
            return
        self._active_file.close()
        self._active_file = None
        with self._mutex:
            assert self._active is not None
            self._sealed.append(self._active)
        self._active = None

    # --- flushing ----------------------------------------------------------------------

    def read(self, segment: Path) -> Iterator[Session]:
        """The sessions of a sealed segment, in the order they were appended."""
        payloads, _ = _whole_records(segment.read_bytes())
        for payload in payloads:
            yield _decode(payload)

    def remove(self, segment: Path) -> None:
        """Forget a segment whose every session is stored."""
        segment.unlink(missing_ok=True)
        self._sync_folder()
        with self._mutex:
            self._sealed.remove(segment)
            self._sizes.pop(segment, None)
            self._counts.pop(segment, None)

    def close(self) -> None:
        """Write what is queued, seal the open segment and release the folder."""
        with self._mutex:
            if self._closed:
                return
            self._closed = True
        self._queue.put(None)
        self._writer.join()
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()


__all__ = ["Spool", "SpoolError", "SpoolFull", "encode_records"]
