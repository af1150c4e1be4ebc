"""How the replayer's processes keep the heap memory a finished session frees.

Each session's matcher allocates megabytes (a 500 x 8 KB session: its calls' keys, their
codes, the lexeme cache) and frees them when the session ends. glibc's malloc gives the freed
top of the heap back to the kernel past 128 KB (M_TRIM_THRESHOLD), so the next session takes
the same pages again, one page fault per 4 KB: ~1,400 faults for fuzzy's full preparation of
such a session (perf stat; bench/bench_matchers.py times it both ways). A replayer runs
session after session, so its processes keep up to KEEP_BYTES freed instead.

Process-wide and glibc's alone: `koala replay` and the mock's process call it; importing
koala_store never does. Elsewhere (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

KEEP_BYTES = 64 << 20
_M_TRIM_THRESHOLD = -1  # glibc's malloc.h


def _mallopt() -> ctypes._CFuncPtr | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt


def keep_freed_heap(keep_bytes: int = KEEP_BYTES) -> bool:
    """Keep up to `keep_bytes` of freed heap in this process (glibc); whether it was set."""
    mallopt = _mallopt()
    return mallopt is not None and mallopt(_M_TRIM_THRESHOLD, keep_bytes) == 1
