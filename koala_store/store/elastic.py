"""The Elasticsearch backend of SessionStore.

Our own layout: daily indices `<prefix>-sessions-YYYY.MM.DD` (by recorded_at, UTC) created
from a composable index template with explicit mappings, read through the alias
`<prefix>-sessions`. `_id` is the SessionId, so writing a session twice keeps one document.
Documents are Koala's recorded JSON plus the derived fields (koala_store.formats.document),
plus full-text copies of the bytes that are indexed but kept out of `_source`.

A Koala recorder's own index (`index=rdebug_index`): documents exactly as Koala posts them.
Only Koala's fields are indexed there, so other conditions are checked in Python after
fetching (still exact, just slower).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from functools import cached_property
from itertools import chain, islice
from typing import TYPE_CHECKING, Any

import msgspec
from elastic_transport import TransportError
from elasticsearch import ApiError, AuthorizationException, Elasticsearch, helpers

from ..errors import StoreError
from ..formats import koala
from ..formats.document import DERIVED_KEYS, from_document, to_document
from ..model import Session, SessionSummary
from ..query import ir
from ..query.fields import FIELDS
from ..query.evaluate import matches
from ..query.text import token_text
from ..summary import summarize
from .base import PutResult, Query, Rejected, SkipLog, Skipped, as_tree, peers_by_scan
from .elastic_client import call as call_translated
from .elastic_client import connect_client, daily_template, item_reason, passing, point_in_time_hits, store_error
from .elastic_config import ElasticConfig, parse_config
from .elastic_query import compile_query

if TYPE_CHECKING:
    from .elastic_runs import ElasticRunStore

BATCH = 500
# Bulk requests under way while the next batch is prepared (see put_many).
IN_FLIGHT = 2
# Full text reaches Elasticsearch with every character that is not part of a token turned into
# a space (koala_store.query.text.token_text), so the standard analyzer (in every distribution,
# unlike the pattern tokenizer) yields the same tokens SQLite's FTS5 indexes.
TEXT = {"type": "text", "analyzer": "standard"}
KEYWORD = {"type": "keyword", "ignore_above": 8191}
# Kept in the index, out of _source: full-text copies of bytes the Koala part already holds.
EXCLUDED_FROM_SOURCE = ["inbound.request", "inbound.response", "outbound.request", "outbound.response"]
STORE_KEYS = ("recorded_at_ns", "body_hash")


def sessions_template(prefix: str) -> dict[str, Any]:
    """The composable index template for `<prefix>-sessions-*`."""
    return daily_template(
        f"{prefix}-sessions",
        {
            "dynamic": False,
            "_source": {"excludes": EXCLUDED_FROM_SOURCE},
            "properties": {
                "SessionId": KEYWORD,
                "ThreadId": {"type": "long"},
                "TraceId": KEYWORD,
                "recorded_at": {"type": "date_nanos"},
                "recorded_at_ns": {"type": "long"},
                "body_hash": {"type": "keyword", "index": False},
                "outbound_count": {"type": "integer"},
                "inbound": {
                    "properties": {
                        "method": KEYWORD,
                        "path": KEYWORD,
                        "query": KEYWORD,
                        "host": KEYWORD,
                        "status": {"type": "integer"},
                        "content_type": KEYWORD,
                        "latency_ms": {"type": "double"},
                        "request": TEXT,
                        "response": TEXT,
                        "request_size": {"type": "long"},
                        "response_size": {"type": "long"},
                    }
                },
                "outbound": {
                    "properties": {
                        "peer": KEYWORD,
                        "protocol": KEYWORD,
                        "method": KEYWORD,
                        "path": KEYWORD,
                        "request": TEXT,
                        "response": TEXT,
                        "request_size": {"type": "long"},
                        "response_size": {"type": "long"},
                    }
                },
            },
        },
    )


OUR_PATHS = {
    "session_id": "SessionId",
    "recorded_at": "recorded_at_ns",
    "thread_id": "ThreadId",
    "trace_id": "TraceId",
    "inbound.method": "inbound.method",
    "inbound.path": "inbound.path",
    "inbound.query": "inbound.query",
    "inbound.host": "inbound.host",
    "inbound.status": "inbound.status",
    "inbound.content_type": "inbound.content_type",
    "inbound.latency_ms": "inbound.latency_ms",
    "inbound.request": "inbound.request",
    "inbound.response": "inbound.response",
    "outbound.peer": "outbound.peer",
    "outbound.protocol": "outbound.protocol",
    "outbound.method": "outbound.method",
    "outbound.path": "outbound.path",
    "outbound.request": "outbound.request",
    "outbound.response": "outbound.response",
    "outbound.count": "outbound_count",
}
OUR_EXISTS_PATHS = {
    "inbound.request": "inbound.request_size",
    "inbound.response": "inbound.response_size",
    "outbound.request": "outbound.request_size",
    "outbound.response": "outbound.response_size",
}


def _day(ns: int) -> str:
    return datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc).strftime("%Y.%m.%d")


def _body_hash(session: Session) -> str:
    return hashlib.blake2b(_msgpack(session), digest_size=16).hexdigest()


_msgpack = msgspec.msgpack.Encoder().encode
_KOALA_SESSION_ID = re.compile(r"^(\d{16,19})-")


def session_day(session_id: str, recorded_at: int) -> str:
    """The day a session's index is named after. Koala's SessionIds start with the session's
    unix nanoseconds: using them makes a SessionId's index fixed, so writing it again always
    meets the same document; other ids fall back to recorded_at."""
    match = _KOALA_SESSION_ID.match(session_id)
    return _day(int(match.group(1)) if match else recorded_at)


class OurLayout:
    """koala-store's own indices: derived fields, full text, daily indices behind an alias."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.read_target = f"{prefix}-sessions"
        self.paths, self.exists_paths = OUR_PATHS, OUR_EXISTS_PATHS
        self.sort = [{"recorded_at_ns": "asc"}, {"SessionId": "asc"}]

    def index_for(self, summary: SessionSummary) -> str:
        return f"{self.prefix}-sessions-{session_day(summary.session_id, summary.recorded_at)}"

    def document(self, session: Session, summary: SessionSummary) -> dict[str, Any]:
        doc = to_document(session, summary)
        doc["recorded_at_ns"] = summary.recorded_at
        doc["body_hash"] = _body_hash(session)
        inbound = doc["inbound"]
        for key, data in (("request", session.call_from_inbound.request), ("response", session.response)):
            if data:
                inbound[key] = token_text(data)
                inbound[f"{key}_size"] = len(data)
        for out, call in zip(doc["outbound"], session.outbound_calls, strict=True):
            for key, data in (("request", call.request), ("response", call.response)):
                if data:
                    out[key] = token_text(data)
                    out[f"{key}_size"] = len(data)
        return doc

    def session(self, source: dict[str, Any]) -> Session:
        return from_document({k: v for k, v in source.items() if k not in STORE_KEYS})

    def same(self, stored: dict[str, Any], doc: dict[str, Any]) -> bool:
        return stored.get("body_hash") == doc["body_hash"]

    def read_mapping(self, client: Elasticsearch) -> None:
        """Nothing to learn: our mapping is fixed."""

    def create(self, client: Elasticsearch) -> None:
        """The index template (the daily indices appear with the first document of each day)."""
        client.indices.put_index_template(name=f"{self.prefix}-sessions", **sessions_template(self.prefix))


