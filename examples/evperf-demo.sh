#!/usr/bin/env bash
# examples/evperf-demo.sh: build evperf (release) and run a short loopback
# demo: TCP round trips, a TCP bulk stream and a UDP message rate, about two
# seconds each, each printing its table. `make run` runs it after demo.sh.
# FULL=1 (used by `make bench`) runs the full set instead: every test over
# TCP and io_uring TCP, and the datagram tests over UDP.
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

if [ "${FULL:-0}" = 1 ]; then
    for proto in STREAM_SOCKET_TCP STREAM_IO_URING_TCP; do
        for test in pingpong stream rate conns; do
            run "$test" -r "$proto"
        done
    done
    run pingpong -r DATAGRAM_SOCKET_UDP
    run rate -r DATAGRAM_SOCKET_UDP
else
    run pingpong -r STREAM_SOCKET_TCP
    run stream -r STREAM_SOCKET_TCP
    run rate -r DATAGRAM_SOCKET_UDP
fi
say "done (evperf --help lists every test and option)"
