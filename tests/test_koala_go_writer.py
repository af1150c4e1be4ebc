"""Koala JSON written byte for byte as Koala's Go recorder writes it.

tests/vectors/koala-go-writer.json.gz holds sessions serialised by Koala's own recorder code
(didi/rdebug koala/recording, built with Go 1.26 and `json.MarshalIndent(session, "", "  ")`,
as its file and Elasticsearch recorders call it): every byte 0-255 alone and all in order,
HTML characters, U+2028/U+2029, backslash sequences, invalid UTF-8 of each kind, U+FFFD,
CJK, an HTTP request, empty bytes, unanswered sessions ("ReturnInbound": null) with and
without actions ("Actions": null), a trace header and plain strings with control and HTML
characters. Each payload sits in every byte field of the session (inbound request and
response, outbound request/response/CSpanId, AppendFile, SendUDP, ReadStorage, TraceId).
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import pytest

from koala_store.formats import escaped, koala
from koala_store.model import AppendFile, CallOutbound, ReadStorage, SendUDP

VECTORS = json.loads(gzip.decompress((Path(__file__).parent / "vectors" / "koala-go-writer.json.gz").read_bytes()))


def test_the_vectors_cover_what_the_issue_names() -> None:
    names = {v["name"] for v in VECTORS}
    assert {f"byte {b:02x}" for b in range(256)} <= names
    assert {"html characters", "line and paragraph separators", "surrogate half", "unanswered, no actions"} <= names


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_reading_koalas_file_gives_the_bytes_and_writing_gives_the_file_back(vector: dict) -> None:
    payload = base64.b64decode(vector["bytes"])
    text = vector["koala"].encode()
    (session,) = koala.loads(text)
    assert session.call_from_inbound.request == payload
    if session.return_inbound is not None:
        assert session.response == payload
    for action in session.actions:
        if isinstance(action, CallOutbound):
            assert (action.request, action.response, escaped.decode(action.cspan_id)) == (payload, payload, payload)
        elif isinstance(action, (AppendFile, SendUDP, ReadStorage)):
            assert action.content == payload
    assert koala.dumps(session) == text


def test_unanswered_sessions_keep_their_nulls() -> None:
    vector = next(v for v in VECTORS if v["name"] == "unanswered, no actions")
    (session,) = koala.loads(vector["koala"])
    assert session.return_inbound is None and session.actions == [] and session.actions_null
    assert session.response == b"" and not session.answered
    assert b'"ReturnInbound": null' in koala.dumps(session) and b'"Actions": null' in koala.dumps(session)


def test_an_empty_actions_array_written_by_another_tool_stays_an_array() -> None:
    vector = next(v for v in VECTORS if v["name"] == "unanswered, no actions")
    doc = json.loads(vector["koala"])
    doc["Actions"] = []
    (session,) = koala.loads(json.dumps(doc))
    assert b'"Actions": []' in koala.dumps(session)
