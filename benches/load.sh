#!/usr/bin/env bash
# Load benchmark of scim-gate (issue 5): one command, one run, same machine, same upstream.
#
#   benches/load.sh                          # full run (about 6-8 minutes with the defaults)
#   DURATION=2 ROUNDS=1 benches/load.sh      # quick smoke run
#
# What it does:
#   - installs nginx and wrk from Debian when missing (apt-get update only when installing),
#     builds `scim-gate` and `examples/passthrough.rs` in release mode;
#   - starts nginx on 127.0.0.1 as a fast static upstream answering canned SCIM JSON
#     (GET and PATCH /v2/Users/{id} -> 200 application/scim+json, a User resource);
#   - runs wrk against, alternating the variants within each round:
#       1  the upstream directly
#       2  the bare Pingora passthrough (examples/passthrough.rs): the floor, GET
#       2b the same passthrough with the PATCH body (the floor for 4)
#       3  scim-gate, GET /scim/v2/Users/{id} with a valid token (auth only)
#       4  scim-gate, PATCH with a typical Entra body (auth + SCIM checks + forward)
#       5  nginx as a reverse proxy checking Authorization against a `map` of allowed values
#   - token churn under load: while (3) runs, replaces a 100 000-token file (new file + rename)
#     a few times, times each reload until a token only in the new file is accepted, and counts
#     failed requests;
#   - rotation under load: while (3) runs with token A, refreshes token B 1 000 times over the
#     admin socket and after each answer tries B's previous secret (must be refused);
#   - context switches per request of the passthrough and the gate under load (/proc, all threads);
#   - memory: VmRSS of a fresh gate with 10, 100 000 and 1 000 000 tokens loaded;
#   - writes the results between markers in BENCHMARKS.md (the text around them is kept).
#
# Knobs (environment variables, defaults in brackets):
#   DURATION [10] seconds per measured run · ROUNDS [3] · WARMUP [2] seconds per variant, once
#   CONNECTIONS [32] · WRK_THREADS [1] · THREADS [2] worker threads of passthrough, gate and
#   nginx proxy (the same for all three) · UPSTREAM_WORKERS [auto] nginx upstream workers
#   ACCESS_LOG [on] gate access log (its default, to a file) and nginx proxy access_log; off = none
#   NGINX_REWRITE [on] nginx proxy rewrites upstream URLs in bodies (sub_filter), as the gate does
#   VARIANTS [upstream,passthrough,passthrough_patch,gate_get,gate_patch,nginx_map]
#   ROTATIONS [1000] · CHURN_TOKENS [100000] · CHURN_SWAPS [3]
#   MEMORY_TOKENS ["10 100000 1000000"] · SKIP [] comma list of: churn,rotation,memory,build
#   BASE_PORT [18400] (uses BASE_PORT..BASE_PORT+20) · BENCH_MD [BENCHMARKS.md] ("-" = don't write)
#   KEEP_WORKDIR [0] keep the temp folder with configs, logs and raw wrk outputs
#   GATE_BIN, PASSTHROUGH_BIN [the release builds] measure other binaries (with SKIP=build)
#   LIMITS [on] write a `limits:` section raising the rate limit (off: for builds without it)
#
# Everything listens on 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/benches/load"
PY="${PYTHON:-python3}"

# The exact command, with the knobs that were set, for the report.
KNOBS="DURATION ROUNDS WARMUP CONNECTIONS WRK_THREADS THREADS UPSTREAM_WORKERS ACCESS_LOG
NGINX_REWRITE VARIANTS ROTATIONS CHURN_TOKENS CHURN_SWAPS MEMORY_TOKENS SKIP
BASE_PORT BENCH_MD KEEP_WORKDIR GATE_BIN PASSTHROUGH_BIN LIMITS"
COMMAND=""
for k in $KNOBS; do
    if [ -n "${!k+x}" ]; then COMMAND+="$k=$(printf '%q' "${!k}") "; fi
