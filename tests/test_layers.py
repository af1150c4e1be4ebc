"""The one-way flow the README promises, checked on what importing each layer pulls in."""

from __future__ import annotations

import subprocess
import sys

import pytest


def loaded_after(module: str) -> set[str]:
    """The modules a fresh interpreter holds after importing `module` (ours only)."""
    code = f"import sys, {module}; print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] in ('koala_store', 'matchers'))))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


@pytest.mark.parametrize("store", ["koala_store.store.sqlite", "koala_store.store.elastic"])
def test_stores_do_not_import_the_replay(store: str) -> None:
    assert not {m for m in loaded_after(store) if m.startswith("koala_store.replay")}


def test_diff_does_not_import_matchers() -> None:
    assert not {m for m in loaded_after("koala_store.diff") if m.split(".")[0] == "matchers"}


def test_wire_stands_alone() -> None:
    """Protocol knowledge sits below everything that uses it: summary, matchers, diff, replay."""
    loaded = loaded_after("koala_store.wire")
    assert not {m for m in loaded if m.split(".")[0] == "matchers" or m.startswith(("koala_store.diff", "koala_store.replay", "koala_store.store"))}