class RecorderLayout:
    """An index a Koala recorder posts to (e.g. rdebug_index): Koala's JSON and nothing else."""

    def __init__(self, index: str):
        self.read_target = index
        self.paths: dict[str, str] = {}
        self.exists_paths: dict[str, str] = {}
        self.sort: list[Any] = []

    def index_for(self, summary: SessionSummary) -> str:
        return self.read_target

    def document(self, session: Session, summary: SessionSummary) -> dict[str, Any]:
        return koala.to_dict(session)

    def session(self, source: dict[str, Any]) -> Session:
        return koala.from_dict({k: v for k, v in source.items() if k not in DERIVED_KEYS + STORE_KEYS})

    def same(self, stored: dict[str, Any], doc: dict[str, Any]) -> bool:
        return stored == doc

    def create(self, client: Elasticsearch) -> None:
        """The index with rdebug's mapping, when it does not exist yet."""
        if not client.indices.exists(index=self.read_target):
            client.options(ignore_status=400).indices.create(  # 400: created meanwhile
                index=self.read_target,
                mappings={"properties": {"SessionId": {"type": "keyword"}, "NextSessionId": {"type": "keyword"}}},
                settings={"auto_expand_replicas": "0-1"},
            )
        self.read_mapping(client)

    def read_mapping(self, client: Elasticsearch) -> None:
        """Learn where Koala's fields are (keyword, or text with .keyword). A missing index
        has none yet: it reads as empty, and is created by the first write."""
        if not client.indices.exists(index=self.read_target):
            return
        mapping = client.indices.get_mapping(index=self.read_target)
        properties: dict[str, Any] = {}
        for index_mapping in mapping.body.values():
            properties.update(index_mapping.get("mappings", {}).get("properties", {}))

        def exact(name: str) -> str | None:
            spec = properties.get(name, {})
            if spec.get("type") in ("keyword", "long", "integer"):
                return name
            if "keyword" in spec.get("fields", {}):
                return f"{name}.keyword"
            return None

        self.paths, self.sort = {}, []
        session_id = exact("SessionId")
        occurred = properties.get("CallFromInbound", {}).get("properties", {}).get("OccurredAt", {})
        for field, path in (("session_id", session_id), ("thread_id", exact("ThreadId")), ("trace_id", exact("TraceId"))):
            if path:
                self.paths[field] = path
        if occurred.get("type") == "long":
            self.paths["recorded_at"] = "CallFromInbound.OccurredAt"
            self.sort.append({"CallFromInbound.OccurredAt": "asc"})
        self.sort.append({session_id: "asc"} if session_id else "_shard_doc")


