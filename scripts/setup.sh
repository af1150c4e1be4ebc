#!/usr/bin/env bash
# Create .venv with Python >= 3.11 and install koala-store with its dev extras.
# Re-running is cheap: nothing is reinstalled unless pyproject.toml or the compiled part
# (setup.py, matchers/*.c, koala_store/*.h, koala_store/*/*.c, the list of modules Cython
# compiles in koala_store/_compiled.py) changed. A listed module edited since its build runs
# from its source (see _compiled.py); `.venv/bin/python setup.py build_ext --inplace`
# compiles it again.
set -euo pipefail
cd "$(dirname "$0")/.."

python=""
for candidate in python3.11 python3.12 python3.13 python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    python=$candidate
    break
  fi
done
if [ -z "$python" ]; then
  echo "setup: koala-store needs Python 3.11 or newer; install it (e.g. apt install python3.11) and run again" >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.koala-installed
wanted=$(cat pyproject.toml setup.py koala_store/_compiled.py matchers/*.c koala_store/*.h koala_store/*/*.c | sha1sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  echo "$wanted" > "$stamp"
fi
# The C scanner is optional (matching falls back to pure Python, slower): say so when it did not build.
if ! .venv/bin/python -c 'import sys, matchers.chunk_scan as s; sys.exit(0 if s.COMPILED else 1)' 2>/dev/null; then
  echo "setup: matchers/_chunkscan.c did not build (it needs a C compiler and Python headers, e.g. apt install gcc python3-dev); the chunk matcher runs in pure Python, slower" >&2
fi
# Likewise the replay's modules compiled by Cython (koala_store/_compiled.py): without them a
# replay costs ~10% more CPU a session.
if [ -z "${KOALA_PURE_PYTHON:-}" ] && ! .venv/bin/python -c 'import sys, koala_store.replay.mock as m; sys.exit(0 if m.__file__.endswith(".so") else 1)' 2>/dev/null; then
  echo "setup: the replay's modules were not compiled with Cython (koala_store/_compiled.py); replay runs in pure Python, slower" >&2
fi
