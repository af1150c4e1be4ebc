"""matchers' registry: names, options, errors, and third-party strategies via entry points."""

from __future__ import annotations

import sys
import textwrap

import msgspec
import pytest
from matchers_fixtures import redis, session_calls

import matchers
from koala_store.errors import KoalaError
from matchers import ChunkStrategy, FuzzyStrategy, MatcherError, SimStrategy, UnknownStrategyError


def test_builtin_names_come_first():
    assert matchers.names()[:3] == ["chunk", "sim", "fuzzy"]


@pytest.mark.parametrize(("name", "cls"), [("chunk", ChunkStrategy), ("sim", SimStrategy), ("fuzzy", FuzzyStrategy)])
def test_get_builtin(name, cls):
    strategy = matchers.get(name)
    assert isinstance(strategy, cls)
    assert strategy.name == name


def test_unknown_name_lists_known_ones():
    with pytest.raises(UnknownStrategyError) as info:
        matchers.get("cosine")
    message = str(info.value)
    assert "'cosine'" in message
    for name in ("chunk", "sim", "fuzzy"):
        assert name in message
    assert "koala_store.matchers" in message
    # One error a caller can catch as a value error, a lookup error or a Koala user error.
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, LookupError)
    assert isinstance(info.value, KoalaError)


def test_non_string_name():
    with pytest.raises(MatcherError, match="not a string"):
        matchers.get(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [-0.1, 1.01, float("nan"), float("inf"), "0.7", True, None])
@pytest.mark.parametrize("name", ["sim", "fuzzy"])
def test_threshold_outside_0_1(name, value):
    with pytest.raises(MatcherError) as info:
        matchers.get(name, threshold=value)
    message = str(info.value)
    assert "threshold" in message and repr(value) in message and name in message
    assert "between 0 and 1" in message


@pytest.mark.parametrize("value", [0, 0.0, 0.5, 1, 1.0])
def test_threshold_bounds_accepted(value):
    assert matchers.get("sim", threshold=value).threshold == float(value)
    assert matchers.get("fuzzy", threshold=value).threshold == float(value)


def test_unknown_option_names_the_known_ones():
    with pytest.raises(MatcherError, match=r"unknown option 'treshold' for matcher 'fuzzy'; its options are: .*threshold"):
        matchers.get("fuzzy", treshold=0.5)
    with pytest.raises(MatcherError, match=r"unknown option 'threshold' for matcher 'chunk'; its options are: none"):
        matchers.get("chunk", threshold=0.5)


def test_fuzzy_option_types():
    with pytest.raises(MatcherError, match="mask_literals"):
        matchers.get("fuzzy", mask_literals="yes")
    with pytest.raises(MatcherError, match="volatile_headers"):
        matchers.get("fuzzy", volatile_headers="host")
    with pytest.raises(MatcherError, match="volatile_headers"):
        matchers.get("fuzzy", volatile_headers=5)
    strategy = matchers.get("fuzzy", volatile_headers=["X-Sign"])
    assert strategy.volatile_headers == frozenset({"x-sign"})


def test_repr_shows_options():
    assert repr(matchers.get("sim", threshold=0.75)) == "matchers.get('sim', threshold=0.75)"
    assert repr(matchers.get("chunk")) == "matchers.get('chunk')"


def test_results_encode_as_json():
    calls = session_calls(redis("GET", "a"), redis("GET", "b"))
    session = matchers.get("sim").for_session(calls)
    result = session.match(redis("GET", "a"), session.connection())
    decoded = msgspec.json.decode(msgspec.json.encode(result))
    assert decoded["position"] == 0 and decoded["strategy"] == "sim"
    assert decoded["near_misses"][0]["action_index"] == 2


PLUGIN = textwrap.dedent(
    '''
    """A third-party strategy: answers byte-identical requests only."""
    from matchers import SessionMatcher, Strategy


    class ExactSession(SessionMatcher):
        strategy = "exact"

        def _match(self, request, conn, eligible):
            for p in eligible:
                if self.calls[p].request == request:
                    return self._accept(conn, p, 1.0, [], str, "byte-identical")
            return self._reject(conn, 0.0, [], str, "no byte-identical call")


    class ExactStrategy(Strategy):
        name = "exact"

        def __init__(self, **options):
            self.options = options

        def for_session(self, calls):
            return ExactSession(calls)


    def not_a_strategy(**options):
        return object()
    '''
)
ENTRY_POINTS = textwrap.dedent(
    """
    [koala_store.matchers]
    exact = kstest_plugin:ExactStrategy
    bogus = kstest_plugin:not_a_strategy
    broken = kstest_missing_module:Thing
    chunk = kstest_plugin:ExactStrategy
    """
)


@pytest.fixture
def plugin_on_path(tmp_path, monkeypatch):
    """A real installed distribution: a module and a *.dist-info with entry_points.txt on sys.path."""
    (tmp_path / "kstest_plugin.py").write_text(PLUGIN)
    info = tmp_path / "kstest_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kstest-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("kstest_plugin", None)


def test_plugin_found_through_entry_points(plugin_on_path):
    names = matchers.names()
    assert names[:3] == ["chunk", "sim", "fuzzy"]
    assert {"exact", "bogus", "broken"} <= set(names)
    assert names.count("chunk") == 1  # a plugin cannot shadow a built-in

    strategy = matchers.get("exact", flavour="strict")
    assert strategy.options == {"flavour": "strict"}
    calls = session_calls(redis("GET", "a"), redis("GET", "b"))
    session = strategy.for_session(calls)
    conn = session.connection()
    assert session.match(redis("GET", "b"), conn).position == 1
    assert conn.last == 1
    assert not session.match(redis("GET", "c"), conn).matched
    assert conn.last == -1
    assert isinstance(matchers.get("chunk"), ChunkStrategy)


def test_plugin_that_fails_to_import(plugin_on_path):
    with pytest.raises(
        MatcherError, match=r"matcher 'broken' \(entry point broken = kstest_missing_module:Thing of kstest-plugin\) failed to load: ModuleNotFoundError"
    ):
        matchers.get("broken")


def test_plugin_that_returns_no_strategy(plugin_on_path):
    with pytest.raises(MatcherError, match=r"matcher 'bogus' .* returned object, which has no for_session"):
        matchers.get("bogus")


def test_plugins_gone_with_their_distribution():
    assert "exact" not in matchers.names()
    with pytest.raises(UnknownStrategyError):
        matchers.get("exact")
