"""How the contract suites open each backend under test, isolated per test."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from koala_store.store.base import SessionStore
from koala_store.store.sqlite import SqliteStore

BACKENDS = ["sqlite"]


@contextmanager
def open_test_store(backend: str, tmp_path: Path) -> Iterator[SessionStore]:
    if backend == "sqlite":
        store = SqliteStore(tmp_path / "contract.db")
    else:
        raise ValueError(f"unknown backend {backend}")
    try:
        yield store
    finally:
        store.close()
