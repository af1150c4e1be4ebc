"""One talk (a request and the response to it), parsed once for every consumer: its protocol,
what the request says, the HTTP view of HTTP and FastCGI talks, and the normalised form the
fuzzy matcher compares. Everything past the protocol is computed on first use, so the ingest
path (summaries) pays only for the facts it reads.

    talk = wire.parse_talk(call.request, call.response, call.peer.port)
    talk.protocol          # Protocol.MYSQL
    talk.message           # mysql.Command(code=3, argument=b"SELECT ...")
    talk.verb, talk.resource   # "SELECT", ""  (outbound.method / outbound.path)
    talk.normalized        # Normalized(MYSQL, "COM_QUERY SELECT", key, detail)

The protocol rule: HTTP/1.x by its request line, Redis when every byte is RESP or inline
commands, FastCGI by its BEGIN_REQUEST record, MySQL for a client handshake response, or a
command packet that the response (whole packets), the port (3306) or a `hint` backs up;
a talk with no request by its response (HTTP, a MySQL greeting); else unknown.
"""

from __future__ import annotations

from typing import Any

from msgspec import Struct

from ..formats import escaped
from . import fastcgi, http1, mysql, resp
from .http import HttpRequest, HttpResponse, split_target
from .normalize import Normalized, Normalizer
from .protocol import FASTCGI, HTTP, MYSQL, REDIS, UNKNOWN, Protocol
from .request import Message, parse_other, parse_request

MYSQL_PORT = 3306
_DEFAULT_NORMALIZER = Normalizer()
_UNSET: object = object()  # not parsed yet


class ParsedTalk(Struct, eq=False):
    """A talk and what parsing it gave; build it with `parse_talk`. What the properties
    return is parsed on first use and kept in the private fields (a Struct, so that making
    one costs little: summaries make one per call on the ingest path)."""

    request: bytes
    response: bytes
    protocol: Protocol
    _message: Any = _UNSET  # Message | None once parsed
    _line: tuple[str, str] | None = None  # (method, target) of an HTTP/1.x request, read without its headers
    _http: Any = _UNSET
    _http_response: Any = _UNSET
    _status: Any = _UNSET
    _normalized: Normalized | None = None

    def __repr__(self) -> str:
        return f"ParsedTalk({self.protocol}, {self.message!r})"

    @property
    def message(self) -> Message | None:
        """What the request says (wire.request.Message), or None for bytes of no known shape."""
        if self._message is _UNSET:
            self._message = parse_request(self.request)
        return self._message  # type: ignore[return-value]

    @property
    def http(self) -> HttpRequest | None:
        """The HTTP request of an HTTP/1.x or FastCGI talk."""
        if self._http is _UNSET:
            message = self.message
            self._http = message if isinstance(message, HttpRequest) else message.http() if isinstance(message, fastcgi.Request) else None
        return self._http  # type: ignore[return-value]

    @property
    def http_response(self) -> HttpResponse | None:
        """The HTTP response of the talk: HTTP/1.x bytes (after interim 1xx), or what a FastCGI
        talk's STDOUT holds."""
        if self._http_response is _UNSET:
            self._http_response = http_response(self.response) if self.protocol is FASTCGI else http1.response(self.response)
        return self._http_response  # type: ignore[return-value]

    @property
    def line(self) -> tuple[str, str] | None:
        """(method, target) of an HTTP/1.x or FastCGI request."""
        if self._line is None and self.protocol is FASTCGI and (view := self.http) is not None:
            self._line = (view.method, view.target)
        return self._line

    @property
    def host(self) -> str:
        """The Host header of an HTTP/1.x or FastCGI request ("" when there is none)."""
        if self.protocol is HTTP:
            return http1.find_header(self.request, b"host") or ""
        view = self.http
        return (view.header("Host") or "") if view is not None else ""

    @property
    def status(self) -> int | None:
        """The HTTP status answered (FastCGI: the CGI Status header, else 200); None when the
        response is not HTTP."""
        if self._status is _UNSET:
            if self.protocol is FASTCGI:
                view = self.http_response
                self._status = view.status if view is not None else None
            else:
                self._status = http1.status_code(self.response)
        return self._status  # type: ignore[return-value]

    @property
    def content_type(self) -> str:
        """The response's media type without parameters ("" when there is none)."""
        if self.status is None:
            return ""
        if self.protocol is FASTCGI:
            return self.http_response.content_type  # type: ignore[union-attr]
        return (http1.find_header(self.response, b"content-type") or "").split(";", 1)[0].strip()

    @property
    def verb(self) -> str:
        """What the request does: HTTP method, Redis command, SQL statement verb ("" if none)."""
        protocol = self.protocol
        if protocol is HTTP or protocol is FASTCGI:
            line = self._line or self.line
            return line[0] if line else ""
        if protocol is REDIS:
            return self._message.name  # type: ignore[union-attr]
        if protocol is MYSQL:
            message = self.message
            if type(message) is mysql.Command and message.code == mysql.COM_QUERY:
                words = message.argument.split(None, 1)
                return words[0].decode("latin-1").upper() if words else ""
        return ""

    @property
    def resource(self) -> str:
        """What the request acts on: the HTTP path, the first Redis key ("" if none)."""
        protocol = self.protocol
        if protocol is HTTP or protocol is FASTCGI:
            line = self._line or self.line
            return split_target(line[1])[0] if line else ""
        if protocol is REDIS:
            key = self._message.key  # type: ignore[union-attr]
            return key.decode("utf-8", "replace") if key is not None else ""
        return ""

    def readable(self) -> str | None:
        """The request as a person reads it: Redis command lines, the SQL of a query, the HTTP
        request line (of FastCGI too); None for other bytes. Bytes show as Koala's escaped text."""
        if self.protocol is HTTP and self._line is not None:
            return f"{self._line[0]} {self._line[1]}"
        message = self.message
        match message:
            case resp.Commands():
                return "; ".join(" ".join(escaped.encode(arg) for arg in args) for args in message.commands)
            case mysql.Command(mysql.COM_QUERY, sql):
                return escaped.encode(sql)
            case HttpRequest():
                return message.line
            case fastcgi.Request():
                return message.http().line
        return None

    @property
    def normalized(self) -> Normalized:
        """The request normalised for matching, with the fuzzy strategy's default options."""
        if self._normalized is None:
            self._normalized = self.normalize(_DEFAULT_NORMALIZER)
        return self._normalized

    def normalize(self, normalizer: Normalizer) -> Normalized:
        """The request normalised with `normalizer`'s options."""
        return normalizer.of(self.message, self.request)


