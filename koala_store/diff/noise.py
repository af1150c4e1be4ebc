"""Noise: differences a build produces against itself, kept apart from real ones.

Two ways to know what is noise:

`--noise-runs N` (`suppress_repeated`): the runner replays the session N more times against
the same target and compares the first replay with each extra one (`compare_responses` on
the two responses, `compare_talks` on the two runs' outbound talks). A primary difference
(recording vs first replay) is noise when its path, or the path of one of its ancestors,
also differs among the runs: what varies between two runs of one build says nothing about
the build. Array indexes inside JSON bodies are generalized (`body.items[3].ts` and
`body.items[0].ts` are one field, `body.items[*].ts`), since arrays often differ in length
between runs; outbound action indexes and argument positions are not.

`--baseline HOST:PORT` (`DiffyNoise`): Twitter Diffy's three-way rule. For each session the
runner adds the paths where the recording differs from the target (raw) and from a baseline
build of the old code (noise), per endpoint. A path is a real difference only when, over all
sessions of its endpoint so far, `raw > noise`, `|raw - noise| / (raw + noise) * 100 >
relative_threshold` (20) and `|raw - noise| / endpoint_total * 100 > absolute_threshold`
(0.03), all strict. Counts use generalized paths (as above), and a noise difference at a
path also counts for every path below it (a whole object that varies makes its fields
vary). Decide after adding every session: verdicts change as counts grow.
"""

from __future__ import annotations

import re
from collections import Counter
from fractions import Fraction
from collections.abc import Iterable, Sequence

from koala_store.wire import parse_talk
from koala_store.wire.http import split_target

from .difference import Difference
from .paths import generalized_prefixes


def suppress_repeated(primary: Sequence[Difference], among_runs: Iterable[Sequence[Difference]]) -> tuple[list[Difference], list[Difference]]:
    """(kept, suppressed): primary differences whose path varies among runs are noise."""
    noisy: set[str] = set()
    for run in among_runs:
        for d in run:
            noisy.add(generalized_prefixes(d.path)[-1])
    if not noisy:
        return list(primary), []
    kept, suppressed = [], []
    for d in primary:
        (suppressed if any(p in noisy for p in generalized_prefixes(d.path)) else kept).append(d)
    return kept, suppressed


class DiffyNoise:
    """Diffy's per-endpoint, per-field noise statistics (see the module doc)."""

    def __init__(self, relative_threshold: float = 20.0, absolute_threshold: float = 0.03):
        self.relative_threshold = float(relative_threshold)
        self.absolute_threshold = float(absolute_threshold)
        self._relative = Fraction(repr(self.relative_threshold))
        self._absolute = Fraction(repr(self.absolute_threshold))
        self._total: Counter[str] = Counter()
        self._raw: dict[str, Counter[str]] = {}
        self._noise: dict[str, Counter[str]] = {}

    def add(self, endpoint: str, raw: Iterable[str], noise: Iterable[str]) -> None:
        """One session: paths where recording vs target differ (raw), and recording vs baseline."""
        self._total[endpoint] += 1
        raw_fields = {_general(p) for p in raw}
        noise_prefixes = [generalized_prefixes(p) for p in noise]
        noise_fields = {prefixes[-1] for prefixes in noise_prefixes}
        raw_counts = self._raw.setdefault(endpoint, Counter())
        noise_counts = self._noise.setdefault(endpoint, Counter())
        raw_counts.update(raw_fields)
        # A field is noisy in this session when it or an ancestor differed in the baseline.
        noisy = set(noise_fields)
        for field in raw_fields:
            if field not in noisy and any(p in noise_fields for p in generalized_prefixes(field)):
                noisy.add(field)
        noise_counts.update(noisy)

    def counts(self, endpoint: str, path: str) -> tuple[int, int, int]:
        """(raw, noise, endpoint_total) for a path."""
        field = _general(path)
        return self._raw.get(endpoint, Counter())[field], self._noise.get(endpoint, Counter())[field], self._total[endpoint]

    def is_real(self, endpoint: str, path: str) -> bool:
        raw, noise, total = self.counts(endpoint, path)
        if total == 0 or raw <= noise:
            return False
        gap = abs(raw - noise)
        # Exact arithmetic: at the boundary (6 vs 4 is exactly 20%) the strict test must fail,
        # which 2 / 10 * 100 in floats does not promise.
        return gap * 100 > self._relative * (raw + noise) and gap * 100 > self._absolute * total

    def split(self, endpoint: str, differences: Sequence[Difference]) -> tuple[list[Difference], list[Difference]]:
        """(real, suppressed) for one session's differences on `endpoint`."""
        real, suppressed = [], []
        for d in differences:
            (real if self.is_real(endpoint, d.path) else suppressed).append(d)
        return real, suppressed


def _general(path: str) -> str:
    return generalized_prefixes(path)[-1]


_ID_SEGMENT = re.compile(r"\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{16,}")


def endpoint_of(request: bytes) -> str:
    """An endpoint name for Diffy's statistics: `GET /v1/item/{id}` (numeric, UUID and long
    hex path segments become {id}); `unknown` when the request is neither HTTP nor FastCGI."""
    line = parse_talk(request).line
    if line is None:
        return "unknown"
    method, target = line
    path = split_target(target)[0] or "/"
    segments = ["{id}" if _is_id_segment(s) else s for s in path.split("/")]
    return f"{method} {'/'.join(segments)}"


def _is_id_segment(segment: str) -> bool:
    """_ID_SEGMENT.fullmatch, with the regex run only where it could match: digits alone are
    `\\d+` (str.isdecimal is \\d's Unicode class), and the other two forms (a UUID, long hex)
    are 16 characters or more. Most segments ("v1", "item") are neither; the regex was half of
    endpoint_of's time."""
    if segment.isdecimal():
        return True
    return len(segment) >= 16 and _ID_SEGMENT.fullmatch(segment) is not None
