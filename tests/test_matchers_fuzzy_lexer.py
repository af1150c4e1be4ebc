"""matchers/_fuzzylex.c encodes lexemes exactly as fuzzy's Python code does, growing the
session's alphabet in the same order; text it does not handle is left to Python."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from koala_store.wire.normalize import Normalizer
from matchers import fuzzy
from matchers.fuzzy import FuzzySessionMatcher

encode_ascii = fuzzy._compiled_encode_ascii
pytestmark = pytest.mark.skipif(encode_ascii is None, reason="matchers/_fuzzylex.c did not build")

# Pieces that exercise every rule: placeholders (and near misses of them), words, digits,
# underscores, punctuation, every ASCII blank (\x1c-\x1f count as blanks for str patterns).
_PIECES = [
    "<time>",
    "<uuid>",
    "<num>",
    "<date>",
    "<hex>",
    "<nu",
    "<num",
    "num>",
    "<>",
    "<x>",
    "a",
    "ab",
    "abc_d",
    "Q9",
    "x" * 13,
    "0",
    "12.5",
    "_",
    "-",
    "{",
    '"',
    "\x00",
    "\x7f",
    " ",
    "\t",
    "\n",
    "\x0b",
    "\x0c",
    "\r",
    "\x1c",
    "\x1d",
    "\x1e",
    "\x1f",
]
_texts = st.one_of(
    st.lists(st.sampled_from(_PIECES), max_size=40).map("".join),
    st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=200),
)


def _matcher() -> FuzzySessionMatcher:
    matcher = FuzzySessionMatcher([], 0.8, Normalizer())
    matcher._prepare_calls()  # makes the session's (empty) alphabet
    return matcher


@settings(max_examples=500, deadline=None)
@given(st.lists(_texts, min_size=1, max_size=5), st.lists(st.booleans(), min_size=5, max_size=5))
def test_compiled_encoding_equals_the_python_one(texts: list[str], grows: list[bool]) -> None:
    compiled, python = _matcher(), _matcher()
    for text, grow in zip(texts, grows, strict=False):  # more flags than texts
        code = encode_ascii(text, compiled._alphabet, grow, compiled._lexeme_cache)
        expected = python._encode_python(text, grow=grow)
        if code is None:  # no lexeme: only blanks, which Python encodes one by one
            assert text.strip(" \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f") == ""
            code = compiled._encode_python(text, grow=grow)
        assert code == expected
        assert compiled._whole_alphabet() == python._alphabet  # same codes, given in the same order


def test_the_encoding_of_a_long_text_with_many_distinct_lexemes() -> None:
    """Enough distinct lexemes to grow the run table past the size it starts with."""
    text = " ".join(f"w{i} <num> {i % 7}" for i in range(6000))
    compiled, python = _matcher(), _matcher()
    assert compiled._encode(text, grow=True) == python._encode_python(text, grow=True)
    assert compiled._whole_alphabet() == python._alphabet
    assert compiled._encode(text + " unseen", grow=False) == python._encode_python(text + " unseen", grow=False)


def test_text_beyond_ascii_is_left_to_python() -> None:
    matcher = _matcher()
    assert encode_ascii("café au lait", matcher._alphabet, False, matcher._lexeme_cache) is None
    assert matcher._encode("café au lait", grow=True) == _matcher()._encode_python("café au lait", grow=True)


def test_a_bad_argument_or_code_is_a_clear_error() -> None:
    alphabet: dict = {}
    cache = fuzzy._compiled_lexeme_cache(alphabet)
    with pytest.raises(TypeError, match="encode_ascii"):
        encode_ascii(b"bytes", alphabet, False, cache)
    with pytest.raises(ValueError, match="another alphabet"):
        encode_ascii("word", {}, False, cache)
    with pytest.raises(ValueError):  # not a cache at all
        encode_ascii("word", alphabet, False, object())
    alphabet["word"] = 1
    with pytest.raises(TypeError, match="must be str"):
        encode_ascii("word", alphabet, False, cache)


def test_the_cache_follows_the_alphabet_python_grows() -> None:
    """Codes the Python encoder adds (non-ASCII text) are found by the compiled one; unknown
    lexemes met while the alphabet may not grow are never cached as codes."""
    compiled, python = _matcher(), _matcher()
    for matcher in (compiled, python):
        matcher._encode_python("word ünï", grow=True)
    assert compiled._encode("word unseen", grow=False) == python._encode_python("word unseen", grow=False)
    assert compiled._encode("unseen word", grow=True) == python._encode_python("unseen word", grow=True)
    assert compiled._whole_alphabet() == python._alphabet
    assert compiled._encode("unseen", grow=False) == python._encode_python("unseen", grow=False) != "\U0010ffff" * 2
    # One-character lexemes are cached apart from the others (by byte): the same rules hold.
    assert compiled._encode("x ; %", grow=False) == python._encode_python("x ; %", grow=False)
    for matcher in (compiled, python):
        matcher._encode_python("é x %", grow=True)
    assert compiled._encode("x ; %", grow=False) == python._encode_python("x ; %", grow=False) != "\U0010ffff" * 3


@pytest.mark.parametrize(
    "odd_codes",
    [
        {"odd": "\u0101\u0102"},  # not one character repeated: written as it is
        {"odd": "x", "word": "yy"},  # below U+0100: a result of one byte per character
        {"odd": "\U0001f600\u0101"},  # beyond U+FFFF, mixed
        {";": "xx"},  # a one-character lexeme's, below U+0100
        {";": "\u0101" * 6},  # a one-character lexeme's, repeated more than four times
    ],
)
def test_codes_of_any_shape_are_written_as_they_are(odd_codes: dict[str, str]) -> None:
    """Every code the encoder makes is one character repeated, written from its packed form;
    codes of another shape that the alphabet may hold are copied character by character."""
    compiled, python = _matcher(), _matcher()
    for matcher in (compiled, python):
        matcher._alphabet.update(odd_codes)
    for text, grow in [("odd word odd", False), ("word odd new ; odd", True), ("odd", False), ("odd ; ;", True)]:
        assert compiled._encode(text, grow=grow) == python._encode_python(text, grow=grow)
    assert compiled._whole_alphabet() == python._alphabet


def test_codes_past_the_last_code_point_are_shared_as_python_shares_them() -> None:
    """Past U+10FFFE (an alphabet of ~1.1M lexemes) both take a code from the lexeme's hash."""
    compiled, python = _matcher(), _matcher()
    filler = {f"#{i}": "x" for i in range(0x10FFFE - 0x100 - 0x800)}
    compiled._alphabet.update(filler)
    python._alphabet.update(filler)
    text = "alpha beta gamma alpha <num>"
    assert compiled._encode(text, grow=True) == python._encode_python(text, grow=True)
    assert compiled._whole_alphabet() == python._alphabet


