"""Elasticsearch with security on, for real: basic auth (in the URL and from the environment),
API keys made through the real API, and TLS (our CA, no CA, verification off).

One secure instance of our own (HTTPS with a certificate from a throwaway CA, the `elastic`
user's known password) serves the whole module; each test writes under its own prefix.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import certifi
import orjson
import pytest
from elasticsearch import Elasticsearch

from cli_helpers import koala, koala_process
from factories import varied_sessions
from koala_store.es import ElasticsearchSetupError, LocalElasticsearch
from koala_store.es.local import find_java
from koala_store.formats import ndjson
from koala_store.store import open_store
from koala_store.store.elastic import ElasticStore
from koala_store.summary import summarize
from stores import drop_prefix, unique_prefix

SECURE_PORT = 19262
ENV_KEYS = ("KOALA_ES_USER", "KOALA_ES_PASSWORD", "KOALA_ES_API_KEY", "KOALA_ES_CA_CERT", "KOALA_ES_VERIFY", "KOALA_STORE")
SESSIONS = varied_sessions(30)
POSTS = sorted((s.recorded_at, s.session_id) for s in SESSIONS if summarize(s).method == "POST")


@pytest.fixture(scope="module")
def es() -> Iterator[LocalElasticsearch]:
    node = LocalElasticsearch(SECURE_PORT, secure=True)
    try:
        find_java()
    except ElasticsearchSetupError as exc:
        pytest.skip(str(exc))
    if shutil.which("mvn") is None and not (node.distribution / "bin" / "elasticsearch").exists():
        pytest.skip("needs Maven to fetch Elasticsearch from Maven Central")
    node.stop()  # one an interrupted run left behind on our port
    shutil.rmtree(node.data, ignore_errors=True)  # no users, keys or passwords from before
    node.start()
    yield node
    node.stop()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets itself: a developer's own KOALA_ES_* must not help or hurt."""
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="module")
def admin(es: LocalElasticsearch) -> Iterator[Elasticsearch]:
    client = Elasticsearch(es.url, basic_auth=(es.user, es.password), ca_certs=str(es.ca_cert))
    yield client
    client.close()


@pytest.fixture
def prefix(admin: Elasticsearch) -> Iterator[str]:
    name = unique_prefix()
    yield name
    drop_prefix(admin, name)


@pytest.fixture
def api_key(admin: Elasticsearch) -> Iterator[dict]:
    """A key made by the elastic user through the real API (so it has the user's rights):
    `id`, and `encoded`, the form Kibana shows and clients send."""
    key = admin.security.create_api_key(name=f"koala-test-{unique_prefix()}", expiration="1h")
    yield key.body
    admin.security.invalidate_api_key(ids=[key["id"]])


@pytest.fixture(scope="module")
def sessions_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secure") / "sessions.ndjson"
    with path.open("wb") as out:
        ndjson.write(SESSIONS, out)
    return path


def store_url(es: LocalElasticsearch, prefix: str, *, credentials: bool = True, **params: str) -> str:
    auth = f"{es.user}:{quote(es.password or '', safe='')}@" if credentials else ""
    query = "&".join(f"{k}={quote(v, safe='/')}" for k, v in {"prefix": prefix, **params}.items())
    return f"https://{auth}127.0.0.1:{es.port}?{query}"


def one_line(text: str) -> str:
    return " ".join(text.split())


def assert_round_trip(capsys, url: str, sessions_file: Path, secret: str, env: dict[str, str] | None = None) -> None:
    """Ingest all sessions, then search them back: every call authenticated and verified."""
    if env is None:
        ingest = koala(capsys, "ingest", str(sessions_file), "--store", url)
        search = koala(capsys, "sessions", "search", "inbound.method:POST", "--json", "--limit", "100", "--store", url)
    else:  # a real process: the variables reach it as they would from a shell
        ingest = koala_process("ingest", str(sessions_file), "--store", url, env=env)
        search = koala_process("sessions", "search", "inbound.method:POST", "--json", "--limit", "100", "--store", url, env=env)
    assert ingest.code == 0, ingest.err
    assert "stored 30 sessions into https://127.0.0.1:" in ingest.out
    assert search.code == 0, search.err
    assert [orjson.loads(line)["session_id"] for line in search.out.splitlines()] == [sid for _, sid in POSTS]
    assert secret not in ingest.out + ingest.err + search.out + search.err


def test_basic_auth_in_the_url(capsys, es: LocalElasticsearch, prefix: str, sessions_file: Path) -> None:
    url = store_url(es, prefix, ca_certs=str(es.ca_cert))
    assert_round_trip(capsys, url, sessions_file, es.password or "")
    store = open_store(url)
    try:
        assert store.count() == 30
        assert store.client.security.authenticate()["username"] == "elastic"
    finally:
        store.close()


