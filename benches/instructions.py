#!/usr/bin/env python3
"""User-space instructions per request, counted by callgrind (see benches/instructions.sh).

Wall-clock figures on shared 2-core machines swing by up to 2.5x between identical runs;
instruction counts repeat within a fraction of a percent. For each variant the proxy runs
under `valgrind --tool=callgrind`, one keep-alive connection sends WARMUP requests, the counters
are zeroed (`callgrind_control -z`), N requests are sent, and the counters are dumped
(`callgrind_control -d`); instructions per request = the dump's total / N. The upstream is a
small canned-answer server in this process (not counted).

    instructions.py --gate BIN --passthrough BIN [--n 2000] [--warmup 200] [--variants ...]
                    [--measure instructions,allocations,switches,syscalls]

Prints one line per variant and measure: `variant Ir_per_request` for instructions (the first
measure, for compatibility), `variant measure value_per_request` for the others:

- allocations: heap blocks and bytes allocated per request, from valgrind's DHAT (`Total: X
  bytes in Y blocks` at exit) for two runs of WARMUP+N and WARMUP+2N requests: the difference
  divided by N leaves start-up and shutdown out;
- switches: voluntary + involuntary context switches of all the proxy's threads per request
  (`/proc/PID/task/*/status` before and after N requests, the proxy running natively);
- syscalls: system calls per request of all the proxy's threads (`strace -c -f -p PID` attached
  around the N requests).

`gate_get_etcd` is the GET with the token state on etcd (cluster mode, one replica, a local etcd
this script starts). Such a replica also works while idle (lease keep-alives, watch progress):
the same window's worth of idle instructions is measured right after and printed separately
(`gate_get_etcd_idle`), and the request figure is given net of it.
"""

import argparse
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ENTRA_PATCH = os.path.join(ROOT, "tests", "fixtures", "idp", "entra-update-user-multivalued.json")

