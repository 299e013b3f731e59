#!/usr/bin/env bash
# The README's first command: builds scim-gate (installing cmake for Pingora's zlib-ng and
# protoc for the etcd client when they are missing) and runs `scim-gate demo` — the gate in
# front of an in-memory demo directory.
# Extra arguments go to `scim-gate demo` (e.g. --port 8081).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/ensure-deps.sh --build
cargo build --release -p scim-gate --bin scim-gate
exec target/release/scim-gate demo "$@"