def test_basic_auth_from_the_environment(es: LocalElasticsearch, prefix: str, sessions_file: Path) -> None:
    env = {"KOALA_ES_USER": "elastic", "KOALA_ES_PASSWORD": es.password or "", "KOALA_ES_CA_CERT": str(es.ca_cert)}
    assert_round_trip(None, store_url(es, prefix, credentials=False), sessions_file, es.password or "", env=env)


def test_no_credentials_are_refused(capsys, es: LocalElasticsearch, prefix: str, sessions_file: Path) -> None:
    run = koala(capsys, "ingest", str(sessions_file), "--store", store_url(es, prefix, credentials=False, ca_certs=str(es.ca_cert)))
    assert run.code == 1
    assert "refused the credentials (401)" in one_line(run.err)


@pytest.mark.parametrize("where", ["url", "env"])
def test_a_wrong_password_is_refused(capsys, monkeypatch, es: LocalElasticsearch, prefix: str, sessions_file: Path, where: str) -> None:
    if where == "url":
        url = store_url(es, prefix, ca_certs=str(es.ca_cert)).replace(quote(es.password or "", safe=""), "not-the-password")
    else:
        monkeypatch.setenv("KOALA_ES_USER", "elastic")
        monkeypatch.setenv("KOALA_ES_PASSWORD", "not-the-password")
        url = store_url(es, prefix, credentials=False, ca_certs=str(es.ca_cert))
    run = koala(capsys, "ingest", str(sessions_file), "--store", url)
    assert run.code == 1
    assert f"Elasticsearch at https://127.0.0.1:{es.port} refused the credentials (401); check the user and password in --store or the API key" in one_line(
        run.err
    )
    assert "not-the-password" not in run.out + run.err
    run = koala(capsys, "sessions", "search", "--store", url)
    assert run.code == 1 and "refused the credentials" in run.err


@pytest.mark.parametrize(
    "password",
    [
        "p@ss:w/rd%+ #1?&=",
        "pässwörd-ü",
    ],
    ids=["reserved", "non-ascii"],
)
def test_a_password_with_special_characters(
    capsys, monkeypatch, es: LocalElasticsearch, admin: Elasticsearch, prefix: str, sessions_file: Path, password: str
) -> None:
    """Given as is through the environment, percent-encoded in the URL as RFC 3986 says."""
    user = f"writer-{prefix}"
    admin.security.put_user(username=user, password=password, roles=["superuser"])
    try:
        plain = store_url(es, prefix, credentials=False, ca_certs=str(es.ca_cert))
        with monkeypatch.context() as env:
            env.setenv("KOALA_ES_USER", user)
            env.setenv("KOALA_ES_PASSWORD", password)
            store = open_store(plain)
            try:
                assert store.client.security.authenticate()["username"] == user
            finally:
                store.close()
        assert_round_trip(capsys, plain.replace("https://", f"https://{quote(user)}:{quote(password, safe='')}@"), sessions_file, password)
    finally:
        admin.security.delete_user(username=user)


@pytest.mark.parametrize("where", ["url", "env"])
def test_an_api_key_made_through_the_api(
    capsys, monkeypatch, es: LocalElasticsearch, admin: Elasticsearch, prefix: str, api_key: dict, sessions_file: Path, where: str
) -> None:
    if where == "url":  # pasted as is: base64 of Elasticsearch's url-safe id:key has no '+' or '/'
        url = store_url(es, prefix, credentials=False, ca_certs=str(es.ca_cert)) + f"&api_key={api_key['encoded']}"
    else:
        monkeypatch.setenv("KOALA_ES_API_KEY", api_key["encoded"])
        url = store_url(es, prefix, credentials=False, ca_certs=str(es.ca_cert))
    assert_round_trip(capsys, url, sessions_file, api_key["encoded"])
    store = ElasticStore(url)
    try:
        me = store.client.security.authenticate()
        assert me["authentication_type"] == "api_key" and me["api_key"]["id"] == api_key["id"]
    finally:
        store.close()
    # An invalidated key is refused like a wrong password.
    admin.security.invalidate_api_key(ids=[api_key["id"]])
    run = koala(capsys, "sessions", "search", "--store", url)
    assert run.code == 1
    assert "refused the credentials (401)" in one_line(run.err)


