"""Ingest with worker processes (ingest.parallel): real spawned workers, a real SQLite file.
It must store exactly what an ingest in one process stores, name the same rejected lines,
and keep its promises on failures and Ctrl-C."""

from __future__ import annotations

import io
import multiprocessing
import os
import re
import signal
import subprocess
import time
from functools import partial
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli_helpers import interruptible, koala
from factories import varied_sessions
from koala_store.formats import ndjson
from koala_store.ingest import ingest
from koala_store.model import Session
from koala_store.store import open_store
from koala_store.store.sqlite import SqliteStore
from koala_store.store.sqlite_prepare import Prepared, prepare, prepare_indexed
import koala_store.ingest as ingest_module
import koala_store.ingest.parallel as parallel
import koala_store.store.sqlite as sqlite_store


def _write_input(path: Path, sessions: list[Session], bad_every: int = 0) -> None:
    """NDJSON of `sessions`, with a broken line after every `bad_every`-th and blank lines."""
    with path.open("wb") as out:
        for i, session in enumerate(sessions, start=1):
            out.write(ndjson.dumps(session))
            if bad_every and i % bad_every == 0:
                out.write(b'{"SessionId": "cut short\n\n')


def _contents(store: SqliteStore) -> dict[str, object]:
    db = store.db
    return {
        "rows": db.execute("SELECT id, session_id, recorded_at, path, status, outbound_count, body FROM sessions ORDER BY id").fetchall(),
        "calls": db.execute("SELECT session, peer, protocol, method, path FROM outbound ORDER BY session, id").fetchall(),
        "terms": db.execute("SELECT term, columns FROM text_terms ORDER BY term").fetchall(),
        "sessions": list(store.scan()),
        "alice": [s.session_id for s in store.scan("alice")],
        "prefix": [s.session_id for s in store.scan("outbound.request:user*")],
        "pending": store.pending_text(),
    }


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Many chunks from a test-sized file: workers are used from 1 byte, 40 lines a chunk,
    # and an ingest in one process writes 40 sessions a batch to match.
    monkeypatch.setattr(parallel, "MIN_BYTES", 1)
    monkeypatch.setattr(parallel, "LINES", 40)
    monkeypatch.setattr(ingest_module, "BATCH", 40)


@pytest.mark.parametrize("chunk_bytes", [parallel.CHUNK_BYTES, 3000], ids=["by-lines", "by-bytes"])
def test_workers_store_exactly_what_one_process_stores(tmp_path: Path, small_chunks: None, monkeypatch: pytest.MonkeyPatch, chunk_bytes: int) -> None:
    monkeypatch.setattr(parallel, "CHUNK_BYTES", chunk_bytes)  # 3000: a chunk ends after a few lines
    sessions = varied_sessions(500, payload=300)
    sessions += sessions[10:30]  # copies of earlier sessions: unchanged, not stored twice
    source = tmp_path / "in.ndjson"
    _write_input(source, sessions, bad_every=97)
    stores, reports = {}, {}
    for workers in (0, 2):
        store = SqliteStore(tmp_path / f"w{workers}.db")
        reports[workers] = ingest([str(source)], store, workers=workers)
        store.refresh()
        stores[workers] = store
    one, many = reports[0], reports[2]
    assert (many.read, many.stored, many.unchanged) == (one.read, one.stored, one.unchanged) == (520, 500, 20)
    assert [str(r) for r in many.rejected] == [str(r) for r in one.rejected]
    assert len(many.rejected) == 5 and all(re.search(r"in\.ndjson: line \d+: not valid JSON", str(r)) for r in many.rejected)
    assert many.rejected[0].line == 98  # numbered across chunks: the 98th line of the file
    assert _contents(stores[2]) == _contents(stores[0])
    assert _contents(stores[2])["alice"]  # full text found, from the index written with the rows
    for store in stores.values():
        store.close()


def _faulty_prepare(batch: list[Session], *, fault: str) -> Prepared:
    """prepare_indexed, with a fault on a batch holding a session whose id ends in -fault:
    "raise" (a defect of the preparer), or "die" (the worker process killed, as the OOM
    killer would: in a worker only)."""
    if any(s.session_id.endswith("-fault") for s in batch):
        if fault == "raise":
            raise RuntimeError("the preparer broke")
        if multiprocessing.parent_process() is not None:
            os._exit(9)
    return prepare_indexed(batch)