class ElasticStore:
    """SessionStore on Elasticsearch 8.x (see the module docstring for the layout)."""

    def __init__(
        self,
        url: str | ElasticConfig,
        *,
        index: str | None = None,
        prefix: str | None = None,
        api_key: str | None = None,
        ca_certs: str | None = None,
        verify_certs: bool | None = None,
        retry_for: float | None = None,
        request_timeout: float = 30.0,
        readonly: bool = False,
        connect: bool = True,
    ):
        """A store for a URL (or a parsed config). Building it makes no request; `connect()`
        (done here unless connect=False) checks the cluster answers and reads a recorder
        index's mapping. Nothing is created before the first write or `init()`."""
        if isinstance(url, ElasticConfig):
            self.config = url
        else:
            self.config = parse_config(
                url,
                index=index,
                prefix=prefix,
                api_key=api_key,
                ca_certs=ca_certs,
                verify_certs=verify_certs,
                retry_for=retry_for,
                request_timeout=request_timeout,
            )
        config = self.config
        self.url = config.url
        self.base_url = config.base_url
        self.prefix = config.prefix
        self.readonly = readonly
        self.retry_for = config.retry_for
        # Set once a write has given up on an unreachable cluster: later batches try once
        # instead of waiting the whole retry window again. Cleared by the next success.
        self._unreachable = False
        self._created = False
        self._skips = SkipLog()
        own = f"{config.prefix}-sessions"
        self.layout: OurLayout | RecorderLayout = RecorderLayout(config.index) if config.index and config.index != own else OurLayout(config.prefix)
        self.client = connect_client(config)
        if connect:
            self.connect()

    def connect(self) -> None:
        """One request to see the cluster answers (a clear error now, not after retrying
        writes for retry_for seconds), then what reading needs to know."""
        try:
            self.client.cluster.health()
        except AuthorizationException:
            pass  # a key without cluster rights may still have rights on the index
        except (TransportError, ApiError) as exc:
            raise store_error(exc, self.base_url) from None
        self._call(lambda: self.layout.read_mapping(self.client))

    def init(self) -> None:
        """Create the templates and indices sessions and replay runs go to (idempotent)."""
        self._ensure_created()
        self._call(lambda: self.runs.create())  # type: ignore[attr-defined]

    def _ensure_created(self) -> None:
        """Before the first write: the template (or a recorder index) it needs."""
        if self.readonly:
            raise StoreError(f"{self.url} was opened read-only; this command cannot write to it")
        if not self._created:
            try:
                self._retrying(lambda: self.layout.create(self.client))
            except _GaveUp as gave_up:
                raise StoreError(gave_up.reason) from None
            self._created = True

    @property
    def skipped(self) -> list[Skipped]:
        return self._skips.items

    def _call(self, action: Callable[[], Any]) -> Any:
        return call_translated(action, self.base_url)

    # --- writing -----------------------------------------------------------------------

    def put_many(self, sessions: Iterable[Session]) -> PutResult:
        """Write in batches, with up to IN_FLIGHT bulk requests under way while the next batch
        is prepared: Elasticsearch indexes each request on one thread, so overlapping keeps
        its cores busy, and our side never waits idle.

        Each session is first *created* under its SessionId: new sessions (the usual case)
        cost one bulk item and no lookup. Only when one already exists does its stored hash
        decide between "unchanged" and a replacement.
        """
        result = PutResult()
        iterator = iter(sessions)
        first = list(islice(iterator, 1))
        if not first:
            return result
        self._ensure_created()
        iterator = chain(first, iterator)
        # helpers.parallel_bulk would overlap requests too, but a connection lost in one of
        # its threads ends the whole generator without saying which items were answered;
        # two plain futures keep that bookkeeping exact.
        with ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix="koala-bulk") as sender:
            in_flight: deque[Future[PutResult]] = deque()
            while batch := list(islice(iterator, BATCH)):
                prepared = self._prepare(batch, result)
                if len(in_flight) >= IN_FLIGHT:
                    result.add(in_flight.popleft().result())
                in_flight.append(sender.submit(self._write, *prepared))
            while in_flight:
                result.add(in_flight.popleft().result())
        return result

    def _prepare(self, batch: list[Session], result: PutResult) -> tuple[dict[str, tuple[str, dict[str, Any]]], list[dict[str, Any]]]:
        """Documents by SessionId, and deletions of copies stored elsewhere (another day's
        index after recorded_at changed, or a recorder's document under an id of its own)."""
        docs: dict[str, tuple[str, dict[str, Any]]] = {}
        for session in batch:
            summary = summarize(session)
            docs[session.session_id] = (self.layout.index_for(summary), self.layout.document(session, summary))  # last wins
        try:
            elsewhere = self._retrying(lambda: self._copies_elsewhere(docs))
        except _GaveUp as gave_up:
            result.rejected += [Rejected(sid, gave_up.reason, transient=True) for sid in docs]
            return {}, []
        return docs, [{"_op_type": "delete", "_index": index, "_id": doc_id} for index, doc_id in elsewhere]

    def _copies_elsewhere(self, docs: dict[str, tuple[str, dict[str, Any]]]) -> list[tuple[str, str]]:
        ours = isinstance(self.layout, OurLayout)
        id_path = "_id" if ours else self.layout.paths.get("session_id")
        # A Koala SessionId always names the same index (session_day), so only other ids can
        # have a copy elsewhere in our indices; a recorder's index may hold any of them.
        ids = [sid for sid in docs if not ours or not _KOALA_SESSION_ID.match(sid)]
        if not ids or not id_path:
            return []
        query = {"ids": {"values": ids}} if ours else {"terms": {id_path: ids}}
        hits = self.client.search(
            index=self.layout.read_target, query=query, size=len(ids) * 2, source=not ours, ignore_unavailable=True, allow_no_indices=True
        )["hits"]["hits"]
        copies = []
        for hit in hits:
            sid = hit["_id"] if ours else hit["_source"].get("SessionId")
            if sid in docs and (hit["_index"], hit["_id"]) != (docs[sid][0], sid):
                copies.append((hit["_index"], hit["_id"]))
        return copies

    def _write(self, docs: dict[str, tuple[str, dict[str, Any]]], deletions: list[dict[str, Any]]) -> PutResult:
        result = PutResult()
        creates = [{"_op_type": "create", "_index": index, "_id": sid, "_source": doc} for sid, (index, doc) in docs.items()]
        conflicts, retried = self._bulk(deletions + creates, result)
        if not conflicts:
            return result
        try:
            stored = self._retrying(lambda: self._stored_docs(conflicts, docs))
        except _GaveUp as gave_up:
            result.rejected += [Rejected(sid, gave_up.reason, transient=True) for sid in conflicts]
            return result
        replacements = []
        for sid in conflicts:
            index, doc = docs[sid]
            if sid in stored and self.layout.same(stored[sid], doc):
                # A create retried after a lost answer finds its own first attempt.
                if sid in retried:
                    result.stored += 1
                else:
                    result.unchanged += 1
            else:
                replacements.append({"_op_type": "index", "_index": index, "_id": sid, "_source": doc})
        self._bulk(replacements, result)
        return result

    def _stored_docs(self, ids: list[str], docs: dict[str, tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
        source: bool | list[str] = ["body_hash"] if isinstance(self.layout, OurLayout) else True
        got = self.client.mget(docs=[{"_index": docs[sid][0], "_id": sid} for sid in ids], _source=source)
        return {item["_id"]: item.get("_source", {}) for item in got["docs"] if item.get("found")}

    def _bulk(self, actions: list[dict[str, Any]], result: PutResult) -> tuple[list[str], set[str]]:
        """Streaming bulk. Retries are the client's (429, 502-504, timeouts) and the helper's
        (items refused with 429, with backoff); this keeps the bookkeeping: items left
        unanswered because the cluster is away are sent again while `_waiting()` allows,
        then named as not stored, and other failures are rejected by name.
        Returns the SessionIds whose `create` found one already stored, and those retried."""
        conflicts: list[str] = []
        retried: set[str] = set()
        pending = actions
        waiting = self._waiting()
        while pending:
            retry = []
            by_key = {(a["_id"], a["_op_type"]): a for a in pending}
            answered: set[tuple[str, str]] = set()
            try:
                for ok, item in helpers.streaming_bulk(
                    self.client,
                    pending,
                    chunk_size=BATCH,
                    max_chunk_bytes=50 * 1024 * 1024,
                    raise_on_error=False,
                    raise_on_exception=False,
                    max_retries=3,
                    initial_backoff=0.5,
                    max_backoff=8,
                ):
                    op_type, info = next(iter(item.items()))
                    status = info.get("status")
                    answered.add((info["_id"], op_type))
                    if ok:
                        result.stored += op_type != "delete"
                        self._unreachable = False
                    elif op_type == "delete" and status == 404:
                        pass  # already gone
                    elif op_type == "create" and status == 409:
                        conflicts.append(info["_id"])
                    elif status == "N/A" or status in (408, 429) or (isinstance(status, int) and status >= 500):
                        retry.append(by_key[(info["_id"], op_type)])
                    else:
                        result.rejected.append(Rejected(info["_id"], item_reason(info)))
            except TransportError:
                # The connection went (the helper only catches API errors): every item not
                # answered yet is tried again.
                retry += [a for key, a in by_key.items() if key not in answered]
            if not retry:
                break
            if not next(waiting):
                result.rejected += [Rejected(a["_id"], self._unavailable(), transient=True) for a in retry if a["_op_type"] != "delete"]
                break
            pending = retry
            retried.update(a["_id"] for a in retry)
        return conflicts, retried

    def _waiting(self) -> Iterator[bool]:
        """The one wait for a cluster that is away: each next() sleeps with backoff and says
        whether to try again, for up to retry_for seconds (none once a write gave up, until
        something succeeds)."""
        deadline = time.monotonic() + (0 if self._unreachable else self.retry_for)
        delay = 0.5
        while True:
            if time.monotonic() + delay > deadline:
                self._unreachable = True
                while True:
                    yield False
            time.sleep(delay)
            delay = min(delay * 2, 8)
            yield True

    def _unavailable(self) -> str:
        return f"not stored: Elasticsearch at {self.base_url} stayed unavailable for {self.retry_for:.0f} s; ingest it again when it is back"

    def _retrying(self, action: Callable[[], Any]) -> Any:
        """Run a request while the cluster is away only for a while (restarting, overloaded);
        a failure that will not pass is one StoreError, a cluster that stays away _GaveUp."""
        waiting = self._waiting()
        while True:
            try:
                result = action()
                self._unreachable = False
                return result
            except (TransportError, ApiError) as exc:
                if not passing(exc):
                    raise store_error(exc, self.base_url) from None
                if not next(waiting):
                    raise _GaveUp(self._unavailable()) from None

    # --- reading -----------------------------------------------------------------------

    def refresh(self, progress: Callable[[int], None] | None = None) -> None:
        """Elasticsearch indexes as it writes: this only makes the writes visible."""
        self._call(lambda: self.client.indices.refresh(index=self.layout.read_target, ignore_unavailable=True, allow_no_indices=True))

    def pending_text(self) -> int:
        return 0

    def get(self, session_id: str) -> Session | None:
        return next(iter(self.scan(ir.Term(FIELDS["session_id"], session_id), limit=1)), None)

    def _compile(self, query: Query) -> tuple[ir.Node, dict[str, Any], bool]:
        tree = as_tree(query)
        dsl, residual = compile_query(tree, self.layout.paths, self.layout.exists_paths)
        return tree, dsl, residual

    def count(self, query: Query = "*", *, at_most: int | None = None) -> int:
        tree, dsl, residual = self._compile(query)
        if residual:
            return sum(1 for _ in self.scan(tree, limit=None if at_most is None else at_most + 1))
        if at_most is not None:  # hits counted up to at_most + 1, then "gte"
            bounded = self._call(
                lambda: self.client.search(
                    index=self.layout.read_target, query=dsl, size=0, track_total_hits=at_most + 1, ignore_unavailable=True, allow_no_indices=True
                )
            )
            return min(bounded["hits"]["total"]["value"], at_most + 1)
        reply = self._call(lambda: self.client.count(index=self.layout.read_target, query=dsl, ignore_unavailable=True, allow_no_indices=True))
        return reply["count"]

    def outbound_peers(self, query: Query = "*") -> dict[str, int]:
        tree, dsl, residual = self._compile(query)
        if residual or isinstance(self.layout, RecorderLayout):
            return peers_by_scan(self.scan(tree))
        reply = self._call(
            lambda: self.client.search(
                index=self.layout.read_target,
                query=dsl,
                size=0,
                aggs={"peers": {"terms": {"field": "outbound.peer", "size": 10000}}},
                ignore_unavailable=True,
                allow_no_indices=True,
            )
        )
        buckets = reply.get("aggregations", {}).get("peers", {}).get("buckets", [])
        return {bucket["key"]: bucket["doc_count"] for bucket in buckets}

    def _hits(self, dsl: dict[str, Any], *, source: bool | list[str] = True) -> Iterator[dict[str, Any]]:
        """Every hit, in sort order (bounded memory); failures become one StoreError."""
        hits = point_in_time_hits(self.client, self.layout.read_target, dsl, self.layout.sort, source=source)
        try:
            while True:
                hit = self._call(lambda: next(hits, None))
                if hit is None:
                    return
                yield hit
        finally:
            hits.close()

    def _session(self, hit: dict[str, Any], tree: ir.Node | None = None) -> Session | None:
        """The hit as a session (None when `tree` is given and it does not match). A document
        that does not convert is named in `skipped` and passed over: one bad document
        (a recorder's null field, a hand-made one) never breaks a scan."""
        try:
            session = self.layout.session(hit["_source"])
            if tree is not None and not matches(tree, session):
                return None
            return session
        except Exception as exc:  # any document at all may be in the index: whatever it is, name it
            source = hit.get("_source") or {}
            sid = source.get("SessionId") if isinstance(source, dict) else None
            name = hit["_id"] if sid in (None, hit["_id"]) else f"{hit['_id']} (SessionId {sid})"
            self._skips.add(f"{hit['_index']}/{name}", str(exc) or type(exc).__name__)
            return None

    def scan(self, query: Query = "*", *, limit: int | None = None) -> Iterator[Session]:
        tree, dsl, residual = self._compile(query)
        if limit is not None and limit <= 0:
            return
        produced = 0
        hits = self._hits(dsl)
        try:
            for hit in hits:
                session = self._session(hit, tree if residual else None)
                if session is None:
                    continue
                yield session
                produced += 1
                if limit is not None and produced >= limit:
                    return
        finally:
            hits.close()

    def delete(self, query: Query) -> int:
        """Delete matches; on a recorder's index, a document that does not convert cannot be
        told to match, so it is kept and named in `skipped`."""
        if self.readonly:
            raise StoreError(f"{self.url} was opened read-only; this command cannot write to it")
        tree, dsl, residual = self._compile(query)
        hits = self._hits(dsl, source=residual)  # a point in time: deleting does not shift pages
        doomed = ({"_op_type": "delete", "_index": hit["_index"], "_id": hit["_id"]} for hit in hits if not residual or self._session(hit, tree) is not None)
        deleted = 0
        try:
            while chunk := list(islice(doomed, BATCH)):
                for ok, item in helpers.streaming_bulk(self.client, chunk, raise_on_error=False, raise_on_exception=False):
                    info = next(iter(item.values()))
                    if ok:
                        deleted += 1
                    elif info.get("status") != 404:
                        raise StoreError(f"Elasticsearch did not delete session {info.get('_id')}: {item_reason(info)}")
        finally:
            hits.close()
        self.refresh()
        return deleted

    @cached_property
    def runs(self) -> "ElasticRunStore":
        """Replay runs and comparisons, beside the sessions (`<prefix>-replays-*`, `<prefix>-runs`)."""
        from .elastic_runs import ElasticRunStore

        return _Translated(ElasticRunStore(self.client, self.prefix), self.base_url)  # type: ignore[return-value]

    def close(self) -> None:
        self.client.close()


class _Translated:
    """Another object's methods, their failures (also while iterating what they return) as
    one StoreError."""

    def __init__(self, target: Any, base_url: str):
        self._target = target
        self._base_url = base_url

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not callable(attribute):
            return attribute

        def translated(*args: Any, **kwargs: Any) -> Any:
            result = call_translated(lambda: attribute(*args, **kwargs), self._base_url)
            return self._iterate(result) if isinstance(result, Iterator) else result

        return translated

    def _iterate(self, items: Iterator[Any]) -> Iterator[Any]:
        while True:
            item = call_translated(lambda: next(items, _END), self._base_url)
            if item is _END:
                return
            yield item


_END = object()


class _GaveUp(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
