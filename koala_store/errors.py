"""Errors a user can cause. Each carries one sentence naming the input and the fix."""

from __future__ import annotations


class KoalaError(Exception):
    """Base of every error the CLI reports as a user error (exit code 1)."""


class FormatError(KoalaError):
    """Bytes that are not a valid session in the format they were read as."""


class QueryError(KoalaError):
    """A query that does not parse or names an unknown field; `position` is 0-based."""

    def __init__(self, message: str, query: str = "", position: int | None = None):
        super().__init__(message)
        self.query = query
        self.position = position

    def __str__(self) -> str:
        text = super().__str__()
        if self.position is None or not self.query:
            return text
        # Point at the spot, as compilers do.
        return f"{text}\n  {self.query}\n  {' ' * self.position}^"


class StoreError(KoalaError):
    """A store that cannot be opened or reached."""


class Terminated(KeyboardInterrupt):
    """SIGTERM asked a long command to stop; like Ctrl-C, what was done so far is kept."""
