"""Where a request's chunks hit in a session's recorded requests: the work inside `chunk`.

For one recorded request `data`, Koala's search (../shared/spec/koala-matching.md, chunk 3)
comes down to this loop, and both scanners here return exactly its three figures:

    off, head_at, count, at = 0, -1, 0, -1
    for i, chunk in enumerate(chunks):
        pos = data.find(chunk, off)  # later chunks must follow; overlap is allowed
        if pos >= 0:
            off, at = pos, i
            if i == 0: head_at = pos
            else: count += 1

`head_at` is where chunk 0 is (-1: missing), `count` how many other chunks hit and `at`
the index of the last chunk that hit (-1: none). The score follows from them and the
connection's state, which the scanners never see (matchers/chunk.py).

- `CompiledScanner` (matchers/_chunkscan.c, built by `pip install`): reads each recorded
  request once per live request, through a table of the chunks' 8-byte grams; nothing to
  prepare per session. About 100 times faster at 500 recorded calls of 8 KB.
- `PythonScanner`, used where the extension is not built: the loop above with bytes.find,
  skipping the chunks a per-session index of the requests' grams proves absent.

`scanner_for(requests)` picks the compiled one when it is there.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Protocol

from .base import MatcherError

# (head_at, count, at) as above.
Hit = tuple[int, int, int]

ABI = 1  # the version of _chunkscan's scan() this module expects

try:
    from . import _chunkscan  # type: ignore[attr-defined]
except ImportError:  # not built (no C compiler at install): the pure-Python scanner answers
    _chunkscan = None
if _chunkscan is not None and getattr(_chunkscan, "ABI", None) != ABI:
    warnings.warn(
        f"matchers/_chunkscan is a stale build (ABI {getattr(_chunkscan, 'ABI', None)}, expected {ABI}); "
        "using the slower pure-Python chunk scanner: rebuild it with ./scripts/setup.sh or pip install -e .",
        RuntimeWarning,
        stacklevel=1,
    )
    _chunkscan = None

COMPILED = _chunkscan is not None


class Scanner(Protocol):
    def scan(self, chunks: Sequence[bytes], positions: Sequence[int]) -> list[Hit]:
        """The hits of `chunks` in the recorded request at each of `positions`, in that order."""


class CompiledScanner:
    """The C scanner; it keeps nothing per session but the requests themselves."""

    def __init__(self, requests: Sequence[bytes]):
        if _chunkscan is None:
            raise MatcherError(
                "the compiled chunk scanner is not built; reinstall koala-store with ./scripts/setup.sh (needs a C compiler and Python headers) or use scanner='python'"
            )
        self._requests = requests
        self._scan = _chunkscan.scan

    def scan(self, chunks: Sequence[bytes], positions: Sequence[int]) -> list[Hit]:
        requests = self._requests
        return self._scan(chunks, [requests[p] for p in positions])


_GRAM, _STRIDE = 13, 4  # the per-session index: 13-byte grams starting every 4 bytes
INDEX_BUDGET = 1024 * 1024  # request bytes indexed per session (about 13 MB of index)


class PythonScanner:
    """bytes.find, skipping the chunks an index of the session's requests proves absent.

    The index maps the 13-byte grams starting every 4 bytes to a bitmask of the positions
    holding them. A 16-byte chunk found anywhere in a request covers one indexed gram
    starting at one of its first 4 offsets, so a position in none of those grams' masks
    cannot hold it and its search (a scan of the whole request for nothing) is skipped.
    Requests past a byte budget are not indexed (their bit is in every mask): memory stays
    bounded on huge sessions, which then cost what Koala's plain scan costs.
    """

    def __init__(self, requests: Sequence[bytes]):
        self._requests = requests
        # Keys are the grams' hashes (a collision only costs a useless search) and a gram held
        # by one request stores ~position instead of a bitmask: about 13 MB per MB indexed.
        grams: dict[int, int] = {}
        unindexed = 0
        budget = INDEX_BUDGET
        for p, data in enumerate(requests):
            if len(data) > budget:
                unindexed |= 1 << p
                continue
            budget -= len(data)
            for s in range(0, len(data) - _GRAM + 1, _STRIDE):
                h = hash(data[s : s + _GRAM])
                v = grams.get(h)
                if v is None:
                    grams[h] = ~p
                elif v < 0:
                    if v != ~p:
                        grams[h] = (1 << ~v) | (1 << p)
                else:
                    grams[h] = v | (1 << p)
        self._grams = grams
        self.unindexed = unindexed  # bitmask of the positions past the budget

    def _holders(self, chunk: bytes) -> int:
        """A bitmask of the positions that may hold `chunk` (all of them for short chunks)."""
        if len(chunk) < _GRAM + _STRIDE - 1:
            return -1
        get = self._grams.get
        mask = self.unindexed
        for d in range(_STRIDE):
            v = get(hash(chunk[d : d + _GRAM]))
            if v is not None:
                mask |= (1 << ~v) if v < 0 else v
        return mask

    def scan(self, chunks: Sequence[bytes], positions: Sequence[int]) -> list[Hit]:
        n = len(chunks)
        if not n:
            return [(-1, 0, -1)] * len(positions)
        masks = [self._holders(c) for c in chunks]
        unindexed = self.unindexed
        # Which of chunks 1.. each indexed position may hold: the masks turned inside out.
        # Unindexed positions (past the budget) are searched for every chunk.
        wanted = 0
        for p in positions:
            wanted |= 1 << p
        wanted &= ~unindexed
        todo: dict[int, list[int]] = {p: [] for p in positions}
        for i in range(1, n):
            m = masks[i]
            m = wanted if m == -1 else m & wanted
            while m:
                low = m & -m
                todo[low.bit_length() - 1].append(i)
                m ^= low
        every = range(1, n)
        head, head_mask = chunks[0], masks[0]
        out: list[Hit] = []
        for p in positions:
            find = self._requests[p].find
            head_at = -1  # offset of chunk 0, -1 when missing
            count = 0  # hits of the other chunks
            at = -1  # index of the last chunk hit
            off = 0
            if (head_mask >> p) & 1:
                head_at = find(head)
                if head_at >= 0:
                    off = head_at
                    at = 0
            # Only the chunks this request may hold (see _holders); the others miss.
            for i in every if (unindexed >> p) & 1 else todo[p]:
                pos = find(chunks[i], off)
                if pos >= 0:
                    # Later chunks must follow; overlap is allowed (search from the hit).
                    off = pos
                    count += 1
                    at = i
            out.append((head_at, count, at))
        return out


SCANNERS: dict[str, type[Scanner]] = {"compiled": CompiledScanner, "python": PythonScanner}
DEFAULT = "compiled" if COMPILED else "python"


def scanner_for(requests: Sequence[bytes], kind: str | None = None) -> Scanner:
    """A scanner of `requests`: `kind` "compiled" or "python", else DEFAULT (the fastest built)."""
    scanner = SCANNERS.get(kind or DEFAULT)
    if scanner is None:
        raise MatcherError(f"unknown chunk scanner {kind!r}; use one of: {', '.join(SCANNERS)}")
    return scanner(requests)
