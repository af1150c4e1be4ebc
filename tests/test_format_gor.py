"""GoReplay .gor files: pairing, round trips, bad files, and the real gor reading ours."""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from factories import make_session, varied_sessions
from koala_store.formats import gor
from koala_store.ingest import read_records
from koala_store.ingest.sources import Source
from tools import GOREPLAY

SEP = gor.SEPARATOR


def records(data: bytes):
    return list(gor.read(io.BytesIO(data)))


def test_requests_and_responses_pair_by_id_even_interleaved() -> None:
    data = (
        b"1 aaaaaaaaaaaaaaaaaaaaaaaa 1000 -1\nGET /a HTTP/1.1\r\n\r\n" + SEP
        + b"1 bbbbbbbbbbbbbbbbbbbbbbbb 2000 -1\nGET /b HTTP/1.1\r\n\r\n" + SEP
        + b"2 bbbbbbbbbbbbbbbbbbbbbbbb 2600 500\nHTTP/1.1 404 Not Found\r\n\r\n" + SEP
        + b"2 aaaaaaaaaaaaaaaaaaaaaaaa 1900 700\nHTTP/1.1 200 OK\r\n\r\n" + SEP
    )
    sessions = {r.session.session_id: r.session for r in records(data)}
    a = sessions["1000-aaaaaaaaaaaaaaaaaaaaaaaa"]
    b = sessions["2000-bbbbbbbbbbbbbbbbbbbbbbbb"]
    assert a.call_from_inbound.request == b"GET /a HTTP/1.1\r\n\r\n"
    assert a.return_inbound.response == b"HTTP/1.1 200 OK\r\n\r\n"
    assert a.return_inbound.occurred_at == 1700  # request time + latency
    assert b.return_inbound.response.startswith(b"HTTP/1.1 404")
    assert a.outbound_calls == []


def test_old_three_field_headers_and_forty_digit_ids() -> None:
    ident = b"f45590522cd1838b4a0d5c5aab80b77929dea3b3"
    data = b"1 " + ident + b" 5\nGET / HTTP/1.1\r\n\r\n" + SEP + b"2 " + ident + b" 9\nHTTP/1.1 200 OK\r\n\r\n" + SEP
    [record] = records(data)
    assert record.session.session_id == "5-" + ident.decode()
    assert record.session.return_inbound.occurred_at == 9


def test_requests_without_responses_still_become_sessions_and_replayed_responses_are_skipped() -> None:
    data = (
        b"1 aaaaaaaaaaaaaaaaaaaaaaaa 1 -1\nGET /a HTTP/1.1\r\n\r\n" + SEP
        + b"3 aaaaaaaaaaaaaaaaaaaaaaaa 5 4\nHTTP/1.1 500 Oops\r\n\r\n" + SEP
    )
    [record] = records(data)
    assert record.session.return_inbound is None and record.session.response == b""  # never answered, as Koala writes it


def test_payloads_keep_binary_bytes_and_newlines() -> None:
    body = bytes(range(256)) + b"\n\n1 not a header\n"
    session = make_session(0, method="POST", body=body)
    [record] = records(gor.dumps(session))
    assert record.session.call_from_inbound.request == session.call_from_inbound.request


def test_round_trip_keeps_inbound_request_response_and_times() -> None:
    originals = varied_sessions(30)
    buffer = io.BytesIO()
    assert gor.write(originals, buffer) == 30
    back = {r.session.session_id: r.session for r in records(buffer.getvalue())}
    assert len(back) == 30
    for original in originals:
        session = back[f"{original.recorded_at}-{gor.gor_id(original)}"]
        assert session.call_from_inbound.request == original.call_from_inbound.request
        assert session.return_inbound.response == original.return_inbound.response
        assert session.return_inbound.occurred_at == original.return_inbound.occurred_at
    # Written again, the ids (and so the SessionIds) are stable.
    again = io.BytesIO()
    gor.write(back.values(), again)
    assert sorted(r.session.session_id for r in records(again.getvalue())) == sorted(back)


@given(st.binary(min_size=1, max_size=300), st.binary(max_size=300))
@settings(max_examples=200)
def test_any_payload_without_the_separator_round_trips(request: bytes, response: bytes) -> None:
    if SEP in request + b"\n" or SEP in response + b"\n":
        return
    session = make_session(0)
    session.call_from_inbound.request = request
    session.return_inbound.response = response
    out = records(gor.dumps(session))
    assert [r.error for r in out] == [None]
    assert out[0].session.call_from_inbound.request == request
    assert out[0].session.response == response  # an empty response reads back as never answered


