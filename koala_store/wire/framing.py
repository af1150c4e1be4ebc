"""When has a live client finished sending one request? Protocol-aware where the protocol is
known (no waiting on idle gaps), Koala's burst-and-idle-gap rule otherwise. Used by the replay
mock to read the service's outbound talks, and by anything that cuts a live stream into talks
(a recording proxy)."""

from __future__ import annotations

from . import fastcgi, http1, mysql, resp
from .protocol import FASTCGI, HTTP, MYSQL, REDIS, Protocol

# Koala's timings: the first read of a talk waits up to 20 ms on a new connection (then a
# greeting may be due); a burst ends after 3 ms without data.
GREETING_WAIT_S = 0.020
IDLE_GAP_S = 0.003
# A message the protocol says is incomplete is still answered after this long without data.
INCOMPLETE_GAP_S = 2.0


def guess_live_protocol(data: bytes, dependency_protocol: Protocol | str, *, request_line: bool | None = None) -> Protocol | str:
    """The protocol of a live request: what its first bytes say, else what the dependency spoke
    when recorded (MySQL packets cannot be told from their bytes alone). `request_line`:
    http1.looks_like_request(data), when the caller has it."""
    if http1.looks_like_request(data) if request_line is None else request_line:
        return HTTP
    if data[:1] == b"*" or dependency_protocol == REDIS:
        return REDIS
    if fastcgi.is_request(data):
        return FASTCGI
    if dependency_protocol == MYSQL:
        return MYSQL
    return dependency_protocol


def is_complete(data: bytes, protocol: Protocol | str) -> bool | None:
    """True when `data` holds whole messages of the protocol, False when one is cut short,
    None when the protocol is unknown (fall back to the idle gap)."""
    if protocol == HTTP:
        end = http1.message_length(data)
        return end is not None and end <= len(data)
    if protocol == REDIS:
        return resp.complete_values(data) > 0
    if protocol == MYSQL:
        return mysql.complete_packets_length(data) == len(data) and len(data) >= mysql.HEADER_SIZE
    if protocol == FASTCGI:
        return fastcgi.request_length(data) is not None
    return None


def whole_http_request(data: bytes, *, request_line: bool | None = None) -> bool:
    """Whether `data`, read at once, holds a whole HTTP/1.x request with a Content-Length (or
    no body): RequestFramer(HTTP).feed(data) would say True. False: ask the framer.
    `request_line`: http1.looks_like_request(data), when the caller has it (its head, when
    found, gives the same answer)."""
    end = data.find(http1.HEAD_END)
    if end < 0:
        return False
    body_start = end + len(http1.HEAD_END)
    framing = _http_framing(data[:body_start], request_line)
    return framing is not None and framing >= 0 and len(data) >= body_start + framing


def _http_framing(head: bytes, request_line: bool | None = None) -> int | None:
    """How an HTTP request's body is framed, from its whole head: its length, -1 for chunks,
    None when the head is not a request's. Two headers are all framing needs: found without
    parsing the whole head. `request_line`: http1.looks_like_request(head), when known."""
    if not (http1.looks_like_request(head) if request_line is None else request_line):
        return None
    encoding, length = http1.find_headers(head, (b"transfer-encoding", b"content-length"))
    if "chunked" in (encoding or "").lower():
        return -1
    try:
        return int(length or 0)
    except ValueError:
        return 0


