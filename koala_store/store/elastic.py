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

import base64
import hashlib
import re
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from functools import cached_property
from itertools import islice
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec
from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import TransportError
from elasticsearch import ApiError, AuthenticationException, AuthorizationException, Elasticsearch, NotFoundError, helpers
from elasticsearch.serializer import OrjsonSerializer

from ..errors import StoreError
from ..formats import koala
from ..formats.document import DERIVED_KEYS, from_document, to_document
from ..model import Session, SessionSummary
from ..query import ir
from ..query.fields import FIELDS
from ..query.evaluate import matches
from ..query.text import token_text
from ..summary import summarize
from .base import PutResult, Query, Rejected, as_tree, peers_by_scan
from .elastic_query import compile_query

if TYPE_CHECKING:
    from .elastic_runs import ElasticRunStore

BATCH = 500
IN_FLIGHT = 2
PAGE = 500
KEEP_ALIVE = "2m"
# Full text reaches Elasticsearch with every character that is not part of a token turned into
# a space (koala_store.query.text.token_text), so the standard analyzer (in every distribution,
# unlike the pattern tokenizer) yields the same tokens SQLite's FTS5 indexes.
TEXT = {"type": "text", "analyzer": "standard"}
KEYWORD = {"type": "keyword", "ignore_above": 8191}
# Kept in the index, out of _source: full-text copies of bytes the Koala part already holds.
EXCLUDED_FROM_SOURCE = ["inbound.request", "inbound.response", "outbound.request", "outbound.response"]
STORE_KEYS = ("recorded_at_ns", "body_hash")


def daily_template(alias: str, mappings: dict[str, Any]) -> dict[str, Any]:
    """A composable index template for daily indices `<alias>-YYYY.MM.DD`, all behind `alias`
    (one shard each; a replica once the cluster has a second node)."""
    return {
        "index_patterns": [f"{alias}-*"],
        "priority": 200,
        "template": {
            "aliases": {alias: {}},
            "settings": {"number_of_shards": 1, "auto_expand_replicas": "0-1"},
            "mappings": mappings,
        },
    }


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

    def prepare(self, client: Elasticsearch) -> None:
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

    def prepare(self, client: Elasticsearch) -> None:
        """Learn where Koala's fields are (keyword or text with .keyword); create the index
        with rdebug's mapping when it does not exist yet."""
        if not client.indices.exists(index=self.read_target):
            client.indices.create(
                index=self.read_target,
                mappings={"properties": {"SessionId": {"type": "keyword"}, "NextSessionId": {"type": "keyword"}}},
                settings={"auto_expand_replicas": "0-1"},
            )
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

        session_id = exact("SessionId")
        occurred = properties.get("CallFromInbound", {}).get("properties", {}).get("OccurredAt", {})
        for field, path in (("session_id", session_id), ("thread_id", exact("ThreadId")), ("trace_id", exact("TraceId"))):
            if path:
                self.paths[field] = path
        if occurred.get("type") == "long":
            self.paths["recorded_at"] = "CallFromInbound.OccurredAt"
            self.sort.append({"CallFromInbound.OccurredAt": "asc"})
        self.sort.append({session_id: "asc"} if session_id else "_shard_doc")


def point_in_time_hits(
    client: Elasticsearch, index: str, query: dict[str, Any], sort: list[Any], *, source: bool | list[str] = True
) -> Iterator[dict[str, Any]]:
    """Every hit of a query, in sort order, through a point in time and search_after: bounded
    memory at any size, and a stable view while documents change. No index: no hits."""
    try:
        pit = client.open_point_in_time(index=index, keep_alive=KEEP_ALIVE)["id"]
    except NotFoundError:
        return
    try:
        after = None
        while True:
            body: dict[str, Any] = {"query": query, "sort": sort, "size": PAGE, "pit": {"id": pit, "keep_alive": KEEP_ALIVE}, "_source": source}
            if after is not None:
                body["search_after"] = after
            reply = client.search(**body)
            hits = reply["hits"]["hits"]
            pit = reply.get("pit_id", pit)
            yield from hits
            if len(hits) < PAGE:
                return
            after = hits[-1]["sort"]
    finally:
        try:
            client.close_point_in_time(id=pit)
        except (TransportError, ApiError):
            pass  # it expires by itself


def _truthy(value: str) -> bool:
    return value.strip().lower() not in ("0", "false", "no", "off")


