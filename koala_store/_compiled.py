"""Pure-Python modules that setup.py also compiles with Cython, from the same source, and the
import hook that keeps an out-of-date build of one from running.

Why compile them: they are the replayer's hot path, and Cython's C for unchanged Python saves
~9% of the instructions a replayed session costs (bench/bench_instructions.py replay). The
wire parsers and normalize are what a matcher prepares a session's calls with: compiled, fuzzy's
full preparation of a 500 x 8 KB session takes 438.1M -> 429.9M instructions (fuzzy-prep). The
source stays the one truth: nothing here is Cython syntax, and where Cython is not installed
(or KOALA_PURE_PYTHON=1 is set at build time) setup.py builds none of them.

Why the hook: Python imports `mock.cpython-311-x86_64-linux-gnu.so` before `mock.py` beside it,
so after an edit to mock.py the build from before the edit would run until the next build.
A compiled module older than its source is passed over for the source. KOALA_PURE_PYTHON=1 at
run time passes over every one (the pure-Python code is what the lowest-versions and sanitizer
jobs test).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

# Dotted names; setup.py reads this tuple (a literal) without importing the package.
CYTHONIZED = (
    "koala_store.model",
    "koala_store.diff.masked",
    "koala_store.diff.noise",
    "koala_store.diff.options",
    "koala_store.diff.outbound",
    "koala_store.diff.response",
    "koala_store.replay.inbound",
    "koala_store.replay.judge",
    "koala_store.replay.mock",
    "koala_store.replay.runner",
    "koala_store.replay.streams",
    "koala_store.replay.targets",
    "koala_store.wire.fastcgi",
    "koala_store.wire.framing",
    "koala_store.wire.http",
    "koala_store.wire.http1",
    "koala_store.wire.mysql",
    "koala_store.wire.normalize",
    "koala_store.wire.request",
    "koala_store.wire.resp",
    "koala_store.wire.setup",
    "koala_store.wire.talk",
    "matchers.base",
    "matchers.fuzzy",
)
_NAMES = frozenset(CYTHONIZED)
_EXTENSIONS = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def pure_python() -> bool:
    """Whether KOALA_PURE_PYTHON asks for the source of every module in CYTHONIZED."""
    return os.environ.get("KOALA_PURE_PYTHON", "") not in ("", "0")


def stale(compiled: Path, source: Path) -> bool:
    """Whether a compiled module is older than its source (edited, or checked out, since)."""
    return source.stat().st_mtime_ns > compiled.stat().st_mtime_ns


class SourceWhenStale(importlib.abc.MetaPathFinder):
    """Gives the source's spec for a CYTHONIZED module whose compiled build is out of date
    (or when KOALA_PURE_PYTHON is set); declines everything else, to the usual finders."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if name not in _NAMES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)  # type: ignore[arg-type]
        if spec is None or spec.origin is None or not spec.origin.endswith(_EXTENSIONS):
            return None  # not compiled here: the usual import finds the source
        compiled = Path(spec.origin)
        source = compiled.with_name(name.rpartition(".")[2] + ".py")
        if source.exists() and (pure_python() or stale(compiled, source)):
            return importlib.util.spec_from_file_location(name, source)
        return None


def install() -> None:
    """Put the hook first on sys.meta_path (once): before any CYTHONIZED module is imported."""
    if not any(isinstance(finder, SourceWhenStale) for finder in sys.meta_path):
        sys.meta_path.insert(0, SourceWhenStale())


install()