done
COMMAND+="benches/load.sh"
[ $# -gt 0 ] && COMMAND+=" $*"

DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
WARMUP="${WARMUP:-2}"
CONNECTIONS="${CONNECTIONS:-32}"
WRK_THREADS="${WRK_THREADS:-1}"
THREADS="${THREADS:-2}"
UPSTREAM_WORKERS="${UPSTREAM_WORKERS:-auto}"
ACCESS_LOG="${ACCESS_LOG:-on}"
NGINX_REWRITE="${NGINX_REWRITE:-on}"
VARIANTS="${VARIANTS:-upstream,passthrough,passthrough_patch,gate_get,gate_patch,nginx_map}"
ROTATIONS="${ROTATIONS:-1000}"
CHURN_TOKENS="${CHURN_TOKENS:-100000}"
CHURN_SWAPS="${CHURN_SWAPS:-3}"
MEMORY_TOKENS="${MEMORY_TOKENS:-10 100000 1000000}"
SKIP="${SKIP:-}"
BASE_PORT="${BASE_PORT:-18400}"
BENCH_MD="${BENCH_MD:-$ROOT/BENCHMARKS.md}"
KEEP_WORKDIR="${KEEP_WORKDIR:-0}"

UP_PORT=$((BASE_PORT + 1))
PT_PORT=$((BASE_PORT + 2))
GATE_PORT=$((BASE_PORT + 3))
GATE_METRICS=$((BASE_PORT + 4))
NGX_PORT=$((BASE_PORT + 5))
MEM_PORT=$((BASE_PORT + 10))    # +10..+19 for the memory gates

USER_ID="2819c223-7f76-453a-919d-413861904646"   # RFC 7643 §8.2's example user
WRK_TIMEOUT=5s

log() { printf '%s load.sh: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
skipped() { [[ ",$SKIP," == *",$1,"* ]]; }
wanted() { [[ ",$VARIANTS," == *",$1,"* ]]; }

# --- dependencies ---------------------------------------------------------------------------
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
NEED=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || NEED+=(nginx)
command -v wrk >/dev/null 2>&1 || NEED+=(wrk)
command -v curl >/dev/null 2>&1 || NEED+=(curl)
command -v "$PY" >/dev/null 2>&1 || NEED+=(python3)
if [ ${#NEED[@]} -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "need ${NEED[*]}; no apt-get here, install them by hand"
    log "installing ${NEED[*]} (apt-get)"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${NEED[@]}" >/dev/null
    # Debian starts the packaged nginx service on :80 where there is an init system; it is not
    # ours and not used here, so leave it alone.
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
command -v cmake >/dev/null 2>&1 || {
    log "installing cmake (Pingora's build needs it)"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cmake >/dev/null
}

if ! skipped build; then
    log "building scim-gate and the passthrough example (release)"
    (cd "$ROOT" && cargo build --release --quiet --bin scim-gate --example passthrough)
fi
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
# GATE_BIN / PASSTHROUGH_BIN measure other builds (e.g. an older commit's, for a before/after).
GATE_BIN="${GATE_BIN:-$TARGET/release/scim-gate}"
PT_BIN="${PASSTHROUGH_BIN:-$TARGET/release/examples/passthrough}"
[ -x "$GATE_BIN" ] && [ -x "$PT_BIN" ] || die "build products not found under $TARGET/release"

# --- work folder, process bookkeeping ---------------------------------------------------------
WORK="$(mktemp -d /tmp/scim-gate-load.XXXXXX)"
PIDS=()
# Run copies: target/ is shared, and a build elsewhere must not swap the binary mid-run.
mkdir -p "$WORK/bin"
cp "$GATE_BIN" "$WORK/bin/scim-gate"
cp "$PT_BIN" "$WORK/bin/passthrough"
GATE_BIN="$WORK/bin/scim-gate"
PT_BIN="$WORK/bin/passthrough"
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        pkill -TERM -P "$pid" 2>/dev/null || true   # a load loop's running wrk
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 30); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "$KEEP_WORKDIR" = "1" ] || [ "$rc" -ne 0 ]; then
        log "work folder kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() {   # stop one of our processes and forget it
    local pid=$1 keep=() p
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [ "$p" != "$pid" ] && keep+=("$p"); done
    PIDS=("${keep[@]+"${keep[@]}"}")
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $UP_PORT $PT_PORT $GATE_PORT $GATE_METRICS $NGX_PORT $(seq $MEM_PORT $((MEM_PORT + 9))); do
    port_busy "$p" && die "127.0.0.1:$p is in use; pick another BASE_PORT"
done

wait_port() {   # wait_port PORT PID TIMEOUT_S
    local deadline=$((SECONDS + $3))
    until port_busy "$1"; do
        kill -0 "$2" 2>/dev/null || die "process $2 exited before listening on $1"
        [ $SECONDS -lt $deadline ] || die "nothing listens on 127.0.0.1:$1 after $3 s"
        sleep 0.1
    done
}

# --- canned SCIM resource ---------------------------------------------------------------------
# RFC 7643 §8.2's full user, minus x509 and groups; meta.location points at the upstream, so
# the gate (and the nginx proxy with NGINX_REWRITE=on) rewrite it to the public URL.
RESOURCE="{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\",\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\"],\"id\":\"\$1\",\"externalId\":\"701984\",\"userName\":\"bjensen@example.com\",\"name\":{\"formatted\":\"Ms. Barbara J Jensen, III\",\"familyName\":\"Jensen\",\"givenName\":\"Barbara\",\"middleName\":\"Jane\",\"honorificPrefix\":\"Ms.\",\"honorificSuffix\":\"III\"},\"displayName\":\"Babs Jensen\",\"nickName\":\"Babs\",\"emails\":[{\"value\":\"bjensen@example.com\",\"type\":\"work\",\"primary\":true},{\"value\":\"babs@jensen.org\",\"type\":\"home\"}],\"phoneNumbers\":[{\"value\":\"555-555-5555\",\"type\":\"work\"}],\"userType\":\"Employee\",\"title\":\"Tour Guide\",\"preferredLanguage\":\"en-US\",\"locale\":\"en-US\",\"timezone\":\"America/Los_Angeles\",\"active\":true,\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\":{\"employeeNumber\":\"701984\",\"costCenter\":\"4130\",\"organization\":\"Universal Studios\",\"division\":\"Theme Park\",\"department\":\"Tour Operations\"},\"meta\":{\"resourceType\":\"User\",\"created\":\"2010-01-23T04:56:22Z\",\"lastModified\":\"2011-05-13T04:42:34Z\",\"version\":\"W/\\\\\"3694e05e9dff591\\\\\"\",\"location\":\"http://127.0.0.1:$UP_PORT/v2/Users/\$1\"}}"
NOT_FOUND='{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"404","detail":"no such resource"}'

NGINX_USER=""
[ "$(id -u)" -eq 0 ] && NGINX_USER="user root root;"   # workers must reach the 0700 work folder

nginx_common() {   # nginx_common DIR WORKERS
    mkdir -p "$1/tmp"
    cat <<EOF
$NGINX_USER
worker_processes $2;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
EOF
}
nginx_http_common() {
    cat <<EOF
    client_body_temp_path $1/tmp/body;
    proxy_temp_path $1/tmp/proxy;
    fastcgi_temp_path $1/tmp/fastcgi;
    uwsgi_temp_path $1/tmp/uwsgi;
    scgi_temp_path $1/tmp/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
EOF
}

start_nginx() {   # start_nginx DIR  (foreground master, so the pid is ours)
    "$NGINX" -t -q -p "$1" -c "$1/nginx.conf" -e "$1/error.log" || die "nginx config $1 invalid"
    "$NGINX" -p "$1" -c "$1/nginx.conf" -e "$1/error.log" -g 'daemon off;' &
    PIDS+=($!)
    LAST_PID=$!
}

# --- (1) the upstream -------------------------------------------------------------------------
UPDIR="$WORK/nginx-upstream"
mkdir -p "$UPDIR"
{
    nginx_common "$UPDIR" "$UPSTREAM_WORKERS"
    cat <<EOF
http {
    access_log off;
$(nginx_http_common "$UPDIR")
    default_type application/scim+json;
    server {
        listen 127.0.0.1:$UP_PORT backlog=4096;
        location ~ ^/v2/Users/([^/]+)\$ {
            return 200 '$RESOURCE';
        }
        location / {
            return 404 '$NOT_FOUND';
        }
    }
}
EOF
} >"$UPDIR/nginx.conf"
start_nginx "$UPDIR"
UP_PID=$LAST_PID
wait_port "$UP_PORT" "$UP_PID" 10
RESOURCE_BYTES=$(curl -sS "http://127.0.0.1:$UP_PORT/v2/Users/$USER_ID" | wc -c)
log "upstream nginx on 127.0.0.1:$UP_PORT ($UPSTREAM_WORKERS workers, resource $RESOURCE_BYTES bytes)"

# --- (2) passthrough --------------------------------------------------------------------------
"$PT_BIN" --listen "127.0.0.1:$PT_PORT" --upstream "127.0.0.1:$UP_PORT" --threads "$THREADS" \
    >"$WORK/passthrough.log" 2>&1 &
PIDS+=($!)
PT_PID=$!
wait_port "$PT_PORT" "$PT_PID" 10

# --- (3, 4) scim-gate ---------------------------------------------------------------------------
GDIR="$WORK/gate"
mkdir -p "$GDIR"
# The token file gets a folder of its own, and the logs live elsewhere: the gate watches the
# token file's *folder*, and every write to another file there (an access log!) wakes its
# watcher (measured: ~7 % of the gate's CPU under load with gate.log beside tokens.yaml).
LOGS="$WORK/logs"
mkdir -p "$GDIR/tokens" "$LOGS"
TOKFILE="$GDIR/tokens/tokens.yaml"
"$PY" "$HERE/loadbench.py" tokens "$TOKFILE" --count 8 --prefix s
gate_config() {   # gate_config DIR PORT METRICS_PORT
    cat >"$1/gate.yaml" <<EOF
server:
  listen: 127.0.0.1:$2
  threads: $THREADS
  shutdown_grace: 1s
base_path: /scim/v2
upstream:
  url: http://127.0.0.1:$UP_PORT/v2
tokens:
  file: tokens/tokens.yaml
  max_per_idp: 2
admin:
  socket: admin.sock
audit:
  file: audit.jsonl
metrics:
  listen: 127.0.0.1:$3
EOF
    # The guard rails run on every request but must not refuse the load itself: one token sends
    # far above the default rate (docs/guards.md). LIMITS=off leaves the section out, for builds
    # from before it existed.
    if [ "${LIMITS:-on}" != "off" ]; then
        printf 'limits:\n  rate: 1000000\n  burst: 1000000\n  upstream_max_in_flight: 10000\n' >>"$1/gate.yaml"
    fi
}
GATE_RUST_LOG="${RUST_LOG:-info}"
[ "$ACCESS_LOG" = "off" ] && GATE_RUST_LOG="info,access=off"
gate_config "$GDIR" "$GATE_PORT" "$GATE_METRICS"
RUST_LOG="$GATE_RUST_LOG" "$GATE_BIN" run -c "$GDIR/gate.yaml" >"$LOGS/gate.log" 2>&1 &
PIDS+=($!)
GATE_PID=$!
wait_port "$GATE_PORT" "$GATE_PID" 30

# Token A carries the load; token B is the one rotated (never A: refreshing the load's own
# token would turn the rest of the load into 401s).
"$GATE_BIN" token create --tenant bench-load --idp entra --socket "$GDIR/admin.sock" --json >"$GDIR/a.json"
"$GATE_BIN" token create --tenant bench-rotate --idp okta --socket "$GDIR/admin.sock" --json >"$GDIR/b.json"
# `token create --json` prints the token alone on line 1, then one JSON object (docs/admin-api.md#cli).
jget() { "$PY" -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])[sys.argv[2]])' "$1" "$2"; }
TOKEN_A="$(jget "$GDIR/a.json" token)"
A_ID="$(jget "$GDIR/a.json" id)"
A_SHA="$(printf %s "$TOKEN_A" | "$GATE_BIN" hash-token)"
TOKEN_B="$(jget "$GDIR/b.json" token)"
B_ID="$(jget "$GDIR/b.json" id)"
log "scim-gate on 127.0.0.1:$GATE_PORT ($THREADS threads, 10 tokens; load token $A_ID, rotated token $B_ID)"

