#!/usr/bin/env bash
# The console's browser tests: scim2-server, the real gate, the real `scim-gate console`, and
# Debian's Chromium driven by Playwright (tests/e2e/test_console.py). ensure-deps.sh installs
# chromium, fonts-dejavu-core and the pinned venv when missing.
#   scripts/test-console.sh [pytest args…]
# Env: SCIM_GATE_BIN (default target/debug/scim-gate, built here), CONSOLE_SCREENSHOTS (default
#      target/console-screenshots: one PNG per view), CONSOLE_UPDATE_DOCS=1 (also rewrite
#      docs/console.png), E2E_KEEP=1 (keep the temp dir with configs and logs).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$("$ROOT/scripts/ensure-deps.sh" | tail -n 1)"
cd "$ROOT"
export PYTHONDONTWRITEBYTECODE=1
if [ -z "${SCIM_GATE_BIN:-}" ]; then
    cargo build --quiet --bin scim-gate
    SCIM_GATE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/scim-gate"
fi
export SCIM_GATE_BIN
set +e
timeout --kill-after=30 300 "$PY" -m pytest -s -v -p no:cacheprovider "$ROOT/tests/e2e/test_console.py" "$@"
status=$?
set -e
exit "$status"
