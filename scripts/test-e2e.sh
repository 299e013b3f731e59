#!/usr/bin/env bash
# End-to-end tests: the real scim-gate binary in front of a real SCIM directory (scim2-server),
# checked with the real conformance suite (scim2-tester). See tests/e2e/run_e2e.py.
#   scripts/test-e2e.sh [pytest args…]        e.g. -k wrong_token
# Env: SCIM_GATE_BIN (default target/debug/scim-gate; this script does not build it),
#      E2E_KEEP=1 keeps the temp dir with configs and logs, E2E_TEST_TIMEOUT (s, per test),
#      E2E_SUITE (default run_e2e.py: the file under tests/e2e/ to run; scripts/test-console.sh
#      runs test_console.py), E2E_TIMEOUT (s, the whole run; default 1200).
# Exit status: the tests' status.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$("$ROOT/scripts/ensure-deps.sh" | tail -n 1)"
cd "$ROOT"
export PYTHONDONTWRITEBYTECODE=1
if [ -z "${SCIM_GATE_BIN:-}" ]; then
    # The binary the Rust tests built, asked for with the very same command: a plain
    # `cargo build --bin` resolves features without the dev-dependencies and so rebuilds the whole
    # dependency tree a second time (twice the disk; CI ran out of it). Honour CARGO_TARGET_DIR.
    cargo test --quiet --workspace --all-targets --no-run
    SCIM_GATE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/scim-gate"
fi
export SCIM_GATE_BIN
set +e
timeout --kill-after=30 "${E2E_TIMEOUT:-1200}" "$PY" -m pytest -s -v -p no:cacheprovider \
    "$ROOT/tests/e2e/${E2E_SUITE:-run_e2e.py}" "$@"
status=$?
set -e
exit "$status"
