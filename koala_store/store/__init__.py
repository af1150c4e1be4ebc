"""Session stores: one protocol (base.SessionStore), one URL to pick the backend.

`sqlite:///relative.db`, `sqlite:////absolute.db` or a plain path ending in .db: the
embedded SQLite store (the default, ./koala.db, or $KOALA_STORE when set).
`http(s)://host:port`: Elasticsearch.
"""

from __future__ import annotations

import os

from ..errors import StoreError
from .base import PutResult, Query, Rejected, SessionStore

DEFAULT_URL = "sqlite:///koala.db"
ENV_VAR = "KOALA_STORE"


def resolve_url(url: str | None) -> str:
    """The store URL to use: the one given, else $KOALA_STORE, else ./koala.db."""
    return url or os.environ.get(ENV_VAR) or DEFAULT_URL


def open_store(url: str | None = None, **options) -> SessionStore:
    url = resolve_url(url)
    if url.startswith("sqlite://"):
        from .sqlite import SqliteStore

        path = url.removeprefix("sqlite://")
        if not path.startswith("/") or path == "/":
            raise StoreError(f"store URL {url!r} has no path; write sqlite:///relative.db or sqlite:////absolute/path.db")
        return SqliteStore(path[1:] if not path.startswith("//") else path[1:])
    if url.startswith(("http://", "https://")):
        from .elastic import ElasticStore

        return ElasticStore(url, **options)
    if "://" not in url and url.endswith((".db", ".sqlite", ".sqlite3")):
        from .sqlite import SqliteStore

        return SqliteStore(url)
    raise StoreError(f"cannot tell what store {url!r} is; pass --store sqlite:///path.db or --store http://127.0.0.1:9200")


__all__ = ["DEFAULT_URL", "ENV_VAR", "PutResult", "Query", "Rejected", "SessionStore", "open_store", "resolve_url"]
