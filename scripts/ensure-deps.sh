#!/usr/bin/env bash
# Installs what the build and the tests need, idempotently, through apt-get when missing:
#   - cmake (Pingora's build needs it);
#   - protoc and the well-known protos (Debian protobuf-compiler + libprotobuf-dev): the etcd
#     client's build compiles etcd's protos (protobuf-compiler alone fails on descriptor.proto);
#   - etcd (Debian etcd-server): the cluster tests run real etcd members on their own ports;
#   - chromium and fonts-dejavu-core (the console's browser tests, tests/e2e/test_console.py:
#     Playwright drives Debian's /usr/bin/chromium, never a downloaded browser), apt-get too;
#   - python3 >= 3.11 with venv/ensurepip (apt-get install python3-venv when missing);
#   - a virtualenv at .venv-e2e/ (repo root) holding exactly tests/e2e/requirements.txt
#     (every package pinned with ==: scim2-server, scim2-tester, playwright, their deps, pytest).
# The venv is reused while requirements.txt and the Python version are unchanged: their hash
# is stored in .venv-e2e/.requirements.sha256. The venv carries its own .gitignore ("*").
#
# Usage: scripts/ensure-deps.sh           everything (prints the venv's python path last)
#        scripts/ensure-deps.sh --build   only what `cargo build` needs (cmake, protoc)
#        scripts/ensure-deps.sh --cluster  that and etcd (scripts/cluster-demo.sh)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-e2e"
REQ="$ROOT/tests/e2e/requirements.txt"
PYTHON="${PYTHON:-python3}"

log() { echo "ensure-deps: $*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

APT_UPDATED=0
apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        log "need to install $* but apt-get is not available; install it by hand"
        exit 1
    fi
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

MODE="${1:-all}"

# --- cmake -----------------------------------------------------------------------------------
if ! command -v cmake >/dev/null 2>&1; then
    apt_install cmake
fi

# --- protoc with the well-known protos (etcd-client's build script) -------------------------
if ! command -v protoc >/dev/null 2>&1 || [ ! -f /usr/include/google/protobuf/descriptor.proto ]; then
    apt_install protobuf-compiler libprotobuf-dev
fi
[ "$MODE" = "--build" ] && exit 0

# --- etcd for the cluster tests and the cluster demo -----------------------------------------
if ! command -v etcd >/dev/null 2>&1; then
    apt_install etcd-server
fi
[ "$MODE" = "--cluster" ] && exit 0

# --- chromium and a font for the console's browser tests -------------------------------------
if [ ! -x /usr/bin/chromium ]; then
    apt_install chromium
fi
if ! dpkg-query -W -f='${Status}' fonts-dejavu-core 2>/dev/null | grep -q 'install ok installed'; then
    apt_install fonts-dejavu-core
fi

# --- python3 with venv -----------------------------------------------------------------------
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    apt_install python3 python3-venv python3-pip
fi
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    log "$PYTHON is $("$PYTHON" --version 2>&1); scim2-server and scim2-tester need >= 3.11"
    exit 1
fi
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    PYVER="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    apt_install python3-venv "python${PYVER}-venv" || apt_install python3-venv
fi

# --- the venv --------------------------------------------------------------------------------
WANT="$( { cat "$REQ"; "$PYTHON" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
HAVE="$(cat "$VENV/.requirements.sha256" 2>/dev/null || true)"

if [ "$WANT" = "$HAVE" ] && "$VENV/bin/python" -c 'import scim2_server, scim2_tester, pytest, playwright' >/dev/null 2>&1; then
    log "reusing $VENV (requirements unchanged)"
else
    log "creating $VENV from $REQ"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    printf '*\n' > "$VENV/.gitignore"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
    "$VENV/bin/python" -m pip check >&2
    echo "$WANT" > "$VENV/.requirements.sha256"
fi

echo "$VENV/bin/python"
