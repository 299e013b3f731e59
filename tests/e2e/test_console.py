"""Browser tests of ``scim-gate console`` (docs/console.md), with real parts only.

What runs: scim2-server (the upstream), the real gate binary in front of it (the fixtures of
``run_e2e.py``), the real ``scim-gate console -c <the gate's config>``, and Debian's Chromium
driven by Playwright (``executable_path=/usr/bin/chromium``; no browser download).

The tests sign in with the printed link, create a token and read the secret from the dialog,
use it against the gate, refresh it behind the confirmation (old secret 401, new 200),
deactivate / activate / delete it, read the audit trail, and do a keyboard-only round. Security:
the sign-in link works once; a change without the CSRF token changes nothing; the secret is in
no response but the one that made it, and in no storage, cookie, URL or DOM once the dialog is
closed. Screenshots of each view go to ``$CONSOLE_SCREENSHOTS`` (default
``target/console-screenshots``); ``CONSOLE_UPDATE_DOCS=1`` also writes ``docs/console.png``.

Run: ``scripts/test-console.sh``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx2
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from run_e2e import (  # noqa: F401 - fixtures are used by name
    GATE_BIN,
    ROOT,
    START_TIMEOUT,
    Proc,
    _per_test_time_limit,
    free_port,
    gate,
    start_gate,
    upstream,
    wait_until,
    workdir,
)

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SHOTS = Path(os.environ.get("CONSOLE_SCREENSHOTS", ROOT / "target" / "console-screenshots"))
UI_TIMEOUT_MS = 10_000


def gate_status(gate, token: str) -> int:
    """The gate's answer to GET /Users with this token."""
    with httpx2.Client(base_url=gate.url, timeout=10, trust_env=False) as c:
        return c.get("/Users", headers={"Authorization": f"Bearer {token}"}).status_code


def token_ids(gate) -> list[str]:
    """The token ids, read with the CLI over the admin socket (not through the console)."""
    out = subprocess.run(
        [str(GATE_BIN), "token", "list", "--json", "--socket", str(gate.dir / "admin.sock")],
        check=True, capture_output=True, text=True, timeout=15,
    )
    return [t["id"] for t in json.loads(out.stdout)["tokens"]]


class Console:
    def __init__(self, proc: Proc, url: str):
        self.proc = proc
        self.login_url = url
        self.origin = url.split("/login#")[0]


def start_console(workdir: Path, gate, n: list[int] = [0]) -> Console:
    n[0] += 1
    env = {**os.environ, "UPSTREAM_AUTH": "Bearer unused-by-the-console"}
    proc = Proc(f"console-{n[0]}", [str(GATE_BIN), "console", "-c", str(gate.config_file)], workdir,
                env=env)

    def printed():
        for line in proc.stdout_path.read_text().splitlines():
            if line.startswith("console: http://127.0.0.1:"):
                return line.split(" ", 1)[1]
        return None

    url = wait_until("scim-gate console", printed, START_TIMEOUT, proc)
    return Console(proc, url)


@pytest.fixture()
def console(workdir, gate):
    c = start_console(workdir, gate)
    yield c
    c.proc.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Session:
    """A signed-in page plus every console API response it received."""

    def __init__(self, context, page: Page):
        self.context = context
        self.page = page
        self.responses = []
        page.on("response", lambda r: self.responses.append(r) if "/api/" in r.url else None)

    def bodies(self) -> list[tuple[str, str, str]]:
        out = []
        for r in self.responses:
            if r.status == 204:
                # No body; asking the browser for one waits for a timeout.
                out.append((r.request.method, r.url, ""))
                continue
            try:
                out.append((r.request.method, r.url, r.text()))
            except Exception:  # noqa: BLE001 - a 204 or a redirect has no body to read
                out.append((r.request.method, r.url, ""))
        return out


def open_session(browser, console: Console) -> Session:
    context = browser.new_context(viewport={"width": 1280, "height": 760})
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    s = Session(context, page)
    page.goto(console.login_url)
    expect(page.locator("#view-tokens")).to_be_visible()
    return s


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def read_secret(page: Page) -> str:
    expect(page.locator("#secret-dialog")).to_be_visible()
    secret = page.locator("#secret-value").input_value()
    assert secret.startswith("scimgate_"), secret
    return secret


