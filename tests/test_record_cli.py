"""Bad input to `koala record` and `koala serve`: one clear error naming it, exit code 1,
nothing started."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cli_helpers import koala
from replay_helpers import free_port


def one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def base(tmp_path: Path) -> list[str]:
    return ["--store", f"sqlite:///{tmp_path / 'r.db'}", "--spool", str(tmp_path / "spool")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--outbound", "127.0.0.1:1"], "--outbound '127.0.0.1:1' is not LISTEN=UPSTREAM; write e.g. 127.0.0.1:16379=127.0.0.1:6379"),
        (["--outbound", "127.0.0.1:5=nowhere"], "--outbound upstream 'nowhere' is not HOST:PORT; write e.g. 127.0.0.1:8080"),
        (["--sample", "0"], "--sample 0: give the share of requests to record, above 0 and at most 1 (e.g. 0.1)"),
        (["--sample", "1.5"], "--sample 1.5: give the share of requests to record"),
        (["--allow-url", "(("], "--allow-url '((' is not a regular expression"),
        (["--redact-body", "[x"], "--redact-body '[x' is not a regular expression"),
        (["--max-spool", "lots"], "--max-spool 'lots' is not a size; write e.g. 512MiB or 1GiB"),
        (["--outbound", "127.0.0.1:7001=127.0.0.1:7001"], "would proxy to itself"),
    ],
    ids=["no mapping", "bad upstream", "sample 0", "sample > 1", "bad regex", "bad redaction", "bad size", "loop"],
)
def test_record_bad_options(capsys, base: list[str], args: list[str], message: str) -> None:
    run = koala(capsys, "record", "--listen", f"127.0.0.1:{free_port()}", "--target", "127.0.0.1:9", *base, *args)
    assert run.code == 1 and message in one_line(run.err), run.err
    assert "Traceback" not in run.err


def test_record_on_a_busy_address(capsys, base: list[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        run = koala(capsys, "record", "--listen", f"127.0.0.1:{port}", "--target", "127.0.0.1:9", *base)
    assert run.code == 1 and f"cannot listen on 127.0.0.1:{port} (Address already in use); stop what listens there or pick another address" in one_line(run.err)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "here"], "--listen 'here' is not HOST:PORT"),
        (["--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"], "--tls-cert /nonexistent.pem: no such file; give the PEM file"),
        (["--max-document", "-3"], "--max-document '-3' is not a size"),
        (["--redact-header", "two words"], "--redact-header 'two words' is not a header name"),
    ],
)
def test_serve_bad_options(capsys, base: list[str], args: list[str], message: str) -> None:
    run = koala(capsys, "serve", *base, *(["--listen", f"127.0.0.1:{free_port()}"] if "--listen" not in args else []), *args)
    assert run.code == 1 and message in one_line(run.err), run.err
