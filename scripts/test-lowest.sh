#!/usr/bin/env bash
# The test suite against the LOWEST versions pyproject.toml allows for each direct dependency
# (uv's lowest-direct resolution), in .venv-lowest: proves the dependency floors are real.
# Run by scripts/test.sh after the main suite; it expects what test.sh set up (tools, ES).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip install --quiet "uv>=0.4"
fi
stamp=.venv-lowest/.koala-installed
wanted=$(cat pyproject.toml setup.py matchers/_chunkscan.c | sha1sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  rm -rf .venv-lowest
  .venv/bin/uv venv --quiet --python "$(.venv/bin/python -c 'import sys; print(sys.executable)')" .venv-lowest
  VIRTUAL_ENV=$PWD/.venv-lowest .venv/bin/uv pip install --quiet --resolution lowest-direct -e '.[dev]'
  echo "$wanted" > "$stamp"
fi
echo "lowest allowed versions:" $(VIRTUAL_ENV=$PWD/.venv-lowest .venv/bin/uv pip freeze 2>/dev/null | grep -iE '^(typer|rich|orjson|msgspec|luqum|elasticsearch|deepdiff|rapidfuzz|lz4|jinja2|plotly|starlette|uvicorn|google-re2)==' | tr '\n' ' ')
.venv-lowest/bin/python -m pytest -q -p no:cacheprovider "$@"
