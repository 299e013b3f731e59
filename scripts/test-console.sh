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
# The same runner as the end-to-end tests, on the console's test file.
E2E_SUITE=test_console.py E2E_TIMEOUT=300 exec "$ROOT/scripts/test-e2e.sh" "$@"