class RequestFramer:
    """Frames one live request as its bytes arrive, looking at each byte a bounded number of
    times whatever the read sizes (a hostile or slow client cannot make framing quadratic),
    and without recursion (nesting cannot exhaust the stack).

    `feed(chunk)` returns what `is_complete` returns for all bytes fed so far: True when they
    hold whole messages, False when one is cut short, None when the protocol is unknown.
    """

    def __init__(self, protocol: Protocol | str):
        self.protocol = protocol
        self.buffer = bytearray()
        self._pos = 0  # where parsing resumes
        # Redis: counts of elements still expected by the open aggregates; HTTP: body framing.
        self._pending: list[int] = []
        self._http_end: int | None = None  # end offset of the HTTP message, once known
        self._chunked = False

    def feed(self, chunk: bytes) -> bool | None:
        self.buffer += chunk
        if self.protocol == REDIS:
            return self._redis()
        if self.protocol == HTTP:
            return self._http()
        if self.protocol == MYSQL:
            return self._mysql()
        if self.protocol == FASTCGI:
            return self._fastcgi()
        return None

    # --- Redis: values back to back, each a line, a bulk string or an aggregate ------------

    def _redis(self) -> bool:
        data, pos, pending = self.buffer, self._pos, self._pending
        while pos < len(data):
            line_end = data.find(b"\r\n", pos)
            if line_end < 0:
                break
            kind = data[pos : pos + 1]
            if kind in (b"$", b"!", b"="):
                try:
                    size = int(data[pos + 1 : line_end])
                except ValueError:
                    size = -1  # not a length: the value is this line (the matcher judges it)
                end = line_end + 2 + (size + 2 if size >= 0 else 0)
                if end > len(data):
                    break
                pos = end
                self._element_done()
            elif kind in (b"*", b"~", b">", b"%", b"|"):
                try:
                    count = int(data[pos + 1 : line_end])
                except ValueError:
                    count = 0
                pos = line_end + 2
                count = count * 2 if kind in (b"%", b"|") else count
                if count > 0:
                    pending.append(count)
                else:
                    self._element_done()
            else:  # a one-line value, or an inline command
                pos = line_end + 2
                self._element_done()
        self._pos = pos
        return pos == len(data) and not pending and pos > 0

    def _element_done(self) -> None:
        pending = self._pending
        while pending:
            pending[-1] -= 1
            if pending[-1] > 0:
                return
            pending.pop()  # the aggregate is whole: it is one element of its parent

    # --- MySQL: packets of a 3-byte length and a sequence byte --------------------------

    def _mysql(self) -> bool:
        data, pos = self.buffer, self._pos
        while pos + mysql.HEADER_SIZE <= len(data):
            end = pos + mysql.HEADER_SIZE + int.from_bytes(data[pos : pos + 3], "little")
            if end > len(data):
                break
            pos = end
        self._pos = pos
        return pos == len(data) and pos >= mysql.HEADER_SIZE

    # --- FastCGI: records up to the request's empty STDIN (or ABORT_REQUEST) -------------

    def _fastcgi(self) -> bool:
        data, pos = self.buffer, self._pos
        if self._http_end is not None:
            return True  # the request ended earlier; what follows is not part of it
        if len(data) < fastcgi.HEADER_SIZE:
            return False
        request_id = fastcgi.HEADER.unpack_from(data)[2]
        while pos + fastcgi.HEADER_SIZE <= len(data):
            version, kind, rid, length, padding = fastcgi.HEADER.unpack_from(data, pos)
            end = pos + fastcgi.HEADER_SIZE + length + padding
            if version != fastcgi.VERSION or end > len(data):
                break
            pos = end
            if rid == request_id and ((kind == fastcgi.STDIN and length == 0) or kind == fastcgi.ABORT_REQUEST):
                self._pos = self._http_end = pos
                return True
        self._pos = pos
        return False

    # --- HTTP/1.x: a head, then a body by Content-Length or chunks ----------------------

    def _http(self) -> bool:
        data = self.buffer
        if self._http_end is None and not self._chunked:
            end = data.find(http1.HEAD_END, max(self._pos - 3, 0))
            if end < 0:
                self._pos = len(data)
                return False
            body_start = end + len(http1.HEAD_END)
            framing = _http_framing(bytes(data[:body_start]))
            if framing is None:
                return False
            if framing < 0:
                self._chunked, self._pos = True, body_start
            else:
                self._http_end = body_start + framing
        if self._chunked:
            return self._http_chunks()
        assert self._http_end is not None
        return len(data) >= self._http_end

    def _http_chunks(self) -> bool:
        data, pos = self.buffer, self._pos
        while True:
            line_end = data.find(b"\r\n", pos)
            if line_end < 0:
                break
            try:
                size = int(bytes(data[pos:line_end]).split(b";", 1)[0].strip() or b"x", 16)
            except ValueError:
                return True  # malformed: what came is the request (the matcher judges it)
            if size == 0:
                # Trailers, then the empty line that ends the message.
                cursor = line_end + 2
                while (trailer_end := data.find(b"\r\n", cursor)) >= 0:
                    if trailer_end == cursor:
                        self._pos = trailer_end + 2
                        return True
                    cursor = trailer_end + 2
                break
            if line_end + 2 + size + 2 > len(data):
                break
            pos = line_end + 2 + size + 2
        self._pos = pos
        return False
