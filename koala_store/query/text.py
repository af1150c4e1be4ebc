"""Full text as both backends index it: the same text in, the same tokens out.

Bytes become UTF-8 text (invalid bytes turn into U+FFFD) with control characters as
spaces; tokens are lowercased runs of Unicode letters and digits. SQLite's FTS5
`unicode61` tokenizer and the Elasticsearch analyzer in store.elastic split the same way.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..model import Session

# Bytes of one request or response that get indexed; the rest is stored but not searchable.
MAX_INDEXED_BYTES = 1 << 20
TOKEN = re.compile(r"[^\W_]+")
# Control characters as spaces, done on the bytes before decoding: they are ASCII, which UTF-8
# never uses inside a longer character, and which ends an unfinished one whatever its value, so
# this gives exactly decode(...).translate() of the characters (test_query) at a third of the
# cost: str.translate looks up every character (measured once: 2 KB, 12 -> 3.8 us; an ingest
# worker's preparation of the bench's sessions, 64 -> 49 us a session).
_CONTROL_BYTES = bytes(32 if code < 32 or code == 127 else code for code in range(256))
_NON_TOKEN = re.compile(r"[\W_]+")
# Bytes that are not ASCII letters or digits, as spaces (the fast path for ASCII text).
_ASCII_SEPARATORS = bytes(c if chr(c).isalnum() else 32 for c in range(128)) + bytes(128)
# The same, keeping the bytes of non-ASCII characters (add_terms splits UTF-8 at ASCII).
_ASCII_SEPARATORS_KEEP_WIDE = _ASCII_SEPARATORS[:128] + bytes(range(128, 256))

try:
    from ._terms import ascii_terms as _compiled_ascii_terms
except ImportError:  # not built: the Python below does the same
    _compiled_ascii_terms = None


def searchable_text(data: bytes) -> str:
    return data[:MAX_INDEXED_BYTES].translate(_CONTROL_BYTES).decode("utf-8", "replace")


def field_texts(session: Session, name: str) -> list[bytes]:
    """The texts a full-text field searches in a session (one per call for the per-call ones)."""
    if name == "inbound.request":
        return [session.call_from_inbound.request]
    if name == "inbound.response":
        return [session.response]
    if name == "outbound.request":
        return [c.request for c in session.outbound_calls]
    if name == "outbound.response":
        return [c.response for c in session.outbound_calls]
    raise KeyError(name)


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


def token_text(data: bytes) -> str:
    """The tokens of `data` (not yet lowercased) separated by spaces. Any tokenizer that
    splits on spaces and lowercases, such as Elasticsearch's standard analyzer, then yields
    exactly tokenize(searchable_text(data))."""
    head = data[:MAX_INDEXED_BYTES]
    if head.isascii():
        return head.translate(_ASCII_SEPARATORS).decode("ascii")
    return _NON_TOKEN.sub(" ", head.decode("utf-8", "replace"))


def add_terms(texts: list[str], into: set[str]) -> list[str]:
    """Add the ASCII terms of `texts` (searchable_text's output) to `into`, exactly as FTS5's
    unicode61 makes them (runs of ASCII letters and digits, lowercased), and return the runs
    that hold other characters: how FTS5 splits and folds those follows its own Unicode 6.1
    tables, so the SQLite store hands them to FTS5 itself (sqlite_prepare.fts5_terms)."""
    if _compiled_ascii_terms is not None:
        return _compiled_ascii_terms(texts, into)
    return _ascii_terms(texts, into)


def _ascii_terms(texts: list[str], into: set[str]) -> list[str]:
    """What _terms.ascii_terms does (the reference): add the runs of ASCII letters and digits,
    lowercased, and return the runs that hold other characters."""
    wide = []
    for text in texts:
        for run in text.encode().translate(_ASCII_SEPARATORS_KEEP_WIDE).split():
            if run.isascii():
                into.add(run.lower().decode())
            else:
                wide.append(run.decode())
    return wide
