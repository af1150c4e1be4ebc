#!/usr/bin/env bash
# The test suite against the LOWEST versions pyproject.toml allows for each direct dependency
# (uv's lowest-direct resolution), in .venv-lowest: proves the dependency floors are real.
# Run by scripts/test.sh after the main suite (a subset; `all` for every test); it expects
# what test.sh set up (tools, Elasticsearch).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip install --quiet "uv>=0.4"
fi
stamp=.venv-lowest/.koala-installed
wanted=$(cat pyproject.toml setup.py matchers/*.c koala_store/*/*.c | sha1sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  rm -rf .venv-lowest
  .venv/bin/uv venv --quiet --python "$(.venv/bin/python -c 'import sys; print(sys.executable)')" .venv-lowest
  VIRTUAL_ENV=$PWD/.venv-lowest KOALA_PURE_PYTHON=1 .venv/bin/uv pip install --quiet --resolution lowest-direct -e '.[dev]'
  echo "$wanted" > "$stamp"
fi
echo "lowest allowed versions:" $(VIRTUAL_ENV=$PWD/.venv-lowest .venv/bin/uv pip freeze 2>/dev/null | grep -iE '^(typer|rich|orjson|msgspec|luqum|elasticsearch|deepdiff|rapidfuzz|lz4|jinja2|plotly|starlette|uvicorn|google-re2)==' | tr '\n' ' ')
# By default the tests that lean on each dependency's API (the CLI, formats, queries, both
# stores, the diff, matchers, reports, the ingest service); the whole suite with `all`.
if [ "${1:-}" = all ]; then
  shift
  set -- tests "$@"
elif [ $# = 0 ]; then
  set -- tests/test_cli.py tests/test_bad_input.py tests/test_replay_config.py tests/test_format_koala.py \
    tests/test_koala_go_writer.py tests/test_format_gor.py tests/test_format_replayer_ndjson.py tests/test_query.py \
    tests/test_query_limits.py tests/test_store_contract.py tests/test_elastic.py tests/test_diff_response.py \
    tests/test_diff_outbound.py tests/test_diff_properties.py tests/test_matchers_fuzzy.py tests/test_matchers_chunk.py \
    tests/test_matchers_sim.py tests/test_readable_output.py tests/test_kibana.py tests/test_serve.py tests/test_replay.py
fi
# The modules the main suite ran compiled by Cython run from their source here (see
# koala_store/_compiled.py): both forms of the same code are tested.
KOALA_PURE_PYTHON=1 .venv-lowest/bin/python -m pytest -q -p no:cacheprovider "$@"
