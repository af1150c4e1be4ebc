"""`koala serve`: the HTTP ingest service recorders post sessions to (Starlette on uvicorn).

- `POST /<index>/_doc`, `/<index>/_doc/<id>`, `/<index>/_create/<id>`: one Koala session per
  request, exactly what Koala's recorder sends with KOALA_RECORD_TO_ES pointing here;
  answered as Elasticsearch answers (201, `_id`, `result`).
- `POST /_bulk`, `/<index>/_bulk`: Elasticsearch's bulk format; `POST /sessions`: NDJSON.
- `GET /healthz`, `GET /metrics` (Prometheus text).

A session is acknowledged (201/202) only once it is fsynced in the spool
(koala_store.ingest.spool); a flusher thread moves it into the store. A full spool answers
429 with Retry-After. Every bad document gets one 4xx sentence saying what is wrong.
Values are redacted (koala_store.redaction) before anything reaches the disk.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import base64
import signal
import socket
import time
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import msgspec
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import KoalaError
from ..model import Session
from ..redaction import Rules, redact
from .documents import DocumentError, Item, check_id, parse_bulk, parse_ndjson, parse_session
from .flush import Flusher
from .metrics import CONTENT_TYPE, IngestMetrics
from .spool import Spool, SpoolError, SpoolFull

DEFAULT_LISTEN = "127.0.0.1:2580"
MAX_DOCUMENT = 16 << 20
MAX_REQUEST = 256 << 20
RETRY_AFTER_S = 2
THREADPOOL_OVER = 64 << 10  # bodies larger than this are parsed off the event loop


class ServeConfig(msgspec.Struct, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 2580
    store_url: str
    index: str | None = None
    spool: str = "koala-spool"
    max_spool: int = 1 << 30
    max_document: int = MAX_DOCUMENT
    max_request: int = MAX_REQUEST
    token: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    rules: Rules = msgspec.field(default_factory=Rules)
    batch: int = 500
    drain_for: float = 10.0


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_config(config: ServeConfig) -> None:
    """One clear error for settings that cannot work."""
    if not is_loopback(config.host) and not config.token:
        raise KoalaError(
            f"--listen {config.host}:{config.port} is reachable from other machines: give a bearer token with --token or $KOALA_SERVE_TOKEN "
            "(recorders then send Authorization: Bearer TOKEN, or put koala:TOKEN@ in KOALA_RECORD_TO_ES), or listen on 127.0.0.1"
        )
    if bool(config.tls_cert) != bool(config.tls_key):
        raise KoalaError("--tls-cert and --tls-key go together: give the certificate and its private key (PEM files)")
    if config.max_document > config.max_request:
        raise KoalaError(f"--max-document {config.max_document} is larger than the request limit {config.max_request}")


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _error(status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> Response:
    # The shape of Elasticsearch's errors, so ES clients show the reason; `message` for people.
    return _json(status, {"error": {"type": reason, "reason": message}, "status": status, "message": message}, headers)


class IngestService:
    """The request handlers, the spool and the flusher."""

    def __init__(self, config: ServeConfig, spool: Spool, metrics: IngestMetrics, flusher: Flusher | None):
        self.config = config
        self.spool = spool
        self.metrics = metrics
        self.flusher = flusher
        self.accepted = 0
        self._seq = 0

    # --- plumbing ----------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        token = self.config.token
        if not token:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return hmac.compare_digest(value.strip().encode(), token.encode())
        if scheme.lower() == "basic":
            # Koala's recorder can only send what its URL holds: http://koala:TOKEN@host/...
            try:
                _, _, password = base64.b64decode(value.strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return hmac.compare_digest(password.encode(), token.encode())
        return False

    def _denied(self) -> Response:
        self.metrics.rejected.labels("unauthorized").inc()
        return _error(401, "unauthorized", "missing or wrong bearer token; send Authorization: Bearer TOKEN (the token koala serve was started with)", {"WWW-Authenticate": 'Bearer realm="koala"'})

    async def _body(self, request: Request, limit: int) -> bytes | Response:
        """The request body (gzip undone), or the 4xx answer when it is too large."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return self._too_large(int(declared), limit)
        chunks = bytearray()
        try:
            async for chunk in request.stream():
                chunks += chunk
                if len(chunks) > limit:
                    return self._too_large(len(chunks), limit)
        except ClientDisconnect:
            return _error(400, "bad_request", "the client went away before sending the whole body")
        data = bytes(chunks)
        if request.headers.get("content-encoding", "").lower() == "gzip":
            try:
                inflater = zlib.decompressobj(47)
                data = inflater.decompress(data, self.config.max_request + 1)
            except zlib.error as exc:
                self.metrics.rejected.labels("bad_request").inc()
                return _error(400, "bad_request", f"Content-Encoding is gzip but the body is not gzip data ({exc})")
            if len(data) > self.config.max_request:
                return self._too_large(len(data), self.config.max_request)
        return data

    def _too_large(self, size: int, limit: int) -> Response:
        self.metrics.rejected.labels("too_large").inc()
        return _error(413, "too_large", f"the request body is {size} bytes or more, over the {limit}-byte limit; send smaller batches or raise --max-document")

    def _redacted(self, sessions: list[Session]) -> list[Session]:
        out = []
        for session in sessions:
            masked = redact(session, self.config.rules)
            if masked is not session:
                self.metrics.redacted.inc(sum(r.count for r in masked.redactions) - sum(r.count for r in session.redactions))
            out.append(masked)
        return out

    async def _spool(self, sessions: list[Session]) -> Response | None:
        """Durably spool sessions; None when done, else the 429/503 answer (nothing kept)."""
        if not sessions:
            return None
        try:
            await asyncio.wrap_future(self.spool.submit(sessions))
        except SpoolFull as exc:
            self.metrics.rejected.labels("spool_full").inc(len(sessions))
            return _error(429, "spool_full", f"{exc}; try again in {RETRY_AFTER_S} s", {"Retry-After": str(RETRY_AFTER_S)})
        except SpoolError as exc:
            return _error(503, "spool_unavailable", str(exc), {"Retry-After": str(RETRY_AFTER_S)})
        self.accepted += len(sessions)
        self.metrics.accepted.inc(len(sessions))
        self.metrics.spooled.inc(len(sessions))
        self.metrics.spool_bytes.set(self.spool.bytes)
        if self.flusher is not None:
            self.flusher.wake()
        return None

    async def _parse(self, fn: Callable[..., Any], data: bytes, *args: Any) -> Any:
        if len(data) > THREADPOOL_OVER:
            return await run_in_threadpool(fn, data, *args)
        return fn(data, *args)

    # --- endpoints ---------------------------------------------------------------------

    async def doc(self, request: Request) -> Response:
        """One session: Koala's recorder's POST, or an explicit id (`_doc/<id>`, `_create/<id>`)."""
        if not self._authorized(request):
            return self._denied()
        index = request.path_params["index"]
        doc_id = request.path_params.get("doc_id")
        data = await self._body(request, self.config.max_document)
        if isinstance(data, Response):
            return data
        try:
            session = await self._parse(parse_session, data, self.config.max_document)
            check_id(session, doc_id)
        except DocumentError as exc:
            self.metrics.rejected.labels(exc.reason).inc()
            return _error(413 if exc.reason == "too_large" else 400, exc.reason, str(exc))
        failed = await self._spool(self._redacted([session]))
        if failed is not None:
            return failed
        self._seq += 1
        return _json(
            201,
            {
                "_index": index,
                "_id": session.session_id,
                "_version": 1,
                "result": "created",
                "_shards": {"total": 1, "successful": 1, "failed": 0},
                "_seq_no": self._seq,
                "_primary_term": 1,
            },
            # A URI: index and id percent-encoded (a header must be Latin-1; an id can be any string).
            {"Location": f"/{quote(index, safe='')}/_doc/{quote(session.session_id, safe='')}"},
        )

    async def bulk(self, request: Request) -> Response:
        """Elasticsearch's bulk API: per-item results, good items kept beside bad ones."""
        if not self._authorized(request):
            return self._denied()
        started = time.perf_counter()
        data = await self._body(request, self.config.max_request)
        if isinstance(data, Response):
            return data
        default_index = request.path_params.get("index", "sessions")
        try:
            items: list[Item] = await self._parse(parse_bulk, data, self.config.max_document, default_index)
        except DocumentError as exc:
            self.metrics.rejected.labels(exc.reason).inc()
            return _error(400, exc.reason, str(exc))
        good = [item for item in items if item.session is not None]
        sessions = self._redacted([item.session for item in good])  # type: ignore[misc]
        failed = await self._spool(sessions)
        if failed is not None:
            return failed
        out = []
        for item in items:
            if item.error is not None:
                self.metrics.rejected.labels(item.error.reason).inc()
                status = 413 if item.error.reason == "too_large" else 400
                out.append({item.action: {"_index": item.index, "_id": item.doc_id, "status": status, "error": {"type": item.error.reason, "reason": f"{item.where}: {item.error}"}}})
            else:
                assert item.session is not None
                self._seq += 1
                out.append({item.action: {"_index": item.index, "_id": item.session.session_id, "_version": 1, "result": "created", "status": 201, "_seq_no": self._seq, "_primary_term": 1}})
        took = int((time.perf_counter() - started) * 1000)
        return _json(200, {"took": took, "errors": any(item.error is not None for item in items), "items": out})

    async def sessions(self, request: Request) -> Response:
        """NDJSON: one session document per line. 202 when all are accepted, 207 when some
        lines were refused (each named), 4xx when none was accepted."""
        if not self._authorized(request):
            return self._denied()
        data = await self._body(request, self.config.max_request)
        if isinstance(data, Response):
            return data
        items: list[Item] = await self._parse(parse_ndjson, data, self.config.max_document)
        if not items:
            self.metrics.rejected.labels("not_json").inc()
            return _error(400, "not_json", "the body holds no session; send NDJSON, one Koala session document per line")
        good = [item.session for item in items if item.session is not None]
        failed = await self._spool(self._redacted(good))  # type: ignore[arg-type]
        if failed is not None:
            return failed
        rejected = [{"line": int(item.where.split()[1]), "reason": item.error.reason, "error": str(item.error)} for item in items if item.error is not None]
        for item in items:
            if item.error is not None:
                self.metrics.rejected.labels(item.error.reason).inc()
        body = {"accepted": len(good), "rejected": rejected}
        if not rejected:
            return _json(202, body)
        if not good:
            first = next(item for item in items if item.error is not None)
            assert first.error is not None
            status = 413 if first.error.reason == "too_large" else 400
            message = f"no session accepted: {first.where}: {first.error}" + (f" (and {len(rejected) - 1} more lines)" if len(rejected) > 1 else "")
            return _json(status, {**body, "error": {"type": first.error.reason, "reason": message}, "message": message})
        return _json(207, body)

    async def healthz(self, request: Request) -> Response:
        flusher = self.flusher
        return _json(
            200,
            {
                "status": "ok",
                "accepted": self.accepted,
                "spool_sessions": self.spool.sessions,
                "spool_bytes": self.spool.bytes,
                "store": "up" if flusher is not None and flusher.store_up else "down",
                "store_error": flusher.last_error if flusher is not None else "",
            },
        )

    async def metrics_text(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._denied()
        self.metrics.spool_bytes.set(self.spool.bytes)
        self.metrics.spool_sessions.set(self.spool.sessions)
        return Response(self.metrics.text(), media_type=CONTENT_TYPE)

    async def root(self, request: Request) -> Response:
        # Elasticsearch clients look here first to learn they talk to a cluster.
        if not self._authorized(request):
            return self._denied()
        return _json(200, {"name": "koala-serve", "tagline": "koala-store ingest service", "version": {"number": "8.19.0"}})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/", self.root, methods=["GET", "HEAD"]),
                Route("/healthz", self.healthz, methods=["GET"]),
                Route("/metrics", self.metrics_text, methods=["GET"]),
                Route("/sessions", self.sessions, methods=["POST"]),
                Route("/_bulk", self.bulk, methods=["POST", "PUT"]),
                Route("/{index}/_bulk", self.bulk, methods=["POST", "PUT"]),
                Route("/{index}/_doc", self.doc, methods=["POST"]),
                Route("/{index}/_doc/{doc_id}", self.doc, methods=["POST", "PUT"]),
                Route("/{index}/_create/{doc_id}", self.doc, methods=["POST", "PUT"]),
            ]
        )


