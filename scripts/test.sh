#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then run all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/tools.sh
exec .venv/bin/python -m pytest -q "$@"
