"""Ctrl-C held back while a batch is written and counted.

A batch the store has committed must be in the report that Ctrl-C prints. Python raises
KeyboardInterrupt at whatever bytecode runs when SIGINT arrives: after the store's commit
and before the count, the report would miss a whole batch that was stored (seen: "stored
10000 sessions" over a store holding 15,000). So SIGINT is noted during the write and raised
once the count is done. A write is bounded (one batch), so the wait is short.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


@contextlib.contextmanager
def held_back() -> Iterator[None]:
    """Run the block whole; a Ctrl-C that came meanwhile is delivered at its end, to the
    handler there was before (Python's raises KeyboardInterrupt; one that ignores SIGINT still
    does). An error the block raised goes first. Elsewhere than the main thread (Python
    delivers SIGINT to the main thread only) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        came.append(signum)

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if came:
        signal.raise_signal(signal.SIGINT)