def test_missing_final_separator_is_named() -> None:
    data = b"1 aaaaaaaaaaaaaaaaaaaaaaaa 1 -1\nGET /a HTTP/1.1\r\n\r\n" + SEP + b"1 bbbbbbbbbbbbbbbbbbbbbbbb 2 -1\nGET /b HTTP/1.1\r\n\r\n"
    out = records(data)
    errors = [(r.where, r.error) for r in out if r.error]
    assert errors == [
        (
            "record 2 (byte 65)",
            "is not followed by the separator '\\n🐵🙈🙉\\n': the file is truncated or the separator is missing",
        )
    ]
    assert [r.session.session_id for r in out if r.session] == ["1-aaaaaaaaaaaaaaaaaaaaaaaa"]


def test_missing_separator_between_records_is_named_not_glued() -> None:
    data = (
        b"1 aaaaaaaaaaaaaaaaaaaaaaaa 1 -1\nGET /a HTTP/1.1\r\n\r\n"
        + b"\n2 aaaaaaaaaaaaaaaaaaaaaaaa 3 2\nHTTP/1.1 200 OK\r\n\r\n" + SEP
    )
    [record] = records(data)
    assert record.session is None
    assert record.error == "holds the start of another record at byte 52: a separator is missing"


def test_bad_header_and_orphan_response_are_named() -> None:
    data = b"garbage header\nxx" + SEP + b"2 cccccccccccccccccccccccc 1 1\nHTTP/1.1 200 OK\r\n\r\n" + SEP
    out = records(data)
    assert [(r.where, r.error) for r in out] == [
        ("record 1 (byte 0)", "header line 'garbage header' is not '<type> <id> <timestamp> <latency>'"),
        ("record 2 (byte 31)", "is a response to request cccccccccccccccccccccccc, which is not in the file"),
    ]


def test_gzip_files_are_read(tmp_path: Path) -> None:
    path = tmp_path / "traffic.gor.gz"
    with gzip.open(path, "wb") as out:
        gor.write(varied_sessions(4), out)
    got = list(read_records(Source(str(path), path)))
    assert len([r for r in got if r.session]) == 4


# --- the real GoReplay -------------------------------------------------------------------

needs_goreplay = pytest.mark.skipif(not GOREPLAY.exists(), reason="goreplay not installed (scripts/tools.sh installs it)")


class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, bytes]] = []

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        type(self).seen.append((self.command, self.path, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_DELETE = do_PUT = _any

    def log_message(self, *args) -> None:
        pass


@needs_goreplay
def test_real_goreplay_replays_a_file_we_wrote(tmp_path: Path) -> None:
    sessions = [make_session(i, method="POST", path=f"/v1/order/{i}", body=b'{"n":%d}' % i, at=1_700_000_000_000_000_000 + i * 10_000_000) for i in range(8)]
    path = tmp_path / "ours.gor"
    with path.open("wb") as out:
        gor.write(sessions, out)
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        subprocess.run(
            [str(GOREPLAY), "--input-file", f"{path}", "--output-http", f"http://127.0.0.1:{server.server_port}", "--exit-after", "3s"],
            check=True,
            capture_output=True,
            timeout=30,
        )
    finally:
        server.shutdown()
    assert sorted(_Recorder.seen) == sorted(("POST", f"/v1/order/{i}", b'{"n":%d}' % i) for i in range(8))


@needs_goreplay
def test_we_read_a_file_the_real_goreplay_wrote(tmp_path: Path) -> None:
    sessions = [make_session(i, path=f"/p/{i}", at=1_700_000_000_000_000_000 + i * 1_000_000) for i in range(5)]
    source = tmp_path / "in.gor"
    with source.open("wb") as out:
        gor.write(sessions, out)
    subprocess.run(
        [str(GOREPLAY), "--input-file", str(source), "--output-file", str(tmp_path / "out.gor"), "--exit-after", "2s"],
        check=True,
        capture_output=True,
        timeout=30,
        cwd=tmp_path,
    )
    written = sorted(tmp_path.glob("out*.gor"))
    assert written, "goreplay wrote no file"
    got = [r for path in written for r in read_records(Source(str(path), path))]
    assert not [r.error for r in got if r.error]
    by_path = {r.session.call_from_inbound.request.split(b" ")[1]: r.session for r in got}
    assert sorted(by_path) == [b"/p/%d" % i for i in range(5)]
    assert all(s.return_inbound.response.startswith(b"HTTP/1.1 200 OK") for s in by_path.values())
    shutil.rmtree(tmp_path, ignore_errors=True)
