"""The compiled parts of koala-store (everything else is in pyproject.toml).

1. C modules: matchers/_chunkscan.c, matchers/_simlex.c, matchers/_fuzzylex.c,
   koala_store/wire/_canonjson.c, koala_store/wire/_http1head.c, koala_store/wire/_normalize.c
   and koala_store/query/_terms.c. Where they cannot be built (no C compiler or Python
   headers) the install goes on and matchers.chunk_scan, matchers.sim, matchers.fuzzy,
   koala_store.diff.body, koala_store.wire.http1, koala_store.wire.normalize and
   koala_store.query.text use their pure-Python code, with the same decisions, slower.
2. The replayer's hot path, pure-Python modules compiled by Cython from the same source
   (koala_store/_compiled.py lists them and says why). Optional the same way; none are built
   without Cython or with KOALA_PURE_PYTHON=1 set. Cython's C goes to build/cython, not
   beside the source.
"""

import ast
import os
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# Each module is built from the C file of the same dotted path.
COMPILED = (
    "matchers._chunkscan",
    "matchers._simlex",
    "matchers._fuzzylex",
    "koala_store.wire._canonjson",
    "koala_store.wire._http1head",
    "koala_store.wire._normalize",
    "koala_store.query._terms",
)

# Headers a module includes: rebuilt when they change, and shipped in the source distribution.
HEADERS = {name: ["koala_store/_runtable.h"] for name in ("matchers._simlex", "matchers._fuzzylex", "koala_store.query._terms")}


def cythonized() -> tuple[str, ...]:
    """koala_store/_compiled.py's CYTHONIZED, read without importing the package."""
    tree = ast.parse(Path(__file__).with_name("koala_store").joinpath("_compiled.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "CYTHONIZED" for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit("setup.py: koala_store/_compiled.py has no CYTHONIZED tuple")


def cython_extensions() -> list[Extension]:
    if os.environ.get("KOALA_PURE_PYTHON", "") not in ("", "0"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        return []
    modules = [Extension(name, sources=[name.replace(".", "/") + ".py"], optional=True) for name in cythonized()]
    # annotation_typing off: the hints are for readers and mypy; Cython would enforce some
    # (a str subclass where `str` is written) and the code must behave as the source does.
    directives = {"language_level": 3, "binding": True, "annotation_typing": False}
    return cythonize(modules, compiler_directives=directives, build_dir="build/cython", quiet=True, nthreads=os.cpu_count() or 1)


class ParallelBuildExt(build_ext):
    """Compiles the extensions on every core (Cython's C takes minutes on one)."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1


setup(
    ext_modules=[
        Extension(name, sources=[name.replace(".", "/") + ".c"], depends=HEADERS.get(name, []), extra_compile_args=["-O2"], optional=True) for name in COMPILED
    ]
    + cython_extensions(),
    cmdclass={"build_ext": ParallelBuildExt},
)
