#!/bin/sh
# netns_echo.sh BIN [ARGS...]
#
# Runs `BIN --server` in one network namespace and `BIN --client` in another,
# the two joined by a veth pair (10.199.0.1/30 <-> 10.199.0.2/30), and always
# deletes both namespaces on exit.  ARGS (e.g. `-r STREAM_SOCKET_TCP`) go to
# both.  Exit status: 0 when both sides pass, 77 when this machine cannot do
# it (not root, no `ip`, no netns or veth support), 1 otherwise.
# Called by ctests/test_tcp_netns with its own path as BIN.

BIN=$1
if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then
    echo "usage: $0 BIN [ARGS...]" >&2
    exit 2
fi
shift

skip() {
    echo "SKIP: needs root and ip netns${1:+ ($1)}" >&2
    exit 77
}

[ "$(id -u)" = 0 ] || skip "not root"
command -v ip >/dev/null 2>&1 || skip "no ip command"

NA=evplt_a_$$
NB=evplt_b_$$
VA=evta$$
VB=evtb$$
PORT=7777
SPID=

cleanup() {
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null
    ip link del "$VA" 2>/dev/null
    ip netns del "$NA" 2>/dev/null
    ip netns del "$NB" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

ip netns add "$NA" 2>/dev/null || skip "ip netns add failed"
ip netns add "$NB" 2>/dev/null || skip "ip netns add failed"
ip netns exec "$NA" true 2>/dev/null || skip "ip netns exec failed"
ip link add "$VA" type veth peer name "$VB" 2>/dev/null || skip "cannot create a veth pair"
ip link set "$VA" netns "$NA" && ip link set "$VB" netns "$NB" || skip "cannot move veth into a netns"

if ! { ip -n "$NA" link set lo up &&
       ip -n "$NB" link set lo up &&
       ip -n "$NA" addr add 10.199.0.1/30 dev "$VA" &&
       ip -n "$NB" addr add 10.199.0.2/30 dev "$VB" &&
       ip -n "$NA" link set "$VA" up &&
       ip -n "$NB" link set "$VB" up; }; then
    echo "netns_echo: network setup failed" >&2
    exit 1
fi

TO=
command -v timeout >/dev/null 2>&1 && TO="timeout 45"

ip netns exec "$NA" $TO "$BIN" --server 10.199.0.1 "$PORT" 10.199.0.2 "$@" &
SPID=$!
ip netns exec "$NB" $TO "$BIN" --client 10.199.0.1 "$PORT" 10.199.0.2 "$@"
CRC=$?
if [ "$CRC" -ne 0 ]; then
    kill "$SPID" 2>/dev/null
fi
wait "$SPID"
SRC=$?
SPID=

echo "netns_echo: client exit $CRC, server exit $SRC" >&2
if [ "$CRC" -eq 77 ] || [ "$SRC" -eq 77 ]; then
    exit 77
fi
if [ "$CRC" -eq 0 ] && [ "$SRC" -eq 0 ]; then
    exit 0
fi
exit 1