# --- (5) nginx proxy with an Authorization map --------------------------------------------------
NDIR="$WORK/nginx-proxy"
mkdir -p "$NDIR"
NGX_ACCESS="access_log off;"
[ "$ACCESS_LOG" = "on" ] && NGX_ACCESS="access_log $NDIR/access.log;"
NGX_REWRITE_CONF=""
if [ "$NGINX_REWRITE" = "on" ]; then
    NGX_REWRITE_CONF="proxy_redirect http://127.0.0.1:$UP_PORT/v2/ \$scheme://\$http_host/scim/v2/;
            sub_filter_types application/scim+json application/json;
            sub_filter_once off;
            sub_filter 'http://127.0.0.1:$UP_PORT/v2/' '\$scheme://\$http_host/scim/v2/';"
fi
{
    nginx_common "$NDIR" "$THREADS"
    cat <<EOF
http {
    $NGX_ACCESS
$(nginx_http_common "$NDIR")
    # The operator's list of allowed bearer tokens, in plaintext (nginx has no SHA-256 without
    # njs/lua): the same 10 tokens the gate holds (A plus 9 others), mapped to a tenant.
    map_hash_bucket_size 128;
    map \$http_authorization \$scim_tenant {
        default "";
        "Bearer $TOKEN_A" "bench-load";
$(for i in 1 2 3 4 5 6 7 8 9; do printf '        "Bearer scimgate_%s" "tenant-%s";\n' "$(head -c 32 /dev/urandom | sha256sum | cut -c1-49)" "$i"; done)
    }
    upstream scim_upstream {
        server 127.0.0.1:$UP_PORT;
        keepalive 128;
    }
    server {
        listen 127.0.0.1:$NGX_PORT backlog=4096;
        location /scim/v2/ {
            default_type application/scim+json;
            if (\$scim_tenant = "") {
                add_header WWW-Authenticate 'Bearer realm="scim", error="invalid_token"' always;
                return 401 '{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"401","detail":"the bearer token is not valid"}';
            }
            proxy_pass http://scim_upstream/v2/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "";
            proxy_set_header Accept-Encoding "";
            proxy_set_header X-Scim-Tenant \$scim_tenant;
            $NGX_REWRITE_CONF
        }
    }
}
EOF
} >"$NDIR/nginx.conf"
start_nginx "$NDIR"
NGX_PID=$LAST_PID
wait_port "$NGX_PORT" "$NGX_PID" 10

