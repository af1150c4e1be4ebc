"""HTTP as its meaning, whatever carried it: the request and response views that HTTP/1.x
(wire.http1) and FastCGI (wire.fastcgi) both produce, and the one list of volatile headers.

Summaries, the fuzzy matcher's normalisation and the diff read these views, so a PHP-FPM
talk and an HTTP/1.1 talk are compared by the same rules and never by their framing.
"""

from __future__ import annotations

from msgspec import Struct

try:  # optional compiled part (setup.py): find() in C, ~1.2k instructions against ~4.1k for eight headers
    from ._http1head import find_header as _find_header
except ImportError:  # pragma: no cover - exercised where no C compiler is installed
    _find_header = None

# Headers whose values differ between two runs of the same build, or between a recording and
# its replay, without meaning anything: clocks, request and trace ids, framing and
# hop-by-hop headers, caching validators, server software, and what proxies and clients add.
# Responses skip them in the diff (--compare-header takes one back), outbound requests skip
# them in the diff and in the fuzzy matcher's key. Set-Cookie is not here: it is compared by
# cookie name and attributes, never by value.
VOLATILE_HEADERS: frozenset[str] = frozenset(
    {
        # clocks and caching validators
        "age",
        "date",
        "etag",
        "expires",
        "last-modified",
        # framing and hop-by-hop
        "connection",
        "content-length",
        "keep-alive",
        "transfer-encoding",
        # request and trace ids
        "b3",
        "didi-header-rid",
        "didi-header-spanid",
        "request-id",
        "sw8",
        "traceparent",
        "tracestate",
        "uber-trace-id",
        "x-amzn-trace-id",
        "x-b3-flags",
        "x-b3-parentspanid",
        "x-b3-sampled",
        "x-b3-spanid",
        "x-b3-traceid",
        "x-cloud-trace-context",
        "x-correlation-id",
        "x-koala-session",  # what koala replay itself adds to tell sessions apart
        "x-request-id",
        "x-trace-id",
        # server software and timings
        "server",
        "server-timing",
        "via",
        "x-powered-by",
        "x-response-time",
        "x-runtime",
        # where a request came from and through what
        "host",
        "user-agent",
        "x-forwarded-for",
        "x-real-ip",
    }
)


def split_target(target: str) -> tuple[str, str]:
    """Split a request target into path and query string (absolute URIs lose scheme and host)."""
    if "://" in target:
        rest = target.split("://", 1)[1]
        slash = rest.find("/")
        target = rest[slash:] if slash >= 0 else "/"
    path, _, query = target.partition("?")
    return path.split("#", 1)[0], query


def find(headers: list[tuple[str, str]], name: str) -> str | None:
    """The first header with this name, case-insensitive."""
    if _find_header is not None:
        found = _find_header(headers, name)
        if found is not NotImplemented:
            return found
    return _find(headers, name)


def _find(headers: list[tuple[str, str]], name: str) -> str | None:
    """What _http1head.find_header does (the reference, and the fallback for other shapes)."""
    lname = name.lower()
    size = len(lname)
    for key, value in headers:
        if len(key) == size and key.lower() == lname:  # most names differ in length: no lower()
            return value
    return None


class HttpRequest(Struct):
    """A request's meaning: method, target, headers in wire order, body with transfer
    encoding undone."""

    method: str
    target: str  # as sent, e.g. /v1/order?city=1
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return find(self.headers, name)

    @property
    def path(self) -> str:
        return split_target(self.target)[0]

    @property
    def query(self) -> str:
        return split_target(self.target)[1]

    @property
    def line(self) -> str:
        """`GET /v1/order?city=1`: the request as people name it."""
        return f"{self.method} {self.target}"


class HttpResponse(Struct):
    """A response's meaning: status, headers in wire order, body with transfer encoding undone
    (content encoding such as gzip is left to the reader)."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return find(self.headers, name)

    @property
    def content_type(self) -> str:
        """The media type without parameters, as sent (`application/json`)."""
        return (self.header("Content-Type") or "").split(";", 1)[0].strip()
