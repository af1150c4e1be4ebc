"""Protocol knowledge, written once and shared by summaries, matchers, the diff and the replay:
HTTP/1.x, Redis, MySQL and FastCGI.

- `parse_talk(request, response, port, hint)` -> `ParsedTalk`: a talk's protocol, what its
  request says (`message`), the HTTP view of HTTP and FastCGI talks (`http`,
  `http_response`), the summary facts (`verb`, `resource`, `status`...), a readable line,
  and the normalised form the fuzzy matcher compares (`normalized`); see wire.talk.
- `parse_request(bytes)`: a request's shape alone (wire.request); `http_response(bytes)` and
  `response_status(bytes)`: a response's HTTP view, HTTP/1.x or FastCGI; `Normalizer`
  (wire.normalize) for other fuzzy options.
- per protocol: http (views, VOLATILE_HEADERS), http1, resp, mysql, fastcgi, jsonbody.
- framing: when a live request is complete, per protocol, and Koala's timings.
"""

from __future__ import annotations

from . import fastcgi, framing, http, http1, jsonbody, mysql, resp
from .http import VOLATILE_HEADERS, HttpRequest, HttpResponse
from .normalize import Normalized, Normalizer
from .protocol import FASTCGI, HTTP, MYSQL, PROTOCOLS, REDIS, UNKNOWN, Protocol
from .request import Message, parse_request
from .talk import ParsedTalk, guess_protocol, http_response, parse_talk, response_status

__all__ = [
    "FASTCGI",
    "HTTP",
    "MYSQL",
    "PROTOCOLS",
    "REDIS",
    "UNKNOWN",
    "VOLATILE_HEADERS",
    "HttpRequest",
    "HttpResponse",
    "Message",
    "Normalized",
    "Normalizer",
    "ParsedTalk",
    "Protocol",
    "fastcgi",
    "framing",
    "guess_protocol",
    "http",
    "http1",
    "http_response",
    "jsonbody",
    "mysql",
    "parse_request",
    "parse_talk",
    "resp",
    "response_status",
]
