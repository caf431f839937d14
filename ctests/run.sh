#!/usr/bin/env bash
# ctests/run.sh [BINDIR]
#
# Runs every BINDIR/test_* program (default: build/ctests) that has a source
# ctests/NAME.c, from the repository root, one at a time, each under
# `timeout`, and reports one line per run:
#   PASS NAME | SKIP NAME (reason) | FAIL NAME, followed by the log's tail.
# Exit status of a test: 0 passed, 77 skipped (the harness prints "SKIP: why"),
# anything else failed.  A test whose source ctests/NAME.c holds a line
#   /* protocols: STREAM_SOCKET_TCP STREAM_IO_URING_TCP */
# runs once per protocol with `-r PROTO`, reported as NAME[PROTO].
# Ends with "N passed, N failed, N skipped"; exits 1 if any failed.
#
# Environment:
#   EVPL_TEST_TIMEOUT  seconds per run (default 120)
#   EVPL_TEST_WRAPPER  command put in front of each test (e.g. valgrind ...)
#   EVPL_TEST_SKIP     space-separated test names not to run (reported SKIP)
#   EVPL_TEST_LOGDIR   where NAME.log files go (default: BINDIR)
#   EVPL_TEST_ONLY     regex: run only tests whose name matches
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bindir=${1:-build/ctests}
logdir=${EVPL_TEST_LOGDIR:-$bindir}
limit=${EVPL_TEST_TIMEOUT:-120}
wrapper=${EVPL_TEST_WRAPPER:-}
skiplist=" ${EVPL_TEST_SKIP:-} "
only=${EVPL_TEST_ONLY:-.}

if [ ! -d "$bindir" ]; then
    echo "run.sh: no test directory $bindir (build the tests first: make ctests)" >&2
    exit 2
fi
mkdir -p "$logdir"

passed=0 failed=0 skipped=0

# run_one LABEL LOG BIN ARGS...
run_one() {
    local label=$1 log=$2
    shift 2
    # shellcheck disable=SC2086 # the wrapper is a command line
    timeout "$limit" $wrapper "$@" >"$log" 2>&1
    local rc=$?
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
        if [ $rc -eq 124 ]; then
            echo "FAIL $label (timed out after ${limit}s)"
        elif [ $rc -eq 9 ] && [[ $wrapper == *valgrind* ]]; then
            echo "FAIL $label (valgrind found errors)"
        else
            echo "FAIL $label (exit status $rc)"
        fi
        tail -n 25 "$log" | sed 's/^/    | /'
        failed=$((failed + 1))
        ;;
    esac
}

for bin in "$bindir"/test_*; do
    [ -f "$bin" ] && [ -x "$bin" ] || continue
    name=$(basename "$bin")
    [ -f "ctests/$name.c" ] || continue          # a stale binary: its source is gone
    [[ $name =~ $only ]] || continue
    if [[ $skiplist == *" $name "* ]]; then
        echo "SKIP $name (listed in EVPL_TEST_SKIP)"
        skipped=$((skipped + 1))
        continue
    fi
    protos=$(sed -nE 's|^[[:space:]]*/\*[[:space:]]*protocols:[[:space:]]*(.*[^[:space:]])[[:space:]]*\*/.*$|\1|p' \
        "ctests/$name.c" | head -n 1)
    if [ -z "$protos" ]; then
        run_one "$name" "$logdir/$name.log" "$bin"
    else
        for proto in $protos; do
            run_one "$name[$proto]" "$logdir/$name.$proto.log" "$bin" -r "$proto"
        done
    fi
done

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
