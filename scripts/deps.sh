#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the demo use, when
# run as root and one is missing (idempotent: nothing happens when all are
# there).  Not root: says what is missing and carries on; the tests that need
# a missing tool skip with a message.
set -euo pipefail

packages=(pkg-config iproute2 valgrind liburing-dev libnuma-dev libuv1-dev libibverbs-dev librdmacm-dev)

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for p in "${packages[@]}"; do
    installed "$p" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "deps: not installing ${missing[*]} (needs root and apt-get)" >&2
    exit 0
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists only when one of the packages is unknown to them.
for p in "${missing[@]}"; do
    if ! apt-cache show "$p" >/dev/null 2>&1; then
        apt-get update
        break
    fi
done
apt-get install -y --no-install-recommends "${missing[@]}"