def test_an_api_key_without_rights_on_the_index_is_told_so(capsys, es: LocalElasticsearch, admin: Elasticsearch, prefix: str) -> None:
    key = admin.security.create_api_key(
        name=f"koala-test-{prefix}-reader",
        expiration="1h",
        role_descriptors={"elsewhere": {"cluster": ["monitor"], "indices": [{"names": ["elsewhere-*"], "privileges": ["read"]}]}},
    )
    try:
        run = koala(capsys, "sessions", "search", "--store", store_url(es, prefix, credentials=False, api_key=key["encoded"], ca_certs=str(es.ca_cert)))
        assert run.code == 1
        message = one_line(run.err)
        assert f"Elasticsearch at https://127.0.0.1:{es.port} does not allow this (" in message
        assert "use a user or API key with rights on the index" in message
    finally:
        admin.security.invalidate_api_key(ids=[key["id"]])


def test_an_api_key_in_the_url_wins_over_a_user_in_the_environment(capsys, monkeypatch, es: LocalElasticsearch, prefix: str, api_key: dict) -> None:
    monkeypatch.setenv("KOALA_ES_USER", "elastic")
    monkeypatch.setenv("KOALA_ES_PASSWORD", "not-the-password")
    store = ElasticStore(store_url(es, prefix, credentials=False, ca_certs=str(es.ca_cert)) + f"&api_key={api_key['encoded']}")
    try:
        assert store.client.security.authenticate()["authentication_type"] == "api_key"
    finally:
        store.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_our_ca_verifies_the_certificate(capsys, es: LocalElasticsearch, prefix: str, host: str) -> None:
    url = store_url(es, prefix, ca_certs=str(es.ca_cert)).replace("127.0.0.1", host)
    store = open_store(url)
    try:
        assert store.client.cluster.health()["cluster_name"] == f"koala-local-{es.port}"
    finally:
        store.close()
    run = koala(capsys, "sessions", "search", "--store", url)
    assert run.code == 0, run.err


def test_without_the_ca_the_connection_fails(capsys, es: LocalElasticsearch, prefix: str, sessions_file: Path) -> None:
    url = store_url(es, prefix)
    run = koala(capsys, "ingest", str(sessions_file), "--store", url)
    assert run.code == 1
    message = one_line(run.err)
    assert f"cannot reach Elasticsearch at https://127.0.0.1:{es.port}" in message
    assert "certificate verify failed" in message
    assert "for a self-signed certificate pass ca_certs=/path/ca.pem (or verify_certs=false) in --store" in message
    # A real process too: it has only the system's CAs.
    run = koala_process("sessions", "search", "--store", url)
    assert run.code == 1 and "ca_certs=" in run.err


def test_a_ca_that_did_not_sign_it_fails(capsys, tmp_path: Path, es: LocalElasticsearch, prefix: str) -> None:
    run = koala(capsys, "sessions", "search", "--store", store_url(es, prefix, ca_certs=certifi.where()))
    assert run.code == 1
    assert "certificate verify failed" in one_line(run.err) and "ca_certs=" in run.err
    missing = tmp_path / "no-such-ca.pem"
    run = koala(capsys, "sessions", "search", "--store", store_url(es, prefix, ca_certs=str(missing)))
    assert run.code == 1
    assert f"CA certificate {missing} does not exist" in one_line(run.err)


@pytest.mark.parametrize("where", ["url", "env"])
def test_verify_certs_false_connects(capsys, monkeypatch, es: LocalElasticsearch, prefix: str, sessions_file: Path, where: str) -> None:
    if where == "url":
        url = store_url(es, prefix, verify_certs="false")
    else:
        monkeypatch.setenv("KOALA_ES_VERIFY", "false")
        url = store_url(es, prefix)
    assert_round_trip(capsys, url, sessions_file, es.password or "")
    with warnings.catch_warnings(record=True) as caught:  # off on purpose: no warning per request
        warnings.simplefilter("always")
        store = open_store(url)
        try:
            assert store.count() == 30
        finally:
            store.close()
    assert [str(w.message) for w in caught] == []


def test_the_password_is_random_kept_private_and_never_printed(capsys, es: LocalElasticsearch) -> None:
    """Issue 11 item 7: a random password per instance in a 0600 file of the invoking user,
    instance folders 0700, and `koala es start --secure` says where the password is."""
    import os
    import stat

    assert es.password_file is not None
    info = es.password_file.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.geteuid()
    password = es.password or ""
    assert len(password) >= 24 and password != "koala-local-elastic"
    assert LocalElasticsearch(SECURE_PORT + 1, secure=True, home=es.home).password is None  # each instance its own
    for folder in (es.instance, es.data, es.instance / "logs", es.instance / "tmp", es.instance / "config", es.tls):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    run = koala(capsys, "es", "start", "--secure", "--port", str(SECURE_PORT))  # already running: says how to reach it
    assert run.code == 0, run.err
    assert password not in run.out + run.err
    assert str(es.password_file) in run.err
    assert run.out.strip() == f"https://127.0.0.1:{SECURE_PORT}?ca_certs={es.ca_cert}"
