"""End-to-end tests of scim-gate with real parts, no mocks.

What runs
---------
* the **upstream**: ``scim2-server`` from PyPI (in-memory SCIM 2.0 directory, served by its own
  ``scim2-server`` CLI, ``python -m scim2_server.testserver.cli``) on a free loopback port, with a
  static upstream bearer token (``--bearer-token``) and ``--debug`` (it then logs the WSGI
  environment of every request: that is how these tests see which headers reached the upstream);
* the **gate**: the real binary (``$SCIM_GATE_BIN``, default ``target/debug/scim-gate``) started as
  ``scim-gate run -c <config>`` with a config (docs/configuration.md) and a token file (docs/token-file.md) written into a
  fresh temp dir, the upstream credential in ``UPSTREAM_AUTH`` (``upstream.authorization_env``);
* the **conformance suite**: ``scim2-tester`` from PyPI (``scim2_tester.check_server``) driving a
  ``scim2-client`` over an ``httpx2.Client`` whose ``Authorization`` header carries the bearer token.
  It is run directly against scim2-server, through the gate with a valid token, and through the
  gate with a wrong (well-formed but unknown) token.

Only loopback addresses are used; every wait has a timeout; every process started here is
killed (by its own process group id) at the end, also when a test fails.

How results are compared
------------------------
``check_server`` returns ``CheckResult`` objects with a ``status``:

* passed  = SUCCESS, COMPLIANT, ACCEPTABLE, DEVIATION (DEVIATION is "within specification bounds");
* failed  = ERROR, CRITICAL;
* skipped = SKIPPED.

A check is identified by ``(resource_type, title, subject)``: ``title`` is the checker function's
name (``object_creation``, ``check_add_attribute``…), ``subject`` is, for the PATCH checkers
(``check_*``, one result per attribute, quoted first in their reason whether they pass or fail),
the first single-quoted token of the ``reason``, and for the others the ordinal of the result
among the results of the same ``(resource_type, title)``.
"Passes directly but fails through the gate" = passed directly, and failed or absent through
the gate.

Policy differences: by default the gate refuses renames (docs/configuration.md#policy: ``userName``
is immutable after creation unless listed), which scim2-tester does twice. The gate config of
these tests lists ``userName`` and widens ``policy.users.updatable``/``groups.updatable`` and
``policy.extensions`` to every attribute scim2-tester writes, so nothing differs:
``test_with_renames_allowed_the_gate_passes_what_the_directory_passes`` checks the counts are
equal (``EXPECTED_POLICY_REJECTIONS`` is empty and kept for a future deliberate difference).

Classification for the wrong-token run
--------------------------------------
A check "reads or writes a resource" when one of its tags starts with ``crud`` (``crud:create``,
``crud:read``, ``crud:read:attributes``, ``crud:update``, ``crud:delete``) or ``patch``
(``patch:add``, ``patch:remove``, ``patch:replace``); those must all fail with a wrong token, and
at least one must have run (not skipped), so the assertion is not vacuous. For the resource
checks to run at all without discovery (which itself fails with a wrong token, docs/operations.md#authentication requires a
token on every route), the wrong-token client is given the service description discovered
directly from scim2-server. Discovery/misc checks (``discovery``, ``misc`` tags) are reported but
not asserted on (some of them only expect *an* error); instead the test asserts directly that
the gate answers 401 with ``WWW-Authenticate`` and that not one request reached the upstream
during the whole wrong-token run.

The tests
---------
* ``test_conformance_direct``: the baseline (scim2-tester → scim2-server).
* ``test_conformance_through_gate``: nothing that passes directly fails through the gate; on
  failure it also lists every request the gate itself refused (request body and response).
* ``test_policy_differences_are_gate_rejections``: see above.
* ``test_wrong_token_reads_and_writes_nothing``: see below.
* ``test_upstream_sees_gate_credentials_not_the_idp_token``: header rewriting (docs/operations.md#forwarding), seen
  from scim2-server's ``--debug`` dump (IdP token absent, X-Scim-Tenant/X-Scim-Token-Id set).
* ``test_no_plaintext_token_leak``: the plaintext token is in none of the gate's stdout/stderr
  (run at RUST_LOG=debug), the token file, the audit file, /metrics, any file of the gate's dir.
* ``test_upstream_credential_not_in_gate_log``: the UPSTREAM_AUTH value is not logged either.
* ``test_token_file_hot_reload``: hot reload (docs/token-file.md#hot-reload); an invalid edit is counted once, not per
  watcher wake-up.
* ``test_location_rewritten_to_public_url``: Location / meta.location rewriting (docs/operations.md#responses).
* ``test_nice_to_have_900KiB_group_patch``: below.
* ``test_idp_fixtures_replay_through_the_gate``: every tests/fixtures/idp/*.json body replayed
  through a second gate running the DEFAULT policy (docs/configuration.md#policy) (no ``policy:`` key) in front of its own
  scim2-server; ``pass`` fixtures must be forwarded and accepted, ``reject:<reason>`` ones answered
  by the gate (status/scimType of the reason, metric label) without scim2-server seeing a write.
  Prints a table; see its docstring (set-up, id substitution, membership, UPSTREAM_REFUSES).

Nice-to-have
------------
``test_nice_to_have_900KiB_group_patch`` sends a ~900 KiB group PATCH (≈19 000 members) through
the gate and checks that scim2-server received all members (docs/operations.md#request-bodies: the 1 MiB limit must work
end to end although Pingora replays at most 64 KiB of a buffered body).

Run: ``scripts/test-e2e.sh`` (or ``.venv-e2e/bin/python -m pytest -s tests/e2e/run_e2e.py``).
Set ``E2E_KEEP=1`` to keep the temp dir (config, logs) even when everything passes.
"""

from __future__ import annotations

import atexit
import collections
import datetime as dt
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import CheckResult, Status, check_server

ROOT = Path(__file__).resolve().parents[2]
GATE_BIN = Path(os.environ.get("SCIM_GATE_BIN", ROOT / "target" / "debug" / "scim-gate"))
HOST = "127.0.0.1"  # loopback only
BASE_PATH = "/scim/v2"

START_TIMEOUT = 60.0  # seconds to wait for a process to answer
HTTP_TIMEOUT = 30.0  # seconds for any one HTTP request
TEST_TIMEOUT = int(os.environ.get("E2E_TEST_TIMEOUT", "300"))  # hard limit for one test

PASSED = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE, Status.DEVIATION}
FAILED = {Status.ERROR, Status.CRITICAL}

# (resource_type, check title, subject) -> why the gate refuses it by design. Empty: the shared
# gate lists userName as updatable (renames, docs/configuration.md#policy), so it passes exactly
# what scim2-server passes. Without it, scim2-tester's userName replace and its PUT (which fills
# userName with a new random value) are refused 400 mutability — the default, tested in
# tests/it/checks.rs and src/scim/tests/rules.rs.
EXPECTED_POLICY_REJECTIONS: dict = {}

# Every attribute scim2-tester writes (scim2-server's default schemas), userName included.
USER_UPDATABLE = [
    "userName", "displayName", "emails", "name", "name.givenName", "name.familyName", "name.formatted",
    "name.middleName", "name.honorificPrefix", "name.honorificSuffix", "active", "externalId",
    "nickName", "profileUrl", "title", "userType", "preferredLanguage", "locale", "timezone",
    "password", "phoneNumbers", "ims", "photos", "addresses", "entitlements", "roles",
    "x509Certificates",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
]
GROUP_UPDATABLE = ["displayName", "members", "externalId"]
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _base62(data: bytes, width: int) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = _ALPHABET[r] + out
    return out.rjust(width, "0")


