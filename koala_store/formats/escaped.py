"""Koala's escaped-text encoding of byte strings (recorded sessions; not base64).

Printable ASCII, DEL and valid UTF-8 characters stand as themselves (Koala's
EncodeAnyByteArray leaves DEL raw); every other byte is the four characters `\\xHH`. A
literal backslash is `\\x5c` and the bytes of U+FFFD are escaped too, so decoding is
unambiguous and every byte string round-trips exactly. Newline, carriage return and tab stay
literal (JSON escapes them).
"""

from __future__ import annotations

import re
from itertools import product

# Characters that cannot stand as themselves after a surrogateescape decode: C0 controls
# other than \t \n \r, backslash, U+FFFD, and lone surrogates (the invalid bytes).
_NEEDS_ESCAPE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\\\\\ufffd\udc80-\udcff]")
_ESCAPE_FFFD = "\\xef\\xbf\\xbd"
_HEX_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")
# Every spelling of every escape, upper or lower case hex digits alike.
_BYTE_FOR_ESCAPE = {
    ("\\x" + "".join(pair)).encode(): bytes([i])
    for i in range(256)
    for pair in product(*({c.lower(), c.upper()} for c in f"{i:02x}"))
}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    if code == 0xFFFD:
        return _ESCAPE_FFFD
    return f"\\x{code:02x}"


_ASCII_NEEDS_ESCAPE = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\\]")


def encode(data: bytes) -> str:
    """Bytes to Koala's escaped text (the JSON string value, before JSON quoting)."""
    if data.isascii() and _ASCII_NEEDS_ESCAPE.search(data) is None:
        return data.decode("ascii")  # most HTTP traffic: nothing to escape
    text = data.decode("utf-8", "surrogateescape")
    if _NEEDS_ESCAPE.search(text) is None:
        return text
    return _NEEDS_ESCAPE.sub(_escape_char, text)


def _byte_for(match: re.Match[bytes]) -> bytes:
    return _BYTE_FOR_ESCAPE[match.group()]


def decode(text: str) -> bytes:
    """Koala's escaped text back to bytes. A backslash not starting `\\xHH` stays literal."""
    data = text.encode("utf-8", "surrogatepass")
    if b"\\" not in data:
        return data
    return _HEX_ESCAPE.sub(_byte_for, data)
