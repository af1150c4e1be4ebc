"""Regular expressions in queries: the part of the syntax Lucene (Elasticsearch) and RE2
(SQLite, and filtering in Python) read the same way, run in linear time.

RE2 has no backtracking, so no pattern can take more than time linear in the value. What
the two engines would read differently is refused with a message that says what to write
instead: anchors (Lucene has none: a pattern always matches the whole value), groups with
`(?`, POSIX classes, escapes of letters other than \\d \\D \\w \\W \\s \\S, and an unescaped
double quote (a quoted string in Lucene). Elasticsearch is sent the pattern with flags
NONE, so `@ & ~ < > #` are plain characters there, as they are in RE2; `.` matches any
character, newlines included, on both.
"""

from __future__ import annotations

from functools import lru_cache

import re2

# Elasticsearch refuses longer patterns (index.max_regex_length).
MAX_LENGTH = 1000
_CLASS_ESCAPES = set("dDwWsS")
_OPTIONS = re2.Options()
_OPTIONS.dot_nl = True
_OPTIONS.never_capture = True
_OPTIONS.log_errors = False


def problem(pattern: str) -> str | None:
    """Why a pattern cannot be used, or None when both engines read it the same."""
    if len(pattern) > MAX_LENGTH:
        return f"it is {len(pattern)} characters long; at most {MAX_LENGTH} are allowed (Elasticsearch's limit)"
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            following = pattern[i + 1 : i + 2]
            if not following:
                return "it ends with a lone backslash"
            if following.isalnum() and following not in _CLASS_ESCAPES:
                return f"\\{following} is read differently by Elasticsearch; write the character itself, or \\d \\w \\s"
            i += 2
            continue
        if in_class:
            if char == "]":
                in_class = False
            elif char == "[" and pattern[i + 1 : i + 2] == ":":
                return "POSIX classes such as [[:alpha:]] are not supported; write [a-zA-Z]"
        elif char == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                i += 1  # negation, not an anchor
            if pattern[i + 1 : i + 2] == "]":
                i += 1  # a literal ] first in a class
        elif char in "^$":
            return f"{char} is not an anchor here: a pattern always matches the whole value; drop it, or write \\{char} for the character"
        elif char == "(" and pattern[i + 1 : i + 2] == "?":
            return "(?...) groups and flags are not supported; use plain ( ) groups"
        elif char == '"':
            return 'an unescaped " starts a quoted string in Elasticsearch; write \\"'
        elif char == "{" and pattern[i + 1 : i + 2] == ",":
            return "{,n} is not a repetition everywhere; write {0,n}"
        i += 1
    try:
        compiled(pattern)
    except re2.error as exc:
        return str(exc.args[0].decode() if isinstance(exc.args[0], bytes) else exc.args[0])
    return None


@lru_cache(maxsize=256)
def compiled(pattern: str) -> "re2._Regexp":
    return re2.compile(pattern, _OPTIONS)


def fullmatch(pattern: str, value: str) -> bool:
    return compiled(pattern).fullmatch(value) is not None
