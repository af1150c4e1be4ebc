"""Replay sessions from a store against a system under test and compare what comes back.

For each session, in recorded order: its outbound calls are answered by the mock
(koala_store.replay.mock) from the recording, its inbound request goes to the target, and
the response and the side effects are compared with the recording (koala_store.diff). With
--noise-runs N each session is replayed N more times and what varies among those runs is
noise; with --baseline the same happens against a build of the old code, under Diffy's rule.
One Comparison per session and a RunSummary go to the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import os
import re
import signal
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any

import msgspec

import matchers

from .. import diff
from ..diff.exchange import exchange_of
from ..errors import KoalaError, Terminated
from ..formats import escaped
from ..model import Session
from ..results import DIFFERENT, SAME, Comparison, PathCount, RunSummary, Suppressed, UnattributedNote, Verdict
from ..store.base import SessionStore
from ..wire import Protocol
from .inbound import InboundClient, InboundResult, RequestEdits, prepare_request, request_path
from .judge import conclude, judge
from .mock import SESSION_HEADER, OutboundMock, SessionContext
from .mock_process import RemoteContext, RemoteMock, use_process
from .preflight import check_answers, check_peers, recorded_peers
from .targets import Address, OutboundMapping
from ..words import count

FLUSH_EVERY = 200  # comparisons written to the store per batch
TOP_PATHS = 50
FINISHING_PER_WORKER = 4  # sessions a worker may still be comparing while it sends the next
# With --concurrency > 1, at most this many sessions replay one at a time while the run
# learns whether the build passes the session header on (see Replay._probe).
PROBE_SESSIONS = 20
HEADER_CARRIERS = (Protocol.HTTP, Protocol.FASTCGI)  # talks that can carry the session header
# The store thread reads sessions ahead and writes comparisons behind, with slack either way,
# while the event loop is the replay's bottleneck: one thread doing nearly all of its work. With
# the service under test on the same 2 cores, the loop waited for a core 16-19% of the time
# (12-14% with the service in a session of its own) while the thread had the default priority;
# lowered, it gives way to the loop (8-10%). Linux's per-thread nice value, STORE_THREAD_NICE
# above the loop's: raising it needs no privilege.
STORE_THREAD_NICE = 10
Context = SessionContext | RemoteContext  # a session in the mock, in this process or its own


class ReplayOptions(msgspec.Struct, kw_only=True):
    target: Address
    query: str = "*"
    mappings: list[OutboundMapping] = msgspec.field(default_factory=list)
    matcher: str = "fuzzy"
    threshold: float | None = None
    concurrency: int = 1
    rate: float | None = None  # sessions per second
    speed: float | None = None  # recorded pace times this (2.0 = twice as fast)
    limit: int | None = None
    bypass: list[Address] = msgspec.field(default_factory=list)
    diff: diff.DiffOptions = msgspec.field(default_factory=diff.DiffOptions)
    noise_runs: int = 0
    baseline: Address | None = None
    run_name: str | None = None
    edits: RequestEdits = msgspec.field(default_factory=RequestEdits)
    allow_url: list[str] = msgspec.field(default_factory=list)
    disallow_url: list[str] = msgspec.field(default_factory=list)
    timeout: float = 5.0
    settle: float = 0.002  # grace after a response for calls the SUT makes just after it
    include_incomplete: bool = False  # replay sessions recorded as incomplete too
    mock_process: str = "auto"  # the mock in a process of its own: auto, on or off (mock_process.py)
    # The ReplayConfig these options came from (koala_store.replay.config), kept whole in the
    # run so `koala replay --rerun RUN` repeats it; None when built directly by a library user.
    config: dict[str, Any] | None = None


class Counts(msgspec.Struct):
    same: int = 0
    different: int = 0
    error: int = 0
    skipped: int = 0
    skipped_incomplete: int = 0

    def add(self, verdict: Verdict) -> None:
        match verdict:
            case Verdict.SAME:
                self.same += 1
            case Verdict.DIFFERENT:
                self.different += 1
            case Verdict.ERROR:
                self.error += 1


def check_options(options: ReplayOptions) -> None:
    """One clear error for options that cannot work together."""
    if options.concurrency < 1:
        raise KoalaError(f"--concurrency {options.concurrency}: give 1 or more")
    if options.timeout <= 0:
        raise KoalaError(f"--timeout {options.timeout:g}: give the seconds to wait for an answer, e.g. --timeout 5")
    if options.rate is not None and options.speed is not None:
        raise KoalaError("--rate and --speed both set the pace; give one of them")
    if options.rate is not None and options.rate <= 0:
        raise KoalaError(f"--rate {options.rate:g}/s: give a positive rate, e.g. --rate 100/s")
    if options.speed is not None and options.speed <= 0:
        raise KoalaError(f"--speed {options.speed:g}x: give a positive factor, e.g. --speed 2x")
    if options.mock_process not in ("auto", "on", "off"):
        raise KoalaError(f"--mock-process {options.mock_process!r}: give auto, on or off")
    if options.noise_runs and options.baseline:
        raise KoalaError("--noise-runs and --baseline are two ways to find noise; give one of them")
    if options.noise_runs < 0:
        raise KoalaError(f"--noise-runs {options.noise_runs}: give 0 or more")
    for flag, patterns in (("--allow-url", options.allow_url), ("--disallow-url", options.disallow_url)):
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise KoalaError(f"{flag} {pattern!r} is not a regular expression ({exc})") from None
    listens = [str(m.listen) for m in options.mappings]
    if len(set(listens)) != len(listens):
        raise KoalaError(f"--outbound listens twice on the same address ({', '.join(sorted(listens))}); give each mapping its own")
    for mapping in options.mappings:
        if str(mapping.listen) in (str(options.target), str(options.baseline)):
            raise KoalaError(f"--outbound {mapping.listen} is the target's own address; the mock needs an address of its own")


class Replay:
    """One run: the mock, the clients, the store and the bookkeeping."""

    # Slots: the compiled code finds these without searching an instance dictionary.
    __slots__ = (
        "_keys",
        "_last_context",
        "counts",
        "held",
        "mock",
        "noise",
        "options",
        "paths",
        "pending",
        "progress",
        "propagate",
        "recorded_peers",
        "store",
        "store_thread",
        "strategy",
        "summary",
        "suppressed",
    )

    def __init__(self, store: SessionStore, options: ReplayOptions, progress: Callable[[Counts], None] | None = None):
        check_options(options)
        self.store = store
        self.options = options
        self.progress = progress
        strategy_options = {} if options.threshold is None else {"threshold": options.threshold}
        self.strategy = matchers.get(options.matcher, **strategy_options)
        # With several sessions in flight, a talk is told apart by the header the SUT passes on.
        self.propagate = options.concurrency > 1
        self.mock: OutboundMock | RemoteMock
        if self.propagate and use_process(options.concurrency, options.mock_process):
            # Header attribution lets the mock run beside the runner, on another core.
            self.mock = RemoteMock(options.mappings, options.matcher, strategy_options, bypass=options.bypass)
        else:
            self.mock = OutboundMock(options.mappings, self.strategy, attribution="header" if self.propagate else "single", bypass=options.bypass)
        self.counts = Counts()
        self.paths: Counter[tuple[str, str, str]] = Counter()
        self.suppressed = 0
        self.pending: list[Comparison] = []
        self._last_context: Context | None = None
        self._keys = itertools.count(1)  # session keys: the run's id and a counter
        self.recorded_peers: dict[str, int] = {}  # dependency -> sessions calling it (pre-flight)
        self.noise = diff.DiffyNoise() if options.baseline else None
        self.held: list[tuple[Comparison, list[diff.Difference]]] = []  # baseline mode decides at the end
        # The store is not asyncio-aware: one thread does all its work, in order.
        self.store_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="koala-store", initializer=_give_way_to_the_loop)
        now = time.time_ns()
        self.summary = RunSummary(
            run_id=uuid.uuid4().hex[:16],
            name=options.run_name or f"replay-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(now // 10**9))}",
            started_at=now,
            query=options.query,
            target=str(options.target),
            matcher=options.matcher,
            threshold=options.threshold,
            concurrency=options.concurrency,
            noise_runs=options.noise_runs,
            baseline=str(options.baseline) if options.baseline else None,
            config=options.config,
        )

    async def _store(self, call: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.store_thread, call, *args)

    # --- the run -----------------------------------------------------------------------

    async def _preflight(self) -> None:
        """Stop before the first session when the run cannot work: a target that does not
        answer, or a recorded dependency neither mocked nor let through."""
        await check_answers(self.options.target, "--target", self.options.timeout)
        if self.options.baseline is not None:
            await check_answers(self.options.baseline, "--baseline", self.options.timeout)
        filtered = None
        if self.options.allow_url or self.options.disallow_url:
            filtered = lambda: (s for s in self.store.scan(self.options.query, limit=self.options.limit) if self._wanted(s))  # noqa: E731
        peers = await self._store(lambda: recorded_peers(self.store, self.options.query, self.options.limit, filtered() if filtered else None))
        check_peers(peers, self.options.mappings, self.options.bypass)
        self.recorded_peers = peers

    async def run(self) -> RunSummary:
        started = time.perf_counter()
        try:
            await self.mock.launch()  # a mock process starts while the checks and loads run
            try:
                await self._preflight()
                # Recorded connection openings of every mapped dependency, from the whole
                # store: a new live connection's set-up is answered even when its session lacks it.
                await self._store(self.mock.openings.load, self.store, [str(m.recorded_peer) for m in self.options.mappings])
                await self.mock.start()
                await self._replay_all(started)
            finally:
                await self.mock.stop()
        finally:
            self.store_thread.shutdown(wait=True)
        return self.summary

    async def _replay_all(self, started: float) -> None:
        await self._store(self.store.runs.put_run, self.summary)
        sessions = self._paced()
        workers: list[asyncio.Task[None]] = []
        feeder: asyncio.Task[None] | None = None
        try:
            if self.propagate and self.recorded_peers and self.options.mappings:
                await self._probe(sessions)
            queue: SessionQueue = SessionQueue(maxsize=self.options.concurrency * 2)
            workers = [asyncio.create_task(self._worker(queue)) for _ in range(self.options.concurrency)]
            feeder = asyncio.create_task(self._feed(sessions, queue, len(workers)))

            def stop_feeding(worker: asyncio.Task[None]) -> None:
                if not worker.cancelled() and worker.exception() is not None:
                    feeder.cancel()  # else it would wait forever for room in the queue

            for worker in workers:
                worker.add_done_callback(stop_feeding)
            try:
                await feeder
            except asyncio.CancelledError:
                failed = [w.exception() for w in workers if w.done() and not w.cancelled() and w.exception() is not None]
                if failed:
                    raise failed[0] from None
                raise
            await asyncio.gather(*workers)
        except BaseException:
            if feeder is not None:
                feeder.cancel()
            for worker in workers:
                worker.cancel()
            self.summary.status = "interrupted"
            raise
        finally:
            await self._finish(time.perf_counter() - started)

    @staticmethod
    async def _feed(sessions: AsyncIterator[Session], queue: SessionQueue, workers: int) -> None:
        async for session in sessions:
            await queue.put(session)
        for _ in range(workers):
            await queue.put(None)

    async def _sessions(self) -> AsyncIterator[Session]:
        """The store's matches in recorded order, a page at a time (bounded memory)."""
        iterator: Iterator[Session] = self.store.scan(self.options.query, limit=self.options.limit)
        while page := await self._store(lambda: list(islice(iterator, 100))):
            for session in page:
                yield session

    def _wanted(self, session: Session) -> bool:
        """GoReplay's --http-allow-url / --http-disallow-url, on the request target."""
        if not (self.options.allow_url or self.options.disallow_url):
            return True
        path = request_path(session.call_from_inbound.request) or ""
        if self.options.allow_url and not any(re.search(p, path) for p in self.options.allow_url):
            return False
        return not any(re.search(p, path) for p in self.options.disallow_url)

    async def _paced(self) -> AsyncIterator[Session]:
        """The sessions to replay, filtered, at the pace asked for."""
        began = time.monotonic()
        first_at: int | None = None
        sent = 0
        async for session in self._sessions():
            if not self._wanted(session):
                self.counts.skipped += 1
                continue
            if session.incomplete and not self.options.include_incomplete:
                # Some of its outbound talks could not be attributed when recorded: replaying
                # it would report their absence as a regression.
                self.counts.skipped += 1
                self.counts.skipped_incomplete += 1
                continue
            if self.options.rate:
                await _sleep_until(began + sent / self.options.rate)
            elif self.options.speed:
                first_at = session.recorded_at if first_at is None else first_at
                await _sleep_until(began + (session.recorded_at - first_at) / 1e9 / self.options.speed)
            yield session
            sent += 1

    async def _probe(self, sessions: AsyncIterator[Session]) -> None:
        """Before running sessions side by side, replay them one at a time until one makes
        outbound calls, and check that every call carried the session's header: otherwise
        talks of concurrent sessions could not be told apart, and guessing is not allowed."""
        target = InboundClient(self.options.target, timeout=self.options.timeout)
        baseline = InboundClient(self.options.baseline, timeout=self.options.timeout) if self.options.baseline else None
        try:
            probed = 0
            async for session in sessions:
                comparison = await self._replay_session(session, target, baseline)
                if comparison is not None:
                    await self._record(comparison)
                probed += 1
                context = self._last_context
                if context is None or not (context.by_header or context.without_header):
                    if probed >= PROBE_SESSIONS:
                        # Sessions without outbound calls go side by side safely; a later call
                        # without the header, with several sessions in flight, is reported as
                        # unattributed rather than guessed.
                        return
                    continue  # no outbound calls yet: nothing to learn from
                if context.without_header:
                    kinds = sorted(set(context.without_header))
                    headless = [k for k in kinds if k not in HEADER_CARRIERS]
                    why = (
                        f"{', '.join(headless)} talks cannot carry a header"
                        if headless
                        else f"the SUT does not pass {SESSION_HEADER} or traceparent on to its outbound HTTP calls"
                    )
                    raise KoalaError(
                        f"--concurrency {self.options.concurrency} cannot tell which session an outbound call belongs to: "
                        f"session {session.session_id} made {count(len(context.without_header), 'call')} without the session header ({why}); "
                        "replay with --concurrency 1"
                    )
                return
        finally:
            await target.close()
            if baseline:
                await baseline.close()

    async def _worker(self, queue: SessionQueue) -> None:
        target = InboundClient(self.options.target, timeout=self.options.timeout)
        baseline = InboundClient(self.options.baseline, timeout=self.options.timeout) if self.options.baseline else None
        # With nothing else to replay for a session, the worker moves on once the SUT has
        # answered: comparing goes on beside the next session (and, when sessions are told
        # apart by header, settling too; one session at a time must settle first, since a
        # talk belongs to the session being replayed when it arrives).
        overlap = not self.options.noise_runs and baseline is None
        finishing: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()
        try:
            while (session := await queue.get()) is not None:
                first, context = await self._exchange(session, target)
                if not overlap:
                    await self._complete(session, first, context, target, baseline)
                    continue
                if self.propagate:
                    completion = self._complete(session, first, context, target, baseline)
                else:
                    completion = self._compare_and_record(session, first, await self._talks(context), context, target, baseline)
                if len(finishing) >= FINISHING_PER_WORKER:  # comparing falls behind: wait for it
                    await asyncio.wait(finishing, return_when=asyncio.FIRST_COMPLETED)
                task = loop.create_task(completion)  # the loop's own: asyncio.create_task is pure Python
                finishing.add(task)
                task.add_done_callback(finishing.discard)
            if finishing:
                await asyncio.gather(*finishing)
        finally:
            for task in finishing:
                task.cancel()
            await target.close()
            if baseline:
                await baseline.close()

    # --- one session -------------------------------------------------------------------

    async def _exchange(self, session: Session, client: InboundClient) -> tuple[InboundResult, Context]:
        """Send the inbound request with the session's talks attributed to it; its answer."""
        key = f"{self.summary.run_id}{next(self._keys):016x}"  # 32 hex digits: a W3C trace id
        context = await self.mock.start_session(session, key)
        try:
            request = prepare_request(session.call_from_inbound.request, client.target, self.options.edits, key if self.propagate else None)
            return await client.send(request), context
        except BaseException:
            self.mock.end(context)
            raise

    async def _talks(self, context: Context) -> list[diff.Talk]:
        """The session's talks, once the calls made just after its answer had their chance."""
        talks = await self.mock.finish(context, self.options.settle)
        self._last_context = context
        return talks

    async def _send(self, session: Session, client: InboundClient) -> tuple[InboundResult, list[diff.Talk]]:
        result, context = await self._exchange(session, client)
        return result, await self._talks(context)

    async def _complete(self, session: Session, first: InboundResult, context: Context, target: InboundClient, baseline: InboundClient | None) -> None:
        await self._compare_and_record(session, first, await self._talks(context), context, target, baseline)

    async def _compare_and_record(
        self, session: Session, first: InboundResult, talks: list[diff.Talk], context: Context, target: InboundClient, baseline: InboundClient | None
    ) -> None:
        comparison = await self._compare(session, first, talks, context, target, baseline)
        if comparison is not None:
            await self._record(comparison)

    async def _replay_session(self, session: Session, target: InboundClient, baseline: InboundClient | None) -> Comparison | None:
        first, context = await self._exchange(session, target)
        return await self._compare(session, first, await self._talks(context), context, target, baseline)

    async def _compare(
        self, session: Session, first: InboundResult, talks: list[diff.Talk], context: Context, target: InboundClient, baseline: InboundClient | None
    ) -> Comparison | None:
        j = judge(self.summary.run_id, session, first, talks, context.openings, context.bypassed, self.options.diff, time.time_ns())
        comparison, primary, report, options = j.comparison, j.differences, j.outbound, j.options
        if primary is None or report is None:
            return comparison  # no answer: verdict error
        recorded = session.response
        if self.options.noise_runs:
            among = []
            for _ in range(self.options.noise_runs):
                again, again_talks = await self._send(session, target)
                if again.error is None:
                    among.append(
                        diff.compare_responses(j.first.response, again.response, options)
                        + diff.compare_talks(session.outbound_calls, j.talks, again_talks, options)
                    )
            kept, noisy = diff.suppress_repeated(primary, among)
            comparison.suppressed = [Suppressed(d, "noise-runs") for d in noisy]
            primary, report = kept, report.keep_only(kept)
        if baseline is not None and self.noise is not None:
            comparison.outbound = report
            old, old_talks = await self._send(session, baseline)
            old_response, old_talks = diff.as_recorded(session, old.response, old_talks)
            old = msgspec.structs.replace(old, response=old_response)
            noise_paths = set()
            if old.error is None:
                noise_paths = {d.path for d in diff.compare_responses(recorded, old.response, options)}
                noise_paths |= {d.path for d in diff.compare_outbound(session.outbound_calls, old_talks, options).differences}
            self.noise.add(comparison.endpoint, {d.path for d in primary}, noise_paths)
            if primary:
                comparison.exchange = exchange_of(recorded, j.first.response)
            self.held.append((comparison, primary))  # judged when every session has counted
            return None
        return conclude(comparison, primary, report, recorded, j.first.response)

    # --- bookkeeping -------------------------------------------------------------------

    async def _record(self, comparison: Comparison) -> None:
        self.counts.add(comparison.verdict)
        self.suppressed += len(comparison.suppressed)
        for difference in comparison.differences:
            self.paths[(comparison.endpoint, difference.path, difference.kind)] += 1
        self.pending.append(comparison)
        if len(self.pending) >= FLUSH_EVERY:
            batch, self.pending = self.pending, []
            await self._store(self.store.runs.put_comparisons, batch)
        if self.progress:
            self.progress(self.counts)

    async def _finish(self, elapsed: float) -> None:
        if self.noise is not None:
            for comparison, primary in self.held:
                real, noisy = self.noise.split(comparison.endpoint, primary)
                comparison.differences = real
                comparison.suppressed = [Suppressed(d, "baseline") for d in noisy]
                if comparison.outbound is not None:
                    comparison.outbound = comparison.outbound.keep_only(real)
                comparison.verdict = DIFFERENT if real else SAME
                if not real:
                    comparison.exchange = None
                await self._record(comparison)
            self.held = []
        if self.pending:
            await self._store(self.store.runs.put_comparisons, self.pending)
            self.pending = []
        summary = self.summary
        summary.same, summary.different, summary.error = self.counts.same, self.counts.different, self.counts.error
        summary.skipped = self.counts.skipped
        summary.skipped_incomplete = self.counts.skipped_incomplete
        summary.total = summary.same + summary.different + summary.error
        summary.suppressed = self.suppressed
        with contextlib.suppress(KoalaError):  # a mock process that died: the run says what it has
            await self.mock.collect()
        summary.unattributed = len(self.mock.unattributed)
        summary.unattributed_talks = [UnattributedNote(t.peer, escaped.encode(t.request[:200]), t.reason) for t in self.mock.unattributed[:20]]
        summary.differing_paths = [PathCount(e, p, k, n) for (e, p, k), n in self.paths.most_common(TOP_PATHS)]
        summary.finished_at = time.time_ns()
        summary.sessions_per_second = round(summary.total / elapsed, 1) if elapsed > 0 else None
        if summary.status == "running":
            summary.status = "finished"
        await self._store(self.store.runs.put_run, summary)


