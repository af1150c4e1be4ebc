"""Elasticsearch beyond the shared contract: Koala recorder indices, outages, store copy.

Everything runs against real Elasticsearch: the instance scripts/test.sh starts, and for the
outage tests a second instance of our own that the tests stop and start.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from cli_helpers import koala, koala_process
from factories import varied_sessions
from koala_store.es import LocalElasticsearch
from koala_store.formats import koala as koala_format
from koala_store.formats import ndjson
from koala_store.store import open_store
from koala_store.store.elastic import ElasticStore
from koala_store.summary import summarize
from stores import ES_URL, drop_prefix, unique_prefix

pytestmark = pytest.mark.skipif(not ES_URL, reason="needs the local Elasticsearch that scripts/test.sh starts")
OUTAGE_PORT = 19251


def post_like_koala_recorder(url: str, index: str, sessions) -> None:
    """Koala's recorder: one POST of the recorded JSON per session, no bulk, no id."""
    for session in sessions:
        request = urllib.request.Request(
            f"{url}/{index}/_doc", data=koala_format.dumps(session), headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request) as reply:
            assert reply.status == 201
    urllib.request.urlopen(urllib.request.Request(f"{url}/{index}/_refresh", method="POST")).close()


@pytest.fixture
def recorder_index():
    store = ElasticStore(ES_URL)
    name = f"{unique_prefix()}-rdebug_index"
    yield name
    store.client.options(ignore_status=404).indices.delete(index=name)
    store.close()


@pytest.mark.parametrize("mapping", ["rdebug", "dynamic"])
def test_sessions_a_koala_recorder_posted_are_searched_and_exported(capsys, tmp_path: Path, example_bytes: bytes, recorder_index: str, mapping: str) -> None:
    if mapping == "rdebug":  # the mapping rdebug's docs recommend
        store = ElasticStore(ES_URL)
        store.client.indices.create(index=recorder_index, mappings={"properties": {"SessionId": {"type": "keyword"}, "NextSessionId": {"type": "keyword"}}})
        store.close()
    [example] = koala_format.loads(example_bytes)
    sessions = [example, *varied_sessions(20)]
    post_like_koala_recorder(ES_URL, recorder_index, sessions)

    # Derived fields are not in a recorder's documents; koala-store filters them itself.
    run = koala(capsys, "sessions", "search", "inbound.method:POST AND outbound.protocol:mysql", "--json", "--store", ES_URL, "--index", recorder_index)
    assert run.code == 0, run.err
    found = [orjson.loads(line)["session_id"] for line in run.out.splitlines()]
    expected = sorted(
        (s.recorded_at, s.session_id)
        for s in sessions
        if summarize(s).method == "POST" and any(o.protocol == "mysql" for o in summarize(s).outbound)
    )
    assert found == [sid for _, sid in expected]
    assert "1548160113499755162-1158745" in found
    run = koala(capsys, "sessions", "search", "recorded_at:<2020-01-01", "--json", "--store", ES_URL, "--index", recorder_index)
    assert [orjson.loads(line)["session_id"] for line in run.out.splitlines()] == ["1548160113499755162-1158745"]
    run = koala(capsys, "sessions", "show", "1548160113499755162-1158745", "--raw", "--store", ES_URL, "--index", recorder_index)
    assert run.out.encode() == example_bytes + b"\n"
    out = tmp_path / "out.ndjson"
    run = koala(capsys, "sessions", "export", "timeout", "--format", "ndjson", "-o", str(out), "--store", ES_URL, "--index", recorder_index)
    assert run.code == 0
    assert len(out.read_bytes().splitlines()) == 4  # the cache-miss sessions say "timeout"
    store = open_store(ES_URL, index=recorder_index)
    assert store.count("*") == 21
    assert store.count("inbound.status:404") == 4
    store.close()


def test_ingest_writes_koala_documents_into_a_recorder_index(capsys, tmp_path: Path, example_path: Path, recorder_index: str) -> None:
    run = koala(capsys, "ingest", str(example_path), "--store", ES_URL, "--index", recorder_index)
    assert run.code == 0, run.err
    store = ElasticStore(ES_URL)
    store.client.indices.refresh(index=recorder_index)
    [hit] = store.client.search(index=recorder_index)["hits"]["hits"]
    store.close()
    assert hit["_id"] == "1548160113499755162-1158745"
    assert hit["_source"] == orjson.loads(example_path.read_bytes())  # exactly what Koala's recorder posts
    # rdebug's replay tool query still finds it.
    store = ElasticStore(ES_URL)
    reply = store.client.search(index=recorder_index, query={"bool": {"must": [{"match_phrase": {"CallFromInbound.Request": "/v1/order"}}]}})
    store.close()
    assert reply["hits"]["total"]["value"] == 1
    # Ingesting again is idempotent.
    run = koala(capsys, "ingest", str(example_path), "--store", ES_URL, "--index", recorder_index)
    assert "stored 0 sessions (1 already stored)" in run.out


def test_store_copy_both_ways(capsys, tmp_path: Path) -> None:
    prefix = unique_prefix()
    es_url = f"{ES_URL}?prefix={prefix}"
    source = f"sqlite:///{tmp_path / 'a.db'}"
    back = f"sqlite:///{tmp_path / 'b.db'}"
    store = open_store(source)
    sessions = varied_sessions(60)
    store.put_many(sessions)
    store.close()
    try:
        run = koala(capsys, "store", "copy", source, es_url)
        assert run.code == 0 and "copied 60 sessions" in run.out
        run = koala(capsys, "store", "copy", source, es_url)
        assert "copied 0 sessions (60 already there)" in run.out
        run = koala(capsys, "store", "copy", es_url, back, "inbound.method:GET AND outbound.count:>0")
        wanted = [s for s in sessions if summarize(s).method == "GET" and s.outbound_calls]
        assert run.code == 0 and f"copied {len(wanted)} sessions" in run.out
        copied = open_store(back)
        originals = {s.session_id: s for s in sessions}
        assert all(originals[s.session_id] == s for s in copied.scan())
        copied.close()
    finally:
        store = ElasticStore(ES_URL)
        drop_prefix(store.client, prefix)
        store.close()


