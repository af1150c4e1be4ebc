#!/usr/bin/env bash
# The compiled parts (matchers/*.c, koala_store/*/*.c) under AddressSanitizer and
# UndefinedBehaviorSanitizer: built into a copy in .cache/asan (the working tree's own builds
# stay as they are), then the tests that drive them run against that copy. Any report fails
# the run, printed where it happened. Run by scripts/test.sh after the main suite; it expects
# what setup.sh set up (.venv, a C compiler).
#
# Why: the C parts read past what they are given on purpose (a word at a time, 16-byte token
# copies into slack), and an off-by-one there reads memory silently; the tests compare their
# results with the Python reference, which such a read need not change. This found a 16-byte
# read past the string constant "true" in _canonjson.c.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

libasan=$(cc -print-file-name=libasan.so)
if [ ! -e "$libasan" ]; then
  echo "error: the C compiler has no AddressSanitizer runtime ($libasan); install libasan (Debian: the compiler's libgcc-*-dev brings it)" >&2
  exit 1
fi

copy=.cache/asan
rm -rf "$copy"
mkdir -p "$copy"
cp -r koala_store matchers tests bench setup.py pyproject.toml "$copy"/
find "$copy" -name '*.so' -delete
# The C modules only: the Cython-compiled ones (koala_store/_compiled.py) run from their
# source here, as in the lowest-versions job.
export KOALA_PURE_PYTHON=1
(cd "$copy" && CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g" \
  LDFLAGS="-fsanitize=address,undefined" ../../.venv/bin/python setup.py -q build_ext --inplace 2>&1 | grep -v -e Beta -e 'warnings.warn' || true)
built=$(find "$copy/koala_store" "$copy/matchers" -name '*.so' | wc -l)
expected=$(find koala_store matchers -name '*.c' | wc -l)
if [ "$built" != "$expected" ]; then
  echo "error: $built of $expected compiled parts built with the sanitizers in $copy" >&2
  exit 1
fi

# Python itself is not instrumented: leaks are not looked for (the interpreter keeps memory
# to its end by design). A report aborts the test run; pytest captures Python's output only
# (--capture=sys), so the report, written to the process's stderr, is seen.
cd "$copy"
LD_PRELOAD="$libasan" ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 PYTHONPATH="$PWD" \
  ../../.venv/bin/python -m pytest -q -p no:cacheprovider --capture=sys \
  tests/test_matchers_chunk.py tests/test_matchers_chunk_differential.py tests/test_matchers_sim.py \
  tests/test_matchers_sim_differential.py tests/test_matchers_fuzzy.py tests/test_matchers_fuzzy_differential.py \
  tests/test_matchers_fuzzy_lexer.py tests/test_wire_http1_head.py tests/test_diff_canonical_json.py \
  tests/test_diff_properties.py tests/test_normalize_equivalence.py tests/test_sqlite_prefix_terms.py tests/test_query.py \
  tests/test_query_limits.py
