#!/usr/bin/env bash
# Cluster mode in one command (docs/cluster.md): a local etcd, the in-memory demo directory,
# and three gate replicas on loopback sharing their tokens through etcd. Creates a token on
# replica 1 and prints what to try: refresh it on one replica and watch the old secret die on
# all three before the command returns. Ctrl-C stops everything and removes the scratch folder.
#
#   scripts/cluster-demo.sh            build (release), start, print, wait for Ctrl-C
#   scripts/cluster-demo.sh --check    start, refresh once, check all three replicas, exit
#
# Ports: BASE_PORT (default 18000) + 379/380 etcd, + 90 directory, + 81..83 replicas,
# + 1081..1083 their metrics. SCIM_GATE_BIN: use this binary instead of building one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

CHECK=0
[ "${1:-}" = "--check" ] && CHECK=1
BASE="${BASE_PORT:-18000}"
ETCD_CLIENT=$((BASE + 379)); ETCD_PEER=$((BASE + 380)); DIR_PORT=$((BASE + 90))

scripts/ensure-deps.sh --cluster
if [ -z "${SCIM_GATE_BIN:-}" ]; then
    cargo build --release -p scim-gate --bin scim-gate
    SCIM_GATE_BIN="$ROOT/target/release/scim-gate"
fi
BIN="$SCIM_GATE_BIN"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/scim-gate-cluster.XXXXXX")"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "cluster-demo: $*" >&2; }

# HTTP status of GET $2 on 127.0.0.1:$1 with an optional bearer token $3 (bash only, no curl).
http_status() {
    local port="$1" path="$2" token="${3:-}" auth="" line
    [ -n "$token" ] && auth="Authorization: Bearer $token"$'\r\n'
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sConnection: close\r\n\r\n' "$path" "$auth" >&3
    IFS= read -r line <&3 || true
    exec 3<&- 3>&-
    echo "$line" | cut -d' ' -f2
}

wait_for() { # port path wanted-status what
    for _ in $(seq 1 300); do
        [ "$(http_status "$1" "$2" 2>/dev/null || true)" = "$3" ] && return 0
        sleep 0.1
    done
    say "$4 did not come up; logs in $WORK"; tail -n 20 "$WORK"/*/*.log "$WORK"/*.log 2>/dev/null || true
    exit 1
}

say "etcd on 127.0.0.1:$ETCD_CLIENT (data in $WORK/etcd)"
etcd --name demo --data-dir "$WORK/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
    --initial-cluster "demo=http://127.0.0.1:$ETCD_PEER" --initial-cluster-state new \
    --heartbeat-interval 50 --election-timeout 500 --log-level error >"$WORK/etcd.log" 2>&1 &
PIDS+=($!)
wait_for "$ETCD_CLIENT" /health 200 "etcd"

"$BIN" demo --directory-only --port "$DIR_PORT" >"$WORK/directory.log" 2>&1 &
PIDS+=($!)

for n in 1 2 3; do
    mkdir -p "$WORK/r$n"
    cat >"$WORK/r$n/gate.yaml" <<YAML
server: { listen: 127.0.0.1:$((BASE + 80 + n)) }
base_path: /scim/v2
upstream: { url: http://127.0.0.1:$DIR_PORT/v2 }
tokens: { backend: etcd }
etcd:
  endpoints: [http://127.0.0.1:$ETCD_CLIENT]
  prefix: /scim-gate/demo
  lease_ttl: 5s
  ack_timeout: 1s
admin: { socket: $WORK/r$n/admin.sock }
audit: { file: $WORK/r$n/audit.jsonl }
metrics: { listen: 127.0.0.1:$((BASE + 1080 + n)) }
YAML
    "$BIN" run -c "$WORK/r$n/gate.yaml" >"$WORK/r$n/gate.log" 2>&1 &
    PIDS+=($!)
done
for n in 1 2 3; do
    wait_for $((BASE + 1080 + n)) /readyz 200 "replica $n"
done

CREATED="$("$BIN" token create --tenant demo --idp okta --json -c "$WORK/r1/gate.yaml")"
TOKEN="$(echo "$CREATED" | sed -n 1p)"
ID="$(echo "$CREATED" | sed -n 2p | grep -o '"id":"[^"]*"' | cut -d'"' -f4)"

if [ "$CHECK" = 1 ]; then
    NEW="$("$BIN" token refresh "$ID" -c "$WORK/r2/gate.yaml" | sed -n 1p)"
    for n in 1 2 3; do
        old="$(http_status $((BASE + 80 + n)) /scim/v2/Users "$TOKEN")"
        new="$(http_status $((BASE + 80 + n)) /scim/v2/Users "$NEW")"
        say "replica $n: old secret $old, new secret $new"
        [ "$old" = 401 ] && [ "$new" = 200 ] || { say "FAILED"; exit 1; }
    done
    "$BIN" cluster status -c "$WORK/r3/gate.yaml"
    say "ok"
    exit 0
fi

cat <<TXT

Three replicas share their tokens through etcd (prefix /scim-gate/demo):
  replica 1: http://127.0.0.1:$((BASE + 81))/scim/v2   admin: $WORK/r1/gate.yaml
  replica 2: http://127.0.0.1:$((BASE + 82))/scim/v2   admin: $WORK/r2/gate.yaml
  replica 3: http://127.0.0.1:$((BASE + 83))/scim/v2   admin: $WORK/r3/gate.yaml

Token $ID (shown once): $TOKEN

Try:
  # the token works on every replica
  for p in $((BASE + 81)) $((BASE + 82)) $((BASE + 83)); do curl -s -o /dev/null -w "%{http_code}\n" -H 'Authorization: Bearer $TOKEN' http://127.0.0.1:\$p/scim/v2/Users; done
  # refresh it through replica 2: when this returns, the old secret is dead on all three
  $BIN token refresh $ID -c $WORK/r2/gate.yaml
  # ... run the loop above again: 401 everywhere; the new secret gets 200
  $BIN cluster status -c $WORK/r1/gate.yaml
  # stop one replica (kill -STOP), refresh again: the call names it fenced after ack_timeout + lease_ttl
  # stop etcd: every replica answers 503 within lease_ttl (it cannot prove its tokens are current)

Ctrl-C stops everything.
TXT
wait
