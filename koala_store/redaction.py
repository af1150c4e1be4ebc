"""Masking secrets in recorded bytes, and telling replay and diff where values were masked.

`koala record` and `koala serve` mask header values (Authorization, Cookie and Set-Cookie by
default, plus `--redact-header NAME`) and body matches of `--redact-body REGEX` (card
numbers, say) before a session is spooled, and note each place in `Session.redactions`.

Body matches become `*` runs of the same length, so Content-Length, RESP `$len` prefixes and
MySQL packet lengths stay right and the recording still replays. Header values become
`<redacted>` (cookie names and the Authorization scheme stay, so diffs still see them).
The diff applies the same masks to the replayed bytes (`mask_like`): a masked value is
compared masked against masked, i.e. not compared.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import msgspec

from .errors import KoalaError
from .model import CallOutbound, Redaction, ReturnInbound, Session
from .wire import http1

DEFAULT_HEADERS = ("authorization", "cookie", "set-cookie")
MASK = "<redacted>"
_HEAD_END = http1.HEAD_END


class Rules(msgspec.Struct, frozen=True):
    """What to mask: header names (lower case) and body patterns (as given)."""

    headers: frozenset[str] = frozenset(DEFAULT_HEADERS)
    bodies: tuple[str, ...] = ()

    @classmethod
    def from_options(cls, headers: Iterable[str] = (), bodies: Iterable[str] = (), *, defaults: bool = True) -> "Rules":
        """Rules from `--redact-header` / `--redact-body`; a bad pattern is one clear error."""
        names = {h.strip().lower() for h in headers if h.strip()}
        for name in names:
            if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9a-z-]+", name):
                raise KoalaError(f"--redact-header {name!r} is not a header name; write e.g. --redact-header X-Api-Key")
        patterns = tuple(bodies)
        for pattern in patterns:
            try:
                compiled = re.compile(pattern.encode())
            except re.error as exc:
                raise KoalaError(f"--redact-body {pattern!r} is not a regular expression ({exc}); write e.g. --redact-body '\\b\\d{{13,19}}\\b'") from None
            if compiled.fullmatch(b""):
                raise KoalaError(f"--redact-body {pattern!r} matches empty text; give a pattern that matches the secret itself")
        return cls(frozenset(names | (set(DEFAULT_HEADERS) if defaults else set())), patterns)

    @property
    def empty(self) -> bool:
        return not self.headers and not self.bodies


_PATTERNS: dict[str, re.Pattern[bytes]] = {}


def _pattern(text: str) -> re.Pattern[bytes]:
    compiled = _PATTERNS.get(text)
    if compiled is None:
        compiled = _PATTERNS[text] = re.compile(text.encode())
    return compiled


def _mask_header_value(name: str, value: str) -> str:
    if name in ("cookie", "set-cookie"):
        parts = value.split(";")
        # Cookie: every pair; Set-Cookie: the first pair (the rest are attributes).
        masked = [_mask_pair(p) if (name == "cookie" or i == 0) else p for i, p in enumerate(parts)]
        return ";".join(masked)
    if name in ("authorization", "proxy-authorization"):
        scheme, sep, _ = value.strip().partition(" ")
        return f"{scheme} {MASK}" if sep else MASK
    return MASK


def _mask_pair(pair: str) -> str:
    key, sep, _ = pair.partition("=")
    return f"{key}={MASK}" if sep else pair


_NAME_PATTERNS: dict[frozenset[str], re.Pattern[bytes]] = {}


def _names_pattern(names: frozenset[str]) -> re.Pattern[bytes]:
    """Finds a line starting with one of the names: most heads hold none, and one regex
    search over the head says so without splitting it."""
    pattern = _NAME_PATTERNS.get(names)
    if pattern is None:
        alternatives = b"|".join(re.escape(n.encode()) for n in sorted(names))
        pattern = _NAME_PATTERNS[names] = re.compile(rb"\n[ \t]*(?:" + alternatives + rb")[ \t]*:", re.I)
    return pattern


def _mask_headers(head: bytes, names: Iterable[str]) -> tuple[bytes, dict[str, int]]:
    """The head with the values of `names` masked, and how many values changed per name."""
    wanted = frozenset(names)
    if not wanted or _names_pattern(wanted).search(head) is None:
        return head, {}
    lines = head.split(b"\r\n")
    counts: dict[str, int] = {}
    for i, line in enumerate(lines[1:], start=1):
        name, sep, value = line.partition(b":")
        lname = name.strip().lower().decode("latin-1")
        if not sep or lname not in wanted:
            continue
        text = value.decode("latin-1").strip()
        masked = _mask_header_value(lname, text)
        if masked != text:
            lines[i] = name + b": " + masked.encode("latin-1")
            counts[lname] = counts.get(lname, 0) + 1
    return b"\r\n".join(lines), counts


def _mask_body(body: bytes, patterns: Sequence[str]) -> tuple[bytes, dict[str, int]]:
    counts: dict[str, int] = {}
    for text in patterns:
        changed = 0

        def star(match: re.Match[bytes]) -> bytes:
            nonlocal changed
            value = match.group()
            masked = b"*" * len(value)
            changed += value != masked
            return masked

        body = _pattern(text).sub(star, body)
        if changed:
            counts[text] = changed
    return body, counts


def mask(data: bytes, headers: Iterable[str], bodies: Sequence[str]) -> tuple[bytes, list[tuple[str, str, int]]]:
    """Mask one message: header values when it is HTTP, body matches (the whole bytes when it
    is not HTTP). Returns the bytes and (header, body pattern, count) of what changed."""
    if not data:
        return data, []
    is_http = http1.looks_like_request(data) or http1.looks_like_response(data)
    end = data.find(_HEAD_END) if is_http else -1
    changes: list[tuple[str, str, int]] = []
    if is_http:
        head_end = end if end >= 0 else len(data)
        head, rest = data[:head_end], data[head_end:]
        head, header_counts = _mask_headers(head, headers)
        changes += [(name, "", n) for name, n in sorted(header_counts.items())]
        if bodies and end >= 0:
            body, body_counts = _mask_body(rest[len(_HEAD_END) :], bodies)
            rest = _HEAD_END + body
            changes += [("", pattern, n) for pattern, n in body_counts.items()]
        return head + rest, changes
    if not bodies:
        return data, []
    data, body_counts = _mask_body(data, bodies)
    return data, [("", pattern, n) for pattern, n in body_counts.items()]


def redact(session: Session, rules: Rules) -> Session:
    """The session with the rules' values masked and each place noted in `redactions`
    (a value masked already, by the recorder say, is neither masked nor noted again)."""
    if rules.empty:
        return session
    headers, bodies = rules.headers, rules.bodies
    notes: list[Redaction] = list(session.redactions)

    def note(where: str, changes: list[tuple[str, str, int]]) -> None:
        notes.extend(Redaction(where, header, body, count) for header, body, count in changes)

    cfi = session.call_from_inbound
    request, changes = mask(cfi.request, headers, bodies)
    note("inbound.request", changes)
    new_cfi = msgspec.structs.replace(cfi, request=request) if changes else cfi
    old_ri = session.return_inbound
    new_ri = old_ri
    if old_ri is not None:
        response, changes = mask(old_ri.response, headers, bodies)
        note("inbound.response", changes)
        if changes:
            new_ri = ReturnInbound(old_ri.action_index, old_ri.occurred_at, response)
    actions = []
    position = 0
    for action in session.actions:
        if isinstance(action, CallOutbound):
            req, req_changes = mask(action.request, headers, bodies)
            resp, resp_changes = mask(action.response, headers, bodies)
            note(f"outbound[{position}].request", req_changes)
            note(f"outbound[{position}].response", resp_changes)
            position += 1
            if req_changes or resp_changes:
                action = msgspec.structs.replace(action, request=req, response=resp)
        elif isinstance(action, ReturnInbound) and old_ri is not None and action == old_ri:
            action = new_ri  # Koala repeats ReturnInbound as the last action
        actions.append(action)
    if len(notes) == len(session.redactions):
        return session
    return msgspec.structs.replace(session, call_from_inbound=new_cfi, return_inbound=new_ri, actions=actions, redactions=notes)


def rules_at(redactions: Iterable[Redaction], where: str) -> tuple[set[str], list[str]]:
    """The header names and body patterns masked at `where` ("inbound.response"; "outbound"
    for any outbound request)."""
    headers: set[str] = set()
    bodies: list[str] = []
    for r in redactions:
        here = r.where == where or (where == "outbound.request" and r.where.startswith("outbound[") and r.where.endswith("].request"))
        if not here:
            continue
        if r.header:
            headers.add(r.header)
        if r.body and r.body not in bodies:
            bodies.append(r.body)
    return headers, bodies


def mask_like(data: bytes, redactions: Iterable[Redaction], where: str) -> bytes:
    """Replayed bytes masked as the recording was masked at `where`, so masked values compare
    equal (masked against masked) and everything else compares as before."""
    headers, bodies = rules_at(redactions, where)
    if not headers and not bodies:
        return data
    return mask(data, headers, bodies)[0]


__all__ = ["DEFAULT_HEADERS", "MASK", "Rules", "mask", "mask_like", "redact", "rules_at"]