class _FaultyStore(SqliteStore):
    """A real SQLite store whose workers meet a fault (_faulty_prepare)."""

    def __init__(self, path: Path, fault: str):
        super().__init__(path)
        self.fault = fault

    def preparer(self):  # type: ignore[override]
        return partial(_faulty_prepare, fault=self.fault)


def test_a_worker_that_breaks_names_its_input_and_the_others_go_on(tmp_path: Path, small_chunks: None) -> None:
    sessions = varied_sessions(250)
    sessions[130] = msgspec.structs.replace(sessions[130], session_id="1-fault")  # line 131: the fourth chunk
    broken, fine = tmp_path / "broken.ndjson", tmp_path / "fine.ndjson"
    _write_input(broken, sessions[:200])
    _write_input(fine, sessions[200:])
    store = _FaultyStore(tmp_path / "k.db", "raise")
    report = ingest([str(broken), str(fine)], store, workers=1)
    assert [str(r) for r in report.rejected] == [
        f"{broken}: input: could not be read to the end (ChunkFailed: RuntimeError: the preparer broke); the sessions before were kept"
    ]
    assert report.stored == 120 + 50  # the three chunks before the broken one, and all of the other file
    assert store.count() == 170
    store.close()


def test_bad_workers_option_is_refused(capsys, tmp_path: Path) -> None:
    source = tmp_path / "in.ndjson"
    _write_input(source, varied_sessions(3))
    run = koala(capsys, "ingest", str(source), "--workers", "-1", "--store", f"sqlite:///{tmp_path / 'k.db'}")
    assert run.code == 1
    assert " ".join(run.err.split()) == "error: invalid value for '--workers': Input should be greater than or equal to 0; see koala ingest --help"
    assert not (tmp_path / "k.db").exists()  # refused before anything was opened


def _workers_of(pid: int) -> list[int]:
    """The spawned worker processes of process `pid`."""
    listing = subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,args="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in listing.splitlines() if int(line.split()[1]) == pid and "spawn_main" in line]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_ctrl_c_with_workers_stores_what_came_back_and_leaves_no_worker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    source = tmp_path / "big.ndjson"
    _write_input(source, varied_sessions(40_000, payload=400))  # ~40 MB: workers, several seconds
    assert source.stat().st_size >= parallel.MIN_BYTES
    process = interruptible("ingest", str(source), "--workers", "1", "--store", url, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    stored = 0
    while time.monotonic() < deadline and stored < 10_000 and process.poll() is None:
        try:
            store = open_store(url, readonly=True)
            stored = store.count()
            store.close()
        except Exception:
            pass
        time.sleep(0.1)
    assert process.poll() is None, "ingest ended before it could be interrupted"
    workers = _workers_of(process.pid)
    assert workers, "no worker process was started"
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    said = " ".join(err.decode().split())
    assert process.returncode == 130, said
    assert "Traceback" not in said
    found = re.search(r"interrupted; stored (\d+) sessions", said)
    assert found, said
    store = open_store(url, readonly=True)
    assert store.count() == int(found.group(1)) >= 10_000 and int(found.group(1)) % parallel.LINES == 0
    store.close()
    assert not [pid for pid in workers if _alive(pid)], "a worker outlived the ingest"


def test_a_bulk_load_through_workers_ends_with_its_index_merged(tmp_path: Path, small_chunks: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_store, "MERGE_AFTER", 100)  # 400 sessions: a bulk load
    source = tmp_path / "in.ndjson"
    _write_input(source, varied_sessions(400))
    store = SqliteStore(tmp_path / "k.db")
    ingest([str(source)], store, workers=1)
    segments = "SELECT count(DISTINCT segid) FROM session_text_idx"
    assert store.db.execute(segments).fetchone()[0] > 1  # a segment per chunk's transaction
    assert store.pending_text() == 0  # indexed as written
    store.refresh()
    assert store.db.execute(segments).fetchone()[0] == 1
    assert store._meta("unmerged_text") == "0"
    with_alice = [s.session_id for s in varied_sessions(400) if b"alice" in s.response or any(b"alice" in c.response for c in s.outbound_calls)]
    assert with_alice and [s.session_id for s in store.scan("alice")] == with_alice
    store.close()


@given(
    lines=st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"") + b"\n"), max_size=60),
    last=st.binary(max_size=10).map(lambda b: b.replace(b"\n", b"")),
    per_chunk=st.integers(1, 7),
    chunk_bytes=st.integers(1, 200),
)
def test_chunks_cut_the_input_into_whole_numbered_lines(lines: list[bytes], last: bytes, per_chunk: int, chunk_bytes: int) -> None:
    data = b"".join(lines) + last  # the last line may lack its newline
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parallel, "LINES", per_chunk)
        patch.setattr(parallel, "CHUNK_BYTES", chunk_bytes)
        chunks = list(parallel._chunks(io.BytesIO(data)))
    assert b"".join(chunk for chunk, _ in chunks) == data
    expected_first = 1
    for chunk, first_line in chunks:
        held = chunk.split(b"\n")  # lines as a binary stream reads them: cut at \n only
        held = [line + b"\n" for line in held[:-1]] + ([held[-1]] if held[-1] else [])
        assert first_line == expected_first and 1 <= len(held) <= per_chunk
        assert len(held) == 1 or sum(map(len, held[:-1])) < chunk_bytes  # cut once past the size
        expected_first += len(held)


