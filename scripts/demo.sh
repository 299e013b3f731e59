#!/usr/bin/env bash
# The README's first command: builds scim-gate (installing cmake for Pingora's zlib-ng when it
# is missing) and runs `scim-gate demo` — the gate in front of an in-memory demo directory.
# Extra arguments go to `scim-gate demo` (e.g. --port 8081).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v cmake >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "demo: installing cmake (Pingora's zlib-ng needs it)" >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cmake
fi
cargo build --release -p scim-gate --bin scim-gate
exec target/release/scim-gate demo "$@"
