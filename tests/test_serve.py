"""`koala serve`, the ingest service, as a real process on a real socket: Koala's recorder's
POSTs answered as Elasticsearch answers them, bulk and NDJSON batches, one clear 4xx per bad
document, 429 when the spool is full, the token off loopback, TLS, redaction."""

from __future__ import annotations

import base64
import gzip
import shutil
import signal
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import msgspec
import orjson
import pytest

from cli_helpers import koala
from factories import make_session, varied_sessions
from koala_store.formats import koala as koala_format
from koala_store.formats.document import to_document
from koala_store.store import open_store
from record_helpers import LOOPBACK, start_koala, stop_koala, tmp_store
from replay_helpers import free_port


class Serve:
    def __init__(self, tmp_path: Path, *flags: str, store: str | None = None, env: dict[str, str] | None = None, scheme: str = "http", verify: object = True):
        self.port = free_port()
        self.store = store or tmp_store(tmp_path, "serve.db")
        self.spool = tmp_path / "spool"
        self.process = start_koala("serve", "--listen", f"{LOOPBACK}:{self.port}", "--store", self.store, "--spool", str(self.spool), *flags, port=self.port, env=env)
        self.url = f"{scheme}://{LOOPBACK}:{self.port}"
        self.client = httpx.Client(base_url=self.url, timeout=20, verify=verify)  # type: ignore[arg-type]

    def wait_stored(self, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            health = self.client.get("/healthz").json()
            if health["spool_sessions"] == 0:
                return health
            assert time.monotonic() < deadline, health
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.client.close()
        return stop_koala(self.process, sig)


def stored_ids(url: str) -> list[str]:
    store = open_store(url)
    try:
        return [s.session_id for s in store.scan()]
    finally:
        store.close()


@pytest.fixture
def serve(tmp_path: Path):
    service = Serve(tmp_path)
    yield service
    if service.process.poll() is None:
        service.stop()


def test_koalas_recorder_posts_are_answered_as_elasticsearch_answers(serve: Serve, example_bytes: bytes, tmp_path: Path) -> None:
    sessions = varied_sessions(60)
    answer = serve.client.post("/rdebug_index/_doc", content=example_bytes, headers={"Content-Type": "application/json"})
    assert answer.status_code == 201
    body = answer.json()
    assert body["_id"] == "1548160113499755162-1158745" and body["result"] == "created" and body["_index"] == "rdebug_index"
    for session in sessions[:40]:
        assert serve.client.post("/rdebug_index/_doc", content=koala_format.dumps(session)).status_code == 201
    for session in sessions[40:50]:
        assert serve.client.put(f"/rdebug_index/_doc/{session.session_id}", content=koala_format.dumps(session)).json()["_id"] == session.session_id
    for session in sessions[50:]:
        assert serve.client.post(f"/rdebug_index/_create/{session.session_id}", content=koala_format.dumps(session)).status_code == 201
    health = serve.wait_stored()
    assert health["store"] == "up" and health["accepted"] == 61
    metrics = serve.client.get("/metrics").text
    assert "koala_ingest_accepted_total 61.0" in metrics and "koala_ingest_flushed_total 61.0" in metrics
    code, err = serve.stop()
    assert code == 143 and "interrupted; 61 sessions accepted, all of them stored" in err
    store = open_store(serve.store)
    try:
        assert store.count() == 61
        # Byte for byte what was posted (sessions without secrets are not touched).
        assert koala_format.dumps(store.get("1548160113499755162-1158745")) == example_bytes.rstrip(b"\n")
        for session in sessions:
            assert koala_format.dumps(store.get(session.session_id)) == koala_format.dumps(session)
    finally:
        store.close()


def test_an_id_outside_latin_1_is_created_and_located_percent_encoded(serve: Serve) -> None:
    """A session id is any JSON string; the Location header is a URI, so it carries the id
    percent-encoded (a raw one cannot be sent in a header: that was a 500 after spooling)."""
    session = msgspec.structs.replace(make_session(7), session_id="会话-Ā-7")
    answer = serve.client.post("/rdebug_index/_doc", content=koala_format.dumps(session))
    assert answer.status_code == 201, answer.text
    assert answer.json()["_id"] == "会话-Ā-7"
    assert answer.headers["Location"] == "/rdebug_index/_doc/%E4%BC%9A%E8%AF%9D-%C4%80-7"
    serve.wait_stored()
    assert stored_ids(serve.store) == ["会话-Ā-7"]


def test_bulk_and_ndjson_batches(serve: Serve) -> None:
    sessions = varied_sessions(250)
    lines = []
    for session in sessions[:200]:
        lines += [b'{"index":{"_index":"sessions"}}', orjson.dumps(to_document(session))]
    lines += [b'{"create":{"_id":"wrong-id"}}', koala_format.dumps(sessions[200]).replace(b"\n", b"")]
    lines += [b'{"index":{}}', b'{"SessionId": "x"}', b'{"delete":{"_id":"a"}}']
    answer = serve.client.post("/_bulk", content=b"\n".join(lines) + b"\n", headers={"Content-Type": "application/x-ndjson"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["errors"] is True and len(body["items"]) == 203
    assert [item["index"]["status"] for item in body["items"][:200]] == [201] * 200
    wrong, missing, delete = body["items"][200:]
    assert wrong["create"]["status"] == 400 and "the document id 'wrong-id' is not the session's SessionId" in wrong["create"]["error"]["reason"]
    assert missing["index"]["error"]["reason"] == "line 404: not a Koala session: Object missing required field `CallFromInbound` - at `$`"
    assert delete["delete"]["status"] == 400

    ndjson = b"".join(orjson.dumps(to_document(s)) + b"\n" for s in sessions[200:])
    assert serve.client.post("/sessions", content=ndjson).json() == {"accepted": 50, "rejected": []}
    partial = serve.client.post("/sessions", content=ndjson.split(b"\n")[0] + b"\n\n{not json\n")
    assert partial.status_code == 207
    (rejected,) = partial.json()["rejected"]
    # (orjson's own words vary by version after "unexpected character")
    assert (rejected["line"], rejected["reason"]) == (3, "not_json") and rejected["error"].startswith("not valid JSON: unexpected character")
    none = serve.client.post("/sessions", content=b"[1,2]\n")
    assert none.status_code == 400 and none.json()["message"].startswith("no session accepted: line 1: expected a JSON object")
    gz = serve.client.post("/sessions", content=gzip.compress(ndjson), headers={"Content-Encoding": "gzip"})
    assert gz.status_code == 202
    serve.wait_stored()
    assert len(stored_ids(serve.store)) == 250  # a session sent twice is stored once


@pytest.mark.parametrize(
    ("body", "status", "reason", "message"),
    [
        (b"{\"SessionId\": ", 400, "not_json", "not valid JSON: unexpected end of data: line 1 column 15 (char 14)"),
        (b"", 400, "not_json", "the request has no body; POST one Koala session as JSON"),
        (b'{"SessionId": "1-1"}', 400, "not_a_session", "not a Koala session: Object missing required field `CallFromInbound` - at `$`"),
        (b'{"SessionId": "1-1", "CallFromInbound": {"Request": 5}, "ReturnInbound": null}', 400, "not_a_session", "not a Koala session: Expected `str | null`, got `int` - at `$.CallFromInbound.Request`"),
        (b'{"SessionId": "1-1", "CallFromInbound": {"Request": "\xff\xfe"}, "ReturnInbound": null}', 400, "bad_bytes", None),
        (b"x" * (64 << 10), 413, "too_large", "the request body is 65536 bytes or more, over the 32768-byte limit; send smaller batches or raise --max-document"),
    ],
    ids=["cut short", "empty", "no CallFromInbound", "wrong type", "not UTF-8", "too large"],
)
def test_a_bad_document_gets_one_clear_4xx(tmp_path: Path, body: bytes, status: int, reason: str, message: str | None) -> None:
    service = Serve(tmp_path, "--max-document", "32KiB")
    try:
        answer = service.client.post("/rdebug_index/_doc", content=body)
        assert answer.status_code == status
        error = answer.json()
        assert error["error"]["type"] == reason
        if message is not None:
            assert error["message"] == message
        else:
            assert "is not valid UTF-8" in error["message"] and "\\xHH" in error["message"]
        assert f'koala_ingest_rejected_total{{reason="{reason}"}} 1.0' in service.client.get("/metrics").text
        good = service.client.post("/rdebug_index/_doc", content=koala_format.dumps(make_session(1)))
        assert good.status_code == 201  # the service goes on
    finally:
        service.stop()


def test_a_full_spool_answers_429_and_keeps_everything_accepted(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens: the store is down
    service = Serve(tmp_path, "--max-spool", "8KiB", "--drain", "0", store=down)
    statuses = []
    sessions = varied_sessions(40)
    for session in sessions:
        answer = service.client.post("/i/_doc", content=koala_format.dumps(session))
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            assert answer.headers["Retry-After"] == "2"
            assert "the spool holds" in answer.json()["message"] and "try again in 2 s" in answer.json()["message"]
    accepted = statuses.count(201)
    assert 0 < accepted < 40 and set(statuses) == {201, 429}
    health = service.client.get("/healthz").json()
    assert health["store"] == "down" and health["spool_sessions"] == accepted and "cannot reach Elasticsearch" in health["store_error"]
    code, err = service.stop()
    assert code == 143 and f"{accepted} still in spool" in err
    # Started again with a store that works, the same spool empties into it.
    again = Serve(tmp_path)
    again.wait_stored()
    again.stop()
    wanted = [s.session_id for s, status in zip(sessions, statuses, strict=True) if status == 201]
    assert sorted(stored_ids(again.store)) == sorted(wanted)


def test_redaction_at_ingest_is_recorded_in_the_session(tmp_path: Path) -> None:
    service = Serve(tmp_path, "--redact-body", r"\b\d{16}\b", "--redact-header", "X-Api-Key")
    request = b"POST /pay HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer s3cret\r\nX-Api-Key: k-123\r\nCookie: sid=abc; lang=en\r\nContent-Length: 28\r\n\r\n{\"card\": \"4111111111111111\"}"
    session = make_session(3)
    session.call_from_inbound.request = request
    try:
        assert service.client.post("/i/_doc", content=koala_format.dumps(session)).status_code == 201
        service.wait_stored()
    finally:
        service.stop()
    stored = open_store(service.store)
    try:
        got = stored.get(session.session_id)
    finally:
        stored.close()
    assert got.call_from_inbound.request == (
        b"POST /pay HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer <redacted>\r\nX-Api-Key: <redacted>\r\nCookie: sid=<redacted>; lang=<redacted>\r\n"
        b"Content-Length: 28\r\n\r\n{\"card\": \"****************\"}"
    )
    assert [(r.where, r.header, r.body, r.count) for r in got.redactions] == [
        ("inbound.request", "authorization", "", 1),
        ("inbound.request", "cookie", "", 1),
        ("inbound.request", "x-api-key", "", 1),
        ("inbound.request", "", r"\b\d{16}\b", 1),
    ]
    # The marks travel in Koala JSON (extra keys, only when set) and come back.
    text = koala_format.dumps(got)
    assert b'"Redactions": [' in text and koala_format.loads(text)[0] == got


def test_off_loopback_a_token_is_required(capsys) -> None:
    run = koala(capsys, "serve", "--listen", f"0.0.0.0:{free_port()}", "--store", "sqlite:///unused.db")
    assert run.code == 1
    assert "reachable from other machines: give a bearer token with --token or $KOALA_SERVE_TOKEN" in " ".join(run.err.split())


def test_the_token_is_checked_bearer_or_in_the_url(tmp_path: Path) -> None:
    service = Serve(tmp_path, env={"KOALA_SERVE_TOKEN": "t0ken"})
    doc = koala_format.dumps(make_session(5))
    try:
        denied = service.client.post("/i/_doc", content=doc)
        assert denied.status_code == 401 and denied.headers["WWW-Authenticate"].startswith("Bearer")
        assert service.client.post("/i/_doc", content=doc, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert service.client.post("/i/_doc", content=doc, headers={"Authorization": "Bearer t0ken"}).status_code == 201
        # Koala's recorder can only use its URL: KOALA_RECORD_TO_ES=http://koala:t0ken@host:2580/i/_doc
        basic = base64.b64encode(b"koala:t0ken").decode()
        assert service.client.post("/i/_doc", content=doc, headers={"Authorization": f"Basic {basic}"}).status_code == 201
        assert service.client.get("/healthz").status_code == 200  # probes need no token
    finally:
        service.stop()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="making a test certificate needs the openssl CLI")
def test_tls(tmp_path: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    service = Serve(tmp_path, "--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem"), scheme="https", verify=ssl.create_default_context(cafile=str(tmp_path / "cert.pem")))
    try:
        assert service.client.post("/i/_doc", content=koala_format.dumps(make_session(9))).status_code == 201
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://{LOOPBACK}:{service.port}/healthz", timeout=5)  # plain HTTP is not served
    finally:
        service.stop()


def test_a_busy_address_is_one_error(capsys, tmp_path: Path, serve: Serve) -> None:
    run = koala(capsys, "serve", "--listen", f"{LOOPBACK}:{serve.port}", "--store", tmp_store(tmp_path, "x.db"), "--spool", str(tmp_path / "other-spool"))
    assert run.code == 1 and f"cannot listen on {LOOPBACK}:{serve.port} (Address already in use)" in " ".join(run.err.split())
    taken = koala(capsys, "serve", "--listen", f"{LOOPBACK}:{free_port()}", "--store", tmp_store(tmp_path, "x.db"), "--spool", str(serve.spool))
    assert taken.code == 1 and "is in use by another koala serve or koala record; give each its own --spool DIR" in " ".join(taken.err.split())
