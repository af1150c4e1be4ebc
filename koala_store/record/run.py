"""`koala record`: the proxies, the sessions they make, and the way to the store.

Each finished inbound exchange becomes a session a moment after its response (talks made
while it was served have their answers by then), is redacted, and goes through the durable
spool (koala_store.ingest.spool) to the store in batches: a store outage only fills the
spool. Ctrl-C or SIGTERM stop listening, let requests in flight finish, build their
sessions and fsync them; the flusher then stores what it can in `drain_for` seconds and the
rest waits in the spool for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
from collections.abc import Callable
from typing import Any

import msgspec
import uvicorn

from ..errors import KoalaError
from ..ingest.flush import Flusher
from ..ingest.metrics import CONTENT_TYPE, RecordMetrics
from ..ingest.spool import Spool
from ..model import Peer
from ..redaction import Rules, redact
from ..replay.targets import Address
from .attribution import Attribution, Exchange, Talk
from .proxy import Admission, Recorder

# A session is built this long after its response: the talks made while it was served have
# their last bytes in by then.
BUILD_AFTER_S = 0.02
STATUS_EVERY_S = 10.0


class _QuietServer(uvicorn.Server):
    """uvicorn inside the recorder's loop: the recorder handles the signals."""

    def capture_signals(self):  # type: ignore[override]
        return contextlib.nullcontext()


class OutboundProxy(msgspec.Struct, frozen=True):
    """`--outbound LISTEN=UPSTREAM`: the proxy listens on LISTEN (where the service is told its
    dependency is) and talks to UPSTREAM, the real dependency, the recorded peer."""

    listen: Address
    upstream: Address


class RecordConfig(msgspec.Struct, kw_only=True):
    listen: Address
    target: Address
    outbound: list[OutboundProxy] = msgspec.field(default_factory=list)
    store_url: str
    index: str | None = None
    spool: str = "koala-spool"
    max_spool: int = 1 << 30
    serial: bool = False
    sample: float = 1.0
    allow_url: list[str] = msgspec.field(default_factory=list)
    disallow_url: list[str] = msgspec.field(default_factory=list)
    rules: Rules = msgspec.field(default_factory=Rules)
    metrics: Address | None = None
    batch: int = 500
    drain_for: float = 10.0
    quiet: bool = False


class RecordResult(msgspec.Struct):
    complete: int
    incomplete: int
    unattributed: int
    skipped: int
    spooled: int
    left_in_spool: int
    stopped_by: int | None


def check_config(config: RecordConfig) -> None:
    """One clear error for settings that cannot work."""
    if not 0 < config.sample <= 1:
        raise KoalaError(f"--sample {config.sample:g}: give the share of requests to record, above 0 and at most 1 (e.g. 0.1)")
    for flag, patterns in (("--allow-url", config.allow_url), ("--disallow-url", config.disallow_url)):
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise KoalaError(f"{flag} {pattern!r} is not a regular expression ({exc})") from None
    listens = [str(config.listen)] + [str(o.listen) for o in config.outbound]
    if len(set(listens)) != len(listens):
        raise KoalaError(f"--listen and --outbound listen twice on one address ({', '.join(sorted(listens))}); give each its own")
    for proxy in config.outbound:
        if str(proxy.listen) == str(proxy.upstream):
            raise KoalaError(f"--outbound {proxy.listen}={proxy.upstream} would proxy to itself; listen on another port and point the service there")
    if str(config.listen) == str(config.target):
        raise KoalaError(f"--listen {config.listen} is the --target itself; listen on another port and send clients there")


