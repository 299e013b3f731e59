#!/usr/bin/env python3
"""User-space instructions per request, counted by callgrind (see benches/instructions.sh).

Wall-clock figures on shared 2-core machines swing by up to 2.5x between identical runs;
instruction counts repeat within a fraction of a percent. For each variant the proxy runs
under `valgrind --tool=callgrind`, one keep-alive connection sends WARMUP requests, the counters
are zeroed (`callgrind_control -z`), N requests are sent, and the counters are dumped
(`callgrind_control -d`); instructions per request = the dump's total / N. The upstream is a
small canned-answer server in this process (not counted).

    instructions.py --gate BIN --passthrough BIN [--n 2000] [--warmup 200] [--variants ...]

Prints one line per variant: `variant Ir_per_request`.

`gate_get_etcd` is the GET with the token state on etcd (cluster mode, one replica, a local etcd
this script starts). Such a replica also works while idle (lease keep-alives, watch progress):
the same window's worth of idle instructions is measured right after and printed separately
(`gate_get_etcd_idle`), and the request figure is given net of it.
"""

import argparse
import glob
import json
import os
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
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
        while len(self.buf) < length:
            self.buf += self.recv()
        self.buf = self.buf[length:]
        if status != 200:
            raise SystemExit(f"unexpected status {status}")

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


def measure(cmd, port, raw, n, warmup, work, name, idle=False):
    out = os.path.join(work, f"callgrind.{name}")
    vg = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p",
          "--dump-instr=no", "--collect-jumps=no"] + cmd
    proc = subprocess.Popen(vg, stdout=subprocess.DEVNULL, stderr=open(f"{out}.log", "w"),
                            env=dict(os.environ, RUST_LOG="info"))
    try:
        wait_port(port, proc)
        if idle:
            # A cluster replica answers 503 until it has registered and loaded the state.
            deadline = time.time() + 120
            while True:
                try:
                    Client(port, raw).one()
                    break
                except SystemExit:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.2)
        client = Client(port, raw)
        for _ in range(warmup):
            client.one()
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gate", required=True)
    ap.add_argument("--passthrough")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--variants", default="passthrough_get,passthrough_patch,gate_get,gate_patch")
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
    pt_port = free_port()
    pt_cmd = [a.passthrough, "--listen", f"127.0.0.1:{pt_port}", "--upstream", f"127.0.0.1:{up}"]

    for v in a.variants.split(","):
        if v == "passthrough_get":
            ir = measure(pt_cmd, pt_port, request("GET", "/v2/Users/42", None, None),
                         a.n, a.warmup, work, v)
        elif v == "passthrough_patch":
            ir = measure(pt_cmd, pt_port, request("PATCH", "/v2/Users/42", None, patch),
                         a.n, a.warmup, work, v)
        elif v == "gate_get":
            ir = measure(gate_cmd, gate_port, request("GET", "/scim/v2/Users/42", token, None),
                         a.n, a.warmup, work, v)
        elif v == "gate_get_etcd":
            cmd, port, tok = etcd_cmd
            ir, idle = measure(cmd, port, request("GET", "/scim/v2/Users/42", tok, None),
                               a.n, a.warmup, work, v, idle=True)
            print(f"gate_get_etcd_idle {idle:.0f}", flush=True)
        elif v == "gate_patch":
            ir = measure(gate_cmd, gate_port, request("PATCH", "/scim/v2/Users/42", token, patch),
                         a.n, a.warmup, work, v)
        else:
            raise SystemExit(f"unknown variant {v}")
        print(f"{v} {ir:.0f}", flush=True)
    if etcd_proc:
        etcd_proc.terminate()
        etcd_proc.wait()


if __name__ == "__main__":
    sys.exit(main())
