"""The comparison engine of the replay runner: pure functions over bytes and recorded calls.

    from koala_store import diff
    options = diff.options_from_cli(["served_at", "body.items[*].id", r"re:headers\\.x-.*"])
    diffs = diff.compare_responses(recorded_response, replayed_response, options)
    report = diff.compare_outbound(session.outbound_calls, talks, options)   # side effects
    kept, noise = diff.suppress_repeated(diffs + report.differences, among_runs)

- Responses (koala_store.diff.response, HTTP/1.x or FastCGI): HTTP status, headers (DEFAULT_IGNORED_HEADERS
  skipped), body as JSON (deepdiff on the parts that differ; JSONP unwrapped), text or
  bytes; other protocols as one difference at `response`.
- Side effects (koala_store.diff.outbound): unmatched, missing, repeated and reordered calls,
  and meaningful request changes (koala_store.diff.requests).
- Masked values (koala_store.diff.masked): where the recording was redacted, the replayed
  bytes are masked alike before comparing, so a masked value is not compared.
- Noise (koala_store.diff.noise): `--noise-runs` suppression and Diffy's three-way rule.
- Paths and `--ignore` patterns: koala_store.diff.paths; kinds: koala_store.diff.difference;
  value rules (floats, timestamps): koala_store.diff.values.

No I/O, no clock, no global state beyond a cache of compiled options.
"""

from __future__ import annotations

from .difference import (
    ADDED,
    CHANGED,
    KINDS,
    MISSING_CALL,
    REMOVED,
    REORDERED,
    REPEATED_CALL,
    TYPE_CHANGED,
    UNMATCHED_CALL,
    Difference,
)
from .jsondiff import diff_json, parse_json
from .masked import as_recorded
from .noise import DiffyNoise, endpoint_of, suppress_repeated
from .options import DEFAULT_IGNORED_HEADERS, DiffOptions, DiffOptionsError, compile_options, options_from_cli
from .outbound import (
    MissedCall,
    OutboundReport,
    ReorderedCall,
    RepeatedCall,
    RequestChange,
    Talk,
    TalkOutcome,
    UnmatchedTalk,
    attribute,
    compare_outbound,
    compare_talks,
)
from .paths import format_path, parse_path
from .requests import compare_request, protocol_of
from .response import compare_headers, compare_responses

__all__ = [
    "ADDED",
    "CHANGED",
    "DEFAULT_IGNORED_HEADERS",
    "KINDS",
    "MISSING_CALL",
    "REMOVED",
    "REORDERED",
    "REPEATED_CALL",
    "TYPE_CHANGED",
    "UNMATCHED_CALL",
    "Difference",
    "DiffOptions",
    "DiffOptionsError",
    "DiffyNoise",
    "MissedCall",
    "OutboundReport",
    "ReorderedCall",
    "RepeatedCall",
    "RequestChange",
    "Talk",
    "TalkOutcome",
    "UnmatchedTalk",
    "as_recorded",
    "attribute",
    "compare_headers",
    "compare_outbound",
    "compare_request",
    "compare_responses",
    "compare_talks",
    "compile_options",
    "diff_json",
    "endpoint_of",
    "format_path",
    "options_from_cli",
    "parse_json",
    "parse_path",
    "protocol_of",
    "suppress_repeated",
]
