"""Koala replayer bodies (base64) and our NDJSON documents."""

from __future__ import annotations

import base64
import io

import orjson
import pytest

from factories import varied_sessions
from koala_store.errors import FormatError
from koala_store.formats import koala, ndjson, replayer
from koala_store.formats.document import to_document


def test_replayer_body_has_koala_fields_with_base64_bytes(example_bytes: bytes) -> None:
    [session] = koala.loads(example_bytes)
    body = orjson.loads(replayer.to_replayer(session))
    assert list(body) == ["SessionId", "CallFromInbound", "ReturnInbound", "CallOutbounds", "MockFiles", "RedirectDirs", "TracePaths"]
    assert base64.b64decode(body["CallFromInbound"]["Request"]) == session.call_from_inbound.request
    assert base64.b64decode(body["ReturnInbound"]["Response"]) == session.return_inbound.response
    calls = body["CallOutbounds"]
    assert [c["ActionIndex"] for c in calls] == [1, 2, 3]
    assert base64.b64decode(calls[0]["Response"]) == session.actions[1].response
    assert calls[1]["Peer"] == {"IP": "10.0.0.7", "Port": 3306, "Zone": ""}
    assert calls[1]["SocketFD"] == 9


def test_replayer_body_round_trips_the_calls(example_bytes: bytes) -> None:
    [session] = koala.loads(example_bytes)
    back = replayer.from_replayer(replayer.to_replayer(session))
    assert back.session_id == session.session_id
    assert back.call_from_inbound == session.call_from_inbound
    assert back.return_inbound == session.return_inbound
    assert back.outbound_calls == session.outbound_calls


def test_replayer_bad_input() -> None:
    with pytest.raises(FormatError, match="not valid JSON"):
        replayer.from_replayer(b'{"SessionId": ')
    with pytest.raises(FormatError, match="Object missing required field `ReturnInbound`"):
        replayer.from_replayer(b'{"SessionId": "1", "CallFromInbound": {}}')
    with pytest.raises(FormatError, match=r"Invalid base64 encoded string - at `\$.CallFromInbound.Request`"):
        replayer.from_replayer(b'{"SessionId": "1", "CallFromInbound": {"Request": "%%%"}, "ReturnInbound": {}}')


def test_ndjson_documents_carry_derived_fields_and_round_trip() -> None:
    sessions = varied_sessions(20)
    buffer = io.BytesIO()
    ndjson.write(sessions, buffer)
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 20
    doc = orjson.loads(lines[1])
    assert doc["inbound"]["method"] == "POST" and doc["inbound"]["status"] == 201
    assert [o["protocol"] for o in doc["outbound"]] == ["mysql", "redis"]
    assert doc["outbound_count"] == 2 and doc["recorded_at"].endswith("Z")
    back = [r.session for r in ndjson.read(io.BytesIO(buffer.getvalue()))]
    assert back == sessions


def test_ndjson_bad_lines_are_named_and_the_rest_kept() -> None:
    good = [orjson.dumps(to_document(s)) for s in varied_sessions(3)]
    data = b"\n".join([good[0], b'{"SessionId": 5', b"", good[1], b'{"SessionId": "x"}', good[2]]) + b"\n"
    records = list(ndjson.read(io.BytesIO(data)))
    assert [(r.where, r.error is None) for r in records] == [
        ("line 1", True),
        ("line 2", False),
        ("line 4", True),
        ("line 5", False),
        ("line 6", True),
    ]
    assert records[1].error.startswith("not valid JSON")
    assert "Object missing required field `CallFromInbound`" in records[3].error