# --- sanity: every variant answers what it should ----------------------------------------------
PATCH_BODY="$("$PY" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["body"], separators=(",", ":")))' \
    "$ROOT/tests/fixtures/idp/entra-update-user-multivalued.json")"
export WRK_BODY="$PATCH_BODY"
expect() {   # expect STATUS DESCRIPTION curl-args...
    local want=$1 what=$2 got
    shift 2
    got="$(curl -sS -o "$WORK/last-body" -w '%{http_code}' "$@")" || got="curl-failed"
    [ "$got" = "$want" ] || die "$what: expected $want, got $got: $(head -c 300 "$WORK/last-body")"
}
AUTH="Authorization: Bearer $TOKEN_A"
UP_URL="http://127.0.0.1:$UP_PORT/v2/Users/$USER_ID"
PT_URL="http://127.0.0.1:$PT_PORT/v2/Users/$USER_ID"
GATE_URL="http://127.0.0.1:$GATE_PORT/scim/v2/Users/$USER_ID"
NGX_URL="http://127.0.0.1:$NGX_PORT/scim/v2/Users/$USER_ID"
expect 200 "upstream GET" "$UP_URL"
expect 200 "upstream PATCH" -X PATCH -H 'Content-Type: application/scim+json' --data-binary "$PATCH_BODY" "$UP_URL"
expect 200 "passthrough GET" -H "$AUTH" "$PT_URL"
expect 200 "gate GET" -H "$AUTH" "$GATE_URL"
grep -q "http://127.0.0.1:$GATE_PORT/scim/v2/Users/$USER_ID" "$WORK/last-body" \
    || die "gate GET: meta.location was not rewritten: $(head -c 300 "$WORK/last-body")"