def assert_secret_gone(s: Session, secret: str) -> None:
    """Not in the DOM (markup or any input's value), storage, cookies or the URL."""
    page = s.page
    expect(page.locator("#secret-dialog")).to_be_hidden()
    assert secret not in page.content()
    values = page.evaluate("[...document.querySelectorAll('input,textarea')].map(e => e.value)")
    assert all(secret not in v for v in values)
    storage = page.evaluate("JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])")
    assert storage == "[[],[]]", storage
    assert secret not in page.url
    assert all(secret not in c["value"] for c in s.context.cookies())


def row(page: Page, token_id: str):
    return page.locator(f'#tokens-table tr[data-token-id="{token_id}"]')


def test_admin_journey(browser, console, gate):
    s = open_session(browser, console)
    page = s.page
    assert page.url == f"{console.origin}/", "the sign-in key left the address bar"
    expect(row(page, gate.token_id)).to_be_visible()
    before = set(token_ids(gate))

    # A change without the CSRF token, from the signed-in page itself, changes nothing. (The
    # body is read so the browser finishes the response; Playwright waits for that.)
    status = page.evaluate(
        """fetch('/api/admin/tokens', {method: 'POST', headers: {'Content-Type': 'application/json'},
             body: JSON.stringify({tenant: 'csrf', idp: 'okta'})})
           .then(async r => { await r.text(); return r.status; })""")
    assert status == 403
    assert set(token_ids(gate)) == before

    # Create.
    page.fill("#create-tenant", "acme")
    page.select_option("#create-idp", "okta")
    page.fill("#create-domains", "example.com")
    page.select_option("#create-expires", "90d")
    page.click("#create-submit")
    secret = read_secret(page)
    assert page.locator("#secret-url").input_value() == gate.url
    shot(page, "create-secret-dialog")
    (new_id,) = set(token_ids(gate)) - before
    page.click("#secret-close")
    assert_secret_gone(s, secret)
    expect(row(page, new_id)).to_contain_text("Okta")
    expect(row(page, new_id)).to_contain_text("example.com")
    assert gate_status(gate, secret) == 200

    # Refresh, behind a confirmation that says what happens.
    page.get_by_role("button", name=f"Refresh {new_id}").click()
    expect(page.locator("#confirm-dialog")).to_be_visible()
    expect(page.locator("#confirm-text")).to_contain_text("stops working the moment you confirm")
    expect(page.locator("#confirm-text")).to_contain_text("Okta")
    shot(page, "refresh-confirmation")
    page.click("#confirm-ok")
    refreshed = read_secret(page)
    assert refreshed != secret
    page.keyboard.press("Escape")
    assert_secret_gone(s, refreshed)
    assert gate_status(gate, secret) == 401
    assert gate_status(gate, refreshed) == 200

    # Deactivate, activate.
    page.get_by_role("button", name=f"Deactivate {new_id}").click()
    expect(row(page, new_id)).to_contain_text("inactive")
    assert gate_status(gate, refreshed) == 401
    page.get_by_role("button", name=f"Activate {new_id}").click()
    expect(row(page, new_id).locator(".badge")).to_have_text("active")
    assert gate_status(gate, refreshed) == 200
    shot(page, "tokens")

    # The audit trail names the IdP.
    page.get_by_role("link", name="Audit trail").click()
    audit = page.locator("#audit-table tbody")
    for event in ["token.created", "token.refreshed", "token.deactivated", "token.activated"]:
        expect(audit.locator("tr", has_text=event).filter(has_text=new_id)).to_have_count(1)
    expect(audit.locator("tr", has_text="token.refreshed")).to_contain_text("Okta")
    page.select_option("#audit-token", new_id)
    expect(audit.locator("tr")).to_have_count(4)
    shot(page, "audit")

    # Delete, behind a confirmation.
    page.get_by_role("link", name="Tokens").click()
    page.get_by_role("button", name=f"Delete {new_id}").click()
    page.click("#confirm-ok")
    expect(row(page, new_id)).to_have_count(0)
    assert new_id not in token_ids(gate)
    assert gate_status(gate, refreshed) == 401
    page.get_by_role("link", name="Audit trail").click()
    expect(audit.locator("tr", has_text="token.deleted").filter(has_text=new_id)).to_have_count(1)

    # Each secret is in exactly one response: the one that created it.
    bodies = s.bodies()
    for sec, method, path in [(secret, "POST", "/api/admin/tokens"),
                              (refreshed, "POST", f"/api/admin/tokens/{new_id}/refresh")]:
        carriers = [(m, u) for m, u, b in bodies if sec in b]
        assert carriers == [(method, f"{console.origin}{path}")], carriers
    for r in s.responses:
        assert r.headers.get("cache-control") == "no-store", r.url
    assert_secret_gone(s, secret)
    assert_secret_gone(s, refreshed)
    s.context.close()


