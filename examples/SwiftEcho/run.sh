#!/usr/bin/env bash
# Builds the SwiftEcho sample package (a downstream package that depends on
# evpl by path) and runs its echo exchange; exits non-zero if it fails.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
swift="${SWIFT:-swift}"
# Its own build folder (ignored by git), so it never waits on the main .build.
scratch="$here/../../.build-swiftecho"
"$swift" build --package-path "$here" --scratch-path "$scratch"
bin="$("$swift" build --package-path "$here" --scratch-path "$scratch" --show-bin-path)"
"$bin/SwiftEcho"