expect 401 "gate GET without token" "$GATE_URL"
expect 200 "gate PATCH" -X PATCH -H "$AUTH" -H 'Content-Type: application/scim+json' --data-binary "$PATCH_BODY" "$GATE_URL"
expect 400 "gate PATCH of userName (the checks are on)" -X PATCH -H "$AUTH" -H 'Content-Type: application/scim+json' \
    --data-binary '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"userName","value":"x@example.com"}]}' "$GATE_URL"
expect 200 "nginx proxy GET" -H "$AUTH" "$NGX_URL"
expect 401 "nginx proxy GET with an unknown token" -H "Authorization: Bearer nope" "$NGX_URL"
log "sanity checks passed"

# --- the rounds -----------------------------------------------------------------------------------
RES="$WORK/results"
mkdir -p "$RES"
ALL_VARIANTS=(upstream passthrough passthrough_patch gate_get gate_patch nginx_map)
run_wrk() {   # run_wrk VARIANT DURATION OUTFILE
    local v=$1 d=$2 out=$3
    local common=(-t"$WRK_THREADS" -c"$CONNECTIONS" -d"${d}s" --latency --timeout "$WRK_TIMEOUT")
    case "$v" in
        upstream)          wrk "${common[@]}" "$UP_URL" ;;
        passthrough)       wrk "${common[@]}" -H "$AUTH" "$PT_URL" ;;
        passthrough_patch) wrk "${common[@]}" -H "$AUTH" -s "$HERE/patch.lua" "$PT_URL" ;;
        gate_get)          wrk "${common[@]}" -H "$AUTH" "$GATE_URL" ;;
        gate_patch)        wrk "${common[@]}" -H "$AUTH" -s "$HERE/patch.lua" "$GATE_URL" ;;
        nginx_map)         wrk "${common[@]}" -H "$AUTH" "$NGX_URL" ;;
        *) die "unknown variant $v" ;;
    esac >"$out" 2>&1
}
# Context switches of every thread of PID so far (voluntary + involuntary): read around each
# measured run, divided by its requests — the cross-thread hand-offs per request under load.
switches() {   # switches PID
    cat /proc/"$1"/task/*/status 2>/dev/null \
        | awk '/^(voluntary|nonvoluntary)_ctxt_switches/ {n += $2} END {print n + 0}'
}
switches_by_thread() {   # switches_by_thread PID: "TID NAME VOLUNTARY INVOLUNTARY" per thread
    local t
    for t in /proc/"$1"/task/*; do
        printf '%s %s %s\n' "${t##*/}" "$(tr ' ' '_' <"$t/comm" 2>/dev/null)" \
            "$(awk '/^voluntary_ctxt_switches/ {v = $2} /^nonvoluntary_ctxt_switches/ {n = $2}
                END {print v + 0, n + 0}' "$t/status" 2>/dev/null)"
    done
}
proxy_pid() {   # proxy_pid VARIANT: the proxy process a variant measures (none for the others)
    case "$1" in
        passthrough | passthrough_patch) echo "$PT_PID" ;;
        gate_get | gate_patch) echo "$GATE_PID" ;;
        *) echo "" ;;
    esac
}
SELECTED=()
for v in "${ALL_VARIANTS[@]}"; do wanted "$v" && SELECTED+=("$v"); done
[ ${#SELECTED[@]} -gt 0 ] || die "VARIANTS selects nothing"

LOADAVG="$(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$WARMUP" != "0" ]; then
    log "warm-up: ${WARMUP}s per variant"
    for v in "${SELECTED[@]}"; do run_wrk "$v" "$WARMUP" "$RES/warmup-$v.txt"; done
fi
n=${#SELECTED[@]}
for r in $(seq 1 "$ROUNDS"); do
    # Rotate the order each round so no variant always follows the same one.
    for i in $(seq 0 $((n - 1))); do
        v="${SELECTED[$(((i + r - 1) % n))]}"
        pid="$(proxy_pid "$v")"
        [ -n "$pid" ] && s0="$(switches "$pid")" && switches_by_thread "$pid" >"$RES/threads0"
        run_wrk "$v" "$DURATION" "$RES/wrk-$v-r$r.txt"
        summary="$("$PY" "$HERE/loadbench.py" wrk "$RES/wrk-$v-r$r.txt")"
        if [ -n "$pid" ]; then
            s1="$(switches "$pid")"
            per="$("$PY" -c 'import json,sys; r=json.loads(sys.argv[1])["requests"] or 0; print(f"{(int(sys.argv[3])-int(sys.argv[2]))/r:.3f}" if r else "-")' \
                "$summary" "$s0" "$s1" 2>/dev/null || echo -)"
            echo "$per" >"$RES/switches-$v-r$r.txt"
            summary+=" switches/request $per"
            # Which threads switch: per thread name, per request (the largest first).
            switches_by_thread "$pid" >"$RES/threads1"
            summary+=" ($("$PY" - "$RES/threads0" "$RES/threads1" "$summary" <<'EOF'
import json, sys
def read(path):
    out = {}
    for line in open(path):
        parts = line.split()
        if len(parts) == 4:
            out[parts[0]] = (parts[1], int(parts[2]), int(parts[3]))
    return out
before, after = read(sys.argv[1]), read(sys.argv[2])
by_name = {}
for tid, (name, v, n) in after.items():
    _, v0, n0 = before.get(tid, (name, 0, 0))
    tv, tn = by_name.get(name, (0, 0))
    by_name[name] = (tv + v - v0, tn + n - n0)
requests = json.loads(sys.argv[3].split(" switches/")[0])["requests"] or 1
top = sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:4]
print(", ".join(f"{name} {v / requests:.3f} voluntary + {n / requests:.3f} preempted"
                for name, (v, n) in top if v + n > 0))
EOF
))"
        fi
        log "round $r/$ROUNDS $v: $summary"
    done