class _Server(uvicorn.Server):
    """uvicorn's server, noting the stopping signal instead of re-raising it after shutdown
    (the spool must be sealed and the flusher drained first)."""

    stopped_by: int | None = None

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.stopped_by = sig
        super().handle_exit(sig, frame)

    def capture_signals(self):  # type: ignore[override]
        import contextlib

        @contextlib.contextmanager
        def capture():
            originals = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in originals.items():
                    signal.signal(sig, handler)

        return capture()


class ServeResult(msgspec.Struct):
    accepted: int
    left_in_spool: int
    stopped_by: int | None


def serve(config: ServeConfig, log: Callable[[str], None] = print) -> ServeResult:
    """Run the ingest service until SIGINT/SIGTERM; then stop accepting, store what the
    drain time allows and leave the rest in the spool (stored at the next start)."""
    check_config(config)
    metrics = IngestMetrics()
    spool = Spool(config.spool, max_bytes=config.max_spool)
    flusher = Flusher(spool, config.store_url, metrics, index=config.index, batch=config.batch, log=log)
    if spool.recovered_sessions:
        log(f"{spool.recovered_sessions} sessions left in spool {spool.folder} by an earlier run go to the store first")
    flusher.start()
    service = IngestService(config, spool, metrics, flusher)
    uv = uvicorn.Config(
        service.app(),
        host=config.host,
        port=config.port,
        ssl_certfile=config.tls_cert,
        ssl_keyfile=config.tls_key,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    server = _Server(uv)
    try:
        listening = bind(config.host, config.port)
    except KoalaError:
        spool.close()
        flusher.stop()
        raise
    scheme = "https" if config.tls_cert else "http"
    log(f"koala serve: listening on {scheme}://{config.host}:{config.port}, storing into {config.store_url}, spool {spool.folder}")
    try:
        server.run(sockets=[listening])
    finally:
        spool.close()
        left = flusher.stop(drain_for=config.drain_for)
    return ServeResult(service.accepted, left, server.stopped_by)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so a busy address is one clear error."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise KoalaError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); stop what listens there or pick another --listen") from None
    sock.set_inheritable(True)
    return sock


__all__ = ["DEFAULT_LISTEN", "IngestService", "ServeConfig", "ServeResult", "check_config", "is_loopback", "serve"]
