"""Moving spooled sessions into the store: sealed segments, oldest first, in bulk batches.

A segment is deleted only when every session in it is stored (or, for a session the store
refuses for good, written with the reason to `rejected.ndjson` in the spool folder). While
the store cannot be opened or written, the segment stays and the flusher tries again with
backoff; sessions stored before a crash are stored again after it, which the store keeps as
one (SessionIds are keys), so counts reconcile exactly.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from ..errors import StoreError
from ..formats.document import to_document
from ..model import Session
from ..store import open_store
from ..store.base import PutResult, Rejected, SessionStore
from .metrics import IngestMetrics
from .spool import Spool

BATCH = 500
MAX_CALL_BATCHES = 20  # at most this many batches handed to the store in one call
MAX_BACKOFF = 5.0
# Seconds an Elasticsearch write keeps retrying before giving the batch back: short, since
# the spool is the retry (and the service must stay quick to notice the store is back).
ES_RETRY_FOR = 3.0


def is_transient(rejected: Rejected) -> bool:
    """A rejection that says the store was away (the batch is tried again), not that it
    refuses the session (kept aside in rejected.ndjson)."""
    return rejected.transient


def open_for_flush(url: str, index: str | None = None) -> SessionStore:
    options = {"retry_for": ES_RETRY_FOR} if url.startswith(("http://", "https://")) else {}
    return open_store(url, index=index, **options)


class Flusher:
    """A thread that empties the spool into the store."""

    def __init__(
        self,
        spool: Spool,
        store_url: str,
        metrics: IngestMetrics,
        *,
        index: str | None = None,
        batch: int = BATCH,
        opener: Callable[[str, str | None], SessionStore] = open_for_flush,
        log: Callable[[str], None] = lambda line: None,
    ):
        self.spool = spool
        self.store_url = store_url
        self.index = index
        self.metrics = metrics
        self.batch = batch
        self.opener = opener
        self.log = log
        self.store: SessionStore | None = None
        self.store_up = False
        self.last_error = ""
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="koala-flusher", daemon=True)
        self._rejected_path = spool.folder / "rejected.ndjson"

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, drain_for: float = 0.0) -> int:
        """Stop, after trying for up to `drain_for` seconds to store what is spooled (the
        caller has sealed the spool). Returns the sessions left in the spool."""
        self._drain_until = time.monotonic() + drain_for
        self._stop.set()
        self._wake.set()
        self._thread.join()
        if self.store is not None:
            try:
                self.store.close()
            except Exception:  # noqa: BLE001 - closing a store that went away
                pass
        return self.spool.sessions

    # --- the loop ----------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.2
        self._open()  # at once, so /healthz tells whether the store is there
        while True:
            stopping = self._stop.is_set()
            if stopping and time.monotonic() >= getattr(self, "_drain_until", 0):
                return
            segments = self.spool.sealed()
            if not segments:
                if stopping:
                    return
                self._wake.wait(self.spool.seal_after / 2 or 0.1)
                self._wake.clear()
                continue
            if self._flush(segments):
                backoff = 0.2
                continue
            self.metrics.set_store_up(False)
            self.store_up = False
            wait = backoff if not stopping else min(backoff, max(getattr(self, "_drain_until", 0) - time.monotonic(), 0))
            self._wake.wait(wait)
            self._wake.clear()
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _open(self) -> SessionStore | None:
        if self.store is None:
            try:
                self.store = self.opener(self.store_url, self.index)
            except StoreError as exc:
                self._failed(str(exc))
                return None
            self.store_up = True
            self.metrics.set_store_up(True)
        return self.store

    def _failed(self, why: str) -> None:
        self.metrics.store_errors.inc()
        if why != self.last_error:
            self.log(f"store not available, sessions stay in the spool: {why}")
        self.last_error = why

    def _flush(self, segments: list[Path]) -> bool:
        """Store the oldest sealed segments in one call; True when they are done (and deleted).

        Under load many segments wait: taking them together (up to MAX_CALL_SESSIONS) keeps
        the store's writes overlapping across segment boundaries instead of draining at each
        one (Elasticsearch: two bulk requests in flight, `batch` sessions each)."""
        store = self._open()
        if store is None:
            return False
        taken: list[Path] = []
        count = 0
        for segment in segments:
            if taken and count + self.spool.count(segment) > self.batch * MAX_CALL_BATCHES:
                break
            taken.append(segment)
            count += self.spool.count(segment)
        stream = (session for segment in taken for session in self.spool.read(segment))
        try:
            result = store.put_many(stream)
        except StoreError as exc:
            self._failed(str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - a store failing in a way it does not name
            self._failed(f"{type(exc).__name__}: {exc}")
            return False
        transient = [r for r in result.rejected if is_transient(r)]
        if transient:
            self._failed(transient[0].reason)
            return False
        if result.rejected:
            self._keep_aside([s for segment in taken for s in self.spool.read(segment)], result)
        self.metrics.flushed.inc(result.stored + result.unchanged)
        for segment in taken:
            self.spool.remove(segment)
        self.metrics.spool_bytes.set(self.spool.bytes)
        if not self.store_up:
            self.log("store is up: spooled sessions are being stored")
        self.store_up = True
        self.last_error = ""
        self.metrics.set_store_up(True)
        return True

    def _keep_aside(self, batch: list[Session], result: PutResult) -> None:
        """Sessions the store refuses for good go to rejected.ndjson, with the reason."""
        if not result.rejected:
            return
        by_id = {s.session_id: s for s in batch}
        lines = []
        for rejected in result.rejected:
            session = by_id.get(rejected.session_id)
            if session is None:
                continue
            doc = to_document(session)
            doc["rejected_because"] = rejected.reason
            lines.append(orjson.dumps(doc) + b"\n")
            self.metrics.store_rejected.inc()
            self.log(f"the store refused session {rejected.session_id}: {rejected.reason}; kept in {self._rejected_path}")
        with open(self._rejected_path, "ab") as handle:
            handle.write(b"".join(lines))
            handle.flush()
            os.fsync(handle.fileno())


__all__ = ["Flusher", "is_transient", "open_for_flush"]
