from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/factories.py

# ../shared/examples/koala-recorded-session.json as Koala's recorder really writes it (Go
# escapes <, > and & as \u003c, \u003e, \u0026; the shared copy has them raw), so a clean
# clone has it.
EXAMPLE_SESSION = ROOT / "examples" / "sessions" / "koala-recorded-session.json"


@pytest.fixture
def example_path() -> Path:
    return EXAMPLE_SESSION


@pytest.fixture
def example_bytes(example_path: Path) -> bytes:
    return example_path.read_bytes()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'koala.db'}"
