"""Counts in messages a person reads: "1 session", "2 sessions", "0 sessions"."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and the noun, singular for exactly one."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"