def make_token() -> str:
    """A token in the shape of docs/token-file.md#token-format: ``scimgate_`` + 43 base62 chars of 32 random bytes + a
    6-char base62 CRC-32 (IEEE) checksum of everything before it (the gate checks it)."""
    head = "scimgate_" + _base62(secrets.token_bytes(32), 43)
    return head + _base62(zlib.crc32(head.encode()).to_bytes(4, "big"), 6)


def sha256_hex(s: str) -> str:
    import hashlib

    return hashlib.sha256(s.encode()).hexdigest()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def http_client(base_url: str, token: str | None, record: list | None = None) -> httpx2.Client:
    """An httpx2 client for one SCIM root. With ``record``, every exchange is appended to it as
    ``(method, url, request body, status, response headers, response body)``."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    hooks = {}
    if record is not None:

        def on_response(response):
            response.read()
            req = response.request
            record.append((
                req.method, str(req.url), req.content.decode(errors="replace"),
                response.status_code, dict(response.headers), response.text,
            ))

        hooks = {"response": [on_response]}
    # trust_env=False: never route loopback traffic through an environment proxy.
    return httpx2.Client(base_url=base_url, headers=headers, timeout=HTTP_TIMEOUT, trust_env=False,
                         event_hooks=hooks)


def gate_made(exchange) -> bool:
    """Whether a response was produced by the gate itself (scim2-server's carry its
    ``Server: WSGIServer/…`` header)."""
    return "wsgiserver" not in exchange[4].get("server", "").lower()


def wait_until(what: str, probe, timeout: float, proc: "Proc | None" = None) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise AssertionError(
                f"{what}: process exited with status {proc.popen.returncode} before answering\n"
                f"--- last lines of its log ---\n{proc.tail()}"
            )
        try:
            ok = probe()
            if ok:
                return ok
        except Exception as exc:  # noqa: BLE001 - any failure just means "not yet"
            last = exc
        time.sleep(0.2)
    extra = f"\n--- last lines of its log ---\n{proc.tail()}" if proc else ""
    raise AssertionError(f"{what}: not ready after {timeout:.0f}s (last error: {last!r}){extra}")


class Proc:
    """A child process in its own process group, output to files; killed by its own pgid."""

    ALL: list["Proc"] = []

    def __init__(self, name: str, argv: list[str], workdir: Path, env: dict[str, str] | None = None,
                 logdir: Path | None = None):
        self.name = name
        logdir = logdir or workdir
        self.stdout_path = logdir / f"{name}.stdout.log"
        self.stderr_path = logdir / f"{name}.stderr.log"
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
            env=env,
            cwd=workdir,
            start_new_session=True,
        )
        Proc.ALL.append(self)

    def output(self) -> str:
        for f in (self._out, self._err):
            f.flush()
        return (
            self.stdout_path.read_text(errors="replace")
            + self.stderr_path.read_text(errors="replace")
        )

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-n:])

    def stop(self, grace: float = 12.0) -> None:
        if self.popen.poll() is None:
            t0 = time.monotonic()
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(grace)
                print(f"\n{self.name}: exited {self.popen.returncode} {time.monotonic() - t0:.1f}s after SIGTERM", flush=True)
            except subprocess.TimeoutExpired:
                print(f"\n{self.name}: still running {grace:.0f}s after SIGTERM, killing", flush=True)
        # Whatever is left of the group (children included) goes now.
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        for f in (self._out, self._err):
            f.close()


def _stop_all() -> None:
    for p in reversed(Proc.ALL):
        p.stop()
    Proc.ALL.clear()


def _on_sigterm(signum, frame):
    # e.g. the outer `timeout` of scripts/test-e2e.sh: our children live in their own process
    # groups, so they must be stopped here or they would outlive the run.
    _stop_all()
    os._exit(128 + signum)


atexit.register(_stop_all)
signal.signal(signal.SIGTERM, _on_sigterm)


# ---------------------------------------------------------------------------------------------
# running scim2-tester
# ---------------------------------------------------------------------------------------------


class Run:
    """One check_server run, keyed for comparison."""

    def __init__(self, label: str, results: list[CheckResult], client: SyncSCIMClient, exchanges: list):
        self.label = label
        self.exchanges = exchanges
        self.results = results
        self.client = client
        self.by_key: dict[tuple[str, str, str], CheckResult] = {}
        ordinals: collections.Counter = collections.Counter()
        for r in results:
            # Only the PATCH checkers quote their subject in both their success and failure
            # reasons; other checkers quote things only when they fail.
            m = re.search(r"'([^']+)'", r.reason or "") if (r.title or "").startswith("check_") else None
            if m:
                subject = m.group(1)
            else:
                base = (r.resource_type or "-", r.title or "?")
                subject = f"#{ordinals[base]}"
                ordinals[base] += 1
            key = (r.resource_type or "-", r.title or "?", subject)
            while key in self.by_key:  # never silently drop a result
                key = (key[0], key[1], key[2] + "+")
            self.by_key[key] = r

    def counts(self) -> dict[str, int]:
        c = {"passed": 0, "failed": 0, "skipped": 0}
        for r in self.results:
            c["passed" if r.status in PASSED else "failed" if r.status in FAILED else "skipped"] += 1
        return c

    def summary(self) -> str:
        c = self.counts()
        statuses = collections.Counter(r.status.name for r in self.results)
        return (
            f"{self.label}: {len(self.results)} checks — {c['passed']} passed, {c['failed']} failed, "
            f"{c['skipped']} skipped  {dict(statuses)}"
        )


def run_checks(label: str, base_url: str, token: str | None, provider=None) -> Run:
    exchanges: list = []
    http = http_client(base_url, token, record=exchanges)
    client = SyncSCIMClient(http, provider=provider) if provider else SyncSCIMClient(http)
    results = check_server(client)
    run = Run(label, results, client, exchanges)
    print("\n" + run.summary(), flush=True)
    return run


def fmt_key(k: tuple[str, str, str]) -> str:
    return f"{k[0]}/{k[1]}[{k[2]}]"


def short(x: Any, n: int = 1500) -> str:
    s = x if isinstance(x, str) else repr(x)
    return s if len(s) <= n else s[:n] + f"… ({len(s)} chars)"


def is_resource_check(r: CheckResult) -> bool:
    return any(t.startswith("crud") or t.startswith("patch") for t in (r.tags or ()))


REQUEST_LINE = re.compile(r'"(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (/\S*) HTTP/1\.[01]" (\d{3})')


def upstream_requests(log: str) -> list[tuple[str, str, str]]:
    """The request lines wsgiref logged: (method, path, status)."""
    return REQUEST_LINE.findall(log)


# ---------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _per_test_time_limit():
    """A hard limit per test: SIGALRM raises in the test, fixtures then clean up."""

    def on_alarm(signum, frame):
        raise TimeoutError(f"e2e test exceeded {TEST_TIMEOUT}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="session")
def workdir(request):
    d = Path(tempfile.mkdtemp(prefix="sg-e2e-", dir="/tmp"))
    print(f"\ne2e work dir: {d}", flush=True)
    yield d
    _stop_all()
    if request.session.testsfailed == 0 and not os.environ.get("E2E_KEEP"):
        shutil.rmtree(d, ignore_errors=True)
    else:
        print(f"\ne2e work dir kept: {d}", flush=True)


class Upstream:
    def __init__(self, proc: Proc, port: int, token: str):
        self.proc = proc
        self.port = port
        self.token = token
        self.url = f"http://{HOST}:{port}/v2"

    def log(self) -> str:
        return self.proc.output()


def start_upstream(workdir: Path, name: str = "scim2-server", tenants: tuple[str, ...] = ()) -> Upstream:
    """A fresh scim2-server (empty in-memory directory) on a free loopback port; with ``tenants``,
    one root per tenant (``/TENANT/v2``) and the gate's ``upstream.url`` templated with ``{tenant}``
    (docs/configuration.md#upstream)."""
    port = free_port()
    token = "upstream-" + secrets.token_urlsafe(24)
    args = [
        sys.executable, "-m", "scim2_server.testserver.cli",
        "--hostname", HOST, "--port", str(port),
        "--bearer-token", token,
        "--debug",
    ]
    for t in tenants:
        args += ["--tenant", t]
    proc = Proc(name, args, workdir, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    up = Upstream(proc, port, token)
    probe_url = up.url
    if tenants:
        up.url = f"http://{HOST}:{port}/{{tenant}}/v2"
        probe_url = f"http://{HOST}:{port}/{tenants[0]}/v2"
    with http_client(probe_url, token) as c:
        wait_until(
            name,
            lambda: c.get("/ServiceProviderConfig").status_code == 200,
            START_TIMEOUT,
            proc,
        )
    return up


@pytest.fixture(scope="session")
def upstream(workdir):
    up = start_upstream(workdir)
    yield up
    up.proc.stop()


class Gate:
    def __init__(self, proc: Proc, dir: Path, port: int, metrics_port: int, token: str, token_id: str):
        self.proc = proc
        self.dir = dir
        self.port = port
        self.metrics_port = metrics_port
        self.token = token
        self.token_id = token_id
        self.url = f"http://{HOST}:{port}{BASE_PATH}"
        self.token_file = dir / "tokens.yaml"
        self.audit_file = dir / "audit.jsonl"
        self.config_file = dir / "config.yaml"

    def log(self) -> str:
        return self.proc.output()


# The policy of the shared gate: every attribute scim2-tester writes is updatable.
E2E_POLICY = {
    "max_body_bytes": 1048576,
    "dialect": "normalize",
    "users": {"updatable": USER_UPDATABLE},
    "groups": {"updatable": GROUP_UPDATABLE},
    "extensions": {ENTERPRISE: "*"},
}


def write_gate_files(d: Path, upstream: Upstream, port: int, metrics_port: int, token: str, token_id: str,
                     policy: dict | None = E2E_POLICY, etcd: dict | None = None) -> None:
    """Token file + config. ``policy=None`` leaves the ``policy`` key out: the defaults of docs/configuration.md#policy.
    ``etcd`` (the ``etcd:`` section) puts the token state on etcd (docs/cluster.md); the token file
    is then what ``scim-gate tokens import`` copies there."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    (d / "tokens.yaml").write_text(
        "tokens:\n"
        f"  - id: {token_id}\n"
        "    tenant: e2e\n"
        "    idp: other\n"
        "    status: active\n"
        f"    sha256: {sha256_hex(token)}\n"
        "    domains: []\n"
        f"    created_at: {now}\n"
        "    refreshed_at: null\n"
        "    expires_at: null\n"
    )
    # JSON is YAML; every key is in docs/configuration.md.
    config = {
        "server": {"listen": f"{HOST}:{port}", "threads": 2, "shutdown_grace": "5s"},
        "base_path": BASE_PATH,
        "upstream": {
            "url": upstream.url,
            "authorization_env": "UPSTREAM_AUTH",
            "connect_timeout": "2s",
            "read_timeout": "30s",
        },
        "tokens": {"file": "tokens.yaml", "max_per_idp": 2},
        "admin": {"socket": "admin.sock"},
        "audit": {"file": "audit.jsonl"},
        "metrics": {"listen": f"{HOST}:{metrics_port}"},
        # scim2-tester sends its checks back to back, faster than any IdP, and deletes every
        # resource it made: the default guard rails (docs/guards.md: 50/s with a burst of 100;
        # the breaker at the 101st destructive change in 10 minutes) would refuse some of them.
        "limits": {"rate": 10000, "burst": 10000},
        "guards": {"destructive": {"max": 100000, "window": "10m"}},
    }
    if policy is not None:
        config["policy"] = policy
    if etcd is not None:
        config["tokens"] = {"backend": "etcd", "max_per_idp": 2}
        config["etcd"] = etcd
    (d / "config.yaml").write_text(json.dumps(config, indent=2) + "\n")


def start_gate(workdir: Path, upstream: Upstream, name: str = "gate",
               policy: dict | None = E2E_POLICY, etcd: dict | None = None) -> Gate:
    """The real gate binary in ``workdir/name`` in front of ``upstream``, with one valid token
    (with ``etcd``: in cluster mode, the token imported into etcd first)."""
    if not GATE_BIN.is_file() or not os.access(GATE_BIN, os.X_OK):
        pytest.fail(f"gate binary {GATE_BIN} is missing (build it with `cargo build`, or set SCIM_GATE_BIN)")
    d = workdir / name
    d.mkdir()
    port, metrics_port = free_port(), free_port()
    token = make_token()
    token_id = "tok_" + secrets.token_hex(4)
    write_gate_files(d, upstream, port, metrics_port, token, token_id, policy=policy, etcd=etcd)
    if etcd is not None:
        subprocess.run([str(GATE_BIN), "tokens", "import", "--from", str(d / "tokens.yaml"),
                        "-c", str(d / "config.yaml")],
                       check=True, capture_output=True, timeout=30,
                       env={**os.environ, "UPSTREAM_AUTH": f"Bearer {upstream.token}"})
    env = {
        **os.environ,
        "UPSTREAM_AUTH": f"Bearer {upstream.token}",
        "RUST_LOG": os.environ.get("E2E_GATE_RUST_LOG", "debug"),
        "RUST_BACKTRACE": "1",
    }
    # Logs go beside, not into, the gate's dir: the gate watches the token file's folder.
    proc_name = "scim-gate" if name == "gate" else f"scim-gate-{name}"
    proc = Proc(proc_name, [str(GATE_BIN), "run", "-c", str(d / "config.yaml")], d, env=env, logdir=workdir)
    g = Gate(proc, d, port, metrics_port, token, token_id)

    def answers():
        with socket.create_connection((HOST, port), timeout=1):
            pass
        with http_client(g.url, token) as c:
            # A cluster replica answers 503 until it has joined.
            return c.get("/ServiceProviderConfig").status_code not in (0, 503)

    wait_until(f"scim-gate on {HOST}:{port}", answers, START_TIMEOUT, proc)
    return g


@pytest.fixture(scope="session")
def gate(workdir, upstream):
    g = start_gate(workdir, upstream)
    yield g
    g.proc.stop()


@pytest.fixture(scope="session")
def direct_run(upstream) -> Run:
    return run_checks("direct (scim2-tester → scim2-server)", upstream.url, upstream.token)


@pytest.fixture(scope="session")
def gate_run(gate) -> Run:
    return run_checks("through the gate, valid token", gate.url, gate.token)


# ---------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------


def test_conformance_direct(direct_run):
    """scim2-tester against scim2-server alone: the baseline the gate is compared with."""
    passed_resource = [r for r in direct_run.results if r.status in PASSED and is_resource_check(r)]
    for k, r in direct_run.by_key.items():
        if r.status not in PASSED:
            print(f"  direct {r.status.name}: {fmt_key(k)} — {short(r.reason, 300)}")
    assert passed_resource, "no resource check passed directly: scim2-server/scim2-tester setup is broken"


def test_conformance_through_gate(direct_run, gate_run, gate):
    """Every check that passes directly passes through the gate too (except the documented
    policy rejections)."""
    print("\n" + direct_run.summary())
    print(gate_run.summary())
    regressions = []
    for k, r in direct_run.by_key.items():
        if r.status not in PASSED or k in EXPECTED_POLICY_REJECTIONS:
            continue
        g = gate_run.by_key.get(k)
        if g is None or g.status not in PASSED:
            regressions.append((k, g))
    print(f"checks passing directly but failing through the gate: {len(regressions)}")
    lines = []
    for k, g in regressions:
        if g is None:
            line = f"  {fmt_key(k)}: absent from the gate run"
        else:
            line = (
                f"  {fmt_key(k)}: {g.status.name}\n      reason: {short(g.reason, 800)}\n"
                f"      data:   {short(g.data, 800)}"
            )
        print(line)
        lines.append(line)
    rejected = [e for e in gate_run.exchanges if e[3] >= 400 and gate_made(e)]
    if rejected:
        print(f"requests the gate itself refused during the valid-token run: {len(rejected)}")
        for method, url, req, status, _, resp in rejected:
            line = f"  {method} {url}\n      request:  {short(req, 1200)}\n      response: {status} {short(resp, 600)}"
            print(line)
            if regressions and status not in (404, 405):
                lines.append(line)
    for k, g in gate_run.by_key.items():
        if k not in direct_run.by_key:
            print(f"  (only through the gate) {fmt_key(k)}: {g.status.name} {short(g.reason, 300)}")
    assert not regressions, (
        f"{len(regressions)} check(s) pass directly but fail through the gate:\n" + "\n".join(lines)
        + f"\n--- last lines of the gate log ---\n{gate.proc.tail(30)}"
    )


def test_with_renames_allowed_the_gate_passes_what_the_directory_passes(direct_run, gate_run):
    """With ``userName`` in ``policy.users.updatable`` (issue 13: renames by policy), scim2-tester
    through the gate passes exactly the resource checks it passes directly."""
    direct = {k for k, r in direct_run.by_key.items() if r.status in PASSED}
    through = {k for k, r in gate_run.by_key.items() if r.status in PASSED}
    print(f"  passing checks: direct {len(direct)} of {len(direct_run.by_key)}, "
          f"through the gate {len(through)} of {len(gate_run.by_key)}")
    assert direct, "nothing passed directly: the comparison would be vacuous"
    assert direct - through == set(), f"pass directly only: {sorted(map(fmt_key, direct - through))}"
    assert len(through) == len(direct)


def test_wrong_token_reads_and_writes_nothing(direct_run, gate, upstream):
    """With a wrong token no resource check passes, the gate answers 401, and not one request
    reaches the upstream."""
    wrong = make_token()  # well formed (good checksum), unknown hash
    assert wrong != gate.token
    before = len(upstream_requests(upstream.log()))
    run = run_checks("through the gate, WRONG token", gate.url, wrong, provider=direct_run.client.provider)
    time.sleep(0.5)
    after_requests = upstream_requests(upstream.log())[before:]

    resource = [r for r in run.results if is_resource_check(r)]
    executed = [r for r in resource if r.status != Status.SKIPPED]
    passed = [r for r in resource if r.status in PASSED]
    other_passed = [r for r in run.results if r.status in PASSED and not is_resource_check(r)]
    print(
        f"  resource checks: {len(resource)}, executed {len(executed)}, passed {len(passed)}; "
        f"non-resource checks passing: {[r.title for r in other_passed]}"
    )
    with http_client(gate.url, wrong) as c:
        resp = c.get("/Users")
    with http_client(gate.url, None) as c:
        resp_none = c.get("/Users")
    print(f"  GET /Users wrong token → {resp.status_code} {resp.headers.get('www-authenticate')!r}")
    print(f"  GET /Users no token    → {resp_none.status_code} {resp_none.headers.get('www-authenticate')!r}")

    assert executed, "no resource check ran with the wrong token: the assertion would be vacuous"
    assert not passed, "resource checks passed with a WRONG token:\n" + "\n".join(
        f"  {r.resource_type}/{r.title}: {short(r.reason, 300)}" for r in passed
    )
    assert resp.status_code == 401, resp.text
    assert 'realm="scim"' in resp.headers.get("www-authenticate", ""), resp.headers
    assert "invalid_token" in resp.headers.get("www-authenticate", ""), resp.headers
    assert resp.headers.get("content-type", "").startswith("application/scim+json"), resp.headers
    assert resp.json().get("status") == "401", resp.text
    assert wrong not in resp.text
    assert resp_none.status_code == 401, resp_none.text
    assert 'realm="scim"' in resp_none.headers.get("www-authenticate", ""), resp_none.headers
    assert not after_requests, f"requests with a wrong token reached the upstream: {after_requests[:10]}"
    with httpx2.Client(timeout=HTTP_TIMEOUT, trust_env=False) as c:
        metrics = c.get(f"http://{HOST}:{gate.metrics_port}/metrics").text
    unauthorized = [l for l in metrics.splitlines()
                    if l.startswith("scim_gate_requests_total{") and 'outcome="unauthorized"' in l]
    print(f"  metrics: {unauthorized[:3]}")
    assert unauthorized, "scim_gate_requests_total has no outcome=\"unauthorized\" series after the wrong-token run"


def test_upstream_sees_gate_credentials_not_the_idp_token(gate_run, gate, upstream):
    """The IdP's token is replaced by UPSTREAM_AUTH, X-Scim-Tenant/X-Scim-Token-Id are set
    (seen in scim2-server's --debug dump of each request's environment)."""
    log = upstream.log()
    assert upstream_requests(log), "scim2-server logged no request"
    assert gate.token not in log, "the IdP's plaintext token reached the upstream"
    assert f"'HTTP_X_SCIM_TENANT': 'e2e'" in log, "X-Scim-Tenant not seen by the upstream"
    assert f"'HTTP_X_SCIM_TOKEN_ID': '{gate.token_id}'" in log, "X-Scim-Token-Id not seen by the upstream"
    # The run through the gate authenticated at the upstream: no 401 from scim2-server.
    assert not any(s == "401" for _, _, s in upstream_requests(log)), "the upstream answered 401"


def test_no_plaintext_token_leak(gate_run, gate):
    """The plaintext token appears in none of: the gate's stdout/stderr, the token file, the
    audit file, /metrics, nor any other file the gate wrote."""
    with httpx2.Client(timeout=HTTP_TIMEOUT, trust_env=False) as c:
        metrics = c.get(f"http://{HOST}:{gate.metrics_port}/metrics")
    assert metrics.status_code == 200, metrics.text[:500]
    assert "scim_gate_requests_total" in metrics.text, metrics.text[:2000]
    places = {
        "gate stdout/stderr": gate.log(),
        "token file": gate.token_file.read_text(),
        "/metrics": metrics.text,
    }
    if gate.audit_file.exists():
        places["audit file"] = gate.audit_file.read_text(errors="replace")
    for p in gate.dir.rglob("*"):
        if p.is_file():
            places.setdefault(str(p.relative_to(gate.dir)), p.read_text(errors="replace"))
    print(f"  searched: {sorted(places)}; gate log {len(places['gate stdout/stderr'])} chars")
    assert sha256_hex(gate.token) in places["token file"]
    body = gate.token[len("scimgate_"):]
    leaks = [name for name, text in places.items() if gate.token in text or body in text]
    assert not leaks, f"plaintext token found in: {leaks}"


def test_upstream_credential_not_in_gate_log(gate_run, gate, upstream):
    """The upstream credential (UPSTREAM_AUTH) is a secret too: it must not show up in the
    gate's log, even at the debug level these tests run the gate with (E2E_GATE_RUST_LOG)."""
    log = gate.log()
    n = log.count(upstream.token)
    example = ""
    if n:
        i = log.index(upstream.token)
        line_start = log.rfind("\n", 0, i) + 1
        example = log[line_start:line_start + 300]
    assert n == 0, (
        f"the upstream credential appears {n} times in the gate log "
        f"(RUST_LOG={os.environ.get('E2E_GATE_RUST_LOG', 'debug')}); first: {example}…"
    )


def test_token_file_hot_reload(gate_run, gate):
    """docs/token-file.md#hot-reload: a valid edit of the token file takes effect within 1 s (we allow 3 s); an
    invalid edit leaves the previous set in force."""
    second = make_token()
    original = gate.token_file.read_text()
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    edited = original + (
        f"  - id: tok_{secrets.token_hex(4)}\n    tenant: e2e\n    idp: other\n    status: active\n"
        f"    sha256: {sha256_hex(second)}\n    domains: []\n    created_at: {now}\n"
        "    refreshed_at: null\n    expires_at: null\n"
    )
    tmp = gate.token_file.with_suffix(".tmp")
    tmp.write_text(edited)
    os.replace(tmp, gate.token_file)
    t0 = time.monotonic()
    with http_client(gate.url, second) as c:
        wait_until("hot reload of a new token", lambda: c.get("/ServiceProviderConfig").status_code == 200, 3.0)
    print(f"  new token accepted {time.monotonic() - t0:.2f}s after the edit")
    def reload_errors() -> float:
        with httpx2.Client(timeout=HTTP_TIMEOUT, trust_env=False) as c:
            text = c.get(f"http://{HOST}:{gate.metrics_port}/metrics").text
        for line in text.splitlines():
            if line.startswith("scim_gate_token_reloads_total") and 'result="error"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    errors_before = reload_errors()
    # An invalid edit (bad hash) must leave both tokens working.
    tmp.write_text(edited.replace(sha256_hex(second), "not-a-hash"))
    os.replace(tmp, gate.token_file)
    time.sleep(2.0)
    with http_client(gate.url, second) as c:
        assert c.get("/ServiceProviderConfig").status_code == 200, "invalid edit dropped a valid token"
    with http_client(gate.url, gate.token) as c:
        assert c.get("/ServiceProviderConfig").status_code == 200, "invalid edit dropped a valid token"
    errors = reload_errors() - errors_before
    print(f"  scim_gate_token_reloads_total{{result=\"error\"}} grew by {errors:g} for one invalid edit")
    # Restore the original file first, so a failure below leaves the gate in a sane state.
    tmp.write_text(original)
    os.replace(tmp, gate.token_file)
    assert errors >= 1, "invalid edit not counted in scim_gate_token_reloads_total{result=\"error\"}"
    assert errors <= 3, (
        f"one invalid edit was counted {errors:g} times in 2 s (and logged as often): the watcher "
        "keeps re-reading the invalid file"
    )


def test_tenant_roots_keep_tenants_apart(workdir):
    """``upstream.url`` with ``{tenant}`` (docs/configuration.md#upstream) in front of a scim2-server
    that keeps each tenant under its own root: two tokens of two tenants each see only their own
    users, and the locations they get back are the gate's, not a tenant root's."""
    up = start_upstream(workdir, "scim2-server-tenants", tenants=("e2e", "beta"))
    g = start_gate(workdir, up, name="gate-tenants")
    try:
        out = subprocess.run(
            [str(GATE_BIN), "token", "create", "--tenant", "beta", "--idp", "okta",
             "--socket", str(g.dir / "admin.sock")],
            capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        beta_token = out.stdout.splitlines()[0].strip()
        user = {"schemas": [CORE_USER], "userName": "only-in-e2e"}
        with http_client(g.url, g.token) as e2e, http_client(g.url, beta_token) as beta:
            created = e2e.post("/Users", json=user)
            assert created.status_code == 201, created.text
            assert created.headers["location"].startswith(g.url), created.headers["location"]
            assert created.json()["meta"]["location"].startswith(g.url), created.json()["meta"]
            mine = e2e.get("/Users", params={"filter": 'userName eq "only-in-e2e"'}).json()
            theirs = beta.get("/Users", params={"filter": 'userName eq "only-in-e2e"'}).json()
            print(f"  tenant e2e sees {mine['totalResults']}, tenant beta sees {theirs['totalResults']}")
            assert mine["totalResults"] == 1
            assert theirs["totalResults"] == 0
            uid = created.json()["id"]
            assert beta.get(f"/Users/{uid}").status_code == 404
            assert e2e.get(f"/Users/{uid}").status_code == 200
    finally:
        g.proc.stop()
        up.proc.stop()


def test_location_rewritten_to_public_url(gate, upstream):
    """docs/operations.md#responses: Location and meta.location pointing at the upstream are rewritten to the public URL."""
    user = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": f"e2e-{uuid.uuid4().hex[:10]}@example.com"}
    with http_client(gate.url, gate.token) as c:
        r = c.post("/Users", content=json.dumps(user), headers={"Content-Type": "application/scim+json"})
        assert r.status_code == 201, r.text[:800]
        body = r.json()
        uid = body["id"]
        loc, meta_loc = r.headers.get("location"), body.get("meta", {}).get("location")
        print(f"  Location: {loc}  meta.location: {meta_loc}")
        assert loc == f"{gate.url}/Users/{uid}", f"Location not rewritten: {loc}"
        assert meta_loc == f"{gate.url}/Users/{uid}", f"meta.location not rewritten: {meta_loc}"
        got = c.get(f"/Users/{uid}").json()
        assert got.get("meta", {}).get("location") == f"{gate.url}/Users/{uid}", got.get("meta")
        assert c.delete(f"/Users/{uid}").status_code == 204


def test_nice_to_have_900KiB_group_patch(gate, upstream):
    """NICE-TO-HAVE: a ~900 KiB group PATCH through the gate reaches scim2-server intact."""
    headers = {"Content-Type": "application/scim+json"}
    with http_client(gate.url, gate.token) as c:
        r = c.post(
            "/Groups",
            content=json.dumps({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                "displayName": "e2e-big-" + uuid.uuid4().hex[:8]}),
            headers=headers,
        )
        assert r.status_code == 201, f"NICE-TO-HAVE 900KiB PATCH: group creation → {r.status_code} {r.text[:500]}"
        gid = r.json()["id"]
        members = []
        body = b""
        target = 900 * 1024
        while len(body) < target:
            members.extend({"value": str(uuid.uuid4())} for _ in range(500))
            body = json.dumps({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "add", "path": "members", "value": members}],
            }).encode()
        assert target <= len(body) < 1024 * 1024
        r = c.patch(f"/Groups/{gid}", content=body, headers=headers, timeout=120)
        assert r.status_code in (200, 204), (
            f"NICE-TO-HAVE 900KiB PATCH ({len(body)} bytes, {len(members)} members): "
            f"gate → {r.status_code} {r.text[:800]}"
        )
    with http_client(upstream.url, upstream.token) as c:
        got = c.get(f"/Groups/{gid}", timeout=120).json()
    got_ids = {m["value"] for m in got.get("members") or []}
    want = {m["value"] for m in members}
    print(f"  PATCH {len(body)} bytes, {len(members)} members; upstream group has {len(got_ids)}")
    assert got_ids == want, (
        f"NICE-TO-HAVE 900KiB PATCH: upstream group has {len(got_ids)} of {len(want)} members "
        f"({len(want - got_ids)} missing, {len(got_ids - want)} unexpected)"
    )


# ---------------------------------------------------------------------------------------------
# IdP fixtures replayed through a gate with the DEFAULT policy
# ---------------------------------------------------------------------------------------------

IDP_FIXTURES = ROOT / "tests" / "fixtures" / "idp"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ERROR_URN = "urn:ietf:params:scim:api:messages:2.0:Error"
WRITES = {"POST", "PUT", "PATCH", "DELETE"}

# reason label -> (HTTP status, accepted scimType values; None = the answer carries no scimType).
# Mirrors src/scim/error.rs (schema: invalidSyntax or invalidValue; dialect: whatever the
# deviation calls for, so any scimType).
REASON_ANSWERS: dict[str, tuple[int, set[str] | None]] = {
    "invalid_json": (400, {"invalidSyntax"}),
    "schema": (400, {"invalidSyntax", "invalidValue"}),
    "mutability": (400, {"mutability"}),
    "invalid_path": (400, {"invalidPath"}),
    "extension": (400, {"invalidValue"}),
    "domain": (403, None),
    "dialect": (400, {"invalidSyntax", "invalidValue", "invalidPath", "noTarget", "mutability"}),
    "invalid_filter": (400, {"invalidFilter"}),
    "no_target": (400, {"noTarget"}),
    "not_found": (404, None),
}

# The policy defaults (docs/configuration.md#policy), exactly as `scim-gate check-config` prints the `policy` section of a config
# without a `policy:` key (the e2e venv has no YAML parser, so this is compared as text).
SPEC_DEFAULT_POLICY_YAML = f"""policy:
  max_body_bytes: 1048576
  dialect: normalize
  users:
    updatable:
    - displayName
    - emails
    - name.givenName
    - name.familyName
    - active
    - {ENTERPRISE}:department
    - urn:ietf:params:scim:schemas:extension:ivanti:2.0:User
  groups:
    updatable:
    - displayName
    - members
  extensions:
    {ENTERPRISE}:
    - department
    urn:ietf:params:scim:schemas:extension:ivanti:2.0:User: '*'
  max_filter_terms: 1000
  bulk_max_operations: 1000
"""

# `expect: pass` fixtures that the gate forwards (as it should) but that scim2-server refuses for
# its own reasons, with the evidence: the same body sent directly to scim2-server gets the same
# answer (the test checks that on every run). fixture -> (status, text in scim2-server's detail, why)
# Fixtures that scim2-server refuses although the gate rightly forwards them: none since the gate's
# `normalize` dialect removes Entra's non-URN ADSCIM group schema id, which scim2-server (a strict
# directory) refused with 400 "Unknown extension schemas" when it was forwarded as sent.
UPSTREAM_REFUSES: dict[str, tuple[int, str, str]] = {}

_REJECTION_LINE = re.compile(r'^scim_gate_policy_rejections_total\{reason="([^"]+)"\}\s+(\S+)$')


def policy_rejections(gate: "Gate") -> dict[str, float]:
    with httpx2.Client(timeout=HTTP_TIMEOUT, trust_env=False) as c:
        text = c.get(f"http://{HOST}:{gate.metrics_port}/metrics").text
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _REJECTION_LINE.match(line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def _member_ids(body: dict) -> list[str]:
    """Member ids a Groups PATCH names: ``value[].value`` of ops on ``members`` and the
    ``members[value eq "…"]`` filters."""
    ids: list[str] = []
    for op in body.get("Operations") or []:
        path = op.get("path") or ""
        m = re.fullmatch(r'\s*members\s*\[\s*value\s+eq\s+"([^"]*)"\s*\].*', path, re.I)
        if m:
            ids.append(m.group(1))
        elif path.lower() == "members" and isinstance(op.get("value"), list):
            ids.extend(v["value"] for v in op["value"] if isinstance(v, dict) and isinstance(v.get("value"), str))
    return list(dict.fromkeys(ids))


def _placeholder_ids(fx: dict) -> list[str]:
    """The fixture's stand-ins for the target resource's id: ``current.id``, a top-level
    ``id`` (PUT), an ``id`` key inside a no-path operation's value object (Okta's rename)."""
    found = []
    for obj in [fx.get("current") or {}, fx["body"]] + [
        op.get("value") for op in fx["body"].get("Operations") or []
        if isinstance(op, dict) and not op.get("path")
    ]:
        if isinstance(obj, dict) and isinstance(obj.get("id"), str):
            found.append(obj["id"])
    return list(dict.fromkeys(found))


def _substitute(value: Any, mapping: dict[str, str]) -> Any:
    """Replace every string equal to a placeholder, and every ``"…"`` occurrence inside
    filter paths, by the real id."""
    if isinstance(value, dict):
        return {k: _substitute(v, mapping) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, mapping) for v in value]
    if isinstance(value, str):
        if value in mapping:
            return mapping[value]
        for old, new in mapping.items():
            value = value.replace(f'"{old}"', f'"{new}"')
        return value
    return value


def _strip_meta(resource: dict) -> dict:
    return {k: v for k, v in resource.items() if k != "meta"}


def _wipe(up_client: httpx2.Client) -> None:
    """Delete every Group and User of the (dedicated) upstream: each fixture starts empty, so
    the fixtures' fixed userNames / displayNames never collide."""
    for res in ("Groups", "Users"):
        for _ in range(5):
            r = up_client.get(f"/{res}", params={"count": 1000})
            items = r.json().get("Resources") or []
            if not items:
                break
            for item in items:
                up_client.delete(f"/{res}/{item['id']}")


def test_idp_fixtures_replay_through_the_gate(workdir):
    """Every request body of tests/fixtures/idp, replayed through a gate with the DEFAULT policy
    (docs/configuration.md#policy: no ``policy:`` key in its config; checked with ``scim-gate check-config``) in front
    of its own, otherwise empty, scim2-server.

    For each fixture, from an empty directory:

    * set-up (through the gate, with bodies the default policy accepts): a ``/Users/{id}`` PATCH
      gets a user (userName, name, a work e-mail, active, enterprise department); a PUT gets the
      user of its ``current`` (readOnly ``id``/``meta``/``groups`` left out); a ``/Groups/{id}``
      PATCH gets a group. **Membership**: every member id a Groups PATCH names (``value[].value``
      of an op on ``members``, ``members[value eq "…"]``) is mapped to a real user created
      first, so scim2-server never sees an unknown member id and the effect can be checked; for
      remove/replace fixtures those users are members of the group before the PATCH, for add
      fixtures they are not. The fixture's placeholder ids (member ids, ``current.id``, a body
      ``id``, an ``id`` in a no-path value) are substituted by the real ones, in the path too.
    * ``expect: pass``: the answer is 2xx and comes from scim2-server (not produced by the gate),
      and the effect is visible upstream (created resource exists; ``active`` is the JSON
      boolean ``false`` after a disable, also when the IdP sent the string ``"False"``;
      members added / removed / emptied). Exception, decided with evidence: a fixture listed in
      ``UPSTREAM_REFUSES`` (scim2-server refuses a body the gate rightly forwards) must reach
      scim2-server (its log shows the write), get exactly the listed refusal, and get the same
      answer when sent directly to scim2-server; it is shown as ``ok*``.
    * ``expect: reject:<reason>``: the gate answered itself, with the status and ``scimType`` of
      that reason (src/scim/error.rs), the Error schema and a non-empty detail;
      ``scim_gate_policy_rejections_total{reason}`` grew by one for exactly that reason;
      scim2-server saw no write request (its request log) and the resource is unchanged (GET
      before/after), or, for a POST, no resource was created.

    A table (fixture, vendor, method, expected, got) is printed; the test fails listing every
    fixture whose outcome differs from its expectation, with request and response.
    """
    files = sorted(IDP_FIXTURES.glob("*.json"))
    assert len(files) >= 20, f"only {len(files)} fixtures in {IDP_FIXTURES}"
    up = start_upstream(workdir, "scim2-server-idp")
    g = start_gate(workdir, up, name="gate-idp", policy=None)
    try:
        cfg_text = (g.dir / "config.yaml").read_text()
        assert "policy" not in json.loads(cfg_text), "this gate must run with the default policy"
        effective = subprocess.run([str(GATE_BIN), "check-config", "-c", str(g.dir / "config.yaml")],
                                   capture_output=True, text=True, timeout=30,
                                   env={**os.environ, "UPSTREAM_AUTH": f"Bearer {up.token}"})
        assert effective.returncode == 0, effective.stderr
        _check_default_policy(effective.stdout)
        _replay_fixtures(files, g, up)
    finally:
        g.proc.stop()
        up.proc.stop()


def _check_default_policy(effective_yaml: str) -> None:
    i = effective_yaml.find("\npolicy:\n")
    assert i >= 0, f"no policy section in check-config output:\n{effective_yaml}"
    section = effective_yaml[i + 1:]
    # Up to the next top-level key (`limits:`, `guards:` follow it).
    ends = [j + 1 for j in range(len(section) - 1) if section[j] == "\n" and section[j + 1] not in " \n"]
    section = section[:ends[0]] if ends else section
    print("\n  effective policy (check-config):\n" + "\n".join("    " + l for l in section.splitlines()))
    assert section == SPEC_DEFAULT_POLICY_YAML, "the effective policy is not the documented default (docs/configuration.md#policy)"


def _replay_fixtures(files: list[Path], g: "Gate", up: Upstream) -> None:
    headers = {"Content-Type": "application/scim+json"}
    rows: list[tuple[str, str, str, str, str, str, str]] = []
    failures: list[str] = []
    with http_client(g.url, g.token) as gc, http_client(up.url, up.token) as uc:

        def create(res: str, body: dict) -> dict:
            r = gc.post(f"/{res}", content=json.dumps(body), headers=headers)
            if r.status_code != 201:
                raise AssertionError(f"set-up POST /{res} through the gate → {r.status_code} {r.text[:600]}\n"
                                     f"body: {json.dumps(body)}")
            return r.json()

        def setup_user(label: str, extra: dict | None = None) -> dict:
            uname = f"{label}-{uuid.uuid4().hex[:8]}@example.com"
            body = {
                "schemas": [CORE_USER, ENTERPRISE],
                "userName": uname,
                "name": {"givenName": "Set", "familyName": "Up"},
                "emails": [{"type": "work", "value": uname, "primary": True}],
                "active": True,
                ENTERPRISE: {"department": "Set-up"},
            }
            body.update(extra or {})
            return create("Users", body)

        for path in files:
            fx = json.loads(path.read_text())
            name = path.stem
            method, fpath, expect = fx["method"], fx["path"], fx["expect"]
            res = "Users" if fpath.startswith("/Users") else "Groups"
            body = fx["body"]
            notes: list[str] = []
            _wipe(uc)
            mapping: dict[str, str] = {}
            target_id = None
            member_ids: dict[str, str] = {}
            try:
                if "{id}" in fpath:
                    if res == "Users" and method == "PUT":
                        cur = {k: v for k, v in (fx.get("current") or {}).items() if k not in ("id", "meta", "groups")}
                        assert cur, f"{name}: a PUT fixture needs `current`"
                        target_id = create("Users", cur)["id"]
                    elif res == "Users":
                        target_id = setup_user("idp-target")["id"]
                    else:
                        fixture_members = _member_ids(body)
                        for mid in fixture_members:
                            member_ids[mid] = setup_user("idp-member")["id"]
                        ops = {str(op.get("op", "")).lower() for op in body.get("Operations") or []}
                        initial = [] if ops == {"add"} else [{"value": v} for v in member_ids.values()]
                        target_id = create("Groups", {"schemas": [CORE_GROUP],
                                                      "displayName": f"idp-group-{uuid.uuid4().hex[:8]}",
                                                      "members": initial})["id"]
                    mapping.update(member_ids)
                    for ph in _placeholder_ids(fx):
                        mapping[ph] = target_id
                    if mapping:
                        notes.append("ids substituted: " + ", ".join(f"{k[:8]}…→{'target' if v == target_id else 'user ' + v[:8] + '…'}"
                                                                    for k, v in mapping.items()))
                    body = _substitute(body, mapping)
                    url = fpath.replace("{id}", target_id)
                else:
                    url = fpath
            except AssertionError as exc:
                rows.append((name, fx["vendor"], method, expect, "SET-UP FAILED", "FAIL", short(str(exc), 200)))
                failures.append(f"{name}: set-up failed: {exc}")
                continue

            before = uc.get(f"/{res}/{target_id}").json() if target_id else None
            n_before = len(upstream_requests(up.log()))
            rej_before = policy_rejections(g)
            r = gc.request(method, url, content=json.dumps(body), headers=headers)
            from_gate = "wsgiserver" not in r.headers.get("server", "").lower()
            try:
                rbody = r.json()
            except ValueError:
                rbody = None
            after = uc.get(f"/{res}/{target_id}").json() if target_id else None
            time.sleep(0.1)
            upstream_writes = [x for x in upstream_requests(up.log())[n_before:] if x[0] in WRITES]
            rej_delta = {k: v - rej_before.get(k, 0.0) for k, v in policy_rejections(g).items()
                         if v - rej_before.get(k, 0.0) > 0}

            scim_type = rbody.get("scimType") if isinstance(rbody, dict) else None
            if 200 <= r.status_code < 300 and not from_gate:
                got = "pass"
            elif from_gate and r.status_code >= 400:
                got = "reject:" + ("+".join(sorted(rej_delta)) or "?")
            else:
                got = f"upstream {r.status_code}" + (f" {scim_type}" if scim_type else "")
            problems: list[str] = []

            if expect == "pass" and name in UPSTREAM_REFUSES and got != "pass":
                want_status, want_text, why = UPSTREAM_REFUSES[name]
                direct = uc.request(method, url, content=json.dumps(body), headers=headers)
                got = f"forwarded; scim2-server {r.status_code}" + (f" {scim_type}" if scim_type else "")
                if from_gate:
                    problems.append(f"expected pass, got {got} from the gate")
                if not any(x[0] == method for x in upstream_writes):
                    problems.append(f"scim2-server's log shows no {method}: not forwarded")
                if r.status_code != want_status or want_text not in r.text:
                    problems.append(f"scim2-server answered {r.status_code} {short(r.text, 300)}, "
                                    f"not the known refusal {want_status} '{want_text}'")
                if direct.status_code != r.status_code or direct.text != r.text:
                    problems.append(f"sent directly, scim2-server answers {direct.status_code} "
                                    f"{short(direct.text, 300)}: the refusal is not only the upstream's")
                notes.append("UPSTREAM REFUSES (same answer when sent directly): " + why)
            elif expect == "pass":
                if name in UPSTREAM_REFUSES:
                    notes.append("scim2-server accepted it: UPSTREAM_REFUSES entry is stale")
                if got != "pass":
                    problems.append(f"expected pass, got {got}")
                else:
                    problems += _verify_effect(fx, body, res, target_id, rbody, member_ids, after, uc)
            elif expect.startswith("reject:"):
                reason = expect.split(":", 1)[1]
                want_status, want_types = REASON_ANSWERS[reason]
                if not from_gate:
                    problems.append(f"the gate forwarded it: upstream answered {r.status_code}")
                if r.status_code != want_status:
                    problems.append(f"status {r.status_code}, want {want_status}")
                if want_types is None and scim_type is not None:
                    problems.append(f"scimType {scim_type!r}, want none")
                if want_types is not None and scim_type not in want_types:
                    problems.append(f"scimType {scim_type!r}, want one of {sorted(want_types)}")
                if not isinstance(rbody, dict) or ERROR_URN not in (rbody.get("schemas") or []):
                    problems.append("not a SCIM Error body")
                elif not str(rbody.get("detail") or "").strip():
                    problems.append("empty detail")
                if isinstance(rbody, dict) and "status" in rbody and str(rbody["status"]) != str(r.status_code):
                    problems.append(f"body status {rbody.get('status')!r} ≠ HTTP {r.status_code}")
                if not r.headers.get("content-type", "").startswith("application/scim+json"):
                    problems.append(f"content-type {r.headers.get('content-type')!r}")
                if rej_delta != {reason: 1.0}:
                    problems.append(f"policy_rejections_total grew by {rej_delta}, want {{{reason!r}: 1}}")
                if upstream_writes:
                    problems.append(f"scim2-server received write(s): {upstream_writes}")
                if target_id and before != after:
                    problems.append(f"upstream resource changed:\n before {before}\n after  {after}")
                if not target_id:
                    listed = uc.get(f"/{res}").json().get("Resources") or []
                    if listed:
                        problems.append(f"upstream now holds {len(listed)} {res}: {[x.get('id') for x in listed]}")
            else:
                problems.append(f"unknown expectation {expect!r}")

            detail = ""
            if isinstance(rbody, dict) and r.status_code >= 400:
                detail = f"{r.status_code} {scim_type or '-'}: {short(str(rbody.get('detail')), 90)}"
            verdict = "FAIL" if problems else "ok*" if got.startswith("forwarded;") else "ok"
            rows.append((name, fx["vendor"], method, expect, got, verdict,
                         "; ".join(notes + ([detail] if detail else []))))
            if problems:
                failures.append(
                    f"{name} ({fx['vendor']} {method} {fpath}, expect {expect}):\n    - "
                    + "\n    - ".join(problems)
                    + f"\n    request:  {method} {url}\n              {short(json.dumps(body), 1200)}"
                    + f"\n    response: {r.status_code} {'(gate)' if from_gate else '(scim2-server)'} {short(r.text, 1200)}"
                )
        _wipe(uc)

    w = [max(len(str(row[i])) for row in rows + [("fixture", "vendor", "method", "expected", "got", "", "")])
         for i in range(6)]
    print("\n  " + "  ".join(h.ljust(w[i]) for i, h in enumerate(("fixture", "vendor", "method", "expected", "got", "")))
          + "  notes")
    for row in rows:
        print("  " + "  ".join(str(row[i]).ljust(w[i]) for i in range(6)) + "  " + row[6])
    counts = collections.Counter(row[5] for row in rows)
    by_expect = collections.Counter(("pass" if row[3] == "pass" else "reject", row[5]) for row in rows)
    print(f"  {len(rows)} fixtures: {counts['ok']} ok, {counts['ok*']} ok* (gate forwarded as expected, "
          f"scim2-server refused: UPSTREAM_REFUSES), {counts['FAIL']} failed  "
          f"(pass: {by_expect[('pass', 'ok')]} ok / {by_expect[('pass', 'ok*')]} ok* / "
          f"{by_expect[('pass', 'FAIL')]} failed; "
          f"reject: {by_expect[('reject', 'ok')]} ok / {by_expect[('reject', 'FAIL')]} failed)")
    assert not failures, f"{len(failures)} fixture(s) did not meet their expectation:\n" + "\n".join(failures)


def _verify_effect(fx: dict, body: dict, res: str, target_id: str | None, rbody: Any,
                   member_ids: dict[str, str], after: dict | None, uc: httpx2.Client) -> list[str]:
    """For a forwarded, accepted fixture: is its effect visible on scim2-server?"""
    problems: list[str] = []
    method = fx["method"]
    if method == "POST":
        rid = rbody.get("id") if isinstance(rbody, dict) else None
        if not rid or uc.get(f"/{res}/{rid}").status_code != 200:
            problems.append(f"POST answered 2xx but scim2-server has no {res}/{rid}")
        return problems
    if after is None:
        return [f"scim2-server has no {res}/{target_id} after the request"]
    for op in body.get("Operations") or []:
        opname = str(op.get("op", "")).lower()
        path = (op.get("path") or "")
        value = op.get("value")
        # disable: active must now be the JSON boolean false (normalize turns "False" into false)
        if res == "Users" and (path.lower() == "active" or (not path and isinstance(value, dict) and "active" in value)):
            if after.get("active") is not False:
                problems.append(f"after a disable, upstream active = {after.get('active')!r}, want false")
        if res == "Groups":
            have = {m.get("value") for m in after.get("members") or []}
            real = set(member_ids.values())
            if opname == "add" and path.lower() == "members" and not real <= have:
                problems.append(f"members not added: want {sorted(real)}, upstream has {sorted(have)}")
            if opname == "remove" and (real & have):
                problems.append(f"members not removed: upstream still has {sorted(real & have)}")
            if opname == "replace" and path.lower() == "members" and value == [] and have:
                problems.append(f"members not emptied: upstream has {sorted(have)}")
            if opname == "replace" and not path and isinstance(value, dict) and "displayName" in value:
                if after.get("displayName") != value["displayName"]:
                    problems.append(f"displayName not replaced: upstream has {after.get('displayName')!r}")
    if method == "PUT":
        for k in ("displayName", "name"):
            if k in body and after.get(k) != body[k]:
                problems.append(f"PUT: upstream {k} = {after.get(k)!r}, want {body[k]!r}")
    return problems


if __name__ == "__main__":
    sys.exit(pytest.main(["-s", "-v", "-p", "no:cacheprovider", __file__, *sys.argv[1:]]))
