#!/usr/bin/env bash
# The README's second command: every test. Installs what is missing (cmake; the pinned Python
# venv for the end-to-end tests), then: formatting and lints, the Rust unit and integration
# tests (which run the real binary), the benches compiled and run once as tests, and the
# end-to-end tests against scim2-server with scim2-tester, and the console in headless Chromium.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/ensure-deps.sh >/dev/null
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --all-targets
scripts/test-e2e.sh
scripts/test-console.sh