def test_workers_compress_with_the_committed_dictionary_byte_for_byte(tmp_path: Path, small_chunks: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # Chunks big enough to train the store's dictionary on the first (sqlite_blob.TRAIN_FROM).
    monkeypatch.setattr(parallel, "LINES", 250)
    monkeypatch.setattr(ingest_module, "BATCH", 250)
    source = tmp_path / "in.ndjson"
    sessions = varied_sessions(2000, payload=200)
    _write_input(source, sessions)
    arrived_compressed = []
    put_prepared = SqliteStore.put_prepared

    def noting(store: SqliteStore, prepared: Prepared):  # type: ignore[no-untyped-def]
        arrived_compressed.append(sum(row.blob is not None for row in prepared.rows.values()))
        return put_prepared(store, prepared)

    monkeypatch.setattr(SqliteStore, "put_prepared", noting)
    stores = {}
    for workers in (0, 1):
        store = SqliteStore(tmp_path / f"w{workers}.db")
        assert store.preparer() is prepare_indexed  # no dictionary yet: the workers send msgpack
        report = ingest([str(source)], store, workers=workers)
        assert report.stored == 2000 and not report.rejected
        store.refresh()
        stores[workers] = store
    # The first chunks went out before the dictionary existed; the rest came back compressed.
    assert arrived_compressed[:3] == [0, 0, 0] and arrived_compressed[3:] == [250] * 5
    dictionary = stores[1].codec.committed_dictionary()
    assert dictionary is not None and stores[1].preparer().keywords == {"dictionary": dictionary}
    # Every blob as the store itself compresses it: the bodies are equal byte for byte.
    assert _contents(stores[1]) == _contents(stores[0])
    packed = prepare(sessions[:3]).rows
    compressed = prepare(sessions[:3], dictionary=dictionary).rows
    assert [row.blob for row in compressed.values()] == stores[1].codec.compress([row.packed for row in packed.values()])
    # A copy ingested again is unchanged, whichever form its blob came in.
    again = ingest([str(source)], stores[1], workers=1)
    assert (again.stored, again.unchanged) == (0, 2000)
    for store in stores.values():
        store.close()


def test_a_worker_that_dies_leaves_its_chunks_to_this_process(tmp_path: Path, small_chunks: None) -> None:
    sessions = varied_sessions(400)
    sessions[200] = msgspec.structs.replace(sessions[200], session_id="1-fault")  # line 201: the sixth chunk
    source = tmp_path / "in.ndjson"
    _write_input(source, sessions)
    store = _FaultyStore(tmp_path / "k.db", "die")
    report = ingest([str(source)], store, workers=1)
    assert (report.read, report.stored, report.rejected) == (400, 400, [])  # nothing lost
    store.refresh()
    alone = SqliteStore(tmp_path / "alone.db")
    ingest([str(source)], alone, workers=0)
    alone.refresh()
    assert _contents(store) == _contents(alone)
    for each in (store, alone):
        each.close()
