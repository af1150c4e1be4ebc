#!/usr/bin/env bash
# Real third-party tools the tests run against, installed into .cache/tools (not committed):
#   goreplay 1.3.2 (Go module proxy; needs libpcap's headers from Debian's packages);
#   Debian's packages: chromium (the HTML report's browser tests), redis-server and
#   mariadb-server (recording and replaying services with those dependencies), php-fpm
#   (FastCGI sessions replayed against a real PHP-FPM), valgrind (bench/bench_instructions.py,
#   run at a tiny size by tests/test_bench_smoke.py).
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

# Real programs the tests run, from Debian's packages, when missing and we may install them
# (Playwright drives Debian's chromium and never downloads a browser of its own).
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing="$missing redis-server"
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing="$missing mariadb-server"
command -v php-fpm8.2 >/dev/null 2>&1 || command -v php-fpm >/dev/null 2>&1 || [ -x /usr/sbin/php-fpm8.2 ] || missing="$missing php-fpm"
command -v valgrind >/dev/null 2>&1 || missing="$missing valgrind"
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
