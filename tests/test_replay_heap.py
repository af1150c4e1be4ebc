"""koala_store/replay/heap.py: the replayer's processes keep freed heap for the next session."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Allocates 32 MB in 64 KB pieces (malloc's heap, below its mmap threshold), frees them, then
# counts the page faults of allocating them again: the pages come back from the kernel unless
# the freed heap was kept.
_REFAULTS = """
import resource, sys
from koala_store.replay.heap import keep_freed_heap
if sys.argv[1] == "keep":
    assert keep_freed_heap()
def fill():
    return [bytearray(b"x" * 65536) for _ in range(512)]
pieces = fill()
del pieces
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
pieces = fill()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _refaults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", _REFAULTS, mode], capture_output=True, text=True, check=True)
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_process_that_keeps_freed_heap_reuses_its_pages() -> None:
    default, kept = _refaults("default"), _refaults("keep")
    assert default > 4000  # 32 MB given back and taken again: ~8,000 pages
    assert kept < default / 10
