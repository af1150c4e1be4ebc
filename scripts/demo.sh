#!/usr/bin/env bash
# The end-to-end demo on the embedded SQLite store: set up, ingest recorded sessions,
# query them, show one, export them for GoReplay.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
koala=.venv/bin/koala
work=$(mktemp -d)
export KOALA_STORE="sqlite:///$work/koala.db"

echo "== ingest a Koala recording (examples/sessions) into $KOALA_STORE"
$koala ingest examples/sessions
echo
echo "== sessions that called MySQL and answered 2xx"
$koala sessions search 'outbound.protocol:mysql AND inbound.status:[200 TO 299]'
echo
echo "== one session, readable"
$koala sessions show 1548160113499755162-1158745
echo
echo "== export it as a GoReplay file"
$koala sessions export '*' --format gor -o "$work/traffic.gor"
head -c 300 "$work/traffic.gor"; echo
echo
echo "demo store and files are in $work"
