"""A service with a MySQL-protocol dependency (a real MariaDB, Debian's mariadb-server)
recorded with `koala record` and replayed with no difference, all of it and a subset (whose
sessions lack the pooled connection's opening: replay answers it from the one recorded)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from koala_store.model import Session
from koala_store.replay.runner import ReplayOptions, replay
from koala_store.replay.targets import Address, OutboundMapping
from koala_store.store import open_store
from koala_store.wire import mysql as wire_mysql
from record_helpers import LOOPBACK, Tee, start_koala, stop_koala, tmp_store
from replay_helpers import TESTS, free_port, running, wait_for_port

pymysql = pytest.importorskip("pymysql", reason="the MySQL test service needs PyMySQL (a dev dependency)")
MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
if not (os.access(MARIADBD, os.X_OK) and os.access(INSTALL_DB, os.X_OK)):
    pytest.skip("mariadbd is not installed (scripts/tools.sh installs Debian's mariadb-server)", allow_module_level=True)

USER, PASSWORD, DATABASE = "shop", "shop-pw", "shop"


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory):
    """A real MariaDB on a free loopback port with a temporary datadir, a user with a password."""
    folder = tmp_path_factory.mktemp("mariadb")
    data, sock, port = folder / "data", folder / "mysqld.sock", free_port()
    user = ["--user=root"] if os.geteuid() == 0 else []
    done = subprocess.run([INSTALL_DB, "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=normal", *user], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mariadb-install-db failed: {done.stderr[-300:]}")
    command = [MARIADBD, "--no-defaults", f"--datadir={data}", f"--port={port}", "--bind-address=127.0.0.1", f"--socket={sock}", "--skip-log-bin", f"--pid-file={folder / 'pid'}", *user]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, server, timeout=60)
        root = pymysql.connect(unix_socket=str(sock), user="root")
        with root.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {DATABASE}")
            # mariadb-install-db makes anonymous users, which would win over 'shop'@'%' on localhost.
            cursor.execute("DELETE FROM mysql.global_priv WHERE User = ''")
            cursor.execute("FLUSH PRIVILEGES")
            cursor.execute(f"CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'")
            cursor.execute(f"GRANT ALL ON {DATABASE}.* TO '{USER}'@'%'")
            cursor.execute(f"CREATE TABLE {DATABASE}.items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40), qty INT)")
            cursor.execute(f"INSERT INTO {DATABASE}.items (name, qty) VALUES ('apple', 3), ('pear', 5)")
        root.commit()
        root.close()
        yield port
    finally:
        server.terminate()
        server.wait(30)


def _app(port: int, db: int) -> list[str]:
    return [sys.executable, str(TESTS / "mysql_app.py"), "--port", str(port), "--db", f"{LOOPBACK}:{db}", "--user", USER, "--password", PASSWORD, "--database", DATABASE]


TRAFFIC = [
    ("GET", "/items/1", None),
    ("GET", "/count", None),
    ("POST", "/items", {"name": "plum", "qty": 7}),
    ("GET", "/items/3", None),
    ("GET", "/items/99", None),
    ("POST", "/items", {"name": "fig", "qty": 2}),
    ("GET", "/count", None),
    ("GET", "/items/2", None),
]


class Recorded:
    def __init__(self, sessions: list[Session], tee: Tee, answers: list[tuple[int, dict]]):
        self.sessions, self.tee, self.answers = sessions, tee, answers


@pytest.fixture(scope="module")
def recorded(mariadb: int, tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    import httpx

    work = tmp_path_factory.mktemp("record-mysql")
    tee = Tee(mariadb)
    service, listen, proxy = free_port(), free_port(), free_port()
    with running(_app(service, proxy), service):
        recorder = start_koala(
            "record", "--listen", f"{LOOPBACK}:{listen}", "--target", f"{LOOPBACK}:{service}",
            "--outbound", f"{LOOPBACK}:{proxy}={LOOPBACK}:{tee.port}",
            "--store", tmp_store(work), "--spool", str(work / "spool"), "--quiet",
            port=listen,
        )  # fmt: skip
        answers = []
        try:
            with httpx.Client(base_url=f"http://{LOOPBACK}:{listen}", timeout=10) as client:
                for method, path, body in TRAFFIC:
                    response = client.request(method, path, json=body)
                    answers.append((response.status_code, response.json()))
        finally:
            code, err = stop_koala(recorder)
    assert code == 143 and f"{len(TRAFFIC)} complete and 0 incomplete sessions recorded" in err, err
    store = open_store(tmp_store(work))
    sessions = list(store.scan())
    store.close()
    return Recorded(sessions, tee, answers)


def test_the_sessions_hold_exactly_what_mariadb_saw(recorded: Recorded) -> None:
    assert [status for status, _ in recorded.answers] == [200, 200, 201, 200, 404, 201, 200, 200]
    assert recorded.answers[6][1] == {"items": 4, "qty": 17}
    assert len(recorded.sessions) == len(TRAFFIC)
    by_connection: dict[int, list] = defaultdict(list)
    for session in recorded.sessions:
        for call in session.outbound_calls:
            by_connection[call.socket_fd].append(call)
    assert len(by_connection) == 1  # the pooled connection, across every session
    (calls,) = by_connection.values()
    (observed,) = [c for c in recorded.tee.connections if c.to_dependency or c.from_dependency]
    assert b"".join(c.request for c in calls) == bytes(observed.to_dependency)
    assert b"".join(c.response for c in calls) == bytes(observed.from_dependency)
    first = recorded.sessions[0].outbound_calls
    assert first[0].request == b"" and wire_mysql.is_greeting(first[0].response)  # the server spoke first
    assert all(s.outbound_calls[0].request != b"" for s in recorded.sessions[1:])  # opened once


def _replay(recorded: Recorded, tmp_path: Path, query: str = "*"):
    store = open_store(tmp_store(tmp_path, "replay.db"))
    store.put_many(recorded.sessions)
    mock, service = free_port(), free_port()
    with running(_app(service, mock), service):
        summary = replay(store, ReplayOptions(target=Address(LOOPBACK, service), query=query, mappings=[OutboundMapping(Address(LOOPBACK, mock), Address(LOOPBACK, recorded.tee.port))]))
    comparisons = list(store.runs.comparisons(summary.run_id))
    store.close()
    return summary, comparisons


def _explain(comparisons) -> str:
    out = []
    for c in comparisons:
        if c.verdict != "same":
            out.append(f"{c.session_id} {c.endpoint}: {c.error or ''} {[(d.path, d.kind) for d in c.differences]}")
            for t in c.outbound.unmatched_talks if c.outbound else []:
                out.append(f"   unmatched {t.request!r}")
    return "\n".join(out)


def test_replaying_everything_gives_no_difference(recorded: Recorded, tmp_path: Path) -> None:
    summary, comparisons = _replay(recorded, tmp_path)
    assert (summary.same, summary.different, summary.error, summary.unattributed) == (len(TRAFFIC), 0, 0, 0), _explain(comparisons)


@pytest.mark.parametrize("query", ["inbound.path:/count", "inbound.method:POST", "inbound.path:/items/2"])
def test_replaying_a_subset_gives_no_difference(recorded: Recorded, tmp_path: Path, query: str) -> None:
    summary, comparisons = _replay(recorded, tmp_path, query)
    expected = {"inbound.path:/count": 2, "inbound.method:POST": 2, "inbound.path:/items/2": 1}[query]
    assert (summary.same, summary.different, summary.error) == (expected, 0, 0), _explain(comparisons)
    # The live connection's opening came from the session that recorded it.
    assert any(t.answered_from for c in comparisons for t in c.outbound.talks), "the opening should come from the library"


def test_json_answers_are_what_the_client_got(recorded: Recorded) -> None:
    for session, (status, body) in zip(recorded.sessions, recorded.answers, strict=True):
        head, _, payload = session.response.partition(b"\r\n\r\n")
        assert head.startswith(f"HTTP/1.0 {status}".encode()) or head.startswith(f"HTTP/1.1 {status}".encode())
        assert json.loads(payload) == body