done

# The load under the churn and rotation tests: wrk against (3) in back-to-back segments of
# LOAD_SEGMENT seconds until the test is over (wrk cannot be stopped early without losing its
# counts), so the load covers the whole test however long it takes.
LOAD_SEGMENT=5
start_load_loop() {   # start_load_loop OUTPREFIX
    LOOP_STOP="$WORK/loop.stop.$RANDOM"
    (
        i=0
        while [ ! -e "$LOOP_STOP" ] && [ $i -lt 200 ]; do
            run_wrk gate_get "$LOAD_SEGMENT" "$1-$i.txt"
            i=$((i + 1))
        done
    ) &
    PIDS+=($!)
    LOOP_PID=$!
    sleep 1
}
stop_load_loop() {
    sleep 1    # keep the load on a moment after the test, to catch late failures
    touch "$LOOP_STOP"
    wait "$LOOP_PID" 2>/dev/null || true
    stop_pid "$LOOP_PID"
}

# --- rotation under load ----------------------------------------------------------------------------
if ! skipped rotation; then
    log "rotation: $ROTATIONS refreshes of $B_ID while wrk loads the gate with $A_ID"
    start_load_loop "$RES/rotate-wrk"
    timeout 600 "$PY" "$HERE/loadbench.py" rotate --socket "$GDIR/admin.sock" --id "$B_ID" \
        --secret "$TOKEN_B" --gate "127.0.0.1:$GATE_PORT" --path "/scim/v2/Users/$USER_ID" \
        --count "$ROTATIONS" >"$RES/rotate.json" || log "rotation helper failed"
    stop_load_loop
    "$PY" "$HERE/loadbench.py" wrk --sum "$RES"/rotate-wrk-*.txt >"$RES/rotate-wrk.json"
    log "rotation: $(cat "$RES/rotate.json") load: $(cat "$RES/rotate-wrk.json")"
