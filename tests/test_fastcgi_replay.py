"""FastCGI sessions (Koala's default inbound protocol: a web server talking to PHP-FPM)
replayed against a real PHP-FPM: the recorded records go as they were recorded, answers are
framed by END_REQUEST, and the diff compares the HTTP they carry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from koala_store.model import CallFromInbound, Peer, ReturnInbound, Session
from koala_store.replay.runner import ReplayOptions, replay
from koala_store.replay.inbound import RequestEdits
from koala_store.replay.targets import Address
from koala_store.store.sqlite import SqliteStore
from koala_store.wire import fastcgi
from php_fpm import SCRIPT, cgi_params, fastcgi_exchange, find_php_fpm, php_fpm

BINARY = find_php_fpm()
pytestmark = pytest.mark.skipif(BINARY is None, reason="php-fpm is not installed (Debian: apt-get install php-fpm; scripts/tools.sh does)")

REQUESTS = [
    ("GET", "/index.php?price=5", b""),
    ("POST", "/index.php?price=7", json.dumps({"item": "apple", "qty": 3}).encode()),
    ("GET", "/index.php?status=404", b""),
    ("GET", "/index.php?size=100000", b""),  # STDOUT over several records
]


def record(server, index: int, method: str, uri: str, body: bytes) -> Session:
    exchange = fastcgi_exchange(server, cgi_params(server, method, uri, body, {"Host": "shop.test"}), body)
    answered = ReturnInbound(0, exchange.finished_ns, response=exchange.response)
    return Session(
        session_id=f"{exchange.started_ns}-{index}",
        call_from_inbound=CallFromInbound(0, exchange.started_ns, request=exchange.request, peer=Peer("127.0.0.1", 9000)),
        return_inbound=answered,
        actions=[answered],
    )


def test_fastcgi_sessions_replay_the_same_against_the_unchanged_script_and_show_a_changed_field(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "k.db")
    with php_fpm(BINARY) as server:
        sessions = [record(server, i, *spec) for i, spec in enumerate(REQUESTS)]
        store.put_many(sessions)
        assert store.count("inbound.path:/index.php") == 4
        target = Address("127.0.0.1", server.port)
        summary = replay(store, ReplayOptions(target=target))
        assert (summary.same, summary.different, summary.error) == (4, 0, 0), [c.differences for c in store.runs.comparisons(summary.run_id)]
        # The build changes: prices are one higher.
        (server.root / "index.php").write_text(SCRIPT.replace("(int) $_GET['price']", "(int) $_GET['price'] + 1"))
        summary = replay(store, ReplayOptions(target=target, run_name="v2"))
        found = {c.endpoint: [(d.path, d.kind, d.expected, d.actual) for d in c.differences] for c in store.runs.comparisons(summary.run_id) if c.differences}
    assert (summary.same, summary.different) == (2, 2)
    assert found == {
        "GET /index.php": [("body.price", "changed", 5, 6)],
        "POST /index.php": [("body.price", "changed", 7, 8)],
    }


def test_fastcgi_requests_carry_edits_and_the_session_key_as_params(tmp_path: Path) -> None:
    from koala_store.replay.inbound import prepare_request

    with php_fpm(BINARY) as server:
        session = record(server, 0, "GET", "/index.php?price=5", b"")
        raw = session.call_from_inbound.request
        target = Address("127.0.0.1", server.port)
        assert prepare_request(raw, target, RequestEdits(), None) == raw  # unedited: byte for byte
        edited = prepare_request(raw, target, RequestEdits.parse([r"price=5:price=9"], ["X-Env: replay"]), "ab" * 16)
        params = dict(fastcgi.parse_request(edited).params)
        assert (params["REQUEST_URI"], params["QUERY_STRING"], params["HTTP_X_ENV"]) == ("/index.php?price=9", "price=9", "replay")
        assert params["HTTP_X_KOALA_SESSION"] == "ab" * 16 and params["HTTP_TRACEPARENT"].startswith("00-" + "ab" * 16)
        assert params["SCRIPT_FILENAME"] == server.script
