"""koala-store: record, store, replay and diff backend traffic; compatible with DiDi's Koala."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from . import _compiled  # noqa: F401  (its import hook first: see _compiled.py)

__version__ = "0.1.0"


def _check_matchers() -> None:
    """koala-store ships a top-level `matchers` package beside this one (the design card puts
    the strategies there, so plugins and users import `matchers`). A different `matchers`
    earlier on sys.path would be imported silently in its place: refuse that, by name."""
    spec = importlib.util.find_spec("matchers")
    ours = Path(__file__).resolve().parent.parent / "matchers"
    found = Path(spec.origin).resolve().parent if spec is not None and spec.origin else None
    if found != ours:
        where = found or "nowhere"
        raise ImportError(
            f"the top-level package 'matchers' koala-store needs resolves to {where}, not {ours}: another installed "
            "package (or a folder in the working directory) named matchers shadows it; uninstall or rename that one"
        )


_check_matchers()
