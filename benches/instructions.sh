#!/usr/bin/env bash
# The request path's cost per request, noise-proof: instructions (callgrind), and on request
# heap allocations (DHAT), context switches (/proc) and system calls (strace) — for the default
# bare Pingora passthrough (examples/passthrough.rs), the passthrough with the gate's knobs
# (`--no-modules`: no downstream modules), the same with the gate's upstream timeouts
# (`--timeouts`: Pingora's per-read timers) and the gate, GET and an Entra PATCH, against the same
# canned upstream. See benches/instructions.py for the method. TUNED_BIN: another passthrough
# for the tuned rows (e.g. examples/passthrough_tuned.rs, built with --features mimalloc).
#
#   benches/instructions.sh                       # build release binaries, run every variant
#   GATE_BIN=path/to/scim-gate benches/instructions.sh   # measure another build of the gate
#   BEFORE_BIN=path/to/old/scim-gate VARIANTS=gate_before_get,gate_get ...   # before and after
#   N=2000 WARMUP=200 VARIANTS=gate_get,gate_patch benches/instructions.sh
#   MEASURE=instructions,allocations,switches,syscalls benches/instructions.sh   # everything
#   VARIANTS=nginx_map_get,nginx_map_patch benches/instructions.sh   # nginx with a `map` (installs nginx)
#
# Prints `variant instructions_per_request` lines. Installs valgrind when missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
NEED_NGINX=""
case "${VARIANTS:-}" in *nginx*) NEED_NGINX=nginx ;; esac
for tool in valgrind strace $NEED_NGINX; do
    if ! command -v "$tool" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$tool" ]; then
        SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$tool"
    fi
done
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ -z "${GATE_BIN:-}" ]; then
    cargo build --quiet --release -p scim-gate --bin scim-gate --example passthrough
    GATE_BIN="$TARGET/release/scim-gate"
fi
PASSTHROUGH_BIN="${PASSTHROUGH_BIN:-$TARGET/release/examples/passthrough}"
TUNED_BIN="${TUNED_BIN:-$PASSTHROUGH_BIN}"
BEFORE=()
if [ -n "${BEFORE_BIN:-}" ]; then BEFORE=(--gate-before "$BEFORE_BIN"); fi
exec python3 "$ROOT/benches/instructions.py" --gate "$GATE_BIN" --passthrough "$PASSTHROUGH_BIN" "${BEFORE[@]}" \
    --passthrough-tuned "$TUNED_BIN" --n "${N:-2000}" --warmup "${WARMUP:-200}" \
    --measure "${MEASURE:-instructions}" \
    --variants "${VARIANTS:-passthrough_get,passthrough_patch,tuned_passthrough_get,tuned_passthrough_patch,timed_passthrough_get,timed_passthrough_patch,gate_get,gate_patch}"
