"""The recorded and the replayed response of a differing session, kept for people to read.

A Difference holds excerpts around what changed; a person reading a report (`koala runs show
--diff`, `koala report`) also wants both responses whole: the status, the headers and the
body side by side, and a unified diff of the bodies. Only differing sessions keep one (the
runner decides), and each body is bounded: at most MAX_BODY bytes of it are kept, and `cut`
says how long it was.
"""

from __future__ import annotations

import msgspec

from koala_store.formats import escaped
from koala_store.wire import http_response
from koala_store.wire.jsonbody import loads

from .body import decode_text
from .response import decoded_body

MAX_BODY = 64 * 1024  # bytes of each body kept


class Response(msgspec.Struct, omit_defaults=True):
    """One side: an HTTP response split up, or other bytes as escaped text in `body`."""

    status: int | None = None
    reason: str = ""
    headers: list[tuple[str, str]] = msgspec.field(default_factory=list)
    body: str = ""  # text as decoded; bytes that are not text as Koala escaped text
    kind: str = "text"  # json | text | bytes
    size: int = 0  # bytes of the whole (decoded) body
    cut: bool = False  # the body was longer than MAX_BODY; `body` holds its start


class Exchange(msgspec.Struct, omit_defaults=True):
    """What the recording answered (`expected`) and what the build answered (`actual`)."""

    expected: Response
    actual: Response | None = None  # None: the build gave no answer (an error)


def response_of(message: bytes) -> Response:
    """One side as a person reads it: the HTTP answer (FastCGI's as the HTTP it carries), else
    the bytes."""
    view = http_response(message)
    if view is None:
        return _body(message, "", Response())
    return _body(decoded_body(view), view.header("Content-Type") or "", Response(status=view.status, reason=view.reason, headers=list(view.headers)))


def _body(data: bytes, content_type: str, response: Response) -> Response:
    response.size = len(data)
    if len(data) > MAX_BODY:
        data, response.cut = data[:MAX_BODY], True
    text = decode_text(data, content_type)
    if text is None and response.cut:
        # The cut may split a multi-byte character: try once more without the last few bytes.
        text = next((t for n in (1, 2, 3) if (t := decode_text(data[:-n], content_type)) is not None), None)
    if text is None:
        response.body, response.kind = escaped.encode(data), "bytes"
    else:
        response.body = text
        json_type = "json" in content_type.lower() or text.lstrip()[:1] in ("{", "[")
        response.kind = "json" if json_type and not response.cut and _parses(data) else "text"
    return response


def _parses(data: bytes) -> bool:
    try:
        loads(data)
    except ValueError:
        return False
    return True


def exchange_of(expected: bytes, actual: bytes | None) -> Exchange:
    return Exchange(response_of(expected), response_of(actual) if actual is not None else None)
