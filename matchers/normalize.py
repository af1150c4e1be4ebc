"""The `fuzzy` strategy's normalisation. Protocol knowledge is written once, in
koala_store.wire (normalize: the normalised form; mysql: the handshake parser); this module
keeps the names matchers has always offered."""

from __future__ import annotations

from koala_store.wire.mysql import handshake as mysql_handshake
from koala_store.wire.normalize import DEFAULT_VOLATILE_HEADERS, PLACEHOLDERS, Normalized, Normalizer, mask_volatile, normalize_sql

__all__ = ["DEFAULT_VOLATILE_HEADERS", "PLACEHOLDERS", "Normalized", "Normalizer", "mask_volatile", "mysql_handshake", "normalize_sql"]
