#!/usr/bin/env bash
# The demo, end to end on the embedded SQLite store: a small shop service recorded for real
# (examples/demo/recording: 25 sessions with Redis and HTTP calls) is replayed against its
# unchanged build (0 differences) and against a build with four regressions (each shown).
# At replay nothing real answers the service's outbound calls: the mock does, from the recording.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/python -m pip install --quiet -r examples/demo/requirements.txt

koala=.venv/bin/koala
work=$(mktemp -d)
export KOALA_STORE="sqlite:///$work/koala.db"
port=28080 redis=26379 downstream=28081
service_pid=""
stop_service() { if [ -n "$service_pid" ]; then kill "$service_pid" 2>/dev/null || true; wait "$service_pid" 2>/dev/null || true; service_pid=""; fi; }
trap stop_service EXIT

start_service() {  # build: v1 or v2; its Redis and downstream are the mock's listeners
  .venv/bin/python examples/demo/service.py --port $port --build "$1" \
    --redis 127.0.0.1:$redis --downstream http://127.0.0.1:$downstream &
  service_pid=$!
  for _ in $(seq 1 50); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && return 0
    sleep 0.1
  done
  echo "the demo service did not start" >&2
  exit 1
}

replay() {  # run name; exit code 3 means some sessions differ, which the v2 replay should show
  $koala replay '*' --target 127.0.0.1:$port --run-name "$1" \
    --outbound 127.0.0.1:$redis=127.0.0.1:16379 \
    --outbound 127.0.0.1:$downstream=127.0.0.1:18081 || [ $? -eq 3 ]
}

echo "== the recording: sessions of the shop service, recorded with real Redis"
$koala ingest examples/demo/recording
$koala sessions search 'outbound.protocol:redis AND inbound.method:POST'
echo
echo "== replay against the unchanged build (v1): expect 0 differences"
start_service v1
replay demo-v1
stop_service
echo
echo "== replay against the changed build (v2): expect a missing field, a changed value,"
echo "   a lost write to Redis and a changed status"
start_service v2
replay demo-v2
stop_service
echo
echo "store: $KOALA_STORE (try: $koala runs list --store $KOALA_STORE)"