fi

# --- token churn under load ------------------------------------------------------------------------
if ! skipped churn; then
    log "churn: loading a $CHURN_TOKENS-token file first"
    PRELOAD="bench-preload-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    "$PY" "$HERE/loadbench.py" tokens "$TOKFILE" --count $((CHURN_TOKENS - 2)) --prefix p \
        --keep "$A_ID:bench-load:entra:$A_SHA" --plain "$PRELOAD"
    deadline=$((SECONDS + 60))
    until [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $PRELOAD" "$GATE_URL")" = 200 ]; do
        [ $SECONDS -lt $deadline ] || die "the $CHURN_TOKENS-token file was not applied within 60 s (see $LOGS/gate.log)"
        sleep 0.1
    done
    log "churn: $CHURN_SWAPS replacements of the $CHURN_TOKENS-token file while wrk loads the gate"
    start_load_loop "$RES/churn-wrk"
    timeout 900 "$PY" "$HERE/loadbench.py" churn --file "$TOKFILE" --gate "127.0.0.1:$GATE_PORT" \
        --path "/scim/v2/Users/$USER_ID" --count "$CHURN_TOKENS" --keep "$A_ID:bench-load:entra:$A_SHA" \
        --swaps "$CHURN_SWAPS" --delay 2 --interval 2 --timeout 30 \
        --log "$LOGS/gate.log" >"$RES/churn.json" || log "churn helper failed"
    stop_load_loop
    "$PY" "$HERE/loadbench.py" wrk --sum "$RES"/churn-wrk-*.txt >"$RES/churn-wrk.json"
    log "churn: $(cat "$RES/churn.json") load: $(cat "$RES/churn-wrk.json")"
fi

# --- the proxies are done: stop them before the memory runs -------------------------------------
stop_pid "$GATE_PID"
stop_pid "$NGX_PID"
stop_pid "$PT_PID"

