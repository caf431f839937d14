#!/usr/bin/env bash
# ctests/run_rdma.sh [BINDIR]
#
# The RDMA transports on a machine with an RDMA device (make ctests-rdma).
# EVPL_TEST_RDMA_ADDR names a local address of an RDMA-capable interface
# (RoCE, iWARP, rxe/siw over an ethernet device; RDMA cannot use loopback);
# without it this prints one line saying it skipped and exits 0.  With it,
# the C tests already built in BINDIR (default build/ctests) run with
# `-r PROTO` and EVPL_TEST_ADDR set to that address (ctests/net.h: the
# evpl-to-evpl tests listen and connect there instead of 127.0.0.1):
#   STREAM_RDMACM_RC    the stream tests that talk evpl to evpl only (no
#                       plain sockets): echo, bulk, 200 connections,
#                       refused connects, bad input, allocations per message;
#   DATAGRAM_RDMACM_RC  connection-oriented: refused connects, and
#                       test_msg_datagram (listen/connect with no segment
#                       callback, messages of 1..65536 bytes each arriving as
#                       one RECV_MSG, echoed; evpl_finish);
#   DATAGRAM_RDMACM_UD  connectionless: test_msg_datagram (binds on port 0,
#                       sendtoep/sendto/sendtov/sendtoepv of 1..1024-byte
#                       datagrams, echoed to recv_msg.addr; evpl_close).
# Here a run that skips because the protocol is unavailable FAILS: the
# address promised a device.  Other skips are reported, not counted as passes.
#
# One line per run (PASS/FAIL/SKIP NAME[PROTO]), then
# "N passed, N failed, N skipped"; exits 1 if any failed.
#
# Environment: EVPL_TEST_RDMA_ADDR (see above), EVPL_TEST_TIMEOUT (seconds
# per run, default 120), EVPL_TEST_WRAPPER (a command put in front of each test).
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bindir=${1:-build/ctests}
limit=${EVPL_TEST_TIMEOUT:-120}
wrapper=${EVPL_TEST_WRAPPER:-}
addr=${EVPL_TEST_RDMA_ADDR:-}

if [ -z "$addr" ]; then
    echo "run_rdma: skipped: EVPL_TEST_RDMA_ADDR is not set (no RDMA device here)"
    exit 0
fi
if [ ! -d "$bindir" ]; then
    echo "run_rdma.sh: no test directory $bindir (build the tests first: make ctests-build)" >&2
    exit 2
fi
if command -v ip >/dev/null 2>&1 && ! ip -o addr show 2>/dev/null | grep -qF " $addr/"; then
    echo "note: $addr is not an address of any interface here; the runs will likely fail"
fi
echo "run_rdma: RDMA tests over $addr"

# PROTO: tests (see above).
suite_STREAM_RDMACM_RC="test_tcp_echo test_tcp_bulk test_tcp_many test_tcp_refused test_bind_errors test_alloc_count"
suite_DATAGRAM_RDMACM_RC="test_tcp_refused test_msg_datagram"
suite_DATAGRAM_RDMACM_UD="test_msg_datagram"

passed=0 failed=0 skipped=0 unavailable=0

# report LABEL LOG RC
report() {
    local label=$1 log=$2 rc=$3
    case $rc in
    0)
        echo "PASS $label"
        passed=$((passed + 1))
        ;;
    77)
        local why
        why=$(grep -E 'SKIP' "$log" | tail -n 1 | sed -E 's/^.*SKIP:? *//')
        if [[ $why == *"not available"* ]]; then
            echo "FAIL $label (the protocol is unavailable although EVPL_TEST_RDMA_ADDR is set: ${why})"
            grep -E 'unavailable' "$log" | tail -n 3 | sed 's/^/    | /'
            failed=$((failed + 1))
            unavailable=$((unavailable + 1))
        else
            echo "SKIP $label (${why:-no reason given})"
            skipped=$((skipped + 1))
        fi
        ;;
    *)
        if [ "$rc" -eq 124 ]; then
            echo "FAIL $label (timed out after ${limit}s)"
        else
            echo "FAIL $label (exit status $rc)"
        fi
        tail -n 25 "$log" | sed 's/^/    | /'
        failed=$((failed + 1))
        ;;
    esac
}

for proto in STREAM_RDMACM_RC DATAGRAM_RDMACM_RC DATAGRAM_RDMACM_UD; do
    suite_var=suite_$proto
    tests=${!suite_var}
    if [ -z "$tests" ]; then
        echo "SKIP [$proto] (no C test runs over it yet)"
        skipped=$((skipped + 1))
        continue
    fi
    for name in $tests; do
        bin=$bindir/$name
        label="$name[$proto]"
        log=$bindir/$name.$proto.log
        if [ ! -x "$bin" ]; then
            echo "FAIL $label (no binary $bin)"
            failed=$((failed + 1))
            continue
        fi
        # shellcheck disable=SC2086 # the wrapper is a command line
        EVPL_TEST_ADDR=$addr timeout "$limit" $wrapper "$bin" -r "$proto" >"$log" 2>&1
        report "$label" "$log" $?
    done
done

if [ "$unavailable" -gt 0 ]; then
    echo "run_rdma: $unavailable run(s) found the RDMA protocols unavailable: is there an RDMA device" \
        "(ls /sys/class/infiniband) and does $addr belong to it?"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
