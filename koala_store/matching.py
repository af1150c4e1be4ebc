"""What matching an outbound talk produces: `MatchResult` and its `NearMiss`es.

Plain data beside model.py, so both the strategies (matchers/) and the comparison of side
effects (koala_store.diff) use them without diff depending on matchers.
"""

from __future__ import annotations

import msgspec

from .model import CallOutbound


class NearMiss(msgspec.Struct, frozen=True):
    """A candidate that lost, with its score and a sentence saying why."""

    position: int
    action_index: int
    score: float
    reason: str


class MatchResult(msgspec.Struct, frozen=True):
    """The outcome of one `match` or `greeting`.

    `score` is the strategy's own figure: chunk's mark (it can exceed 1), sim's cosine,
    fuzzy's similarity. For an unmatched call it is the best score that fell short (0 when
    nothing scored). `reason` says in one sentence how the decision was made.
    """

    call: CallOutbound | None
    position: int | None
    score: float
    strategy: str
    near_misses: tuple[NearMiss, ...] = ()
    reason: str = ""

    @property
    def matched(self) -> bool:
        return self.call is not None


__all__ = ["MatchResult", "NearMiss"]