def test_sign_in_link_works_once(browser, console):
    first = open_session(browser, console)
    cookies = first.context.cookies()
    assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [("scim_console", True, "Strict")]
    second = browser.new_context()
    page = second.new_page()
    page.goto(console.login_url)
    expect(page.locator("#view-signin")).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.locator("#signin-text")).to_contain_text("already been used")
    assert second.cookies() == []
    shot(page, "sign-in-refused")
    second.close()
    # The first browser is still signed in.
    first.page.reload()
    expect(first.page.locator("#view-tokens")).to_be_visible()
    first.context.close()


def test_keyboard_only(browser, console, gate):
    s = open_session(browser, console)
    page = s.page
    before = set(token_ids(gate))

    def tab_to(selector: str, limit: int = 80, back: bool = False) -> None:
        for _ in range(limit):
            if page.evaluate("(sel) => document.activeElement && document.activeElement.matches(sel)", selector):
                return
            page.keyboard.press("Shift+Tab" if back else "Tab")
        raise AssertionError(f"{selector} not reachable with the keyboard")

    tab_to("#create-tenant")
    page.keyboard.type("kbd")
    tab_to("#create-idp")
    page.keyboard.type("Okta")
    tab_to("#create-submit")
    page.keyboard.press("Enter")
    secret = read_secret(page)
    expect(page.locator("#copy-secret")).to_be_focused()
    page.keyboard.press("Escape")
    assert_secret_gone(s, secret)
    (new_id,) = set(token_ids(gate)) - before
    expect(row(page, new_id)).to_contain_text("Okta")
    assert gate_status(gate, secret) == 200

    tab_to(f'button[aria-label="Refresh {new_id}"]', back=True)
    page.keyboard.press("Enter")
    expect(page.locator("#confirm-cancel")).to_be_focused()  # the safe choice is the default
    page.keyboard.press("Shift+Tab")
    expect(page.locator("#confirm-ok")).to_be_focused()
    page.keyboard.press("Enter")
    refreshed = read_secret(page)
    page.keyboard.press("Escape")
    assert_secret_gone(s, refreshed)
    assert gate_status(gate, secret) == 401
    assert gate_status(gate, refreshed) == 200

    tab_to(f'button[aria-label="Delete {new_id}"]', back=True)
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")  # cancelling deletes nothing
    assert new_id in token_ids(gate)
    page.keyboard.press("Enter")  # focus went back to the Delete button
    expect(page.locator("#confirm-dialog")).to_be_visible()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    expect(row(page, new_id)).to_have_count(0)
    assert new_id not in token_ids(gate)
    s.context.close()


