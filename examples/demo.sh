#!/usr/bin/env bash
# examples/demo.sh: install evpl, build the examples against the install the
# way a user would (pkg-config), and run them.  `make run` runs it from the
# repository root once the library is built.
#
#   1. make install PREFIX=build/prefix
#   2. build examples/*.c into build/examples with pkg-config; -rpath makes
#      them find build/prefix/lib/libevpl.so.0 without LD_LIBRARY_PATH
#   3. echo_server -n 2 on 127.0.0.1 and a free port, in the background
#   4. echo_client twice: 1000 x 64 B, then 100 x 64 KiB
#   5. the server exits by itself after those two connections
#   6. udp_echo
#
# Exits non-zero on the first failure, after showing the relevant output.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PREFIX=$ROOT/build/prefix
OUT=$ROOT/build/examples
SERVER_LOG=$OUT/echo_server.log
WAIT_S=5        # for the server to start listening, and to exit

say() { printf 'evpl demo: %s\n' "$*"; }
fail() { printf 'evpl demo: FAILED: %s\n' "$*" >&2; exit 1; }
indent() { sed 's/^/    /'; }

# The background server, killed on any exit.
server_pid=
cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT     # so that the EXIT trap also runs on Ctrl-C
trap 'exit 143' TERM

# ---- 1. install ------------------------------------------------------------
mkdir -p "$OUT"
if ! make --no-print-directory install PREFIX="$PREFIX" >"$OUT/install.log" 2>&1; then
    indent <"$OUT/install.log" >&2
    fail "make install PREFIX=$PREFIX"
fi
say "installed into ${PREFIX#"$ROOT"/}"

# ---- 2. build, with the installed library only -----------------------------
if ! make --no-print-directory -s -C examples OUT="$OUT" \
        PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig" >"$OUT/build.log" 2>&1; then
    indent <"$OUT/build.log" >&2
    fail "building the examples"
fi
unset LD_LIBRARY_PATH
lib=$(ldd "$OUT/echo_server" | awk '$1 == "libevpl.so.0" { print $3 }')
[[ $lib == "$PREFIX/lib/libevpl.so.0" ]] ||
    fail "echo_server loads libevpl.so.0 from '${lib:-nowhere}', not $PREFIX/lib"
say "built echo_server, echo_client, udp_echo in ${OUT#"$ROOT"/} (libevpl.so.0 from ${lib#"$ROOT"/})"

# ---- 3. start the server on a free port ------------------------------------
# A listener cannot report a kernel-picked port, so try random high ports
# until one is free: the server exits at once when it cannot listen.
start_server() {
    local port=$1
    "$OUT/echo_server" -a 127.0.0.1 -p "$port" -n 2 >"$SERVER_LOG" 2>&1 &
    server_pid=$!
    for _ in $(seq $((WAIT_S * 10))); do
        grep -q '^listening on ' "$SERVER_LOG" && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    cleanup
    server_pid=
    return 1
}

port=
for _ in 1 2 3 4 5; do
    candidate=$((20000 + RANDOM % 40000))
    if start_server "$candidate"; then
        port=$candidate
        break
    fi
done
if [[ -z $port ]]; then
    indent <"$SERVER_LOG" >&2
    fail "echo_server did not start listening"
fi
say "echo_server $(head -n 1 "$SERVER_LOG")"

# ---- 4. two clients ----------------------------------------------------------
run_client() {  # MESSAGES SIZE LABEL
    local out
    if ! out=$(timeout 30 "$OUT/echo_client" -a 127.0.0.1 -p "$port" -m "$1" -s "$2" 2>&1); then
        indent <<<"$out" >&2
        fail "TCP echo $3"
    fi
    say "TCP echo $3 ... ok"
    indent <<<"$out"
}
run_client 1000 64 "1000 x 64 B"
run_client 100 65536 "100 x 64 KiB"

# ---- 5. the server ends after its two connections ----------------------------
for _ in $(seq $((WAIT_S * 10))); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$server_pid" 2>/dev/null; then
    indent <"$SERVER_LOG" >&2
    fail "echo_server still running ${WAIT_S} s after its last client"
fi
status=0
wait "$server_pid" || status=$?
server_pid=
if ((status != 0)); then
    indent <"$SERVER_LOG" >&2
    fail "echo_server exited with status $status"
fi
connected=$(grep -c '^CONNECTED ' "$SERVER_LOG" || true)
disconnected=$(grep -c '^DISCONNECTED .*, ok)$' "$SERVER_LOG" || true)
if ((connected != 2 || disconnected != 2)); then
    indent <"$SERVER_LOG" >&2
    fail "echo_server saw $connected connections and $disconnected clean disconnects, not 2 and 2"
fi
say "echo_server exited after 2 connections ... ok"
tail -n +2 "$SERVER_LOG" | indent

# ---- 6. UDP ------------------------------------------------------------------
if ! out=$(timeout 30 "$OUT/udp_echo" 2>&1); then
    indent <<<"$out" >&2
    fail "UDP echo"
fi
say "UDP echo 100 datagrams ... ok"
indent <<<"$out"

say "all ok"
