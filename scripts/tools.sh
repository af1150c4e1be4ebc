#!/usr/bin/env bash
# Real third-party tools the tests run against, installed into .cache/tools (not committed):
#   goreplay 1.3.2 (Go module proxy; needs libpcap's headers from Debian's packages);
#   redis-server and mariadb-server (Debian's packages) for the recording tests.
# Prints nothing on success; a tool that cannot be installed is reported and its tests skip.
set -uo pipefail
cd "$(dirname "$0")/.."
tools=$PWD/.cache/tools
mkdir -p "$tools/bin"

if [ ! -x "$tools/bin/goreplay" ]; then
  if ! [ -f /usr/include/pcap.h ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q libpcap-dev >/dev/null 2>&1 ||
      (apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q libpcap-dev >/dev/null 2>&1)
  fi
  if command -v go >/dev/null && [ -f /usr/include/pcap.h ]; then
    GOPATH=$tools/go GOBIN=$tools/bin GOFLAGS=-mod=mod go install github.com/buger/goreplay@v1.3.2 >"$tools/goreplay-install.log" 2>&1 ||
      echo "tools: goreplay did not build (see $tools/goreplay-install.log); its tests will skip" >&2
  else
    echo "tools: goreplay needs Go and libpcap-dev; its tests will skip" >&2
  fi
fi
# Real dependencies the recording tests run (koala record in front of a service using Redis,
# and one using MySQL): Debian's packages, when missing and we may install them.
missing=""
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing="$missing redis-server"
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing="$missing mariadb-server"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null 2>&1 ||
      (apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null 2>&1) ||
      echo "tools:$missing did not install; their tests will skip" >&2
  else
    echo "tools:$missing missing (install Debian's packages as root); their tests will skip" >&2
  fi
fi
exit 0
