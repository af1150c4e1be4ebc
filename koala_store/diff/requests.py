"""Did a live outbound request change meaningfully from the recorded call it matched?

The matcher found the recorded call that answers a live request; the request bytes may still
differ. Parts that carry meaning are compared with the diff's rules, noise is not:

- HTTP, and FastCGI through the HTTP request it carries (`request.method`, `request.path`,
  `request.query.<name>`, `request.headers.<name>`, `request.body...`): query parameters as
  a multiset (order is not meaning); headers except the ignored ones (by default
  wire.http.VOLATILE_HEADERS: Host, User-Agent, trace ids...); the body as JSON with the same
  options as responses, form fields like query parameters, otherwise text or bytes.
  FastCGI's records, padding and CGI-only params are framing, not compared.
- Redis (`request.args[i]`, pipelines `request.commands[k].args[i]`): every argument by
  position, command names in any case; pipelined commands aligned by name first (an added
  command is `request.commands[k]`); a JSON value is diffed as JSON below its argument,
  numbers and date-times written as text follow the value rules (timestamps within the
  window are equal). `SET user:42 alice` -> `SET user:42 bob` is `request.args[2]`.
- MySQL COM_QUERY / COM_STMT_PREPARE (`request.sql`, `request.sql.literals[i]`): comments and
  whitespace do not count; when the statement's shape (literals as ?) differs the whole SQL
  is one difference, otherwise each literal that differs under the value rules is one, so
  `UPDATE user SET name='bob'` -> `name='carol'` shows the new value. The client handshake
  compares user, database and auth plugin (`request.user`...), not the scramble or
  connection attributes. Other commands compare as bytes.
- Anything else: the bytes (`request`).

Requests are parsed by wire.parse_request; the protocol comes from wire.parse_talk's rule.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from urllib.parse import parse_qsl

from koala_store.wire import FASTCGI, HTTP, MYSQL, REDIS, HttpRequest, Message, fastcgi, guess_protocol, mysql, parse_request, resp

from .body import compare_body, decode_text
from .difference import ADDED, CHANGED, REMOVED, Difference, bytes_difference, shown, text_difference
from .jsondiff import diff_json, parse_json
from .options import Rules
from .paths import Path, format_path
from .response import compare_headers
from .values import texts_equal

_COMPARED = (HTTP, FASTCGI, REDIS, MYSQL)


def protocol_of(request: bytes, response: bytes = b"", port: int = 0) -> str:
    """The protocol of a recorded talk (wire.parse_talk's rule)."""
    return guess_protocol(request, response, port)


def compare_request(recorded: bytes, live: bytes, path: Path, rules: Rules, protocol: str) -> list[Difference]:
    """Meaningful differences between a recorded request and the live one, below `path`;
    `protocol` is the recorded talk's (protocol_of)."""
    if recorded == live or rules.ignored(path):
        return []
    out = _messages(parse_request(recorded), parse_request(live), path, rules) if protocol in _COMPARED else None
    return _whole(recorded, live, path) if out is None else out


def _messages(expected: Message | None, actual: Message | None, path: Path, rules: Rules) -> list[Difference] | None:
    """Differences between two parsed requests of one kind; None when they cannot be compared
    part by part (then the bytes are)."""
    he, ha = _http_view(expected), _http_view(actual)
    if he is not None and ha is not None:
        return _http(he, ha, path, rules)
    if isinstance(expected, resp.Commands) and isinstance(actual, resp.Commands):
        return _redis(expected.commands, actual.commands, path, rules)
    if isinstance(expected, mysql.Command) and isinstance(actual, mysql.Command):
        if expected.code == actual.code and expected.sql is not None:
            return _sql(expected.sql.decode("utf-8", "replace"), actual.argument.decode("utf-8", "replace"), path, rules)
        return None
    if isinstance(expected, mysql.Handshake) and isinstance(actual, mysql.Handshake):
        out: list[Difference] = []
        for name, e, a in zip(("user", "database", "plugin"), expected, actual, strict=True):
            if e != a:
                out += _leaf(path + (name,), e, a, rules)
        return out
    return None


def _http_view(message: Message | None) -> HttpRequest | None:
    if isinstance(message, HttpRequest):
        return message
    return message.http() if isinstance(message, fastcgi.Request) else None


def _whole(recorded: bytes, live: bytes, path: Path) -> list[Difference]:
    te, ta = decode_text(recorded), decode_text(live)
    if te is not None and ta is not None:
        return [text_difference(format_path(path), te, ta, "request")]
    return [bytes_difference(format_path(path), recorded, live, "requests")]


def _leaf(path: Path, expected: object, actual: object, rules: Rules, note: str = "") -> list[Difference]:
    if rules.ignored(path):
        return []
    kind = ADDED if expected is None else REMOVED if actual is None else CHANGED
    return [Difference(format_path(path), kind, shown(expected), shown(actual), note)]


# --- HTTP ------------------------------------------------------------------------------


def _http(he: HttpRequest, hl: HttpRequest, path: Path, rules: Rules) -> list[Difference]:
    out: list[Difference] = []
    if he.method != hl.method:
        out += _leaf(path + ("method",), he.method, hl.method, rules)
    if he.path != hl.path:
        out += _leaf(path + ("path",), he.path, hl.path, rules)
    if he.query != hl.query:
        out += _params(he.query, hl.query, path + ("query",), rules)
    out += compare_headers(he.headers, hl.headers, path + ("headers",), rules, rules.ignored_headers)
    be, bl = he.body, hl.body
    if be != bl:
        te, tl = he.header("Content-Type") or "", hl.header("Content-Type") or ""
        if "x-www-form-urlencoded" in te.lower() and "x-www-form-urlencoded" in tl.lower():
            out += _params(be.decode("latin-1"), bl.decode("latin-1"), path + ("body",), rules)
        else:
            out += compare_body(be, te, bl, tl, path + ("body",), rules)
    return out


def _params(expected: str, actual: str, path: Path, rules: Rules) -> list[Difference]:
    """Query or form parameters as a multiset: order does not count, repeated names do."""
    pe, pa = _multimap(expected), _multimap(actual)
    out: list[Difference] = []
    for name in sorted(pe.keys() | pa.keys()):
        ve, va = pe.get(name), pa.get(name)
        if ve == va:
            continue
        if ve is not None and va is not None and len(ve) == len(va) and all(texts_equal(a, b, rules) for a, b in zip(ve, va, strict=True)):
            continue
        one = lambda v: v if v is None or len(v) != 1 else v[0]  # noqa: E731
        out += _leaf(path + (name,), one(ve), one(va), rules)
    return out


def _multimap(query: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in parse_qsl(query, keep_blank_values=True):
        out.setdefault(k, []).append(v)
    for values in out.values():
        values.sort()
    return out


# --- Redis -----------------------------------------------------------------------------


def _redis(ce: list[list[bytes]], cl: list[list[bytes]], path: Path, rules: Rules) -> list[Difference]:
    if len(ce) == 1 and len(cl) == 1:
        return _args(ce[0], cl[0], path + ("args",), rules)
    # Pipelines: align the commands by name (a command slipped in is one addition, not a
    # shift of every later command), then compare the aligned ones argument by argument.
    # A command removed is at its index in the recording, one added at its index live.
    out: list[Difference] = []
    names = SequenceMatcher(None, [c[0].upper() for c in ce], [c[0].upper() for c in cl], autojunk=False)
    for _op, i1, i2, j1, j2 in names.get_opcodes():
        paired = min(i2 - i1, j2 - j1)
        for n in range(paired):
            out += _args(ce[i1 + n], cl[j1 + n], path + ("commands", i1 + n, "args"), rules)
        for i in range(i1 + paired, i2):
            out += _leaf(path + ("commands", i), _command_text(ce[i]), None, rules)
        for j in range(j1 + paired, j2):
            out += _leaf(path + ("commands", j), None, _command_text(cl[j]), rules)
    return out


def _command_text(args: list[bytes]) -> bytes:
    return b" ".join(args)


def _args(expected: list[bytes], actual: list[bytes], path: Path, rules: Rules) -> list[Difference]:
    out: list[Difference] = []
    for i in range(max(len(expected), len(actual))):
        e = expected[i] if i < len(expected) else None
        a = actual[i] if i < len(actual) else None
        if e == a or (i == 0 and e is not None and a is not None and e.upper() == a.upper()):
            continue
        here = path + (i,)
        if e is None or a is None:
            out += _leaf(here, e, a, rules)
            continue
        out += _value(e, a, here, rules)
    return out


def _value(expected: bytes, actual: bytes, path: Path, rules: Rules) -> list[Difference]:
    """One argument: JSON below its path, numbers and date-times by the value rules."""
    if rules.ignored(path):
        return []
    if expected[:1] in (b"{", b"[") and actual[:1] in (b"{", b"["):
        je, ja = parse_json(expected), parse_json(actual)
        if je is not None and ja is not None:
            return diff_json(je.value, ja.value, path, rules)
    te, ta = decode_text(expected), decode_text(actual)
    if te is not None and ta is not None:
        return [] if texts_equal(te, ta, rules) else _leaf(path, expected, actual, rules)
    return _leaf(path, expected, actual, rules)


# --- MySQL -----------------------------------------------------------------------------


def split_sql(sql: str) -> tuple[str, list[str]]:
    """(shape, literals): the SQL without comments, whitespace collapsed, literals as `?`;
    and the literals in order (strings unquoted)."""
    literals: list[str] = []

    def repl(m: re.Match[str]) -> str:
        kind = m.lastgroup
        if kind in ("space", "comment"):
            return " "
        text = m.group()
        if kind == "str":
            quote = text[0]
            text = text[1:-1].replace(quote * 2, quote)
            text = re.sub(r"\\(.)", r"\1", text)
        literals.append(text)
        return "?"

    shape = " ".join(mysql.SQL_TOKEN.sub(repl, sql).split())
    return shape, literals


def _sql_text(sql: str) -> str:
    # For display: comments gone, whitespace collapsed, literals kept.
    return " ".join(mysql.SQL_TOKEN.sub(lambda m: " " if m.lastgroup in ("space", "comment") else m.group(), sql).split())


def _sql(expected: str, actual: str, path: Path, rules: Rules) -> list[Difference]:
    here = path + ("sql",)
    if rules.ignored(here):
        return []
    se, le = split_sql(expected)
    sa, la = split_sql(actual)
    if se != sa:
        return _leaf(here, _sql_text(expected), _sql_text(actual), rules, "statement differs")
    out: list[Difference] = []
    for i, (e, a) in enumerate(zip(le, la, strict=True)):
        if not texts_equal(e, a, rules):
            out += _leaf(here + ("literals", i), e, a, rules, f"in: {_sql_text(actual)[:200]}")
    return out
