"""The protocols koala-store tells apart, as stored in `outbound.protocol` and reports."""

from __future__ import annotations

from enum import StrEnum


class Protocol(StrEnum):
    HTTP = "http"
    REDIS = "redis"
    MYSQL = "mysql"
    FASTCGI = "fastcgi"
    UNKNOWN = "unknown"


HTTP, REDIS, MYSQL, FASTCGI, UNKNOWN = Protocol.HTTP, Protocol.REDIS, Protocol.MYSQL, Protocol.FASTCGI, Protocol.UNKNOWN
PROTOCOLS = tuple(Protocol)
