#!/usr/bin/env bash
# examples/evperf-demo.sh: build evperf (release) and run a short loopback
# demo: TCP round trips, a TCP bulk stream and a UDP message rate, about two
# seconds each, each printing its table. `make run` runs it after demo.sh.
#
# Exits non-zero on the first run that fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
SWIFT=${SWIFT:-swift}
SECS=${SECS:-2}

say() { printf 'evperf demo: %s\n' "$*"; }

say "building evperf (release)"
$SWIFT build -c release --product evperf
EVPERF="$($SWIFT build -c release --show-bin-path)/evperf"

run() {
    say "evperf $*"
    "$EVPERF" "$@" -d "$SECS" || { say "FAILED: evperf $*" >&2; exit 1; }
    echo
}

run pingpong -r STREAM_SOCKET_TCP
run stream -r STREAM_SOCKET_TCP
run rate -r DATAGRAM_SOCKET_UDP
say "done (evperf --help lists every test and option)"
