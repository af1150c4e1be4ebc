"""The compiled parts of koala-store: matchers/_chunkscan.c and matchers/_simlex.c (everything
else is in pyproject.toml).

It is optional: where it cannot be built (no C compiler or Python headers) the install goes
on and matchers.chunk_scan and matchers.sim use their pure-Python code, with the same
decisions, slower.
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
    ]
)
