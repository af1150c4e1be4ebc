"""Every file format a session is read from or written to, converted to and from
model.Session at the edge (koala, replayer, gor, ndjson; escaped is Koala's byte text)."""

from __future__ import annotations

from enum import StrEnum


class Format(StrEnum):
    """The formats `koala ingest --format` reads and `koala sessions export --format` writes."""

    KOALA = "koala"
    REPLAYER = "replayer"
    GOR = "gor"
    NDJSON = "ndjson"


FORMATS = tuple(Format)