def test_views_follow_the_admin_routes_and_errors_are_words(browser, console, gate, workdir):
    s = open_session(browser, console)
    page = s.page
    # The gate answers /decisions and /guards (docs/troubleshooting.md, docs/guards.md): their
    # views show. In file mode GET /cluster answers 404: the Replicas view does not show (it
    # does in cluster mode: test_the_replicas_view_shows_a_cluster).
    expect(page.get_by_role("link", name="Decisions")).to_be_visible()
    expect(page.get_by_role("link", name="Guards")).to_be_visible()
    expect(page.get_by_role("link", name="Replicas")).to_be_hidden()
    # A refusal of the gate shows in the decisions view with its reason — never the token sent.
    wrong = "not-a-valid-token-value"
    assert gate_status(gate, wrong) == 401
    page.get_by_role("link", name="Decisions").click()
    expect(page.locator("#decisions-table")).to_contain_text("token_unknown", timeout=UI_TIMEOUT_MS)
    assert wrong not in page.content()
    page.get_by_role("link", name="Guards").click()
    expect(page.locator("#guards-empty")).to_be_visible()
    page.get_by_role("link", name="Tokens").click()
    # A refusal from the admin socket is shown in words (a bad tenant name).
    page.fill("#create-tenant", "acme")
    page.select_option("#create-idp", "okta")
    page.fill("#create-networks", "not-a-cidr")
    page.click("#create-submit")
    expect(page.locator("#error")).to_be_visible()
    text = page.locator("#error-text").inner_text()
    assert text.strip() and "HTTP" not in text, text
    shot(page, "error")
    s.context.close()


def test_screenshot_for_the_docs(browser, console, gate):
    """The README's picture: the token table with a rotation half done."""
    s = open_session(browser, console)
    page = s.page
    made = []
    for _ in range(2):
        page.fill("#create-tenant", "contoso")
        page.select_option("#create-idp", "entra")
        page.fill("#create-domains", "contoso.com")
        page.click("#create-submit")
        read_secret(page)
        page.click("#secret-close")
    made = [i for i in token_ids(gate)]
    expect(page.locator("#rotation-hints .hint")).to_contain_text("rotation may be half done")
    shot(page, "console")
    if os.environ.get("CONSOLE_UPDATE_DOCS") == "1":
        shutil.copy(SHOTS / "console.png", ROOT / "docs" / "console.png")
    # Leave the gate as it was for whoever runs next.
    for t in made:
        if t != gate.token_id:
            subprocess.run([str(GATE_BIN), "token", "delete", t, "--socket", str(gate.dir / "admin.sock")],
                           check=True, capture_output=True, timeout=15)
    s.context.close()


@pytest.fixture()
def cluster_gate(workdir, upstream):
    """A real etcd (Debian's etcd-server) and the real gate in cluster mode in front of it."""
    client, peer = free_port(), free_port()
    url, purl = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    etcd = Proc("etcd", ["etcd", "--name", "e2e", "--data-dir", str(workdir / "etcd-data"),
                         "--listen-client-urls", url, "--advertise-client-urls", url,
                         "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
                         "--initial-cluster", f"e2e={purl}", "--initial-cluster-state", "new",
                         "--log-level", "error"], workdir)

    def etcd_up():
        import socket as s
        with s.create_connection(("127.0.0.1", client), timeout=1):
            return True

    wait_until("etcd", etcd_up, START_TIMEOUT, etcd)
    g = start_gate(workdir, upstream, name="cluster-gate",
                   etcd={"endpoints": [url], "prefix": "/scim-gate/e2e", "lease_ttl": "5s"})
    yield g
    g.proc.stop()
    etcd.stop()


def test_the_replicas_view_shows_a_cluster(browser, workdir, cluster_gate):
    """Cluster mode (docs/cluster.md): the console's Replicas view appears and lists this
    replica serving; a token created in the console works at once."""
    c = start_console(workdir, cluster_gate)
    try:
        s = open_session(browser, c)
        page = s.page
        # The imported token is listed (read from etcd).
        expect(row(page, cluster_gate.token_id)).to_be_visible()
        link = page.get_by_role("link", name="Replicas")
        expect(link).to_be_visible()
        link.click()
        expect(page.locator("#cluster-revision")).to_contain_text("Cluster revision")
        expect(page.locator("#cluster-table")).to_contain_text("serving")
        shot(page, "replicas")
        page.get_by_role("link", name="Tokens").click()
        page.fill("#create-tenant", "cluster")
        page.select_option("#create-idp", "okta")
        page.click("#create-submit")
        secret = read_secret(page)
        assert gate_status(cluster_gate, secret) == 200
        s.context.close()
    finally:
        c.proc.stop()
