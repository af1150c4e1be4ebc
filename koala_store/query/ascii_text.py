"""Full-text conditions decided on ASCII text without an index, as FTS5 decides them.

On ASCII text, FTS5's unicode61 tokenizer (the SQLite store's) makes exactly the runs of
letters and digits, lowercased; everything else separates them. So a phrase holds in a text
when its tokens stand there one after the other with only separators between them, the
first one starting a run and the last one ending it (or, for a prefix, just starting one):
one regular expression over the lowercased bytes. Text with other characters is left to
FTS5 (None), since how it splits and folds those follows its own Unicode tables.

Why: checking a few sessions this way costs ~30 us each at 1M sessions (read, decoded, a
regex search), where indexing them in a scratch FTS5 table costs ~100 us each
(SqliteStore._holding_text).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..model import Session
from . import ir
from .text import MAX_INDEXED_BYTES, field_texts

_ASCII_TOKEN = re.compile(r"[a-z0-9]+")


class AsciiPhrase:
    """One full-text condition, checked on a session's ASCII texts."""

    def __init__(self, node: ir.Text, pattern: re.Pattern[bytes]):
        self.node = node
        self.pattern = pattern

    def holds(self, session: Session) -> bool | None:
        """Whether the phrase is in one of the node's fields; None when it is not in their
        ASCII texts but another text is not ASCII."""
        undecided = False
        for field in self.node.fields:
            for data in field_texts(session, field.name):
                head = data[:MAX_INDEXED_BYTES]  # what the index holds of it
                if not head.isascii():
                    undecided = True
                elif self.pattern.search(head.lower()) is not None:
                    return True
        return None if undecided else False


def ascii_phrase(node: ir.Text) -> AsciiPhrase | None:
    """The check of a condition whose tokens are all ASCII letters and digits; else None."""
    if not node.tokens or not all(_ASCII_TOKEN.fullmatch(token) for token in node.tokens):
        return None
    first, *rest = (token.encode() for token in node.tokens)
    # The first token is matched first, its start checked after it by a look-behind, so that
    # the search runs on the literal (re finds a leading literal quickly).
    parts = [re.escape(first) + b"(?<![a-z0-9]" + re.escape(first) + b")"]
    parts += [b"[^a-z0-9]+" + re.escape(token) for token in rest]
    if not node.prefix:
        parts.append(b"(?![a-z0-9])")
    return AsciiPhrase(node, re.compile(b"".join(parts)))


class AsciiJoin:
    """Conditions joined by AND or OR. AND: False as soon as one surely fails, None when none
    fails but some could not be told. OR: True as soon as one surely holds, None when none
    holds but some could not be told."""

    def __init__(self, checks: Sequence[AsciiCheck], *, any_of: bool):
        self.checks = checks
        self.decisive = any_of  # the verdict of one condition that decides the join

    def holds(self, session: Session) -> bool | None:
        verdict: bool | None = not self.decisive
        for check in self.checks:
            holds = check.holds(session)
            if holds is self.decisive:
                return holds
            if holds is None:
                verdict = None
        return verdict


class AsciiNot:
    """A condition that must not hold (None stays None)."""

    def __init__(self, check: AsciiCheck):
        self.check = check

    def holds(self, session: Session) -> bool | None:
        holds = self.check.holds(session)
        return None if holds is None else not holds


AsciiCheck = AsciiPhrase | AsciiJoin | AsciiNot


def ascii_check(node: ir.Node) -> AsciiCheck | None:
    """The check of a full-text condition (phrases under AND, OR and NOT) whose tokens are
    all ASCII letters and digits; else None."""
    if isinstance(node, ir.Text):
        return ascii_phrase(node)
    if isinstance(node, (ir.And, ir.Or)):
        checks = [ascii_check(item) for item in node.items]
        if None in checks:
            return None
        return AsciiJoin(checks, any_of=isinstance(node, ir.Or))  # type: ignore[arg-type]
    if isinstance(node, ir.Not):
        check = ascii_check(node.item)
        return None if check is None else AsciiNot(check)
    return None
