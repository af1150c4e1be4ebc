"""FastCGI sessions recorded from a real PHP-FPM: summary fields, queries on every store, the
endpoint name, the response diff (framing never compared), and `koala sessions show`."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from cli_helpers import koala
from factories import make_session
from php_fpm import Exchange, PhpFpm, cgi_params, fastcgi_exchange, find_php_fpm, php_fpm
from stores import BACKENDS, open_test_store

from koala_store import diff
from koala_store.model import CallFromInbound, Peer, ReturnInbound, Session
from koala_store.store.sqlite import SqliteStore
from koala_store.summary import summarize
from koala_store.wire import FASTCGI, fastcgi, parse_talk

PHP_FPM = find_php_fpm()
pytestmark = pytest.mark.skipif(PHP_FPM is None, reason="php-fpm is not installed (Debian: apt install php8.2-fpm); FastCGI tests need a real one")


@pytest.fixture(scope="module")
def server() -> Iterator[PhpFpm]:
    assert PHP_FPM is not None
    with php_fpm(PHP_FPM) as running:
        yield running


def ask(server: PhpFpm, method: str, uri: str, body: bytes = b"") -> Exchange:
    return fastcgi_exchange(server, cgi_params(server, method, uri, body, {"Host": "shop.test", "Accept": "application/json"}), body)


def recorded(exchange: Exchange, session_id: str) -> Session:
    """The exchange as Koala's recorder keeps it: the FastCGI bytes either way."""
    answer = ReturnInbound(1, exchange.finished_ns, response=exchange.response)
    return Session(
        session_id=session_id,
        call_from_inbound=CallFromInbound(0, exchange.started_ns, request=exchange.request, peer=Peer("127.0.0.1", 45000)),
        return_inbound=answer,
        actions=[answer],
    )


def reframed(response: bytes, chunk: int, align: int) -> bytes:
    """The same answer as other records: another split, other padding, garbage in the padding
    and reserved bytes."""
    answer = fastcgi.parse_response(response)
    assert answer is not None
    data = bytearray(fastcgi.encode_response(answer.stdout, answer.stderr, request_id=answer.request_id, chunk=chunk, align=align))
    pos = 0
    while pos < len(data):  # scribble over every reserved and padding byte
        length, padding = int.from_bytes(data[pos + 4 : pos + 6], "big"), data[pos + 6]
        data[pos + 7] = 0xAB
        end = pos + 8 + length + padding
        data[end - padding : end] = b"\xcd" * padding
        pos = end
    return bytes(data)


def test_summary_of_a_real_php_fpm_session(server: PhpFpm) -> None:
    exchange = ask(server, "POST", "/index.php?status=201&price=5", b'{"sku":"A-17"}')
    talk = parse_talk(exchange.request, exchange.response)
    assert talk.protocol is FASTCGI
    answer = fastcgi.parse_response(exchange.response)
    assert answer.complete and b"koala-test saw /index.php?status=201&price=5" in answer.stderr  # PHP's log, kept aside
    s = summarize(recorded(exchange, "php-1"))
    assert (s.method, s.path, s.query, s.host, s.status, s.content_type) == ("POST", "/index.php", "status=201&price=5", "shop.test", 201, "application/json")
    assert s.latency_ms is not None and s.latency_ms > 0
    assert diff.endpoint_of(exchange.request) == "POST /index.php"
    assert diff.endpoint_of(ask(server, "GET", "/index.php?price=1").request) == "GET /index.php"


@pytest.mark.parametrize("backend", BACKENDS)
def test_queries_find_fastcgi_sessions_on_every_store(server: PhpFpm, backend: str, tmp_path: Path) -> None:
    php = [recorded(ask(server, "GET", f"/index.php?price={n}"), f"php-{n}") for n in range(3)]
    php.append(recorded(ask(server, "GET", "/index.php?status=404"), "php-404"))
    http = make_session(1, path="/v1/user", session_id="http-1")
    with open_test_store(backend, tmp_path) as store:
        result = store.put_many([*php, http])
        assert result.stored == 5 and not result.rejected
        store.refresh()
        found = sorted(s.session_id for s in store.scan("inbound.path:/index.php"))
        assert found == ["php-0", "php-1", "php-2", "php-404"]
        assert sorted(s.session_id for s in store.scan("inbound.path:/index.php AND inbound.status:404")) == ["php-404"]
        assert store.count("inbound.method:GET AND inbound.host:shop.test AND inbound.content_type:application/json") == 4
        assert store.count("inbound.query:price=1") == 1


def test_framing_padding_and_reserved_bytes_give_no_difference(server: PhpFpm) -> None:
    response = ask(server, "GET", "/index.php?price=5&size=70000").response  # STDOUT spans several records
    assert len(fastcgi.records(response)) > 3
    for chunk, align in ((7, 0), (4096, 8), (65535, 16)):
        other = reframed(response, chunk, align)
        assert other != response
        assert diff.compare_responses(response, other) == []


def test_a_changed_json_field_is_a_body_difference(server: PhpFpm) -> None:
    five = ask(server, "GET", "/index.php?price=5")
    six = ask(server, "GET", "/index.php?price=6")
    differences = diff.compare_responses(five.response, six.response, diff.options_from_cli(["uri"]))
    assert [(d.path, d.kind, d.expected, d.actual) for d in differences] == [("body.price", "changed", 5, 6)]
    status = diff.compare_responses(five.response, ask(server, "GET", "/index.php?price=5&status=500").response, diff.options_from_cli(["uri"]))
    assert [d.path for d in status] == ["status"]


def test_sessions_show_prints_the_http_view(server: PhpFpm, tmp_path: Path, capsys) -> None:
    db = tmp_path / "koala.db"
    store = SqliteStore(db)
    store.put_many([recorded(ask(server, "POST", "/index.php?price=7", b'{"sku":"B"}'), "php-show")])
    store.close()
    run = koala(capsys, "sessions", "show", "php-show", "--store", str(db))
    assert run.code == 0, run.err
    assert "inbound     POST /index.php?price=7 from 127.0.0.1:45000 -> 200 application/json" in run.out
    lines = [line.rstrip("\r") for line in run.out.splitlines()]
    request = lines.index("--- inbound request (FastCGI, shown as HTTP) ---")
    assert lines[request + 1 : request + 8] == [
        "POST /index.php?price=7 HTTP/1.1",
        "Content-Type: application/json",
        "Content-Length: 11",
        "Host: shop.test",
        "Accept: application/json",
        "",
        '{"sku":"B"}',
    ]
    response = lines.index("--- inbound response (FastCGI, shown as HTTP) ---")
    assert lines[response + 1] == "HTTP/1.1 200 OK" and "Content-Type: application/json" in lines[response + 2 : response + 4]
    assert "--- inbound stderr (FastCGI) ---\nPHP message: koala-test saw /index.php?price=7" in run.out
    assert "SCRIPT_FILENAME" not in run.out  # CGI-only params are framing, not the request
