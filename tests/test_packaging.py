"""Packaging: the version the CLI reports is the package's, and koala-store's top-level
`matchers` package cannot be shadowed silently by another of that name."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import koala_store


def test_the_cli_version_is_the_installed_distributions() -> None:
    assert metadata.version("koala-store") == koala_store.__version__
    done = subprocess.run([sys.executable, "-m", "koala_store", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"koala-store {koala_store.__version__}"


def test_another_matchers_package_first_on_the_path_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "matchers").mkdir()
    (tmp_path / "matchers" / "__init__.py").write_text("")
    done = subprocess.run([sys.executable, "-c", "import koala_store"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 1
    assert f"the top-level package 'matchers' koala-store needs resolves to {tmp_path / 'matchers'}" in done.stderr
    assert "uninstall or rename that one" in done.stderr
