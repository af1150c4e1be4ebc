"""`koala serve` throughput with ~2 KB sessions:

1. accepted/s: sessions acknowledged (fsynced in the spool) when sent as NDJSON (`POST
   /sessions`) and as Elasticsearch bulk (`POST /_bulk`) batches by several clients;
2. end to end into SQLite: from the first POST until every session is stored;
3. end to end into Elasticsearch, against plain `elasticsearch.helpers.bulk` of the same
   documents (built before its clock starts). Target: >= 0.8 of plain bulk.

    .venv/bin/koala es start --port 19200     (for 3)
    .venv/bin/python bench/bench_ingest.py [--sessions 20000] [--batch 500] [--clients 4] [--es http://127.0.0.1:19200]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
import orjson  # noqa: E402
from elasticsearch import helpers  # noqa: E402
from factories import payload_bytes, varied_sessions  # noqa: E402

from koala_store.formats.document import to_document  # noqa: E402
from koala_store.store import open_store  # noqa: E402
from koala_store.store.elastic import ElasticStore  # noqa: E402
from koala_store.summary import summarize  # noqa: E402

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class Serve:
    def __init__(self, store: str, work: Path, batch: int):
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        command = [sys.executable, "-m", "koala_store", "serve", "--listen", f"{LOOPBACK}:{self.port}", "--store", store, "--spool", str(work / f"spool-{uuid.uuid4().hex[:6]}"), "--batch", str(batch)]
        self.process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise SystemExit("koala serve did not start") from None
                time.sleep(0.05)

    def wait_stored(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while client.get("/healthz").json()["spool_sessions"]:
                time.sleep(0.02)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(120)


def ndjson_bodies(sessions, batch: int) -> list[bytes]:
    return [b"".join(orjson.dumps(to_document(s)) + b"\n" for s in sessions[i : i + batch]) for i in range(0, len(sessions), batch)]


def bulk_bodies(sessions, batch: int) -> list[bytes]:
    action = b'{"index":{"_index":"sessions"}}\n'
    return [b"".join(action + orjson.dumps(to_document(s)) + b"\n" for s in sessions[i : i + batch]) for i in range(0, len(sessions), batch)]


def send(url: str, path: str, bodies: list[bytes], clients: int) -> float:
    """Post every body (spread over `clients` threads); seconds until all were acknowledged."""
    queue = list(reversed(bodies))
    lock = threading.Lock()
    failures: list[str] = []

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                answer = client.post(path, content=body, headers={"Content-Type": "application/x-ndjson"})
                if answer.status_code not in (200, 202) or (path == "/_bulk" and answer.json()["errors"]):
                    failures.append(answer.text[:200])

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise SystemExit(f"{len(failures)} batches refused: {failures[0]}")
    return time.perf_counter() - started


def end_to_end(store_url: str, sessions, work: Path, args, path: str = "/sessions") -> tuple[float, float]:
    """(accepted/s, stored/s) through one koala serve into `store_url`."""
    bodies = ndjson_bodies(sessions, args.batch) if path == "/sessions" else bulk_bodies(sessions, args.batch)
    serve = Serve(store_url, work, args.batch)
    try:
        started = time.perf_counter()
        accepted = send(serve.url, path, bodies, args.clients)
        serve.wait_stored()
        stored = time.perf_counter() - started
    finally:
        serve.stop()
    return len(sessions) / accepted, len(sessions) / stored


def plain_bulk(es: str, sessions) -> float:
    store = ElasticStore(es, prefix=f"benchplain{uuid.uuid4().hex[:6]}")
    layout = store.layout
    actions = []
    for session in sessions:
        summary = summarize(session)
        actions.append({"_index": layout.index_for(summary), "_id": session.session_id, "_source": layout.document(session, summary)})
    started = time.perf_counter()
    ok, errors = helpers.bulk(store.client, actions, chunk_size=500, max_chunk_bytes=50 * 1024 * 1024)
    store.refresh()
    rate = len(sessions) / (time.perf_counter() - started)
    assert ok == len(sessions) and not errors
    drop(store)
    return rate


def drop(store: ElasticStore) -> None:
    prefix = store.prefix
    store.client.options(ignore_status=404).indices.delete(index=f"{prefix}-*")
    store.client.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-sessions")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500, help="sessions per NDJSON/bulk request")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--es", default="http://127.0.0.1:19200", help="Elasticsearch for the end-to-end comparison ('' to skip)")
    args = parser.parse_args()
    sessions = varied_sessions(args.sessions, payload=2048)
    mean = sum(payload_bytes(s) for s in sessions[:1000]) / min(len(sessions), 1000)
    print(f"{args.sessions} sessions of ~{mean:.0f} bytes, batches of {args.batch}, {args.clients} clients")
    work = Path(tempfile.mkdtemp(prefix="koala-bench-ingest-"))
    try:
        for path in ("/sessions", "/_bulk"):
            name = path.strip("/_")
            accepted, stored = end_to_end(f"sqlite:///{work / name}.db", sessions, work, args, path)
            print(f"POST {path:9} into SQLite: accepted {accepted:>8,.0f} sessions/s, stored end to end {stored:>8,.0f} sessions/s")
        if args.es:
            prefix = f"benchserve{uuid.uuid4().hex[:6]}"
            accepted, stored = end_to_end(f"{args.es}?prefix={prefix}", sessions, work, args)
            check = open_store(f"{args.es}?prefix={prefix}")
            check.refresh()
            count = check.count()
            check.close()
            drop(ElasticStore(args.es, prefix=prefix))
            assert count == len(sessions), f"{count} of {len(sessions)} stored"
            plain = plain_bulk(args.es, sessions)
            print(f"POST /sessions  into Elasticsearch: accepted {accepted:>8,.0f} sessions/s, stored end to end {stored:>8,.0f} sessions/s")
            print(f"plain helpers.bulk of the same documents: {plain:>8,.0f} sessions/s;  end to end / plain = {stored / plain:.2f} (target >= 0.8)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