def parse_talk(request: bytes, response: bytes = b"", port: int = 0, hint: Protocol | str | None = None) -> ParsedTalk:
    """Parse a talk once. `port` is the peer's and `hint` the protocol the peer is known to
    speak (e.g. from its recorded calls): both only settle bytes ambiguous on their own."""
    if not request:
        if http1.looks_like_response(response):
            return ParsedTalk(request, response, HTTP)
        return ParsedTalk(request, response, MYSQL if mysql.is_greeting(response) else UNKNOWN)
    line = http1.request_line(request)
    if line is not None:
        return ParsedTalk(request, response, HTTP, _line=line)
    message = parse_other(request)
    return ParsedTalk(request, response, _protocol(message, response, port, hint), message)


_PROTOCOL_OF = {HttpRequest: HTTP, resp.Commands: REDIS, fastcgi.Request: FASTCGI, mysql.Handshake: MYSQL}


def _protocol(message: Message | None, response: bytes, port: int, hint: Protocol | str | None) -> Protocol:
    if type(message) is mysql.Command:
        # One small packet is easy to mistake: believe it when the answer is MySQL packets
        # too, or the peer is known to speak MySQL.
        return MYSQL if port == MYSQL_PORT or hint == MYSQL or mysql.packets(response) else UNKNOWN
    return _PROTOCOL_OF.get(type(message), UNKNOWN)


def http_response(data: bytes) -> HttpResponse | None:
    """The HTTP response in `data`: HTTP/1.x (the final one after interim 1xx), or the CGI
    response in a FastCGI response's STDOUT; None for other bytes."""
    if data.startswith(b"HTTP/"):
        return http1.response(data)
    answer = fastcgi.parse_response(data)
    return answer.http() if answer is not None else None


def response_status(data: bytes) -> int | None:
    """The HTTP status of a response, HTTP/1.x or FastCGI, without parsing more than it takes."""
    if data.startswith(b"HTTP/"):
        return http1.status_code(data)
    answer = fastcgi.parse_response(data)
    return answer.http().status if answer is not None else None


def guess_protocol(request: bytes, response: bytes = b"", port: int = 0, hint: Protocol | str | None = None) -> Protocol:
    """The protocol of a talk (see the module doc)."""
    return parse_talk(request, response, port, hint).protocol
