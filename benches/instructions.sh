#!/usr/bin/env bash
# Instructions per request (callgrind), the noise-proof measure of the request path's cost:
# the bare Pingora passthrough (examples/passthrough.rs) and the gate, GET and an Entra PATCH,
# against the same canned upstream. See benches/instructions.py for the method.
#
#   benches/instructions.sh                       # build release binaries, run every variant
#   GATE_BIN=path/to/scim-gate benches/instructions.sh   # measure another build of the gate
#   N=2000 WARMUP=200 VARIANTS=gate_get,gate_patch benches/instructions.sh
#
# Prints `variant instructions_per_request` lines. Installs valgrind when missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if ! command -v valgrind >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind
fi
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ -z "${GATE_BIN:-}" ]; then
    cargo build --quiet --release -p scim-gate --bin scim-gate --example passthrough
    GATE_BIN="$TARGET/release/scim-gate"
fi
PASSTHROUGH_BIN="${PASSTHROUGH_BIN:-$TARGET/release/examples/passthrough}"
exec python3 "$ROOT/benches/instructions.py" --gate "$GATE_BIN" --passthrough "$PASSTHROUGH_BIN" \
    --n "${N:-2000}" --warmup "${WARMUP:-200}" \
    --variants "${VARIANTS:-passthrough_get,passthrough_patch,gate_get,gate_patch}"
