#!/usr/bin/env bash
# The README's second command: every test. Installs what is missing (cmake, protoc, etcd; the
# pinned Python venv for the end-to-end tests), then: formatting and lints, the Rust unit and
# integration tests (which run the real binary, and real etcd for cluster mode), the cluster
# demo script, the benches compiled and run once as tests, and the
# end-to-end tests against scim2-server with scim2-tester, and the console in headless Chromium.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/ensure-deps.sh >/dev/null
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --all-targets
# The cluster demo, non-interactively, on the test build: etcd + three replicas, a refresh
# through one, the old secret refused and the new one accepted on all three.
SCIM_GATE_BIN="$PWD/target/debug/scim-gate" scripts/cluster-demo.sh --check
scripts/test-e2e.sh
scripts/test-console.sh
