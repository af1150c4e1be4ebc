"""Ingest of big NDJSON inputs with worker processes.

This process reads lines, BATCH at a time, and hands each chunk to a worker, which parses it
and runs the store's preparer on its sessions (for SQLite: summaries, rows, msgpack, text rows
and their terms: about half an ingest's CPU). Chunks come back in the order they were read
and are written by this process alone (store.put_prepared), so the store sees one writer and
the same batches, in the same order, as an ingest in one process.

Only stores with a preparer take part (SQLite); a worker costs ~0.2 s to start, so inputs
under MIN_BYTES are read in this process.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, BinaryIO

from msgspec import Struct

from ..formats import ndjson
from ..model import Session

LINES = 5000  # lines a worker parses and prepares at once: one store batch (sqlite.BATCH)
MIN_BYTES = 8 << 20  # a file smaller than this (about 1,600 sessions of 5 KB) stays in-process
# A chunk ends sooner when its lines pass this size: sessions of 1 MB bodies must not make
# chunks of gigabytes (each chunk is held a few times over: read, sent, parsed, prepared).
CHUNK_BYTES = 64 << 20
AHEAD = 2  # chunks read ahead per worker: enough to keep each busy, bounded memory

Preparer = Callable[[list[Session]], Any]


class PreparedChunk(Struct):
    """A chunk of one input, parsed and prepared by a worker."""

    rejected: list[tuple[str, str, int | None]]  # where, reason, line: lines that are not sessions
    origins: dict[str, tuple[str, int | None]]  # session_id -> where, line (the last copy's)
    read: int  # sessions parsed
    prepared: Any  # what the store's preparer made of them


class ChunkFailed(Exception):
    """A worker could not read a chunk (a defect of the reader, not of the input)."""


def default_workers() -> int:
    """Worker processes beside this one: on 2 cores one (this process writes on the other)."""
    return max(1, min(4, (os.cpu_count() or 1) - 1))


def _quiet_worker() -> None:
    # Ctrl-C is the parent's to handle: it stores what came back and stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _chunks(stream: BinaryIO) -> Iterator[tuple[bytes, int]]:
    """The stream's lines, LINES at a time (fewer when they pass CHUNK_BYTES), each chunk
    with the number of its first line."""
    line = 1
    while True:
        lines: list[bytes] = []
        size = 0
        for text in stream:
            lines.append(text)
            size += len(text)
            if len(lines) == LINES or size >= CHUNK_BYTES:
                break
        if not lines:
            return
        yield b"".join(lines), line
        line += len(lines)


def _prepare_chunk(preparer: Preparer, data: bytes, first_line: int) -> PreparedChunk:
    chunk = PreparedChunk([], {}, 0, None)
    sessions: list[Session] = []
    try:
        for record in ndjson.read(io.BytesIO(data), first_line=first_line):
            if record.session is None:
                chunk.rejected.append((record.where, record.error or "rejected", record.line))
                continue
            sessions.append(record.session)
            chunk.origins[record.session.session_id] = (record.where, record.line)
        chunk.read = len(sessions)
        chunk.prepared = preparer(sessions)
    except Exception as exc:  # sent back as text: the parent names the input
        raise ChunkFailed(f"{type(exc).__name__}: {exc}") from None
    return chunk


class Pipeline:
    """Worker processes for the NDJSON inputs of one ingest (started at the first big one)."""

    def __init__(self, preparer_of: Callable[[], Preparer], workers: int):
        self.preparer_of = preparer_of  # the store's preparer, asked for each chunk (it may change)
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def takes(self, size: int | None) -> bool:
        """Whether an input of `size` bytes (None: a stream) is worth the workers."""
        return self.workers > 0 and size is not None and size >= MIN_BYTES

    def reader(self, stream: BinaryIO) -> Iterator[PreparedChunk]:
        """The input's chunks, prepared, in order. Closing it early (a failure, Ctrl-C)
        drops the chunks still in the workers; none of them was counted as read. Should a
        worker die (killed, out of memory), this process prepares what the workers held and
        the rest of the input itself: slower, nothing lost."""
        chunks = _chunks(stream)
        first = next(chunks, None)
        if first is None:
            return
        pool: ProcessPoolExecutor | None = self._started()
        # Chunks in the workers' hands, in order, each with its lines (None: prepared here).
        pending: deque[tuple[Future[PreparedChunk] | None, tuple[bytes, int]]] = deque()

        def workers_gone() -> None:
            nonlocal pool, pending
            pool = None
            self._discard_pool()
            pending = deque((None, held) for _, held in pending)

        def fill() -> None:
            if pool is not None:
                try:
                    self._fill(pool, pending, chunks)
                except BrokenProcessPool:
                    workers_gone()

        try:
            fill()
            # The first chunk is prepared here, while the workers start (~0.3 s) and take the
            # next ones: this process would only wait for them otherwise.
            yield _prepare_chunk(self.preparer_of(), *first)
            while True:
                fill()
                if not pending:
                    chunk_of = next(chunks, None)
                    if chunk_of is None:
                        return
                    pending.append((None, chunk_of))
                future, chunk_of = pending.popleft()
                chunk = None
                if future is not None:
                    try:
                        chunk = future.result()
                    except BrokenProcessPool:
                        workers_gone()
                yield chunk if chunk is not None else _prepare_chunk(self.preparer_of(), *chunk_of)
        finally:
            for future, _ in pending:
                if future is not None:
                    future.cancel()

    def _fill(
        self, pool: ProcessPoolExecutor, pending: deque[tuple[Future[PreparedChunk] | None, tuple[bytes, int]]], chunks: Iterator[tuple[bytes, int]]
    ) -> None:
        """Hand the workers chunks until each has AHEAD of them (BrokenProcessPool: they died)."""
        while len(pending) < self.workers * AHEAD:
            chunk_of = next(chunks, None)
            if chunk_of is None:
                return
            try:
                future = pool.submit(_prepare_chunk, self.preparer_of(), *chunk_of)
            except BrokenProcessPool:
                pending.append((None, chunk_of))  # read already: prepared here instead
                raise
            pending.append((future, chunk_of))

    def _discard_pool(self) -> None:
        """A broken pool goes; the next input starts a fresh one."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the parent runs threads (the progress bar) and holds the store open.
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_quiet_worker)
        return self._pool

    def close(self) -> None:
        self._discard_pool()
