"""Store URLs that cannot be read (issue 11 items 3 and 6): one clear sentence naming the URL,
exit 1, and never a password or API key in any message, however the URL is broken and
whether it comes from --store or $KOALA_STORE."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_helpers import koala, koala_process

SECRET = "S3cr3t-pa55"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"htps://elastic:{SECRET}@host:9200", "cannot tell what store 'htps://***@host:9200' is"),
        (f"elastic:{SECRET}@host:9200", "cannot tell what store '***@host:9200' is"),
        (f"http://elastic:{SECRET[:3]}/{SECRET[3:]}@host:9200", "store URL 'http://***@host:9200' cannot be read: its port is not a number"),
        (f"http://elastic:{SECRET[:3]}#{SECRET[3:]}@host:9200", "store URL 'http://***@host:9200' cannot be read: its port is not a number"),
        (f"http://elastic:{SECRET}@127.0.0.1:99999", "store URL 'http://***@127.0.0.1:99999' cannot be read: its port is not a number from 1 to 65535"),
        ("http://[::1:19300", "store URL 'http://[::1:19300' cannot be read: the [ ] around its IPv6 address do not match"),
        ("http://127.0.0.1:19300?retry_for=abc", "retry_for='abc' in store URL 'http://127.0.0.1:19300?retry_for=abc' is not a number of seconds"),
        (f"http://127.0.0.1:1?api_key={SECRET}&retry_fr=3", "store URL 'http://127.0.0.1:1?api_key=***&retry_fr=3' has an unknown parameter 'retry_fr'"),
        (f"http://elastic:{SECRET}@127.0.0.1:1/rdebug_index", "store URL 'http://***@127.0.0.1:1/rdebug_index' has a path or '#' after the host"),
        (f"http://elastic:{SECRET}@127.0.0.1:1", "cannot reach Elasticsearch at http://127.0.0.1:1"),
    ],
)
def test_a_broken_store_url_is_one_clear_error_without_secrets(capsys, tmp_path: Path, example_path: Path, url: str, message: str) -> None:
    for command in (["ingest", str(example_path)], ["sessions", "search"], ["runs", "list"]):
        run = koala(capsys, *command, "--store", url)
        assert run.code == 1, run.err
        assert message in " ".join(run.err.split())
        assert SECRET not in run.out + run.err and SECRET[3:] not in run.out + run.err
        assert "Traceback" not in run.err


def test_koala_store_from_the_environment_is_redacted_too(tmp_path: Path) -> None:
    run = koala_process("sessions", "search", env={"KOALA_STORE": f"https://elastic:{SECRET}@/x"}, cwd=str(tmp_path))
    assert run.code == 1
    assert SECRET not in run.out + run.err and "***@" in run.err
    run = koala_process("sessions", "search", env={"KOALA_STORE": f"http://127.0.0.1:1?api_key={SECRET}"}, cwd=str(tmp_path))
    assert run.code == 1 and SECRET not in run.out + run.err


def test_a_secret_from_the_environment_never_shows(capsys, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KOALA_ES_PASSWORD", SECRET)
    monkeypatch.setenv("KOALA_ES_USER", "elastic")
    run = koala(capsys, "sessions", "search", "--store", f"http://127.0.0.1:1?prefix={SECRET}")
    assert run.code == 1 and SECRET not in run.out + run.err
