"""The local Elasticsearch's set-up errors: each one clear sentence, before anything starts."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from cli_helpers import koala
from koala_store.es import ElasticsearchSetupError, LocalElasticsearch


def test_a_taken_port_is_named(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KOALA_ES_HOME", str(tmp_path))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = koala(capsys, "es", "start", "--port", str(port))
    assert run.code == 1
    assert f"port {port} on 127.0.0.1 is taken by another process; stop it or pass --port" in run.err


def test_a_java_home_without_java_is_named(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KOALA_ES_HOME", str(tmp_path))
    monkeypatch.setenv("ES_JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(ElasticsearchSetupError, match=r"ES_JAVA_HOME=.*no-jdk is not a Java 21\+ JDK \(found no java\); point it at a JDK 21 or newer"):
        LocalElasticsearch(19399).start()


def test_missing_maven_is_named(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KOALA_ES_HOME", str(tmp_path / "empty-cache"))  # nothing fetched yet
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ElasticsearchSetupError, match=r"Maven \(mvn\) is needed to fetch Elasticsearch 8\.19\.21 from Maven Central; install it"):
        LocalElasticsearch(19398).fetch()


def test_status_of_an_instance_that_is_not_running(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KOALA_ES_HOME", str(tmp_path))
    run = koala(capsys, "es", "status", "--port", "19397")
    assert run.code == 1 and '"running":false' in run.out
    stopped = koala(capsys, "es", "stop", "--port", "19397")
    assert stopped.code == 0 and "no local Elasticsearch was running on port 19397" in stopped.err
    assert not os.path.exists(tmp_path / "instances" / "19397" / "tmp" / "es.pid")
