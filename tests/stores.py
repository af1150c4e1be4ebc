"""How the contract suites open each backend under test, isolated per test.

Elasticsearch runs when scripts/test.sh started the local one and exported
KOALA_TEST_ES_URL; each test gets its own index prefix and removes its indices after.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from koala_store.store.base import SessionStore
from koala_store.store.sqlite import SqliteStore

ES_URL = os.environ.get("KOALA_TEST_ES_URL")
BACKENDS = ["sqlite"] + (["elastic"] if ES_URL else [])


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def drop_prefix(client, prefix: str) -> None:
    """Remove every index and template a test prefix created."""
    client.options(ignore_status=404).indices.delete(index=f"{prefix}-*", expand_wildcards="all")
    client.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-*")


@contextmanager
def open_test_store(backend: str, tmp_path: Path) -> Iterator[SessionStore]:
    if backend == "sqlite":
        store: SessionStore = SqliteStore(tmp_path / "contract.db")
    elif backend == "elastic":
        from koala_store.store.elastic import ElasticStore

        assert ES_URL, "KOALA_TEST_ES_URL is not set"
        prefix = unique_prefix()
        store = ElasticStore(ES_URL, prefix=prefix)
    else:
        raise ValueError(f"unknown backend {backend}")
    try:
        yield store
    finally:
        if backend == "elastic":
            drop_prefix(store.client, prefix)  # type: ignore[attr-defined]
        store.close()
