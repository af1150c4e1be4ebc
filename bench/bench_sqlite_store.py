"""The SQLite store at scale: N realistic ~2 KB sessions (1,000,000 by default).

Prints, for issue 12 item 3:
- ingest end to end from an NDJSON file (read, validate, derive, store, index full text),
  with worker processes as `koala ingest` runs it (--in-process-too: also in one process);
- the ceiling of FTS5 itself here: a bare contentless FTS5 table fed the same text, in
  memory in one transaction, and in a file in the store's batches (FTS5's default settings,
  then the store's);
- the CPU a session costs in each part of an ingest (parse, prepare, write), and the ceiling
  of ingest's design that follows: the one writer's own rate, and this machine's cores over
  the whole;
- with --bulk-ab: ingest with the keyword indexes kept through the writes against the bulk load
  ingest makes of a big input (SqliteStore.bulk_load), in alternated rounds;
- database size / NDJSON size;
- each keyword field's selective query (`koala sessions search Q --limit 100`: the first
  100 matches in recorded order, decoded), median of several runs;
- full text with --limit 100: a common term, a rare term, a common term with a keyword; and
  its count as `koala sessions search` asks for it after a page (up to 10,000: COUNTED);
- the query plan of each (EXPLAIN QUERY PLAN), with --plans.
Targets: selective keyword queries < 5 ms, full text --limit 100 < 20 ms, ingest >= 20,000
sessions/s including full text, database <= 0.6x the NDJSON.

The NDJSON and the database are cached (default /var/tmp/koala-store-bench), so a rerun only
queries; --rebuild ingests again. Generating 1M sessions takes a few minutes, once.

    .venv/bin/python bench/bench_sqlite_store.py [--sessions 1000000] [--rebuild [--in-process-too] [--bulk-ab ROUNDS]] [--plans] [--scan]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from factories import BASE_NS, http_call, http_request, http_response, mysql_select, redis_get, redis_set  # noqa: E402

from koala_store.cli.sessions import COUNTED  # noqa: E402
from koala_store.formats import ndjson  # noqa: E402
from koala_store.ingest import ingest  # noqa: E402
from koala_store.ingest.parallel import default_workers  # noqa: E402
from koala_store.model import CallFromInbound, CallOutbound, Peer, ReturnInbound, Session  # noqa: E402
from koala_store.store.sqlite import BATCH, SCHEMA_VERSION, TEXT_VERSION, SqliteStore  # noqa: E402
import koala_store.store.sqlite as sqlite_store_module  # noqa: E402
from koala_store.store.sqlite_prepare import text_row  # noqa: E402
from koala_store.store.sqlite_schema import TEXT_SETTINGS  # noqa: E402
from koala_store.store.sqlite_tx import transaction  # noqa: E402

GENERATOR_VERSION = 2  # bump when the sessions below change: the cached NDJSON is remade
SIZE = 2048
RARE = 10_000  # one session in RARE carries each rare value (100 at 1M)
_WORDS = "order user cart item stock price total status pending shipped refund coupon region city sku alpha beta gamma delta warehouse".split()


def padding_pool(rng: random.Random) -> list[bytes]:
    """JSON-ish filler text: words from a small vocabulary, as API answers repeat their keys."""
    return [" ".join(rng.choice(_WORDS) + (str(rng.randint(0, 999)) if rng.random() < 0.2 else "") for _ in range(700)).encode() for _ in range(200)]


def session(i: int, rng: random.Random, pool: list[bytes]) -> Session:
    """Session i: realistic shapes (tests/factories.py) with values of every cardinality, so
    each keyword field has selective values (ids, keys, paths) and rare ones (1 in RARE)."""
    start = BASE_NS + i * 1_000_000_000  # one a second: 1M sessions span 11.6 days
    uid = rng.randint(1, 100_000)
    rare = rng.randrange(RARE) == 0
    kind = i % 5
    calls: list[CallOutbound]
    status, content_type, method, host = 200, "application/json", "GET", "10.0.0.5:8000"
    if kind == 0:
        path, query = "/v1/user", f"uid={uid}"
        calls = [redis_get(0, start + 1_000_000, b"user:%d" % uid, b"alice")]
    elif kind == 1:
        method, path, query, status = "POST", "/v1/order", f"uid={uid}&src=app", 201
        calls = [
            mysql_select(0, start + 1_000_000, b"SELECT name FROM user WHERE uid=%d" % uid),
            redis_set(1, start + 2_000_000, b"user:%d" % uid, b"bob"),
        ]
    elif kind == 2:
        path, query = f"/v1/item/{uid}", ""
        calls = [http_call(0, start + 1_000_000, "GET", f"/inventory/{uid}", 200, b'{"stock":3}')]
    elif kind == 3:
        path, query, status = "/v1/user", f"uid={uid}", 404
        calls = [redis_get(0, start + 1_000_000, b"user:%d" % uid, None)]
    else:
        method, path, query, status, calls = "DELETE", f"/v1/order/{uid}", "", 500, []
    latency_ns = rng.randint(1_000_000, 80_000_000)
    if rare:  # one rare value per field, on the same sessions
        method, host, status, content_type = "PATCH", "admin.internal:8000", 503, "text/html"
        latency_ns = 1_500_000_000
        at = start + 3_000_000
        purge = http_request("PURGE", f"/cache/{uid}", host="10.0.0.99:8081")
        calls = [
            *calls,
            CallOutbound(len(calls), at, request=purge, response=http_response(200, b"{}"), peer=Peer("10.0.0.99", 8081), socket_fd=30),
            CallOutbound(len(calls) + 1, at + 1, request=b"\x13\x37binary-proto payload", response=b"\x01", peer=Peer("10.0.0.98", 7000), socket_fd=31),
        ]
    body = b'{"errno":0,"uid":%d,"trace":"%s","data":"' % (uid, b"zanzibar" if rng.randrange(100_000) == 0 else b"")
    filler = pool[i % len(pool)]
    offset = rng.randrange(len(filler) - SIZE)
    used = sum(len(c.request) + len(c.response) for c in calls) + 200 + len(body)
    body += filler[offset : offset + max(0, SIZE - used)] + b'"}'
    response = http_response(status, body, content_type)
    request = http_request(method, path + (f"?{query}" if query else ""), b'{"uid":%d}' % uid if method == "POST" else b"", host=host)
    thread = rng.randint(1, 60_000)
    returned = ReturnInbound(len(calls), start + latency_ns, response=response)
    return Session(
        session_id=f"{start}-{thread}",
        call_from_inbound=CallFromInbound(0, start, request=request, peer=Peer("10.0.0.2", 40000 + i % 20000)),
        return_inbound=returned,
        actions=[*calls, returned],
        thread_id=thread,
        trace_id="" if i % 10 == 9 else f"{rng.getrandbits(128):032x}",
    )


def sessions(n: int) -> Iterator[Session]:
    rng = random.Random(12)
    pool = padding_pool(rng)
    for i in range(n):
        yield session(i, rng, pool)


def ensure_ndjson(n: int, cache: Path) -> Path:
    path = cache / f"sessions-{n}-g{GENERATOR_VERSION}.ndjson"
    if not path.exists():
        print(f"generating {n:,} sessions into {path} (once) ...", flush=True)
        partial = path.with_suffix(".partial")
        with partial.open("wb") as out:
            ndjson.write(sessions(n), out)
        partial.rename(path)
    return path


def terms_table(db: Path) -> bool:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as raw:
        return raw.execute("SELECT 1 FROM sqlite_master WHERE name = 'text_terms'").fetchone() is not None


def build(source: Path, db: Path, workers: int | None = None) -> None:
    for leftover in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        leftover.unlink(missing_ok=True)
    n = sum(1 for _ in source.open("rb"))
    store = SqliteStore(db)
    merge_s = []  # the refresh ends by merging the index's segments (a bulk load): timed apart
    merge = store._merge_text_index

    def timed_merge() -> None:
        merge_started = time.perf_counter()
        merge()
        merge_s.append(time.perf_counter() - merge_started)

    store._merge_text_index = timed_merge  # type: ignore[method-assign]
    started, cpu_started = time.perf_counter(), time.process_time()
    report = ingest([str(source)], store, workers=workers)
    stored_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    store.refresh()
    store.close()  # its checkpoint is part of the load
    total_s = time.perf_counter() - started
    assert report.stored == n and not report.rejected, report
    how = "in this process" if workers == 0 else f"{default_workers() if workers is None else workers} worker process(es) + this one writing"
    print(f"ingest from NDJSON ({how}):")
    text_when = "the full text indexed as the rows are written" if workers != 0 else "the full text left to the refresh"
    print(f"  stored:                 {n / stored_s:>9,.0f} sessions/s ({stored_s:.1f} s; {text_when})")
    print(f"  + full text indexed:    {n / total_s:>9,.0f} sessions/s end to end ({total_s:.1f} s; merging the index: {sum(merge_s):.1f} s)")
    # With workers: the writer's process, every thread (its writes, and handing chunks out and back).
    print(f"  this process's CPU:     {cpu_s / n * 1e6:>9,.0f} us a session while storing")


def fts_ceiling(source: Path, limit: int = 200_000) -> None:
    """FTS5 alone: the same text, already extracted, into a bare contentless table: in memory
    in one transaction, and in a file as the store writes it (WAL, BATCH rows a transaction,
    merged at the end), with FTS5's default settings and with the store's (TEXT_SETTINGS)."""
    rows = []
    with source.open("rb") as stream:
        for record in ndjson.read(stream):
            s = record.session
            assert s is not None
            rows.append(text_row(s))
            if len(rows) >= limit:
                break
    table = "CREATE VIRTUAL TABLE t USING fts5(a, b, c, d, content='', columnsize=0, tokenize='unicode61 remove_diacritics 0')"
    insert = "INSERT INTO t (rowid, a, b, c, d) VALUES (?, ?, ?, ?, ?)"
    db = sqlite3.connect(":memory:")
    db.execute(table)
    started = time.perf_counter()
    with db:
        db.executemany(insert, ((i + 1, *r) for i, r in enumerate(rows)))
    elapsed = time.perf_counter() - started
    print(f"FTS5 ceiling, in memory, one transaction ({len(rows):,} rows):       {len(rows) / elapsed:>9,.0f} sessions/s")
    for label, settings in (("FTS5's defaults", {}), ("the store's settings", TEXT_SETTINGS)):
        with tempfile.TemporaryDirectory(dir=source.parent) as scratch:
            db = sqlite3.connect(Path(scratch) / "fts.db", isolation_level=None)
            for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "cache_size = -65536", "wal_autocheckpoint = 65536"):
                db.execute(f"PRAGMA {pragma}")
            db.execute(table)
            for name, value in settings.items():
                db.execute("INSERT INTO t (t, rank) VALUES (?, ?)", (name, value))
            started = time.perf_counter()
            for first in range(0, len(rows), BATCH):
                with transaction(db):
                    db.executemany(insert, ((i + 1, *rows[i]) for i in range(first, min(len(rows), first + BATCH))))
            db.execute("INSERT INTO t (t) VALUES ('optimize')")
            db.close()
            elapsed = time.perf_counter() - started
        print(f"FTS5 ceiling, in a file, {BATCH:,} rows a transaction, then merged, {label}: {len(rows) / elapsed:>9,.0f} sessions/s")


def cpu_split(source: Path, limit: int = 40_000) -> None:
    """Where an ingest's CPU goes, a session at a time, each part alone in this process: parse
    (NDJSON to sessions) and prepare (store.preparer(): rows, blob, text and its terms), which
    ingest's workers do, and write (put_prepared into a new store in a bulk load: rows, FTS5,
    commit, and the keyword indexes built at the end), which one process does. The design's
    ceiling follows: the writer's own rate, reached when the workers have cores of their own;
    on this machine's cores, at most their number over the total CPU of a session. An ingest
    gets less than that: the writer's process also sends the lines to the worker, takes the
    prepared rows back and prepares the first chunk itself, and each write costs more as the
    store grows (build's "this process's CPU" line against `write` here)."""
    with source.open("rb") as stream:
        lines = list(islice(stream, limit))
    if len(lines) <= BATCH:  # the first batch only trains the dictionary: nothing left to time
        print(f"CPU a session: not measured ({len(lines):,} sessions; the split needs more than {BATCH:,})")
        return
    chunks = [b"".join(lines[i : i + BATCH]) for i in range(0, len(lines), BATCH)]
    started = time.process_time()
    batches = [[record.session for record in ndjson.read(io.BytesIO(chunk)) if record.session is not None] for chunk in chunks]
    parse = (time.process_time() - started) / len(lines)
    with tempfile.TemporaryDirectory(dir=source.parent) as scratch:
        store = SqliteStore(Path(scratch) / "split.db")
        store.put_prepared(store.preparer()(batches[0]))  # trains the store's dictionary, as ingest's first batch does
        timed_sessions = len(lines) - len(batches[0])
        started = time.process_time()
        prepared = [store.preparer()(batch) for batch in batches[1:]]
        prepare = (time.process_time() - started) / timed_sessions
        started = time.process_time()
        with store.bulk_load(1 << 62):  # as ingest writes a big input: keyword indexes built at the end
            for each in prepared:
                store.put_prepared(each)
        write = (time.process_time() - started) / timed_sessions
        store.close()
    cores = os.cpu_count() or 1
    total = parse + prepare + write
    print(
        f"CPU a session ({len(lines):,} sessions, each part alone): parse {parse * 1e6:.0f} us + prepare {prepare * 1e6:.0f} us (workers) + write {write * 1e6:.0f} us (the writer) = {total * 1e6:.0f} us"
    )
    print(f"  the writer alone (workers on cores of their own): {1 / write:>9,.0f} sessions/s")
    print(f"  on this machine's {cores} cores, at most:          {min(1 / write, cores / total):>9,.0f} sessions/s")


def bulk_against_kept(source: Path, rounds: int) -> None:
    """The same ingest into a new store, alternating: keyword indexes kept through the writes
    (koala_store.store.sqlite.BULK_MIN_BYTES out of reach) and the bulk load ingest makes of a
    big input (dropped, built at the end). Alternated rounds: this box's speed drifts."""
    n = sum(1 for _ in source.open("rb"))
    figures: dict[str, list[tuple[float, float]]] = {"indexes kept": [], "bulk load": []}
    for round_ in range(1, rounds + 1):
        for mode, figure in figures.items():
            with tempfile.TemporaryDirectory(dir=source.parent) as scratch:
                store = SqliteStore(Path(scratch) / "ab.db")
                bulk_min = sqlite_store_module.BULK_MIN_BYTES
                sqlite_store_module.BULK_MIN_BYTES = bulk_min if mode == "bulk load" else 1 << 62
                try:
                    started = time.perf_counter()
                    report = ingest([str(source)], store)
                    stored_s = time.perf_counter() - started
                    store.refresh()
                    store.close()
                    total_s = time.perf_counter() - started
                finally:
                    sqlite_store_module.BULK_MIN_BYTES = bulk_min
                assert report.stored == n and not report.rejected, report
                figure.append((n / stored_s, n / total_s))
                print(f"  round {round_} {mode:<13} stored {n / stored_s:>7,.0f} sessions/s, end to end {n / total_s:>7,.0f} sessions/s")
    for mode, figure in figures.items():
        stored, total = (statistics.median(f[i] for f in figure) for i in (0, 1))
        print(f"  median {mode:<13} stored {stored:>7,.0f} sessions/s, end to end {total:>7,.0f} sessions/s")


def keyword_queries(store: SqliteStore) -> list[tuple[str, str]]:
    """One selective query per keyword field, with values taken from the stored sessions."""
    some = next(iter(store.scan("inbound.path:/v1/item/*", limit=1)))
    sid = some.session_id
    trace = some.trace_id or next(iter(store.scan("_exists_:trace_id", limit=1))).trace_id
    item_path = some.call_from_inbound.request.split(b" ")[1].decode()
    uid = item_path.rsplit("/", 1)[1]
    day = time.strftime("%Y-%m-%dT%H:%M:00", time.gmtime(some.recorded_at // 1_000_000_000))
    return [
        ("session_id", f'session_id:"{sid}"'),
        ("trace_id", f"trace_id:{trace}"),
        ("thread_id", f"thread_id:{some.thread_id}"),
        ("inbound.method", "inbound.method:PATCH"),
        ("inbound.path", f"inbound.path:{item_path}"),
        ("inbound.path prefix", f"inbound.path:{item_path[:-1]}*"),
        ("inbound.query", f'inbound.query:"uid={uid}"'),
        ("inbound.host", 'inbound.host:"admin.internal:8000"'),
        ("inbound.status", "inbound.status:503"),
        ("inbound.content_type", 'inbound.content_type:"text/html"'),
        ("inbound.latency_ms", "inbound.latency_ms:>=1000"),
        ("recorded_at", f"recorded_at:[{day} TO {day}||+1m]"),
        ("outbound.peer", 'outbound.peer:"10.0.0.99:8081"'),
        ("outbound.protocol", "outbound.protocol:unknown"),
        ("outbound.method", "outbound.method:PURGE"),
        ("outbound.path", f'outbound.path:"/inventory/{uid}"'),
        ("outbound.path prefix", f"outbound.path:/inventory/{uid[:-1]}*"),
        ("outbound.count", "outbound.count:4"),
        ("two fields", f"inbound.path:{item_path} AND inbound.status:200"),
        ("NOT a keyword", f"inbound.path:{item_path} AND NOT inbound.status:404"),
    ]


TEXT_QUERIES = [
    ("common term", "order"),
    ("common phrase", '"order status"'),
    ("common prefix", "warehou*"),
    ("common phrase prefix", "order-sta*"),
    ("rare prefix", "zanzi*"),
    ("very common prefix", "s*"),  # 4,569 terms at 1M: found a window of sessions at a time (_first_in_windows)
    ("common term in a field", "inbound.response:shipped"),
    ("rare term", "zanzibar"),
    ("common term + keyword", "order AND inbound.status:404"),
    ("common term + rare keyword", "order AND inbound.status:503"),
    ("common prefix + keyword", "warehou* AND inbound.status:404"),  # walks the text matches
    ("common prefix + rare keyword", "warehou* AND inbound.status:503"),  # checks the 109 sessions (_checked_sessions)
    ("phrase prefix + rare keyword", "order-sta* AND inbound.status:503"),
    ("term in no session", "xylophone"),
    ("two words (an OR)", "order status"),  # one MATCH, walked: each word was an IN over every session holding it
    ("a word or a prefix", "refund coup*"),
    ("a word but not another", "order AND NOT zanzibar"),  # one MATCH with FTS5's NOT
    ("a word or a keyword", "order inbound.status:503"),  # each branch's own plan, merged by row id
    ("a word or a prefix AND a keyword", "refund coup* AND inbound.status:404"),  # refund OR (coup* AND 404)
    # An AND over such an OR: the OR of its branches, each with the AND's other conditions.
    ("(word OR keyword) AND keyword", "(order OR inbound.status:503) AND inbound.method:GET"),
    ("keyword AND (word OR keyword)", "inbound.method:GET AND (warehouse OR inbound.status:503)"),
    # 767 terms, none of them in that column (text_terms.columns): nothing to read. Naming them
    # all made FTS5 read every list to the end.
    ("prefix in a field without it", "outbound.request:sta*"),
]


def timed(store: SqliteStore, query: str, runs: int = 5) -> tuple[float, int]:
    times, found = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        found = sum(1 for _ in store.scan(query, limit=100))
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, found


def counted(store: SqliteStore, query: str, runs: int = 3) -> tuple[float, int]:
    """The listing's count of `query` (up to COUNTED, as koala sessions search asks): median ms, count."""
    times, total = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        total = store.count(query, at_most=COUNTED)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, total


def show_plan(store: SqliteStore, query: str) -> None:
    plan = store._plan(query)  # noqa: SLF001 (a bench looks inside)
    keyset = [-(2**63)] if plan.by_id else [-(2**63), ""]
    for row in store.db.execute(f"EXPLAIN QUERY PLAN {plan.sql}", [*plan.params, *keyset, 100]):
        print(f"      {row[-1]}")


def scan_child(db: str) -> None:
    store = SqliteStore(db, readonly=True)
    started = time.perf_counter()
    count = sum(1 for _ in store.scan("recorded_at:[2025-11-01 TO now] AND NOT inbound.path:/nothing"))
    elapsed = time.perf_counter() - started
    peak_mb = int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) / 1024
    print(f"{count} {elapsed:.3f} {peak_mb:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("KOALA_BENCH_CACHE", "/var/tmp/koala-store-bench")))
    parser.add_argument("--rebuild", action="store_true", help="ingest again even if a cached database exists")
    parser.add_argument("--plans", action="store_true", help="print each query's plan")
    parser.add_argument("--ingest-workers", type=int, default=None, help="worker processes for the ingest (default: ingest's own; 0: none)")
    parser.add_argument("--in-process-too", action="store_true", help="with --rebuild: also time an ingest in one process (into a scratch copy)")
    parser.add_argument("--scan", action="store_true", help="also scan every session by query in a fresh process (peak memory)")
    parser.add_argument(
        "--bulk-ab",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="with --rebuild: also ingest ROUNDS times each with keyword indexes kept and in a bulk load, alternated",
    )
    parser.add_argument("--scan-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scan_child:
        scan_child(args.scan_child)
        return
    args.cache.mkdir(parents=True, exist_ok=True)
    source = ensure_ndjson(args.sessions, args.cache)
    db = args.cache / f"store-{args.sessions}-g{GENERATOR_VERSION}-s{SCHEMA_VERSION}-t{TEXT_VERSION}.db"
    print(f"{args.sessions:,} sessions of ~{SIZE} bytes; NDJSON {source.stat().st_size / 1e6:,.0f} MB; SQLite {sqlite3.sqlite_version}")
    if args.rebuild or not db.exists():
        build(source, db, args.ingest_workers)
        if args.in_process_too:
            scratch = db.with_name("in-process-" + db.name)
            build(source, scratch, 0)
            for leftover in (scratch, scratch.with_name(scratch.name + "-wal"), scratch.with_name(scratch.name + "-shm")):
                leftover.unlink(missing_ok=True)
        fts_ceiling(source)
        cpu_split(source)
        if args.bulk_ab:
            print(f"ingest with the keyword indexes kept against a bulk load ({args.bulk_ab} alternated rounds):")
            bulk_against_kept(source, args.bulk_ab)
    elif not terms_table(db):
        started = time.perf_counter()
        SqliteStore(db).close()  # opened for writing: the term vocabulary is filled from the index
        print(f"term vocabulary added to a store made before it: {time.perf_counter() - started:.1f} s")
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as raw:
        segments = raw.execute("SELECT count(DISTINCT segid) FROM session_text_idx").fetchone()[0]
        terms = raw.execute("SELECT count(*) FROM text_terms").fetchone()[0]
    print(f"full-text index: {segments} FTS5 segments; {terms:,} terms in the vocabulary")
    size = sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))
    print(f"database size:            {size / 1e6:>9,.0f} MB = {size / source.stat().st_size:.2f}x the NDJSON")

    store = SqliteStore(db, readonly=True)
    print("selective keyword queries, first 100 in recorded order (ms, median of 5):")
    for name, query in keyword_queries(store):
        ms, found = timed(store, query)
        flag = "" if ms < 5 else "   (over 5 ms)"
        print(f"  {name:<22} {ms:>8.2f} ms  {found:>4} found  {query}{flag}")
        if args.plans:
            show_plan(store, query)
    print(f"full text, --limit 100 (ms, median of 5), then its count up to {COUNTED:,} (ms, median of 3):")
    for name, query in TEXT_QUERIES:
        ms, found = timed(store, query)
        count_ms, total = counted(store, query)
        flag = "" if ms < 20 else "   (over 20 ms)"
        shown = f"{COUNTED:,}+" if total > COUNTED else f"{total:,}"
        print(f"  {name:<26} {ms:>8.2f} ms  {found:>4} found  count {count_ms:>8.1f} ms {shown:>7}  {query}{flag}")
        if args.plans:
            show_plan(store, query)
    store.close()
    if args.scan:
        done = subprocess.run([sys.executable, __file__, "--scan-child", str(db)], capture_output=True, text=True, check=True)
        count, elapsed, peak = done.stdout.split()
        print(f"scan by query:            {int(count) / float(elapsed):>9,.0f} sessions/s  ({count} sessions, {elapsed} s, peak RSS {peak} MB)")


if __name__ == "__main__":
    main()