class Recording:
    """One run of the recording proxies."""

    def __init__(self, config: RecordConfig, log: Callable[[str], None]):
        check_config(config)
        self.config = config
        self.log = log
        self.metrics = RecordMetrics()
        self.spool = Spool(config.spool, max_bytes=config.max_spool)
        self.flusher = Flusher(self.spool, config.store_url, self.metrics, index=config.index, batch=config.batch, log=log)
        self.attribution = Attribution(on_unattributed=self._unattributed)
        self.admission = Admission(serial=config.serial, sample=config.sample, allow=config.allow_url, disallow=config.disallow_url)
        self.recorder = Recorder(self.attribution, self.admission, self._exchange_done, log)
        self.spooled = 0
        self.building: dict[str, asyncio.TimerHandle] = {}
        self.writes: set[asyncio.Future[None]] = set()
        self.stopped_by: int | None = None
        self._unattributed_logged = 0

    # --- sessions ----------------------------------------------------------------------

    def _unattributed(self, talk: Talk) -> None:
        self.metrics.unattributed.inc()
        if self._unattributed_logged < 20:
            self._unattributed_logged += 1
            self.log(f"{talk.describe()} was made while no inbound request was in flight (a pool's health check?); not put into any session")

    def _exchange_done(self, exchange: Exchange) -> None:
        loop = asyncio.get_running_loop()
        self.building[exchange.key] = loop.call_later(BUILD_AFTER_S, self._build, exchange)

    def _build(self, exchange: Exchange) -> None:
        self.building.pop(exchange.key, None)
        session = self.attribution.build(exchange)
        if session is None:
            if not exchange.recorded:
                self.metrics.skipped.inc()
            return
        self.metrics.sessions.labels("incomplete" if session.incomplete else "complete").inc()
        masked = redact(session, self.config.rules)
        if masked is not session:
            self.metrics.redacted.inc(sum(r.count for r in masked.redactions))
        try:
            future = asyncio.wrap_future(self.spool.submit([masked]))
        except KoalaError as exc:
            # The spool is full (the store has been away long): the request was proxied; its
            # session cannot be kept, and that is said, never silent.
            self.metrics.rejected.labels("spool_full").inc()
            self.log(f"session {session.session_id} not recorded: {exc}")
            return
        self.writes.add(future)
        future.add_done_callback(self._written)

    def _written(self, future: asyncio.Future[None]) -> None:
        self.writes.discard(future)
        if future.cancelled() or future.exception() is not None:
            self.log(f"a session could not be written to the spool: {future.exception()}")
            return
        self.spooled += 1
        self.metrics.accepted.inc()
        self.metrics.spooled.inc()
        self.flusher.wake()

    def _build_all_now(self) -> None:
        for key, handle in list(self.building.items()):
            handle.cancel()
            exchange = self.attribution.pending.get(key)
            if exchange is not None:
                self._build(exchange)
        self.building.clear()

    # --- the run -----------------------------------------------------------------------

    async def run(self) -> RecordResult:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def stopping(sig: int) -> None:
            self.stopped_by = sig
            stop.set()

        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stopping, sig)
                installed.append(sig)
        self.flusher.start()
        if self.spool.recovered_sessions:
            self.log(f"{self.spool.recovered_sessions} sessions left in spool {self.spool.folder} by an earlier run go to the store first")
        metrics_server = None
        try:
            c = self.config
            await self.recorder.listen(c.listen.host, c.listen.port, self.recorder.inbound_handler((c.target.host, c.target.port)))
            for proxy in c.outbound:
                peer = Peer(proxy.upstream.host, proxy.upstream.port)
                await self.recorder.listen(proxy.listen.host, proxy.listen.port, self.recorder.outbound_handler((proxy.upstream.host, proxy.upstream.port), peer))
            if c.metrics is not None:
                metrics_server = await self._serve_metrics(c.metrics)
            self.log(
                f"koala record: clients -> {c.listen} -> service {c.target}"
                + "".join(f"; service -> {o.listen} -> {o.upstream}" for o in c.outbound)
                + f"; sessions -> {c.store_url} (spool {self.spool.folder})"
                + (f"; metrics on http://{c.metrics}/metrics" if c.metrics else "")
            )
            await self._until(stop)
        finally:
            await self.recorder.stop_listening()
            await self.recorder.wait_idle(timeout=5)
            self._build_all_now()
            if self.writes:
                await asyncio.wait(list(self.writes), timeout=30)
            if metrics_server is not None:
                metrics_server.should_exit = True
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._metrics_task, 3)
            for sig in installed:
                loop.remove_signal_handler(sig)
            await asyncio.to_thread(self.spool.close)
            left = await asyncio.to_thread(self.flusher.stop, self.config.drain_for)
        counts = self.attribution.counts
        return RecordResult(counts.complete, counts.incomplete, counts.unattributed, counts.skipped, self.spooled, left, self.stopped_by)

    async def _until(self, stop: asyncio.Event) -> None:
        last: tuple[int, ...] = ()
        while True:
            try:
                await asyncio.wait_for(stop.wait(), STATUS_EVERY_S)
                return
            except asyncio.TimeoutError:
                pass
            now = self.status()
            if not self.config.quiet and now != last:
                self.log(self.status_line())
                last = now

    def status(self) -> tuple[int, ...]:
        c = self.attribution.counts
        return (c.complete, c.incomplete, c.unattributed, self.spool.sessions)

    def status_line(self) -> str:
        c = self.attribution.counts
        return (
            f"recorded {c.complete} complete and {c.incomplete} incomplete sessions; {c.unattributed} talks outside any request; "
            f"{self.spool.sessions} sessions waiting in the spool{'' if self.flusher.store_up else ' (store down)'}"
        )

    async def _serve_metrics(self, address: Address) -> Any:
        from starlette.applications import Starlette
        from starlette.responses import Response
        from starlette.routing import Route

        async def metrics(request: Any) -> Response:
            self.metrics.spool_bytes.set(self.spool.bytes)
            self.metrics.spool_sessions.set(self.spool.sessions)
            return Response(self.metrics.text(), media_type=CONTENT_TYPE)

        async def healthz(request: Any) -> Response:
            return Response(b'{"status":"ok"}', media_type="application/json")

        app = Starlette(routes=[Route("/metrics", metrics), Route("/healthz", healthz)])
        server = _QuietServer(uvicorn.Config(app, host=address.host, port=address.port, log_level="warning", access_log=False, lifespan="off"))
        from ..ingest.service import bind

        sock = bind(address.host, address.port)
        self._metrics_task = asyncio.create_task(server.serve(sockets=[sock]))
        return server


def record(config: RecordConfig, log: Callable[[str], None] = print) -> RecordResult:
    """Run the recording proxies until SIGINT/SIGTERM (the library call behind `koala record`)."""
    recording = Recording(config, log)
    try:
        result = asyncio.run(recording.run())
    except OSError as exc:
        raise KoalaError(str(exc)) from None
    log(recording.status_line().replace("waiting in the spool", "left in the spool"))
    return result


__all__ = ["OutboundProxy", "RecordConfig", "RecordResult", "Recording", "record"]
