"""How the SQLite store keeps a Session: msgpack, compressed, behind one marker byte.

Markers: 0 raw msgpack, 1 LZ4 (what schema 1 wrote; still read), 2 a zstd frame. Frames are
compressed with a dictionary trained on the store's first sessions when it has one: recorded
traffic repeats its headers, keys and paths from session to session, which a dictionary
captures and a 2 KB session alone cannot (LZ4 alone: 1.5 KB; zstd with the dictionary: 0.55 KB
for the bench's sessions). The frame names its dictionary, so sessions written before the
dictionary existed (or with another) stay readable.
"""

from __future__ import annotations

import sqlite3
import threading

import lz4.block
import msgspec
import zstandard

from ..model import Session

_RAW, _LZ4, _ZSTD = b"\x00", b"\x01", b"\x02"
LEVEL = 3
DICTIONARY_BYTES = 64 * 1024
TRAIN_FROM = 200  # sessions a batch needs before a dictionary is trained from it
# Sessions a dictionary is trained from, spread over the batch. Training takes time in
# proportion to its samples, and more do not compress better: the bench's 2 KB sessions, 5,000
# sessions of one batch compressed with a dictionary from 200 / 1,000 / 5,000 of the others:
# 553 / 547 / 548 bytes each, trained in 0.10 / 0.39 / 1.65 s.
TRAIN_SAMPLES = 1000

SCHEMA = "CREATE TABLE IF NOT EXISTS blob_dictionaries (id INTEGER PRIMARY KEY, data BLOB NOT NULL);"

_from_msgpack = msgspec.msgpack.Decoder(Session).decode


def training_samples(samples: list[bytes]) -> list[bytes]:
    """At most TRAIN_SAMPLES of a batch's sessions, evenly spread over it."""
    step = max(1, -(-len(samples) // TRAIN_SAMPLES))  # rounded up; 1 for an empty batch
    return samples[::step]


def compressor_for(dictionary: bytes | None) -> zstandard.ZstdCompressor:
    """The compressor every blob of a store with this dictionary (or none) is written with."""
    if dictionary is None:
        return zstandard.ZstdCompressor(level=LEVEL)
    return zstandard.ZstdCompressor(level=LEVEL, dict_data=zstandard.ZstdCompressionDict(dictionary))


def blob_of(packed: bytes, compressor: zstandard.ZstdCompressor) -> bytes:
    """A session's blob from its msgpack form: what BlobCodec.compress writes, byte for byte."""
    return _ZSTD + compressor.compress(packed)


class Unreadable(Exception):
    """A stored session whose bytes cannot be decoded."""


class BlobCodec:
    """Encodes and decodes the session blobs of one store (its dictionary lives in it)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db
        self._lock = threading.Lock()  # zstd contexts are not for two threads at once
        self._decompressors: dict[int, zstandard.ZstdDecompressor] = {}
        self._compressor: zstandard.ZstdCompressor | None = None
        self._dictionary_id: int | None = None

    # --- writing -------------------------------------------------------------------

    def compress(self, packed: list[bytes]) -> list[bytes]:
        """The blob of each session given as msgpack (sqlite_prepare's Row.packed); trains
        and stores the dictionary first if the store has none and this batch is big enough
        (called inside the write transaction)."""
        compressor = self._writer(packed)
        with self._lock:
            return [blob_of(p, compressor) for p in packed]

    def committed_dictionary(self) -> bytes | None:
        """The store's dictionary once it is committed (a rolled-back transaction cannot take
        it away then), for blobs compressed elsewhere (sqlite_prepare, in ingest's workers);
        None while the store has none. Asked between transactions."""
        if self.db.in_transaction:
            return None
        try:
            row = self.db.execute("SELECT data FROM blob_dictionaries ORDER BY id LIMIT 1").fetchone()
        except sqlite3.OperationalError:
            return None  # a store without dictionaries (schema 1, read-only): nothing to share
        return row[0] if row else None

    def _writer(self, samples: list[bytes]) -> zstandard.ZstdCompressor:
        if self._compressor is not None and self._dictionary_id is not None:
            return self._compressor
        row = self.db.execute("SELECT id, data FROM blob_dictionaries ORDER BY id LIMIT 1").fetchone()
        if row is None and len(samples) >= TRAIN_FROM:
            try:
                trained = zstandard.train_dictionary(DICTIONARY_BYTES, training_samples(samples))
            except zstandard.ZstdError:
                trained = None  # samples too alike or too few: go on without one
            if trained is not None:
                row = (trained.dict_id(), trained.as_bytes())
                self.db.execute("INSERT INTO blob_dictionaries (id, data) VALUES (?, ?)", row)
        if row is None:
            self._compressor = compressor_for(None)
            return self._compressor
        self._dictionary_id = row[0]
        self._compressor = compressor_for(row[1])
        return self._compressor

    def forget(self) -> None:
        """After a rolled-back transaction: a dictionary stored in it is gone too."""
        self._compressor = None
        self._dictionary_id = None

    # --- reading -------------------------------------------------------------------

    def decode(self, blob: bytes) -> Session:
        try:
            marker = blob[:1]
            if marker == _ZSTD:
                return _from_msgpack(self._decompress(blob[1:]))
            if marker == _LZ4:
                return _from_msgpack(lz4.block.decompress(blob[1:]))
            if marker == _RAW:
                return _from_msgpack(blob[1:])
            raise ValueError(f"unknown blob marker {marker!r}")
        except (msgspec.MsgspecError, lz4.block.LZ4BlockError, zstandard.ZstdError, ValueError, MemoryError) as exc:  # any damage to the bytes
            raise Unreadable(f"its stored form cannot be read ({exc}); the database is damaged or was written by another koala-store version") from None

    def _decompress(self, frame: bytes) -> bytes:
        dictionary = zstandard.get_frame_parameters(frame).dict_id
        with self._lock:
            decompressor = self._decompressors.get(dictionary)
            if decompressor is None:
                decompressor = self._reader(dictionary)
            return decompressor.decompress(frame)

    def _reader(self, dictionary: int) -> zstandard.ZstdDecompressor:
        if dictionary == 0:
            decompressor = zstandard.ZstdDecompressor()
        else:
            try:
                row = self.db.execute("SELECT data FROM blob_dictionaries WHERE id = ?", (dictionary,)).fetchone()
            except sqlite3.OperationalError:
                row = None  # a store without dictionaries (schema 1): the frame is damage
            if row is None:
                raise ValueError(f"its compression dictionary {dictionary} is not in the store")
            decompressor = zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(row[0]))
        self._decompressors[dictionary] = decompressor
        return decompressor
