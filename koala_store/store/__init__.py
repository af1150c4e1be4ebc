"""Session stores: one protocol (base.SessionStore), one URL to pick the backend.

`sqlite:///relative.db`, `sqlite:////absolute.db` or a plain path ending in .db: the
embedded SQLite store (the default, ./koala.db, or $KOALA_STORE when set).
`http(s)://[user:password@]host:port[?index=...&prefix=...&api_key=...&ca_certs=...&verify_certs=false]`:
Elasticsearch (see store.elastic; $KOALA_ES_USER, $KOALA_ES_PASSWORD, $KOALA_ES_API_KEY,
$KOALA_ES_CA_CERT and $KOALA_ES_VERIFY=false do the same without putting secrets in URLs).
"""

from __future__ import annotations

import os

from ..errors import StoreError
from .base import PutResult, Query, Rejected, SessionStore, Skipped
from .elastic_config import redact

DEFAULT_URL = "sqlite:///koala.db"
ENV_VAR = "KOALA_STORE"


def resolve_url(url: str | None) -> str:
    """The store URL to use: the one given, else $KOALA_STORE, else ./koala.db."""
    return url or os.environ.get(ENV_VAR) or DEFAULT_URL


def open_store(url: str | None = None, *, index: str | None = None, readonly: bool = False, **options) -> SessionStore:
    """Open the store a URL names. `index` picks an Elasticsearch index to use instead of
    koala-store's own (e.g. rdebug_index, where a Koala recorder posts sessions). `readonly`:
    for commands that only read; nothing is created or written (a missing SQLite store is an
    error that says so)."""
    url = resolve_url(url)
    shown = redact(url)
    if index and not url.startswith(("http://", "https://")):
        raise StoreError(f"--index {index} applies to Elasticsearch stores; {shown} is not one")
    if url.startswith("sqlite://"):
        from .sqlite import SqliteStore

        path = url.removeprefix("sqlite://")
        if not path.startswith("/") or path == "/":
            raise StoreError(f"store URL {shown!r} has no path; write sqlite:///relative.db or sqlite:////absolute/path.db")
        return SqliteStore(path[1:], readonly=readonly)
    if url.startswith(("http://", "https://")):
        from .elastic import ElasticStore

        return ElasticStore(url, index=index, readonly=readonly, **options)
    if "://" not in url and "@" not in url and url.endswith((".db", ".sqlite", ".sqlite3")):
        from .sqlite import SqliteStore

        return SqliteStore(url, readonly=readonly)
    raise StoreError(f"cannot tell what store {shown!r} is; pass --store sqlite:///path.db or --store http://127.0.0.1:9200")


def copy_sessions(source: SessionStore, target: SessionStore, query: Query = "*", progress=None) -> PutResult:
    """Copy the sessions matching `query` from one store to another (any backends), streamed."""

    def counted():
        for session in source.scan(query):
            yield session
            if progress:
                progress(1)

    result = target.put_many(counted())
    target.refresh()
    return result


__all__ = ["copy_sessions", "DEFAULT_URL", "ENV_VAR", "PutResult", "Query", "Rejected", "SessionStore", "Skipped", "open_store", "redact", "resolve_url"]