# --- memory -------------------------------------------------------------------------------------
if ! skipped memory; then
    echo "{}" >"$RES/memory.json"
    k=0
    for count in $MEMORY_TOKENS; do
        MDIR="$WORK/mem-$count"
        mkdir -p "$MDIR/tokens"
        "$PY" "$HERE/loadbench.py" tokens "$MDIR/tokens/tokens.yaml" --count "$count" --prefix m
        gate_config "$MDIR" $((MEM_PORT + 2 * k)) $((MEM_PORT + 2 * k + 1))
        t0=$(date +%s.%N)
        RUST_LOG="$GATE_RUST_LOG" "$GATE_BIN" run -c "$MDIR/gate.yaml" >"$LOGS/gate-mem-$count.log" 2>&1 &
        PIDS+=($!)
        MPID=$!
        wait_port $((MEM_PORT + 2 * k)) "$MPID" 300
        t1=$(date +%s.%N)
        # One request through, so the figure includes a worker that has served.
        curl -s -o /dev/null "http://127.0.0.1:$((MEM_PORT + 2 * k))/scim/v2/Users/$USER_ID" || true
        "$PY" "$HERE/loadbench.py" rss "$MPID" --settle 3 --timeout 60 >"$MDIR/rss.json"
        "$PY" - "$RES/memory.json" "$count" "$MDIR/rss.json" "$MDIR/tokens/tokens.yaml" "$t0" "$t1" <<'EOF'
import json, os, sys
path, count, rss, tok, t0, t1 = sys.argv[1:]
m = json.load(open(path))
r = json.load(open(rss))
r["file_bytes"] = os.path.getsize(tok)
r["startup_s"] = float(t1) - float(t0)
m[count] = r
json.dump(m, open(path, "w"))
EOF
        log "memory: $count tokens: $(cat "$MDIR/rss.json"), start-up $(awk "BEGIN{printf \"%.1f\", $t1-$t0}") s"
        stop_pid "$MPID"
        rm -f "$MDIR/tokens/tokens.yaml"
        k=$((k + 1))
    done
fi

# --- report ----------------------------------------------------------------------------------------
"$PY" - "${SELECTED[@]}" >"$RES/variants.json" <<'EOF'
import json, sys
d = {
 "upstream": ("1", "upstream nginx, direct", "GET straight to the static nginx: the ceiling of this machine"),
 "passthrough": ("2", "Pingora passthrough, GET", "examples/passthrough.rs, no checks: the floor of the stack"),
 "passthrough_patch": ("2b", "Pingora passthrough, PATCH", "the same passthrough with the Entra PATCH body: the floor for (4)"),
 "gate_get": ("3", "scim-gate, GET /Users/{id}", "bearer token hashed and looked up (10 tokens loaded), route check, headers, meta.location rewritten"),
 "gate_patch": ("4", "scim-gate, PATCH /Users/{id} (Entra)", "tests/fixtures/idp/entra-update-user-multivalued.json: auth, body read, SCIM schema/policy checks, normalize dialect (op Replace -> replace), forward"),
 "nginx_map": ("5", "nginx proxy + Authorization map", "nginx reverse proxy, `map $http_authorization` of 10 plaintext bearer values, upstream keepalive, sub_filter/proxy_redirect for URLs"),
}
print(json.dumps([{"key": k, "n": d[k][0], "label": d[k][1], "desc": d[k][2]} for k in sys.argv[1:]]))
EOF
CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
RAM="$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
COMMIT="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(cd "$ROOT" && git status --porcelain --untracked-files=no 2>/dev/null)" ]; then COMMIT+=" (with local changes)"; fi
"$PY" - "$RES/meta.json" <<EOF
import json, sys
json.dump({
    "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "command": """$COMMAND""",
    "nproc": $(nproc), "cpu": """$CPU""", "ram": "$RAM", "kernel": "Linux $(uname -r)",
    "loadavg": "$LOADAVG", "commit": "$COMMIT",
    "nginx": "$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')", "wrk": "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)",
    "wrk_threads": $WRK_THREADS, "connections": $CONNECTIONS, "duration": $DURATION,
    "rounds": $ROUNDS, "warmup": $WARMUP, "threads": $THREADS,
    "upstream_workers": "$UPSTREAM_WORKERS" + (" (= nproc $(nproc))" if "$UPSTREAM_WORKERS" == "auto" else ""),
    "resource_bytes": $RESOURCE_BYTES,
    "access_log": "gate default logging (RUST_LOG=$GATE_RUST_LOG) to a file, nginx proxy access_log to a file" if "$ACCESS_LOG" == "on" else "off (gate RUST_LOG=$GATE_RUST_LOG, nginx proxy access_log off)",
    "variants": json.load(open("$RES/variants.json")),
}, open(sys.argv[1], "w"), indent=1)
EOF
MD_ARG=()
[ "$BENCH_MD" != "-" ] && MD_ARG=(--md "$BENCH_MD")
"$PY" "$HERE/loadbench.py" report --dir "$RES" "${MD_ARG[@]+"${MD_ARG[@]}"}"
log "done"