def test_elasticsearch_down_at_start_is_one_clear_error(capsys, example_path: Path) -> None:
    for args in (["ingest", str(example_path)], ["sessions", "search"], ["store", "copy", "http://127.0.0.1:1", "sqlite:///x.db"]):
        run = koala(capsys, *args, *(["--store", "http://127.0.0.1:1"] if args[0] != "store" else []))
        assert run.code == 1
        assert "cannot reach Elasticsearch at http://127.0.0.1:1:" in run.err and "start it (koala es start) or check --store" in run.err


def test_index_option_needs_elasticsearch(capsys, tmp_path: Path) -> None:
    run = koala(capsys, "sessions", "search", "--store", f"sqlite:///{tmp_path / 'k.db'}", "--index", "rdebug_index")
    assert run.code == 1 and "--index rdebug_index applies to Elasticsearch stores" in run.err


# --- outages -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def outage_node():
    node = LocalElasticsearch(OUTAGE_PORT)
    node.start()
    yield node
    node.stop()


def _count(url: str) -> int:
    store = ElasticStore(url)
    store.refresh()
    try:
        return store.count()
    finally:
        store.close()


def _write_sessions(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "many.ndjson"
    with path.open("wb") as out:
        ndjson.write(varied_sessions(n, payload=2048), out)
    return path


def _wait_until_some_are_stored(node: LocalElasticsearch, url: str, ingest: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and ingest.poll() is None:
        try:
            if _count(url) > 0:
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise AssertionError("no session reached Elasticsearch before the ingest ended")


def test_elasticsearch_restarted_mid_ingest_loses_nothing(tmp_path: Path, outage_node: LocalElasticsearch) -> None:
    prefix = unique_prefix()
    url = f"{outage_node.url}?prefix={prefix}"
    source = _write_sessions(tmp_path, 12_000)
    ingest = subprocess.Popen([sys.executable, "-m", "koala_store", "ingest", str(source), "--store", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_until_some_are_stored(outage_node, url, ingest)
    outage_node.stop()
    time.sleep(2)
    outage_node.start()
    out, err = ingest.communicate(timeout=300)
    assert ingest.returncode == 0, err.decode()
    assert "stored 12000 sessions" in out.decode()
    assert _count(url) == 12_000


def test_elasticsearch_gone_mid_ingest_reports_every_unstored_session(tmp_path: Path, outage_node: LocalElasticsearch) -> None:
    prefix = unique_prefix()
    url = f"{outage_node.url}?prefix={prefix}&retry_for=3"
    n = 12_000
    source = _write_sessions(tmp_path, n)
    ingest = subprocess.Popen([sys.executable, "-m", "koala_store", "ingest", str(source), "--store", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_until_some_are_stored(outage_node, url, ingest)
    outage_node.stop()
    out, err = ingest.communicate(timeout=300)
    outage_node.start()
    assert ingest.returncode == 2, err.decode()
    stored = int(out.decode().split("stored ")[1].split(" ")[0])
    # Every session not stored is named: lines of the input, with the reason.
    unstored: set[int] = set()
    for line in err.decode().splitlines():
        if "not stored: Elasticsearch at" in line:
            where = line.split(": ")[1]
            first, _, last = where.removeprefix("lines ").removeprefix("line ").partition("-")
            unstored.update(range(int(first), int(last or first) + 1))
    assert stored + len(unstored) == n
    # Every session reported stored is there; a request cut by the shutdown may also have
    # landed without its answer, so what is there covers what was reported, never less.
    there = {s.session_id for s in ElasticStore(url).scan()}
    assert len(there) >= stored
    assert len(there) <= n
    # Ingesting the same file again completes it: each session exactly once.
    again = koala_process("ingest", str(source), "--store", url)
    assert again.code == 0, again.err
    assert _count(url) == n


def test_replay_reads_sessions_from_elasticsearch_and_indexes_every_comparison(capsys) -> None:
    from replay_helpers import DEP_PEER, free_port, item_session, sut

    prefix = unique_prefix()
    url = f"{ES_URL}?prefix={prefix}"
    store = ElasticStore(url)
    try:
        store.put_many([item_session(i, f"sku{i}", 100 + i) for i in range(5)])
        store.refresh()
        dep = free_port()
        with sut("--price-bump", "2", dep=dep) as port:
            run = koala(capsys, "replay", "inbound.path:/item/*", "--target", f"127.0.0.1:{port}", "--outbound", f"{dep}={DEP_PEER.address}", "--store", url, "--run-name", "es-run")
        assert run.code == 3, run.err
        assert "same 0, different 5, error 0" in run.out
        client = store.client
        client.indices.refresh(index=f"{prefix}-replays")
        reply = client.search(index=f"{prefix}-replays", query={"term": {"verdict": "different"}}, size=0, aggs={"paths": {"terms": {"field": "differences.path"}}})
        assert reply["hits"]["total"]["value"] == 5
        assert [b["key"] for b in reply["aggregations"]["paths"]["buckets"]] == ["body.price"]
        assert client.get(index=f"{prefix}-runs", id=store.runs.run("es-run").run_id)["_source"]["different"] == 5
        shown = koala(capsys, "runs", "show", "es-run", "--store", url)
        assert shown.code == 0 and "body.price: 100 -> 102" in shown.out
    finally:
        drop_prefix(store.client, prefix)
        store.close()
