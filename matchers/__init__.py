"""Which recorded outbound call answers a live outbound request during replay.

    import matchers
    strategy = matchers.get("fuzzy", threshold=0.8)       # or "chunk", "sim", a plugin
    session = strategy.for_session(recorded.outbound_calls)
    conn = session.connection()                           # one per live connection
    result = session.match(request_bytes, conn, peer="10.0.0.7:3306")
    if result.matched: answer(result.call.response)
    else: report(result.near_misses)

Built-ins: `chunk` and `sim` (Koala's strategies, ../shared/spec/koala-matching.md) and
`fuzzy` (ours). Third-party strategies register a factory under the entry point group
`koala_store.matchers`; `get(name, **options)` calls it with the options and expects an
object with `for_session(calls)` (subclassing `matchers.Strategy` gives the rest).

Long-lived connections shared by consecutive sessions: keep the live connection's
`ConnectionState` and give it to the next session's matcher as
`next_session.connection(previous_state)`; see `SessionMatcher.connection`.
"""

from __future__ import annotations

from importlib import metadata

import koala_store._compiled  # noqa: F401  (before .base: its import hook, see that module)

from .base import (
    ConnectionState,
    MatcherError,
    MatchResult,
    NearMiss,
    SessionMatcher,
    Strategy,
    UnknownStrategyError,
)
from . import normalize  # noqa: F401  (matchers.normalize stays reachable as an attribute)
from .chunk import ChunkStrategy
from .fuzzy import FuzzyStrategy
from .sim import SimStrategy

ENTRY_POINT_GROUP = "koala_store.matchers"
BUILTINS: dict[str, type[Strategy]] = {
    ChunkStrategy.name: ChunkStrategy,
    SimStrategy.name: SimStrategy,
    FuzzyStrategy.name: FuzzyStrategy,
}


def _plugins() -> dict[str, metadata.EntryPoint]:
    # Read on every call (it is not on the hot path), so a plugin installed at run time counts.
    found: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)  # the first on sys.path wins, as imports do
    return found


def names() -> list[str]:
    """The names `get` accepts: built-ins, then installed plugins (built-ins win a clash)."""
    return [*BUILTINS, *sorted(set(_plugins()) - set(BUILTINS))]


def get(name: str, /, **options: object) -> Strategy:
    """The strategy called `name`, configured with `options` (e.g. `threshold=0.75`)."""
    if not isinstance(name, str):
        raise MatcherError(f"matcher name {name!r} is not a string; use one of: {', '.join(names())}")
    builtin = BUILTINS.get(name)
    if builtin is not None:
        return builtin(**options)
    ep = _plugins().get(name)
    if ep is None:
        raise UnknownStrategyError(
            f"unknown matcher {name!r}; use one of: {', '.join(names())} (plugins register under the entry point group {ENTRY_POINT_GROUP!r})"
        )
    origin = f"entry point {ep.name} = {ep.value}" + (f" of {ep.dist.name}" if ep.dist else "")
    try:
        factory = ep.load()
    except Exception as exc:
        raise MatcherError(f"matcher {name!r} ({origin}) failed to load: {type(exc).__name__}: {exc}; fix or uninstall that plugin") from exc
    strategy = factory(**options)
    if not callable(getattr(strategy, "for_session", None)):
        raise MatcherError(
            f"matcher {name!r} ({origin}) returned {type(strategy).__name__}, which has no for_session(calls); a plugin must return a matchers.Strategy"
        )
    return strategy


__all__ = [
    "BUILTINS",
    "ENTRY_POINT_GROUP",
    "ChunkStrategy",
    "ConnectionState",
    "FuzzyStrategy",
    "MatchResult",
    "MatcherError",
    "NearMiss",
    "SessionMatcher",
    "SimStrategy",
    "Strategy",
    "UnknownStrategyError",
    "get",
    "names",
]
