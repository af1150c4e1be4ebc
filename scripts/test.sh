#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then run all of them:
# the venv, real third-party tools, and a real local Elasticsearch on port 19200; then the
# lowest-versions job (scripts/test-lowest.sh) and the sanitizer job (scripts/test-asan.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/tools.sh

es_port=${KOALA_TEST_ES_PORT:-19200}
started_es=0
if ! .venv/bin/koala es status --port "$es_port" >/dev/null 2>&1; then
  .venv/bin/koala es start --port "$es_port" >/dev/null
  started_es=1
fi
stop_es() { if [ "$started_es" = 1 ]; then .venv/bin/koala es stop --port "$es_port" >/dev/null 2>&1 || true; fi; }
trap stop_es EXIT
export KOALA_TEST_ES_URL="http://127.0.0.1:$es_port"

.venv/bin/python -m pytest -q "$@"
# The whole run (no arguments) also proves the dependency floors (tests that lean on each
# dependency's API, against the lowest versions pyproject.toml allows) and runs the tests of
# the compiled parts again with them built under AddressSanitizer and UBSan.
if [ $# = 0 ]; then
  ./scripts/test-lowest.sh
  ./scripts/test-asan.sh
fi
