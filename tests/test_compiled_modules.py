"""The modules setup.py also compiles with Cython (koala_store/_compiled.py): each is ours, the
compiled build runs only while it is up to date with its source, and KOALA_PURE_PYTHON=1 runs
the source of every one."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from koala_store import _compiled

ROOT = Path(__file__).resolve().parent.parent
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]

IMPORT_ALL = "import importlib, sys\nfor name in sys.argv[1:]:\n    print(importlib.import_module(name).__file__)"


def _files_imported(env: dict[str, str]) -> list[str]:
    done = subprocess.run([sys.executable, "-c", IMPORT_ALL, *_compiled.CYTHONIZED], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_every_compiled_module_is_one_of_our_python_modules() -> None:
    for name in _compiled.CYTHONIZED:
        assert (ROOT / (name.replace(".", "/") + ".py")).is_file(), f"{name} in CYTHONIZED has no source in the tree"


def test_pure_python_runs_the_source_of_every_compiled_module() -> None:
    files = _files_imported({**os.environ, "KOALA_PURE_PYTHON": "1"})
    assert len(files) == len(_compiled.CYTHONIZED) and all(f.endswith(".py") for f in files), files


def test_an_up_to_date_build_is_the_one_imported() -> None:
    built = [name for name in _compiled.CYTHONIZED if list((ROOT / name.replace(".", "/")).parent.glob(name.rpartition(".")[2] + ".cpython-*.so"))]
    if not built:
        pytest.skip("no module was compiled with Cython here (setup.py builds them where Cython is installed)")
    env = {k: v for k, v in os.environ.items() if k != "KOALA_PURE_PYTHON"}
    files = dict(zip(_compiled.CYTHONIZED, _files_imported(env), strict=True))
    for name in built:
        compiled = next((ROOT / name.replace(".", "/")).parent.glob(name.rpartition(".")[2] + ".cpython-*.so"))
        source = compiled.with_name(name.rpartition(".")[2] + ".py")
        expected = source if _compiled.stale(compiled, source) else compiled
        assert files[name] == str(expected), name


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A module `koala_hook_probe` with a source and a (never loaded) compiled file, listed
    among the compiled modules."""
    source = tmp_path / "koala_hook_probe.py"
    compiled = tmp_path / f"koala_hook_probe{SUFFIX}"
    source.write_text("VALUE = 1\n")
    compiled.write_bytes(b"not loaded by these tests")
    monkeypatch.setattr(_compiled, "_NAMES", _compiled._NAMES | {"koala_hook_probe"})
    monkeypatch.delenv("KOALA_PURE_PYTHON", raising=False)
    return source, compiled


def _ages(source: Path, compiled: Path, source_ns: int, compiled_ns: int) -> None:
    os.utime(source, ns=(source_ns, source_ns))
    os.utime(compiled, ns=(compiled_ns, compiled_ns))


def test_a_build_older_than_its_source_is_passed_over_for_the_source(package: tuple[Path, Path]) -> None:
    source, compiled = package
    finder = _compiled.SourceWhenStale()
    _ages(source, compiled, 2_000_000_000_000_000_000, 1_000_000_000_000_000_000)  # source edited after the build
    spec = finder.find_spec("koala_hook_probe", [str(source.parent)])
    assert spec is not None and spec.origin == str(source)
    _ages(source, compiled, 1_000_000_000_000_000_000, 2_000_000_000_000_000_000)  # rebuilt since
    assert finder.find_spec("koala_hook_probe", [str(source.parent)]) is None  # the usual import: the build


def test_pure_python_passes_over_an_up_to_date_build(package: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    source, compiled = package
    _ages(source, compiled, 1_000_000_000_000_000_000, 2_000_000_000_000_000_000)
    monkeypatch.setenv("KOALA_PURE_PYTHON", "1")
    spec = _compiled.SourceWhenStale().find_spec("koala_hook_probe", [str(source.parent)])
    assert spec is not None and spec.origin == str(source)
    monkeypatch.setenv("KOALA_PURE_PYTHON", "0")  # 0 or empty: off
    assert _compiled.SourceWhenStale().find_spec("koala_hook_probe", [str(source.parent)]) is None


def test_modules_not_listed_and_modules_not_built_are_left_to_the_usual_import(package: tuple[Path, Path]) -> None:
    source, compiled = package
    finder = _compiled.SourceWhenStale()
    _ages(source, compiled, 2_000_000_000_000_000_000, 1_000_000_000_000_000_000)
    (source.parent / "other.py").write_text("")
    assert finder.find_spec("other", [str(source.parent)]) is None  # not listed
    compiled.unlink()
    assert finder.find_spec("koala_hook_probe", [str(source.parent)]) is None  # source only: nothing to pass over


def test_the_hook_is_first_on_the_import_path_once() -> None:
    hooks = [f for f in sys.meta_path if isinstance(f, _compiled.SourceWhenStale)]
    assert len(hooks) == 1 and sys.meta_path.index(hooks[0]) < sys.meta_path.index(importlib.machinery.PathFinder)
    _compiled.install()
    assert len([f for f in sys.meta_path if isinstance(f, _compiled.SourceWhenStale)]) == 1
