"""The compiled parts of koala-store: matchers/_chunkscan.c, matchers/_simlex.c,
matchers/_fuzzylex.c, koala_store/wire/_canonjson.c, koala_store/wire/_http1head.c,
koala_store/wire/_normalize.c and koala_store/query/_terms.c
(everything else is in pyproject.toml).

They are optional: where they cannot be built (no C compiler or Python headers) the install
goes on and matchers.chunk_scan, matchers.sim, matchers.fuzzy, koala_store.diff.body,
koala_store.wire.http1, koala_store.wire.normalize and koala_store.query.text use their
pure-Python code, with the same decisions, slower.
"""

from setuptools import Extension, setup

# Each module is built from the C file of the same dotted path.
COMPILED = ("matchers._chunkscan", "matchers._simlex", "matchers._fuzzylex", "koala_store.wire._canonjson", "koala_store.wire._http1head", "koala_store.wire._normalize", "koala_store.query._terms")

# Headers a module includes: rebuilt when they change, and shipped in the source distribution.
HEADERS = {name: ["koala_store/_runtable.h"] for name in ("matchers._simlex", "matchers._fuzzylex", "koala_store.query._terms")}

setup(
    ext_modules=[
        Extension(name, sources=[name.replace(".", "/") + ".c"], depends=HEADERS.get(name, []), extra_compile_args=["-O2"], optional=True)
        for name in COMPILED
    ]
)
