"""Redaction: secrets masked at record time, noted in the session, kept through every format
and store, and not compared by the diff (the replayed bytes are masked alike)."""

from __future__ import annotations

import io
import signal
import sys
from pathlib import Path

import httpx
import pytest

from factories import http_request, http_response, make_session
from koala_store import diff
from koala_store.errors import KoalaError
from koala_store.formats import koala as koala_format
from koala_store.formats import ndjson, replayer
from koala_store.model import CallOutbound, Peer
from koala_store.redaction import Rules, redact
from koala_store.store import open_store
from record_helpers import LOOPBACK, start_koala, stop_koala, tmp_store
from replay_helpers import TESTS, free_port, running
from stores import BACKENDS, open_test_store

CARD = r"\b\d{16}\b"


def secret_session():
    body = b'{"card":"4111111111111111","name":"ann"}'
    response = http_response(200, body).replace(b"Content-Type", b"Set-Cookie: sid=abc123; Path=/; HttpOnly\r\nContent-Type")
    call = CallOutbound(0, 2, request=http_request("GET", "/cards/1", extra="Authorization: Bearer tok\r\n"), response=http_response(200, body), peer=Peer("10.0.0.9", 80), socket_fd=5)
    session = make_session(1, outbound=[call])
    session.call_from_inbound.request = http_request("GET", "/me", extra="Cookie: sid=abc123\r\n")
    session.return_inbound.response = response
    session.actions[-1].response = response
    return redact(session, Rules.from_options([], [CARD]))


def test_masks_keep_lengths_and_names_and_are_noted() -> None:
    session = secret_session()
    assert session.response.count(b"*" * 16) == 1 and b"4111" not in session.response
    assert b"Set-Cookie: sid=<redacted>; Path=/; HttpOnly" in session.response
    assert b"Cookie: sid=<redacted>" in session.call_from_inbound.request
    call = session.outbound_calls[0]
    assert b"Authorization: Bearer <redacted>" in call.request and b"*" * 16 in call.response
    assert session.actions[-1] == session.return_inbound
    assert {(r.where, r.header or r.body) for r in session.redactions} == {
        ("inbound.request", "cookie"),
        ("inbound.response", "set-cookie"),
        ("inbound.response", CARD),
        ("outbound[0].request", "authorization"),
        ("outbound[0].response", CARD),
    }
    assert redact(session, Rules.from_options([], [CARD])) is session  # masked already: nothing new


def test_the_marks_survive_every_format_and_store(tmp_path: Path) -> None:
    session = secret_session()
    session.incomplete = "talk #3 to 10.0.0.9:80 ..."
    assert koala_format.loads(koala_format.dumps(session))[0] == session
    assert next(iter(ndjson.read(io.BytesIO(ndjson.dumps(session))))).session == session
    back = replayer.from_replayer(replayer.to_replayer(session))
    assert (back.incomplete, back.redactions) == (session.incomplete, session.redactions)
    plain = make_session(2)
    assert b"Redactions" not in koala_format.dumps(plain) and b"Incomplete" not in koala_format.dumps(plain)
    for backend in BACKENDS:
        with open_test_store(backend, tmp_path) as store:
            store.put_many([session])
            store.refresh()
            assert store.get(session.session_id) == session


def test_a_masked_value_is_not_compared_but_everything_else_is() -> None:
    session = secret_session()
    replayed = http_response(200, b'{"card":"5500000000000004","name":"ann"}').replace(b"Content-Type", b"Set-Cookie: sid=zzz999; Path=/; HttpOnly\r\nContent-Type")
    masked, _ = diff.as_recorded(session, replayed, [])
    assert diff.compare_responses(session.response, masked) == []
    changed = replayed.replace(b'"ann"', b'"bob"')
    masked, _ = diff.as_recorded(session, changed, [])
    assert [d.path for d in diff.compare_responses(session.response, masked)] == ["body.name"]
    # Unmasked, the card number would show as a difference (cookie values never are compared).
    assert [d.path for d in diff.compare_responses(session.response, replayed)] == ["body.card"]


@pytest.mark.parametrize(("flag", "value", "message"), [("--redact-body", "(", "--redact-body '(' is not a regular expression"), ("--redact-body", "x*", "matches empty text"), ("--redact-header", "bad name", "is not a header name")])
def test_bad_rules_are_one_error(flag: str, value: str, message: str) -> None:
    with pytest.raises(KoalaError, match=message.replace("(", r"\(").replace("*", r"\*")):
        Rules.from_options(*(([value], []) if flag == "--redact-header" else ([], [value])))


def test_koala_record_masks_before_anything_reaches_the_disk(tmp_path: Path) -> None:
    service, listen = free_port(), free_port()
    with running([sys.executable, str(TESTS / "sut_app.py"), "--port", str(service)], service):
        recorder = start_koala(
            "record", "--listen", f"{LOOPBACK}:{listen}", "--target", f"{LOOPBACK}:{service}", "--store", tmp_store(tmp_path),
            "--spool", str(tmp_path / "spool"), "--redact-header", "X-Api-Key", "--redact-body", "s3cr3t-[0-9]+", "--quiet",
            port=listen,
        )  # fmt: skip
        try:
            with httpx.Client(base_url=f"http://{LOOPBACK}:{listen}", timeout=10) as client:
                answer = client.get("/echo/x-api-key", headers={"X-Api-Key": "s3cr3t-42", "Authorization": "Basic dXNlcjpwdw=="})
            assert answer.json()["value"] == "s3cr3t-42"  # the client and service saw the real bytes
        finally:
            code, err = stop_koala(recorder, signal.SIGTERM)
    assert code == 143, err
    store = open_store(tmp_store(tmp_path))
    (session,) = list(store.scan())
    store.close()
    assert b"X-Api-Key: <redacted>" in session.call_from_inbound.request and b"Authorization: Basic <redacted>" in session.call_from_inbound.request
    assert b"s3cr3t" not in session.response and b'"value": "*********"' in session.response
    assert {(r.where, r.header or r.body) for r in session.redactions} == {
        ("inbound.request", "authorization"),
        ("inbound.request", "x-api-key"),
        ("inbound.response", "s3cr3t-[0-9]+"),
    }
    for segment in (tmp_path / "spool").glob("*"):
        assert b"s3cr3t-42" not in segment.read_bytes()
