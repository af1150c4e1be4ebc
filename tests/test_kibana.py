"""Kibana saved objects (kibana/) and `koala kibana install`.

Kibana cannot run here, so these check what it would do: the NDJSON has the shape its
import expects, every field a panel or search reads is mapped and aggregatable, each
panel's aggregation gives the expected numbers on the real local Elasticsearch after the
demo's v1 and v2 replays, and the installer sends the request Kibana's import API takes.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections import Counter
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from cli_helpers import koala
from koala_store.kibana.objects import DASHBOARDS, DATA_VIEWS, SEARCHES, VISUALIZATIONS, field_types, ndjson, saved_objects
from koala_store.kibana.spec import es_search, rows
from koala_store.summary import summarize
from replay_helpers import ROOT
from stores import ES_URL, drop_prefix, unique_prefix

AGGREGATABLE = {"keyword", "integer", "long", "double", "float", "date", "date_nanos", "boolean", "short", "byte"}
KIBANA_TYPES = {"index-pattern", "search", "lens", "dashboard"}


def _objects() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (ROOT / "kibana" / "koala-store.ndjson").read_text().splitlines()]


def test_the_committed_files_are_current(capsys, tmp_path: Path) -> None:
    assert (ROOT / "kibana" / "koala-store.ndjson").read_text() == ndjson(), "regenerate with: koala kibana export"
    run = koala(capsys, "kibana", "export", "-o", str(tmp_path / "k.ndjson"))
    assert run.code == 0 and (tmp_path / "k.ndjson").read_text() == ndjson()
    assert "wrote 20 saved objects" in run.err


def test_the_ndjson_has_the_structure_kibana_imports() -> None:
    objects = _objects()
    keys = [(o["type"], o["id"]) for o in objects]
    assert len(set(o["id"] for o in objects)) == len(objects), "ids are unique"
    by_key = {key: o for key, o in zip(keys, objects, strict=True)}
    for obj in objects:
        assert obj["type"] in KIBANA_TYPES
        assert re.fullmatch(r"8\.\d+\.\d+", obj["coreMigrationVersion"])
        assert re.fullmatch(r"[78]\.\d+\.\d+", obj["typeMigrationVersion"])
        assert isinstance(obj["attributes"]["title"], str) and obj["attributes"]["title"]
        names = [r["name"] for r in obj["references"]]
        assert len(set(names)) == len(names)
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in by_key, f"{obj['id']} references a missing {ref}"
        attributes = obj["attributes"]
        if obj["type"] == "index-pattern":
            assert attributes["timeFieldName"] in ("recorded_at", "replayed_time", "started_time")
        if obj["type"] == "search":
            source = json.loads(attributes["kibanaSavedObjectMeta"]["searchSourceJSON"])
            assert source["indexRefName"] in names
        if obj["type"] == "lens":
            layers = attributes["state"]["datasourceStates"]["formBased"]["layers"]
            for layer_id, layer in layers.items():
                assert f"indexpattern-datasource-layer-{layer_id}" in names
                assert sorted(layer["columns"]) == sorted(layer["columnOrder"])
            visualization = attributes["state"]["visualization"]
            for layer in visualization.get("layers", [visualization]):
                used = layer.get("accessors", []) + layer.get("primaryGroups", []) + layer.get("metrics", [])
                used += [layer[k] for k in ("xAccessor", "splitAccessor") if k in layer] + [c["columnId"] for c in layer.get("columns", [])]
                assert used and set(used) <= set(layers[layer["layerId"]]["columns"])
        if obj["type"] == "dashboard":
            panels = json.loads(attributes["panelsJSON"])
            assert len({p["panelIndex"] for p in panels}) == len(panels)
            for panel in panels:
                ref = next(r for r in obj["references"] if r["name"] == f"{panel['panelIndex']}:{panel['panelRefName']}")
                assert ref["type"] == panel["type"]
                grid = panel["gridData"]
                assert grid["i"] == panel["panelIndex"] and 0 <= grid["x"] and grid["x"] + grid["w"] <= 48
    titles = {o["attributes"]["title"] for o in objects if o["type"] == "dashboard"}
    assert titles == {"Replay regressions", "Traffic"}


def test_every_field_read_is_mapped_and_aggregatable() -> None:
    types = field_types()
    for view in DATA_VIEWS:
        assert types[view.key][view.time_field] in ("date", "date_nanos")
    for viz in VISUALIZATIONS:
        for field in viz.fields():
            assert types[viz.data_view].get(field) in AGGREGATABLE, f"{viz.id} reads {field} ({types[viz.data_view].get(field)})"
    for search in SEARCHES:
        assert types[search.data_view][search.sort[0]] in AGGREGATABLE
        for column in search.columns:
            assert column in types[search.data_view], f"{search.id} shows unmapped {column}"


def test_another_prefix_names_its_own_indices_and_ids() -> None:
    objects = saved_objects("staging")
    assert {o["attributes"]["title"] for o in objects if o["type"] == "index-pattern"} == {"staging-sessions", "staging-replays", "staging-runs"}
    assert all(o["id"].startswith("staging-store-") for o in objects)
    assert all(r["id"].startswith("staging-store-") for o in objects for r in o["references"])


# --- the panels' numbers on the real Elasticsearch ---------------------------------------


@pytest.fixture(scope="module")
def demo_es() -> Iterator[tuple[Any, str, Any, Any]]:
    if not ES_URL:
        pytest.skip("needs the local Elasticsearch: export KOALA_TEST_ES_URL (scripts/test.sh does)")
    pytest.importorskip("redis")
    from demo_runs import ingest_demo, replay_demo
    from koala_store.store.elastic import ElasticStore

    prefix = unique_prefix()
    store = ElasticStore(ES_URL, prefix=prefix)
    try:
        ingest_demo(store)
        store.refresh()
        v1, v2 = replay_demo(store, "v1"), replay_demo(store, "v2")
        yield store, prefix, v1, v2
    finally:
        drop_prefix(store.client, prefix)
        store.close()


def _panel(store, prefix: str, viz_id: str, filters: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    viz = next(v for v in VISUALIZATIONS if v.id == viz_id)
    reply = store.client.search(index=f"{prefix}-{viz.data_view}", **es_search(viz, filters))
    return rows(viz, reply.body)


def test_regression_panels_show_the_v2_regressions(demo_es) -> None:
    store, prefix, v1, v2 = demo_es
    run = [{"term": {"run_id": v2.run_id}}]
    verdicts = Counter()
    for row in _panel(store, prefix, "verdicts-over-time", run):
        verdicts[row["Verdict"]] += row["Sessions"]
    assert verdicts == {"same": 12, "different": 13}
    per_endpoint = {(r["Endpoint"], r["Verdict"]): r["Sessions"] for r in _panel(store, prefix, "difference-rate-per-endpoint", run)}
    assert per_endpoint[("GET /users/{id}", "different")] == 7 and per_endpoint[("GET /users/{id}", "same")] == 1
    assert per_endpoint[("POST /orders", "different")] == 3 and per_endpoint[("GET /quote", "different")] == 2
    assert per_endpoint[("GET /orders/{id}", "different")] == 1
    assert _panel(store, prefix, "top-differing-paths", run) == [
        {"Field path": "body.email", "Differing sessions": 7},
        {"Field path": "outbound[3]", "Differing sessions": 3},
        {"Field path": "body.total_cents", "Differing sessions": 2},
        {"Field path": "status", "Differing sessions": 1},
    ]
    assert _panel(store, prefix, "missed-calls-per-peer", run) == [{"Recorded peer": "127.0.0.1:16379", "Sessions with missed calls": 3}]
    assert _panel(store, prefix, "unmatched-calls-per-peer", run) == []
    # Both runs, side by side, as the runs table shows them (no run filter).
    table = {r["Run"]: r for r in _panel(store, prefix, "runs-table")}
    assert table["demo-v1"] == {"Run": "demo-v1", "Sessions": 25, "Same": 25, "Different": 0, "Error": 0}
    assert table["demo-v2"] == {"Run": "demo-v2", "Sessions": 25, "Same": 12, "Different": 13, "Error": 0}


def test_latency_panel_averages_what_the_comparisons_hold(demo_es) -> None:
    store, prefix, _, v2 = demo_es
    comparisons = list(store.runs.comparisons(v2.run_id))
    shown = {r["Endpoint"]: r for r in _panel(store, prefix, "latency-per-endpoint", [{"term": {"run_id": v2.run_id}}])}
    assert set(shown) == {c.endpoint for c in comparisons}
    for endpoint, row in shown.items():
        mine = [c for c in comparisons if c.endpoint == endpoint]
        assert row["Recorded (ms)"] == pytest.approx(sum(c.recorded_latency_ms for c in mine) / len(mine))
        assert row["Replayed (ms)"] == pytest.approx(sum(c.replayed_latency_ms for c in mine) / len(mine))


def test_traffic_panels_count_the_recorded_sessions(demo_es) -> None:
    store, prefix, _, _ = demo_es
    summaries = [summarize(s) for s in store.scan("*")]
    assert len(summaries) == 25
    paths = Counter()
    for row in _panel(store, prefix, "sessions-per-endpoint"):
        paths[row["Path"]] += row["Sessions"]
    # The panel shows the 10 most frequent paths (ties by name), as Lens asks for them.
    every = Counter(s.path for s in summaries)
    assert len(every) > 10
    assert paths == dict(sorted(every.items(), key=lambda kv: (-kv[1], kv[0]))[:10])
    assert {r["Status"]: r["Sessions"] for r in _panel(store, prefix, "status-codes")} == Counter(s.status for s in summaries)
    assert sum(r["Outbound calls"] for r in _panel(store, prefix, "outbound-calls-over-time")) == sum(len(s.outbound) for s in summaries) == 43
    peers = {r["Peer"]: r["Sessions"] for r in _panel(store, prefix, "sessions-per-peer")}
    assert peers == Counter(p for s in summaries for p in {o.peer for o in s.outbound})
    protocols = {r["Protocol"]: r["Sessions"] for r in _panel(store, prefix, "sessions-per-protocol")}
    assert protocols == Counter(p for s in summaries for p in {o.protocol for o in s.outbound}) == {"redis": 16, "http": 13}


def test_saved_searches_find_what_they_name(demo_es) -> None:
    store, prefix, _, v2 = demo_es
    counts = {}
    for search in SEARCHES:
        query = {"bool": {"filter": [search.es_query] + ([{"term": {"run_id": v2.run_id}}] if search.data_view == "replays" else [])}}
        counts[search.id] = store.client.count(index=f"{prefix}-{search.data_view}", query=query)["count"]
    assert counts["differing-sessions"] == 13 and counts["replay-errors"] == 0
    assert counts["server-errors"] == sum(1 for s in store.scan("*") if summarize(s).status and summarize(s).status >= 500)


# --- koala kibana install against a local HTTP server --------------------------------------


class FakeKibana:
    """A local HTTP server standing where Kibana would, recording what it receives and
    answering as Kibana's status and import APIs do (or as told to refuse)."""

    def __init__(self, version: str = "8.19.3", import_status: int = 200, import_body: dict[str, Any] | None = None, status_code: int = 200):
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                fake.requests.append({"method": "GET", "path": self.path, "headers": self.headers})
                if not self.path.endswith("/api/status"):
                    return self._answer(404, {"statusCode": 404, "message": "Not Found"})
                if status_code != 200:
                    return self._answer(status_code, {"statusCode": status_code, "message": "[security_exception] unable to authenticate user"})
                self._answer(200, {"name": "kibana", "version": {"number": version, "build_number": 1}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                fake.requests.append({"method": "POST", "path": self.path, "headers": self.headers, "body": body})
                self._answer(import_status, import_body if import_body is not None else {"success": True, "successCount": 20, "errors": []})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> FakeKibana:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def _file_part(request: dict[str, Any]) -> tuple[str | None, str | None, bytes]:
    """(field name, file name, content) of the one part of a multipart/form-data body."""
    head = f"Content-Type: {request['headers']['Content-Type']}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + request["body"])
    assert message.is_multipart()
    [part] = list(message.iter_parts())
    return part.get_param("name", header="content-disposition"), part.get_filename(), part.get_payload(decode=True)


def test_install_posts_the_ndjson_as_kibanas_import_api_takes_it(capsys) -> None:
    with FakeKibana() as kibana:
        run = koala(capsys, "kibana", "install", "--kibana", kibana.url.replace("http://", "http://elastic:s3cret@"), "--space", "qa")
    assert run.code == 0, run.err
    assert "imported 20 saved objects into" in run.out and "(space qa)" in run.out
    status, post = kibana.requests
    assert status["path"] == "/s/qa/api/status"
    assert post["path"] == "/s/qa/api/saved_objects/_import?overwrite=true"
    assert post["headers"]["kbn-xsrf"]
    assert post["headers"]["Authorization"] == "Basic " + base64.b64encode(b"elastic:s3cret").decode()
    name, filename, content = _file_part(post)
    assert name == "file" and filename.endswith(".ndjson")
    assert content.decode() == ndjson()


def test_install_with_an_api_key_and_another_prefix(capsys) -> None:
    with FakeKibana() as kibana:
        run = koala(capsys, "kibana", "install", "--kibana", kibana.url, "--api-key", "abc==", "--prefix", "staging")
    assert run.code == 0, run.err
    post = kibana.requests[1]
    assert post["path"] == "/api/saved_objects/_import?overwrite=true"
    assert post["headers"]["Authorization"] == "ApiKey abc=="
    assert _file_part(post)[2].decode() == ndjson("staging")


@pytest.mark.parametrize(
    ("fake", "message"),
    [
        (dict(version="8.5.1"), "Kibana 8.5.1 at http://127.0.0.1:"),
        (dict(status_code=401), "refused the login"),
        (dict(import_status=403, import_body={"statusCode": 403, "message": "Unable to bulk_create index-pattern"}), "may not import saved objects"),
        (dict(import_status=400, import_body={"statusCode": 400, "message": 'Document "x" belongs to a more recent version of Kibana [8.9.0]'}), "refused the saved objects: Document"),
        (dict(import_status=404, import_body={"statusCode": 404, "message": "Saved object [space/qa] not found"}), "has no space 'qa'"),
    ],
)
def test_install_errors_are_one_clear_sentence(capsys, fake: dict[str, Any], message: str) -> None:
    with FakeKibana(**fake) as kibana:
        run = koala(capsys, "kibana", "install", "--kibana", kibana.url, "--space", "qa")
    assert run.code == 1
    assert message in run.err and "Traceback" not in run.err
    assert len(run.err.strip().splitlines()) == 1


def test_objects_kibana_refuses_one_by_one_are_named_and_exit_partial(capsys) -> None:
    body = {"success": False, "successCount": 19, "errors": [{"id": "koala-store-traffic", "type": "dashboard", "error": {"type": "unknown", "message": "boom"}}]}
    with FakeKibana(import_body=body) as kibana:
        run = koala(capsys, "kibana", "install", "--kibana", kibana.url)
    assert run.code == 2
    assert "imported 19 saved objects" in run.out and "dashboard koala-store-traffic: boom" in run.err


def test_a_wrong_url_is_one_clear_error(capsys) -> None:
    from replay_helpers import free_port

    run = koala(capsys, "kibana", "install", "--kibana", f"http://127.0.0.1:{free_port()}")
    assert run.code == 1 and "cannot reach Kibana at" in run.err and "check --kibana" in run.err
    with FakeKibana(status_code=404) as other:  # something answers, but not as Kibana's status API does
        run = koala(capsys, "kibana", "install", "--kibana", other.url)
    assert run.code == 1 and "does not answer as Kibana does (GET /api/status: HTTP 404)" in run.err
    run = koala(capsys, "kibana", "install", "--kibana", "ftp://x")
    assert run.code == 1 and "--kibana 'ftp://x' is not a Kibana URL" in run.err
    run = koala(capsys, "kibana", "install", "--kibana", "http://127.0.0.1:1", "--space", "Bad Space")
    assert run.code == 1 and "is not a Kibana space id" in run.err


def test_tls_options_are_checked_before_anything_is_sent(capsys, tmp_path: Path) -> None:
    run = koala(capsys, "kibana", "install", "--kibana", "https://127.0.0.1:5601", "--ca-certs", str(tmp_path / "none.pem"))
    assert run.code == 1 and f"CA certificate {tmp_path / 'none.pem'} does not exist" in run.err
    with FakeKibana() as plain:  # an https URL to a server speaking plain HTTP: the TLS handshake fails
        run = koala(capsys, "kibana", "install", "--kibana", plain.url.replace("http://", "https://"))
    assert run.code == 1 and "Traceback" not in run.err and len(run.err.strip().splitlines()) == 1
    assert "TLS with Kibana" in run.err or "cannot reach Kibana" in run.err


def test_dashboards_name_every_panel_once() -> None:
    known = {v.id for v in VISUALIZATIONS} | {s.id for s in SEARCHES}
    for dashboard in DASHBOARDS:
        assert len(set(dashboard.panels)) == len(dashboard.panels) and set(dashboard.panels) <= known
