#!/usr/bin/env bash
# ctests/run_xlio.sh [BINDIR]
#
# STREAM_XLIO_TCP without XLIO hardware (issue 10): runs the stream C tests
# (already built in BINDIR, default build/ctests) with `-r STREAM_XLIO_TCP`
# and EVPL_XLIO_LIBRARY pointing at BINDIR/libxlio-standin.so, a stand-in
# that exports XLIO's POSIX entry points and forwards them to the kernel
# (ctests/xlio_standin.c).  Each run must pass (a SKIP is reported, not
# counted as a pass) and its log must show that the stand-in carried the
# traffic.  Then test_xlio_unavailable runs with EVPL_XLIO_LIBRARY unset,
# where the loader finds no libxlio.so (the negative case without the
# variable; ctests/run.sh already ran it with a path naming nothing).
#
# One line per run (PASS/FAIL/SKIP NAME[STREAM_XLIO_TCP]), then
# "N passed, N failed, N skipped"; exits 1 if any failed.
#
# Environment: EVPL_TEST_TIMEOUT (seconds per run, default 120),
# EVPL_TEST_WRAPPER (a command put in front of each test).
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bindir=${1:-build/ctests}
limit=${EVPL_TEST_TIMEOUT:-120}
wrapper=${EVPL_TEST_WRAPPER:-}
standin=$root/$bindir/libxlio-standin.so
[[ $bindir == /* ]] && standin=$bindir/libxlio-standin.so

# Every C test that runs over STREAM_SOCKET_TCP (its "protocols:" line) is the TCP suite.
tests=$(grep -l '/\* protocols:.*STREAM_SOCKET_TCP' ctests/test_*.c | xargs -n1 basename | sed 's/\.c$//')

if [ ! -f "$standin" ]; then
    echo "run_xlio.sh: no $standin (build the tests first: make ctests)" >&2
    exit 2
fi

passed=0 failed=0 skipped=0

# report LABEL LOG RC [CHECK_STANDIN]
report() {
    local label=$1 log=$2 rc=$3 check=${4:-}
    if [ "$rc" -eq 0 ] && [ -n "$check" ] && ! grep -qE '^xlio-standin: sockets=[1-9]' "$log"; then
        echo "FAIL $label (passed, but no socket went through the stand-in library)"
        tail -n 25 "$log" | sed 's/^/    | /'
        failed=$((failed + 1))
        return
    fi
    case $rc in
    0)
        echo "PASS $label"
        passed=$((passed + 1))
        ;;
    77)
        local why
        why=$(grep -E 'SKIP' "$log" | tail -n 1 | sed -E 's/^.*SKIP:? *//')
        echo "SKIP $label (${why:-no reason given})"
        skipped=$((skipped + 1))
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

for name in $tests; do
    bin=$bindir/$name
    label="$name[STREAM_XLIO_TCP]"
    log=$bindir/$name.STREAM_XLIO_TCP.log
    if [ ! -x "$bin" ]; then
        echo "FAIL $label (no binary $bin)"
        failed=$((failed + 1))
        continue
    fi
    # shellcheck disable=SC2086 # the wrapper is a command line
    EVPL_XLIO_LIBRARY=$standin EVPL_XLIO_STANDIN_STATS=1 \
        timeout "$limit" $wrapper "$bin" -r STREAM_XLIO_TCP >"$log" 2>&1
    report "$label" "$log" $? check
done

# The negative case with the variable unset: only meaningful where the
# loader cannot find a libxlio.so.
label="test_xlio_unavailable[EVPL_XLIO_LIBRARY unset]"
log=$bindir/test_xlio_unavailable.unset.log
if /sbin/ldconfig -p 2>/dev/null | grep -q 'libxlio\.so '; then
    echo "SKIP $label (this machine has a libxlio.so)"
    skipped=$((skipped + 1))
else
    # shellcheck disable=SC2086
    env -u EVPL_XLIO_LIBRARY timeout "$limit" $wrapper "$bindir/test_xlio_unavailable" --env-as-is >"$log" 2>&1
    report "$label" "$log" $?
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
