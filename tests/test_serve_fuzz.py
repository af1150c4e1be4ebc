"""Fuzzed documents against the ingest service's handlers (the real Starlette app over a real
spool on disk): whatever arrives, the answer is 201/200/202/207 or one 4xx sentence, never a
5xx or a traceback, and exactly the acknowledged sessions are in the spool."""

from __future__ import annotations

from pathlib import Path

import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import httpx
import threading
import time
import uvicorn

from factories import varied_sessions
from koala_store.formats import koala as koala_format
from koala_store.ingest.metrics import IngestMetrics
from koala_store.ingest.service import IngestService, ServeConfig
from koala_store.ingest.spool import Spool
from replay_helpers import free_port

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
VALID = orjson.loads(koala_format.dumps(varied_sessions(1)[0]))
KEYS = sorted(VALID) + ["CallFromInbound.Request", "CallFromInbound.OccurredAt", "Actions.0", "ReturnInbound.Response"]


class App:
    """The service's app on a real uvicorn server (in a thread), over a real spool."""

    def __init__(self, folder: Path):
        self.spool = Spool(folder, max_bytes=1 << 30, seal_after=60)
        self.service = IngestService(ServeConfig(store_url="sqlite:///unused.db", max_document=64 << 10), self.spool, IngestMetrics(), None)
        port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(self.service.app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        self.acknowledged = 0

    def close(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(10)
        self.spool.close()

    def check(self, response, *ok: int) -> None:
        assert response.status_code in ok or 400 <= response.status_code < 500, response.text
        body = response.json()
        if response.status_code >= 400:
            message = body["message"]
            assert message and "\n" not in message and "Traceback" not in message


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory):
    state = App(tmp_path_factory.mktemp("fuzz-spool"))
    yield state
    state.close()


def _post_doc(app: App, body: bytes) -> None:
    response = app.client.post("/idx/_doc", content=body)
    app.check(response, 201)
    if response.status_code == 201:
        app.acknowledged += 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300))
def test_random_bytes(app: App, body: bytes) -> None:
    _post_doc(app, body)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=json_values)
def test_random_json(app: App, value: object) -> None:
    _post_doc(app, json.dumps(value).encode())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(KEYS), value=json_values, drop=st.booleans())
def test_a_valid_session_with_one_field_broken(app: App, key: str, value: object, drop: bool) -> None:
    doc = orjson.loads(orjson.dumps(VALID))
    parent, name = doc, key
    if "." in key:
        head, name = key.split(".", 1)
        parent = doc[head]
        if name.isdigit():
            parent, name = parent, int(name)  # type: ignore[assignment]
    if drop and isinstance(parent, dict):
        parent.pop(name, None)
    else:
        parent[name] = value  # type: ignore[index]
    _post_doc(app, json.dumps(doc).encode())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(json_values.map(lambda v: json.dumps(v).encode()), st.just(orjson.dumps(VALID)), st.just(b'{"index":{}}'), st.binary(max_size=40)), max_size=8))
def test_random_bulk_and_ndjson(app: App, lines: list[bytes]) -> None:
    body = b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n"
    bulk = app.client.post("/_bulk", content=body)
    app.check(bulk, 200)
    if bulk.status_code == 200:
        app.acknowledged += sum(1 for item in bulk.json()["items"] if next(iter(item.values())).get("status") == 201)
    ndjson = app.client.post("/sessions", content=body)
    app.check(ndjson, 202, 207)
    if ndjson.status_code in (202, 207):
        app.acknowledged += ndjson.json()["accepted"]


def test_exactly_the_acknowledged_sessions_are_spooled(app: App) -> None:
    # Runs after the fuzzing above (same module fixture): nothing acknowledged is missing,
    # nothing refused slipped in.
    assert app.spool.sessions == app.acknowledged > 0