def test_texts_of_every_size_in_a_row_reuse_the_kept_array_safely() -> None:
    """The array of codes is kept between calls (grown when a text needs more, its own for
    a text beyond what is kept): texts small, larger than any before, beyond the kept size
    (1 << 16 lexemes) and small again each encode as the Python code does."""
    compiled, python = _matcher(), _matcher()
    for count in (3, 5000, 40000, 70000, 10, 70000, 2):
        text = ",".join(f"k{i % 977}" for i in range(count))  # 2 lexemes per item
        assert compiled._encode(text, grow=True) == python._encode_python(text, grow=True)
    assert compiled._whole_alphabet() == python._alphabet


def test_codes_given_in_c_reach_the_alphabet_before_python_reads_or_grows_it() -> None:
    """The compiled encoder keeps new lexemes pending (no dict entry yet); Python code that
    reads or grows the alphabet gets it whole first, so codes keep being given in order."""
    compiled, python = _matcher(), _matcher()
    for text, grow in [("alpha beta ; gamma", True), ("gamma unseen", False), ("epsilon beta", True)]:
        assert compiled._encode(text, grow=grow) == python._encode_python(text, grow=grow), text
    assert compiled._alphabet == {} != python._alphabet  # all pending
    steps = [("délta alpha", True), ("epsilon beta zeta", True), ("zeta ünseen eta", False), ("eta ; theta", True)]
    for text, grow in steps:  # Python grows it (délta), then C again: looked up in the dict from then on
        assert compiled._encode(text, grow=grow) == python._encode_python(text, grow=grow), text
    assert compiled._whole_alphabet() == python._alphabet
    assert compiled._encode("theta alpha nu", grow=False) == python._encode_python("theta alpha nu", grow=False)


def test_sessions_one_after_another_reuse_the_kept_table_safely() -> None:
    """A freed session's table is kept, emptied, for the next session's cache: each session
    in a row (one bigger than any before, smaller ones, two alive at once, one taking a table
    kept from a session whose lexeme bytes are freed) encodes as a fresh Python one does."""
    sizes = [6000, 50, 9000, 3, 6000]
    alive = []
    for n, size in enumerate(sizes):
        text = " ".join(f"s{n}w{i} shared{i % 11} <num>" for i in range(size))
        compiled, python = _matcher(), _matcher()
        assert compiled._encode(text, grow=True) == python._encode_python(text, grow=True)
        assert compiled._encode("shared3 unseen s0w1", grow=False) == python._encode_python("shared3 unseen s0w1", grow=False)
        assert compiled._whole_alphabet() == python._alphabet
        if n == 2:
            alive.append(compiled)  # alive while the next ones take the kept table or a fresh one
        del compiled, python