def _give_way_to_the_loop() -> None:
    """Lower the calling thread's priority below the loop's (Linux: a thread's own nice value,
    at most 19; elsewhere the call would name a process, so nothing is done)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            thread = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, thread, min(os.getpriority(os.PRIO_PROCESS, thread) + STORE_THREAD_NICE, 19))


async def _sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


def replay(store: SessionStore, options: ReplayOptions, progress: Callable[[Counts], None] | None = None) -> RunSummary:
    """Run a replay to the end (the library entry point behind `koala replay`).

    SIGTERM stops it as Ctrl-C does: the sessions under way are cancelled, the run is
    written as "interrupted" with what was compared so far, and `Terminated` is raised."""
    return run_loop(_stopping_on_sigterm(Replay(store, options, progress).run()))


class SessionQueue:
    """asyncio.Queue's bounded, first-in-first-out put and get, and nothing else, compiled
    with the runner: asyncio.Queue is pure Python, ~10 interpreted calls a replayed session
    between the feeder and the workers."""

    # Slots: as Replay's.
    __slots__ = ("_items", "_maxsize", "_getters", "_putters")

    def __init__(self, maxsize: int) -> None:
        self._items: deque[Session | None] = deque()
        self._maxsize = maxsize
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()

    async def put(self, item: Session | None) -> None:
        while len(self._items) >= self._maxsize:
            await self._wait(self._putters)
        self._items.append(item)
        self._wake(self._getters)

    async def get(self) -> Session | None:
        while not self._items:
            await self._wait(self._getters)
        item = self._items.popleft()
        self._wake(self._putters)
        return item

    async def _wait(self, waiters: deque[asyncio.Future[None]]) -> None:
        waiter = asyncio.get_running_loop().create_future()
        waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._wake(waiters)  # woken, then cancelled before it ran: wake the next one
            raise

    @staticmethod
    def _wake(waiters: deque[asyncio.Future[None]]) -> None:
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # a cancelled waiter is passed over
                waiter.set_result(None)
                return


def run_loop(main: Coroutine[Any, Any, RunSummary]) -> RunSummary:
    """Run the replay's event loop: uvloop where it is installed (its socket path costs a
    fraction of asyncio's), else asyncio's own; with fewer garbage collections."""
    with fewer_collections():
        try:
            import uvloop
        except ImportError:
            return asyncio.run(main)
        return uvloop.run(main)


# The youngest generation is collected after this many new containers (Python's default: 700).
YOUNG_COLLECTION_EVERY = 20_000


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """A replayed session makes and drops thousands of short-lived containers (parsed heads,
    talks, results), which set off a collection of the young generation every few sessions,
    and every collection walks what is still alive: ~14k instructions a session
    (bench_instructions.py replay: 691k without this, 677k with it). For the replay, the objects already alive (modules,
    recorded openings) are set aside (gc.freeze) and the young generation is collected
    less often; both are undone after. Cycles are still collected, later."""
    before = gc.get_threshold()
    freezing = gc.get_freeze_count() == 0  # else the caller froze objects: its choice stands
    if freezing:
        gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        if freezing:
            gc.unfreeze()


async def _stopping_on_sigterm(run: Coroutine[Any, Any, RunSummary]) -> RunSummary:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    terminated = False

    def stop() -> None:
        nonlocal terminated
        terminated = True
        task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, stop)
        installed = True
    except (NotImplementedError, RuntimeError, ValueError):
        installed = False  # not the main thread (a library caller's worker): leave signals alone
    try:
        return await run
    except asyncio.CancelledError:
        if terminated:
            raise Terminated("replay stopped by SIGTERM") from None
        raise
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGTERM)