class ElasticStore:
    """SessionStore on Elasticsearch 8.x (see the module docstring for the layout)."""

    def __init__(
        self,
        url: str,
        *,
        index: str | None = None,
        prefix: str | None = None,
        api_key: str | None = None,
        ca_certs: str | None = None,
        verify_certs: bool | None = None,
        retry_for: float = 60.0,
        request_timeout: float = 30.0,
    ):
        parts = urlsplit(url)
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        host = parts.hostname or "127.0.0.1"
        port = parts.port or (443 if parts.scheme == "https" else 9200)
        self.base_url = f"{parts.scheme}://{'[' + host + ']' if ':' in host else host}:{port}"
        env = os.environ
        index = index or params.get("index")
        prefix = prefix or params.get("prefix") or "koala"
        # One way to log in, the most specific first: an API key given here or in the URL, a
        # user in the URL, then the environment's API key, then its user.
        api_key = api_key or params.get("api_key")
        user = password = None
        if not api_key and parts.username:
            user, password = unquote(parts.username), unquote(parts.password or "")
        elif not api_key and env.get("KOALA_ES_API_KEY"):
            api_key = env["KOALA_ES_API_KEY"]
        elif not api_key and env.get("KOALA_ES_USER"):
            user, password = env["KOALA_ES_USER"], env.get("KOALA_ES_PASSWORD", "")
        ca_certs = ca_certs or params.get("ca_certs") or env.get("KOALA_ES_CA_CERT")
        if verify_certs is None:
            verify_certs = _truthy(params.get("verify_certs", env.get("KOALA_ES_VERIFY", "true")))
        shown = {"index": index} if index else ({"prefix": prefix} if prefix != "koala" else {})
        self.url = self.base_url + "".join(f"{'?' if i == 0 else '&'}{k}={v}" for i, (k, v) in enumerate(shown.items()))
        self.retry_for = float(params.get("retry_for", retry_for))
        # Set once a write has given up on an unreachable cluster: later batches try once
        # instead of waiting the whole retry window again. Cleared by the next success.
        self._unreachable = False
        options: dict[str, Any] = {
            "request_timeout": request_timeout,
            "max_retries": 1,
            "retry_on_timeout": True,
            "serializer": OrjsonSerializer(),  # several times faster than json for bulk bodies
        }
        if user:
            # Encoded here: the client would encode a (user, password) pair as ASCII only.
            options["basic_auth"] = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
        if api_key:
            options["api_key"] = api_key
        if parts.scheme == "https":
            if ca_certs:
                if not os.path.exists(ca_certs):
                    raise StoreError(f"CA certificate {ca_certs} does not exist; pass the PEM file that signed Elasticsearch's certificate")
                options["ca_certs"] = ca_certs
            options["verify_certs"] = verify_certs
            if not verify_certs:
                options["ssl_show_warn"] = False
        self.client = Elasticsearch(self.base_url, **options)
        self.prefix = prefix
        self.layout: OurLayout | RecorderLayout = RecorderLayout(index) if index and index != f"{prefix}-sessions" else OurLayout(prefix)
        self._call(lambda: self.client.cluster.health(), reachable_only=True)
        self._call(lambda: self.layout.prepare(self.client))

    # --- errors ------------------------------------------------------------------------

    def _call(self, action: Callable[[], Any], *, reachable_only: bool = False) -> Any:
        """Run one request; turn failures into one StoreError that says what to do."""
        try:
            return action()
        except AuthenticationException:
            raise StoreError(f"Elasticsearch at {self.base_url} refused the credentials (401); check the user and password in --store or the API key") from None
        except AuthorizationException as exc:
            if reachable_only:
                return None
            raise StoreError(f"Elasticsearch at {self.base_url} does not allow this ({exc.message}); use a user or API key with rights on the index") from None
        except TransportConnectionError as exc:
            text = str(exc).upper()
            if "CERTIFICATE" in text or "SSL" in text:
                hint = "; for a self-signed certificate pass ca_certs=/path/ca.pem (or verify_certs=false) in --store"
            elif self.base_url.startswith("http:") and ("CLOSED CONNECTION WITHOUT RESPONSE" in text or "RESET" in text):
                hint = "; if the cluster serves HTTPS, write https:// in --store"
            else:
                hint = "; start it (koala es start) or check --store"
            raise StoreError(f"cannot reach Elasticsearch at {self.base_url}: {_reason(exc)}{hint}") from None
        except TransportError as exc:
            raise StoreError(f"Elasticsearch at {self.base_url} failed: {_reason(exc)}") from None
        except ApiError as exc:
            raise StoreError(f"Elasticsearch at {self.base_url} answered {exc.meta.status}: {_reason(exc)}") from None

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
            result.rejected += [Rejected(sid, gave_up.reason) for sid in docs]
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
            result.rejected += [Rejected(sid, gave_up.reason) for sid in conflicts]
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
        """Streaming bulk. Items failing for a passing reason (429, 5xx, connection lost) are
        retried with backoff for up to retry_for seconds; others are rejected by name.
        Returns the SessionIds whose `create` found one already stored, and those retried."""
        conflicts: list[str] = []
        retried: set[str] = set()
        pending = actions
        deadline = time.monotonic() + (0 if self._unreachable else self.retry_for)
        delay = 0.5
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
                        result.rejected.append(Rejected(info["_id"], _item_reason(info)))
            except TransportError:
                # The connection went (the helper only catches API errors): every item not
                # answered yet is tried again.
                retry += [a for key, a in by_key.items() if key not in answered]
            if not retry:
                break
            if time.monotonic() + delay > deadline:
                self._unreachable = True
                result.rejected += [Rejected(a["_id"], self._unavailable()) for a in retry if a["_op_type"] != "delete"]
                break
            time.sleep(delay)
            delay = min(delay * 2, 8)
            pending = retry
            retried.update(a["_id"] for a in retry)
        return conflicts, retried

    def _unavailable(self) -> str:
        return f"not stored: Elasticsearch at {self.base_url} stayed unavailable for {self.retry_for:.0f} s; ingest it again when it is back"

    def _retrying(self, action: Callable[[], Any]) -> Any:
        """Run a request again while the cluster is briefly away (restarting, overloaded)."""
        deadline = time.monotonic() + (0 if self._unreachable else self.retry_for)
        delay = 0.5
        while True:
            try:
                result = action()
                self._unreachable = False
                return result
            except (TransportError, ApiError) as exc:
                status = getattr(getattr(exc, "meta", None), "status", None)
                passing = isinstance(exc, TransportError) or status in (408, 429) or (status or 0) >= 500
                if not passing:
                    return self._call(action)  # raises the one clear error
                if time.monotonic() + delay > deadline:
                    self._unreachable = True
                    raise _GaveUp(self._unavailable()) from None
                time.sleep(delay)
                delay = min(delay * 2, 8)

    # --- reading -----------------------------------------------------------------------

    def refresh(self) -> None:
        self._call(lambda: self.client.indices.refresh(index=self.layout.read_target, ignore_unavailable=True, allow_no_indices=True))

    def get(self, session_id: str) -> Session | None:
        return next(iter(self.scan(ir.Term(FIELDS["session_id"], session_id), limit=1)), None)

    def _compile(self, query: Query) -> tuple[ir.Node, dict[str, Any], bool]:
        tree = as_tree(query)
        dsl, residual = compile_query(tree, self.layout.paths, self.layout.exists_paths)
        return tree, dsl, residual

    def count(self, query: Query = "*") -> int:
        tree, dsl, residual = self._compile(query)
        if residual:
            return sum(1 for _ in self.scan(tree))
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

    def scan(self, query: Query = "*", *, limit: int | None = None) -> Iterator[Session]:
        tree, dsl, residual = self._compile(query)
        if limit is not None and limit <= 0:
            return
        produced = 0
        hits = self._hits(dsl)
        try:
            for hit in hits:
                session = self.layout.session(hit["_source"])
                if residual and not matches(tree, session):
                    continue
                yield session
                produced += 1
                if limit is not None and produced >= limit:
                    return
        finally:
            hits.close()

    def delete(self, query: Query) -> int:
        tree, dsl, residual = self._compile(query)
        hits = self._hits(dsl, source=residual)  # a point in time: deleting does not shift pages
        doomed = (
            {"_op_type": "delete", "_index": hit["_index"], "_id": hit["_id"]}
            for hit in hits
            if not residual or matches(tree, self.layout.session(hit["_source"]))
        )
        deleted = 0
        try:
            while chunk := list(islice(doomed, BATCH)):
                for ok, item in helpers.streaming_bulk(self.client, chunk, raise_on_error=False, raise_on_exception=False):
                    info = next(iter(item.values()))
                    if ok:
                        deleted += 1
                    elif info.get("status") != 404:
                        raise StoreError(f"Elasticsearch did not delete session {info.get('_id')}: {_item_reason(info)}")
        finally:
            hits.close()
        self.refresh()
        return deleted

    @cached_property
    def runs(self) -> "ElasticRunStore":
        """Replay runs and comparisons, beside the sessions (`<prefix>-replays-*`, `<prefix>-runs`)."""
        from .elastic_runs import ElasticRunStore

        return self._call(lambda: ElasticRunStore(self.client, self.prefix))

    def close(self) -> None:
        self.client.close()


class _GaveUp(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _reason(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc)
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        root = (error.get("root_cause") or [error])[0]
        return f"{root.get('type')}: {root.get('reason')}"
    return str(message)


def _item_reason(info: dict[str, Any]) -> str:
    error = info.get("error")
    if isinstance(error, dict):
        caused = error.get("caused_by", {})
        detail = f" ({caused.get('type')}: {caused.get('reason')})" if caused else ""
        return f"Elasticsearch rejected it: {error.get('type')}: {error.get('reason')}{detail}"
    return f"Elasticsearch rejected it: {error or info.get('status')}"
