"""The compiled parts of koala-store: matchers/_chunkscan.c, matchers/_simlex.c and
koala_store/diff/_canonjson.c (everything else is in pyproject.toml).

They are optional: where they cannot be built (no C compiler or Python headers) the install
goes on and matchers.chunk_scan, matchers.sim and koala_store.diff.body use their pure-Python
code, with the same decisions, slower.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "matchers._chunkscan",
            sources=["matchers/_chunkscan.c"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
        Extension(
            "matchers._simlex",
            sources=["matchers/_simlex.c"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
        Extension(
            "koala_store.diff._canonjson",
            sources=["koala_store/diff/_canonjson.c"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
    ]
)
