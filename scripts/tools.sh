#!/usr/bin/env bash
# Real third-party tools the tests run against, installed into .cache/tools (not committed):
#   goreplay 1.3.2 (Go module proxy; needs libpcap's headers from Debian's packages);
#   chromium (Debian's package) for the HTML report's browser tests.
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

# Headless Chromium for the HTML report tests (Debian's package; Playwright drives it and
# never downloads a browser of its own). Without root and apt those tests skip.
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 ||
    (apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1) ||
    echo "tools: chromium did not install; the HTML report's browser tests will skip" >&2
fi
exit 0
