"""Full text as both backends index it: the same text in, the same tokens out.

Bytes become UTF-8 text (invalid bytes turn into U+FFFD) with control characters as
spaces; tokens are lowercased runs of Unicode letters and digits. SQLite's FTS5
`unicode61` tokenizer and the Elasticsearch analyzer in store.elastic split the same way.
"""

from __future__ import annotations

import re

# Bytes of one request or response that get indexed; the rest is stored but not searchable.
MAX_INDEXED_BYTES = 1 << 20
TOKEN = re.compile(r"[^\W_]+")
_CONTROLS = str.maketrans({code: " " for code in [*range(32), 127]})
_NON_TOKEN = re.compile(r"[\W_]+")
# Bytes that are not ASCII letters or digits, as spaces (the fast path for ASCII text).
_ASCII_SEPARATORS = bytes(c if chr(c).isalnum() else 32 for c in range(128)) + bytes(128)


def searchable_text(data: bytes) -> str:
    return data[:MAX_INDEXED_BYTES].decode("utf-8", "replace").translate(_CONTROLS)


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