USER = (b'{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"42",'
        b'"userName":"ada@acme.com","displayName":"Ada","active":true,'
        b'"meta":{"resourceType":"User","location":"http://127.0.0.1:%d/v2/Users/42"}}')


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def upstream(port):
    """A keep-alive HTTP/1.1 server answering every request with one canned User."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(64)
    body = USER % port
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/scim+json\r\nContent-Length: %d\r\n\r\n"
              % len(body)) + body

    def serve(conn):
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v.strip())
                while len(buf) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                buf = buf[length:]
                conn.sendall(answer)

    def accept():
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()


class Client:
    """One keep-alive connection sending the same request again and again."""

    def __init__(self, port, raw):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.raw = raw
        self.buf = b""

    def one(self):
        self.sock.sendall(self.raw)
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.recv()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status = int(head.split(b" ", 2)[1])
        length = 0
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
            elif k.strip().lower() == b"transfer-encoding" and b"chunked" in v.lower():
                chunked = True
        if chunked:
            self.skip_chunks()
        else:
            while len(self.buf) < length:
                self.buf += self.recv()
            self.buf = self.buf[length:]
        if status != 200:
            raise SystemExit(f"unexpected status {status}")

    def skip_chunks(self):
        """Reads a chunked body (nginx's `sub_filter` re-frames the answer) up to its end."""
        while True:
            while b"\r\n" not in self.buf:
                self.buf += self.recv()
            size_line, self.buf = self.buf.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(self.buf) < size + 2:
                self.buf += self.recv()
            self.buf = self.buf[size + 2:]
            if size == 0:
                return

    def recv(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise SystemExit("the proxy closed the connection")
        return chunk


def request(method, path, token, body):
    lines = [f"{method} {path} HTTP/1.1", "Host: bench"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body is not None:
        lines += ["Content-Type: application/scim+json", f"Content-Length: {len(body)}"]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return raw + (body or b"")


def wait_port(port, proc, limit=120):
    deadline = time.time() + limit
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the proxy exited early ({proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the proxy did not start")


def total_ir(out_prefix):
    """The `totals:` (or `summary:`) Ir of every dump file written for this run."""
    total = 0
    for path in glob.glob(out_prefix + "*"):
        with open(path) as f:
            for line in f:
                if line.startswith("totals:") or line.startswith("summary:"):
                    total += int(line.split()[1])
                    break
    return total


def start_etcd(work):
    """A single etcd member on free loopback ports; returns (process, client URL)."""
    client, peer = free_port(), free_port()
    url, purl = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    proc = subprocess.Popen(
        ["etcd", "--name", "bench", "--data-dir", os.path.join(work, "etcd"),
         "--listen-client-urls", url, "--advertise-client-urls", url,
         "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
         "--initial-cluster", f"bench={purl}", "--initial-cluster-state", "new",
         "--log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(client, proc)
    return proc, url


def proc_switches(pid):
    """Voluntary + involuntary context switches summed over every thread of `pid`."""
    total = 0
    for status in glob.glob(f"/proc/{pid}/task/*/status"):
        try:
            with open(status) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except OSError:
            pass  # a thread that ended meanwhile
    return total


def wait_answering(port, raw, limit):
    """Until the proxy answers `raw` with 200 (a cluster replica joins first), at most `limit` s."""
    deadline = time.time() + limit
    while True:
        try:
            Client(port, raw).one()
            return
        except SystemExit:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def start_proxy(cmd, port, raw, warmup, ready_retry, stderr=subprocess.DEVNULL):
    """Starts `cmd` (a proxy, natively or under a valgrind tool), waits for its port — and for
    a real answer when `ready_retry` (a cluster replica answers 503 until it has loaded the
    state) — and sends the warm-up requests on one keep-alive connection. The process is
    stopped again if any of that fails."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr,
                            env=dict(os.environ, RUST_LOG="info"))
    try:
        wait_port(port, proc)
        if ready_retry:
            wait_answering(port, raw, 120)
        client = Client(port, raw)
        for _ in range(warmup):
            client.one()
    except BaseException:
        stop(proc)
        raise
    return proc, client


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def measure_switches(cmd, port, raw, n, warmup, ready_retry=False):
    proc, client = start_proxy(cmd, port, raw, warmup, ready_retry)
    try:
        before = proc_switches(proc.pid)
        for _ in range(n):
            client.one()
        return (proc_switches(proc.pid) - before) / n
    finally:
        stop(proc)


def measure_syscalls(cmd, port, raw, n, warmup, work, name, ready_retry=False):
    proc, client = start_proxy(cmd, port, raw, warmup, ready_retry)
    out = os.path.join(work, f"strace.{name}")
    try:
        # `-p` attaches one thread: name every thread of the process (Pingora's workers
        # already exist after the warm-up).
        tids = [os.path.basename(t) for t in glob.glob(f"/proc/{proc.pid}/task/*")]
        argv = ["strace", "-c", "-f", "-o", out]
        for tid in tids:
            argv += ["-p", tid]
        tracer = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)  # attached to every thread
        for _ in range(n):
            client.one()
        time.sleep(0.2)
        tracer.send_signal(2)
        tracer.wait(timeout=60)
        calls = 0
        with open(out) as f:
            for line in f:
                parts = line.split()
                # `100.00 0.230816 49 4696 [errors] total`: calls is the fourth column.
                if parts and parts[-1] == "total":
                    calls = int(parts[3])
        return calls / n
    finally:
        stop(proc)


def dhat_totals(cmd, port, raw, requests, work, name, ready_retry):
    log = os.path.join(work, f"dhat.{name}.{requests}.log")
    vg = ["valgrind", "--tool=dhat", f"--dhat-out-file={os.path.join(work, 'dhat.out')}.%p",
          f"--log-file={log}"] + cmd
    proc, client = start_proxy(vg, port, raw, 0, ready_retry)
    try:
        for _ in range(requests):
            client.one()
    finally:
        # SIGINT: Pingora's fast shutdown, so DHAT writes its totals without waiting for a
        # graceful drain (the passthrough's lasts a minute).
        proc.send_signal(2)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    with open(log) as f:
        text = f.read()
    for line in text.splitlines():
        if "Total:" in line and "bytes in" in line:
            words = line.split("Total:")[1].replace(",", "").split()
            return int(words[0]), int(words[3])
    raise SystemExit(f"no DHAT totals in {log}")


def measure_allocations(cmd, port, raw, n, warmup, work, name, ready_retry=False):
    b1, k1 = dhat_totals(cmd, port, raw, warmup + n, work, name, ready_retry)
    b2, k2 = dhat_totals(cmd, port, raw, warmup + 2 * n, work, name, ready_retry)
    return (k2 - k1) / n, (b2 - b1) / n


def measure(cmd, port, raw, n, warmup, work, name, idle=False):
    out = os.path.join(work, f"callgrind.{name}")
    vg = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p",
          "--dump-instr=no", "--collect-jumps=no"] + cmd
    proc, client = start_proxy(vg, port, raw, warmup, idle, stderr=open(f"{out}.log", "w"))
    try:
        # Everything so far (start-up, warm-up) is discarded; the dump holds the N requests.
        for f in glob.glob(out + ".*"):
            if not f.endswith(".log"):
                os.remove(f)
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True,
                       stdout=subprocess.DEVNULL)
        started = time.time()
        for _ in range(n):
            client.one()
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True,
                       stdout=subprocess.DEVNULL)
        window = time.time() - started
        time.sleep(1)
        ir = total_ir(out + f".{proc.pid}")
        if idle:
            # The same window again with no request: what the process does on its own.
            for f in glob.glob(out + ".*"):
                if not f.endswith(".log"):
                    os.remove(f)
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True,
                           stdout=subprocess.DEVNULL)
            time.sleep(window)
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True,
                           stdout=subprocess.DEVNULL)
            time.sleep(1)
            background = total_ir(out + f".{proc.pid}")
            return (ir - background) / n, background / n
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return ir / n


def nginx_map(work, port, up, token):
    """nginx as the issue's third reference: a reverse proxy that checks the bearer token against
    a `map` of plaintext values (the same token), sets X-Scim-Tenant, drops Authorization and
    rewrites the upstream's URLs (`sub_filter`), as benches/load.sh configures it — one process
    (`master_process off`), so callgrind and the counters see all of it. Returns the command."""
    d = os.path.join(work, "nginx")
    os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(f"""daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    keepalive_requests 100000000;
    map_hash_bucket_size 128;
    map $http_authorization $scim_tenant {{
        default "";
        "Bearer {token}" "bench";
    }}
    upstream scim_upstream {{
        server 127.0.0.1:{up};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location /scim/v2/ {{
            default_type application/scim+json;
            if ($scim_tenant = "") {{
                return 401 '{{"status":"401"}}';
            }}
            proxy_pass http://scim_upstream/v2/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "";
            proxy_set_header Accept-Encoding "";
            proxy_set_header X-Scim-Tenant $scim_tenant;
            proxy_redirect http://127.0.0.1:{up}/v2/ $scheme://$http_host/scim/v2/;
            sub_filter_types application/scim+json application/json;
            sub_filter_once off;
            sub_filter 'http://127.0.0.1:{up}/v2/' '$scheme://$http_host/scim/v2/';
        }}
    }}
}}
""")
    return [shutil.which("nginx") or "/usr/sbin/nginx", "-p", d, "-c", os.path.join(d, "nginx.conf")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gate", required=True)
    ap.add_argument("--passthrough")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--variants", default="passthrough_get,passthrough_patch,gate_get,gate_patch")
    ap.add_argument("--measure", default="instructions",
                    help="comma-separated: instructions, allocations, switches, syscalls")
    ap.add_argument("--gate-before",
                    help="another build of the gate (e.g. the commit before a change): the "
                         "gate_before_get and gate_before_patch variants, same config and token")
    ap.add_argument("--passthrough-tuned",
                    help="the passthrough for the tuned rows (run with --no-modules, as the gate)")
    a = ap.parse_args()

    up = free_port()
    upstream(up)
    with open(ENTRA_PATCH) as f:
        patch = json.dumps(json.load(f)["body"], separators=(",", ":")).encode()
    work = tempfile.mkdtemp(prefix="scim-gate-instr-")
    gate_port, metrics_port = free_port(), free_port()
    token = None
    gate_cmd = None
    if any(v.startswith("gate") for v in a.variants.split(",")):
        with open(os.path.join(work, "gate.yaml"), "w") as f:
            f.write(f"server: {{listen: 127.0.0.1:{gate_port}, threads: 2}}\n"
                    f"upstream: {{url: http://127.0.0.1:{up}/v2}}\n"
                    f"metrics: {{listen: 127.0.0.1:{metrics_port}}}\n"
                    # The guards run on every request (their cost is measured) but never refuse:
                    # under callgrind one connection still sends far above the default rate.
                    "limits: {rate: 1000000, burst: 1000000}\n")
        with open(os.path.join(work, "tokens.yaml"), "w") as f:
            f.write("tokens: []\n")
        # The token is made by the gate itself (its checksum format), then the gate is stopped.
        gate = subprocess.Popen([a.gate, "run", "-c", os.path.join(work, "gate.yaml")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(gate_port, gate)
            out = subprocess.run([a.gate, "token", "create", "--tenant", "bench", "--idp", "entra",
                                  "--socket", os.path.join(work, "admin.sock"), "--json"],
                                 check=True, capture_output=True, text=True).stdout
            token = out.splitlines()[0].strip()
        finally:
            gate.terminate()
            gate.wait()
        gate_cmd = [a.gate, "run", "-c", os.path.join(work, "gate.yaml")]
    etcd_cmd = None
    etcd_proc = None
    if "gate_get_etcd" in a.variants.split(","):
        etcd_proc, etcd_url = start_etcd(work)
        etcd_port, etcd_metrics = free_port(), free_port()
        cfg = os.path.join(work, "gate-etcd.yaml")
        with open(cfg, "w") as f:
            f.write(f"server: {{listen: 127.0.0.1:{etcd_port}, threads: 2}}\n"
                    f"upstream: {{url: http://127.0.0.1:{up}/v2}}\n"
                    f"metrics: {{listen: 127.0.0.1:{etcd_metrics}}}\n"
                    f"admin: {{socket: {os.path.join(work, 'admin-etcd.sock')}}}\n"
                    "tokens: {backend: etcd}\n"
                    f"etcd: {{endpoints: [{etcd_url}], prefix: /bench}}\n"
                    "limits: {rate: 1000000, burst: 1000000}\n")
        gate = subprocess.Popen([a.gate, "run", "-c", cfg],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(etcd_port, gate)
            for _ in range(100):
                r = subprocess.run([a.gate, "token", "create", "--tenant", "bench", "--idp",
                                    "entra", "--socket", os.path.join(work, "admin-etcd.sock"),
                                    "--json"], capture_output=True, text=True)
                if r.returncode == 0:
                    etcd_token = r.stdout.splitlines()[0].strip()
                    break
                time.sleep(0.2)
            else:
                raise SystemExit(f"no token in cluster mode: {r.stderr}")
        finally:
            gate.terminate()
            gate.wait()
        etcd_cmd = ([a.gate, "run", "-c", cfg], etcd_port, etcd_token)
    # The passthrough gets the same request bytes as the gate, token included (it forwards the
    # header as it is): the floor then parses and writes what the gate parses and writes.
    pt_token = token or "scimgate_" + "0" * 49
    pt_port = free_port()
    pt_cmd = [a.passthrough, "--listen", f"127.0.0.1:{pt_port}", "--upstream", f"127.0.0.1:{up}"]

    variants = {
        "passthrough_get": (pt_cmd, pt_port, request("GET", "/v2/Users/42", pt_token, None)),
        "passthrough_patch": (pt_cmd, pt_port, request("PATCH", "/v2/Users/42", pt_token, patch)),
    }
    if a.passthrough_tuned:
        tuned_port = free_port()
        tuned_cmd = [a.passthrough_tuned, "--listen", f"127.0.0.1:{tuned_port}",
                     "--upstream", f"127.0.0.1:{up}", "--no-modules"]
        variants["tuned_passthrough_get"] = (tuned_cmd, tuned_port,
                                             request("GET", "/v2/Users/42", pt_token, None))
        variants["tuned_passthrough_patch"] = (tuned_cmd, tuned_port,
                                               request("PATCH", "/v2/Users/42", pt_token, patch))
        # The tuned passthrough with the gate's upstream timeouts too: Pingora's timers apart.
        timed_port = free_port()
        timed_cmd = [a.passthrough_tuned, "--listen", f"127.0.0.1:{timed_port}",
                     "--upstream", f"127.0.0.1:{up}", "--no-modules", "--timeouts"]
        variants["timed_passthrough_get"] = (timed_cmd, timed_port,
                                             request("GET", "/v2/Users/42", pt_token, None))
        variants["timed_passthrough_patch"] = (timed_cmd, timed_port,
                                               request("PATCH", "/v2/Users/42", pt_token, patch))
    if gate_cmd:
        variants["gate_get"] = (gate_cmd, gate_port,
                                request("GET", "/scim/v2/Users/42", token, None))
        variants["gate_patch"] = (gate_cmd, gate_port,
                                  request("PATCH", "/scim/v2/Users/42", token, patch))
        if a.gate_before:
            before_cmd = [a.gate_before] + gate_cmd[1:]
            variants["gate_before_get"] = (before_cmd, gate_port,
                                           request("GET", "/scim/v2/Users/42", token, None))
            variants["gate_before_patch"] = (before_cmd, gate_port,
                                             request("PATCH", "/scim/v2/Users/42", token, patch))
    if any(v.startswith("nginx_map") for v in a.variants.split(",")):
        ngx_port = free_port()
        ngx_cmd = nginx_map(work, ngx_port, up, pt_token)
        variants["nginx_map_get"] = (ngx_cmd, ngx_port,
                                     request("GET", "/scim/v2/Users/42", pt_token, None))
        variants["nginx_map_patch"] = (ngx_cmd, ngx_port,
                                       request("PATCH", "/scim/v2/Users/42", pt_token, patch))
    measures = a.measure.split(",")
    for v in a.variants.split(","):
        if v == "gate_get_etcd":
            cmd, port, tok = etcd_cmd
            ir, idle = measure(cmd, port, request("GET", "/scim/v2/Users/42", tok, None),
                               a.n, a.warmup, work, v, idle=True)
            print(f"gate_get_etcd_idle {idle:.0f}", flush=True)
            print(f"{v} {ir:.0f}", flush=True)
            continue
        if v not in variants:
            raise SystemExit(f"unknown variant {v}")
        cmd, port, raw = variants[v]
        for m in measures:
            if m == "instructions":
                print(f"{v} {measure(cmd, port, raw, a.n, a.warmup, work, v):.0f}", flush=True)
            elif m == "allocations":
                blocks, size = measure_allocations(cmd, port, raw, a.n, a.warmup, work, v)
                print(f"{v} allocations {blocks:.1f}", flush=True)
                print(f"{v} allocated_bytes {size:.0f}", flush=True)
            elif m == "switches":
                print(f"{v} switches {measure_switches(cmd, port, raw, a.n, a.warmup):.3f}",
                      flush=True)
            elif m == "syscalls":
                calls = measure_syscalls(cmd, port, raw, a.n, a.warmup, work, v)
                print(f"{v} syscalls {calls:.2f}", flush=True)
            else:
                raise SystemExit(f"unknown measure {m}")
    if etcd_proc:
        etcd_proc.terminate()
        etcd_proc.wait()


if __name__ == "__main__":
    sys.exit(main())
