//! `scim-gate console` through the real binary, in front of the real gate: the one-time sign-in
//! key, the session cookie's attributes, CSRF and Origin checks, the security headers, the
//! loopback-only listen, the `Host` check, and admin-socket failures shown in words. The browser
//! flows are in tests/e2e/test_console.py.
mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use common::{send, GateOpts, GateProc, Response, BIN};
use scim_gate::demo::DemoServer;
use serde_json::Value;

/// A running console, killed on drop.
struct ConsoleProc {
    child: Child,
    addr: SocketAddr,
    key: String,
}

impl ConsoleProc {
    fn start(args: &[&str]) -> ConsoleProc {
        let mut child = Command::new(BIN)
            .arg("console")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn console");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout).read_line(&mut line).expect("line");
        // console: http://127.0.0.1:PORT/login#KEY
        let url = line
            .trim()
            .strip_prefix("console: http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        let (host, key) = url.split_once("/login#").expect("login link");
        ConsoleProc {
            child,
            addr: host.parse().expect("address"),
            key: key.to_string(),
        }
    }

    fn for_gate(gate: &GateProc) -> ConsoleProc {
        let config = gate.config.to_str().expect("utf-8 path").to_string();
        ConsoleProc::start(&["-c", &config])
    }

    /// One request with this console's own `Host`.
    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
        let host = self.addr.to_string();
        self.request_as(&host, method, path, headers, body)
    }

    fn request_as(
        &self,
        host: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
        for (k, v) in headers {
            raw.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() {
            raw.push_str("Content-Type: application/json\r\n");
        }
        raw.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        send(self.addr, raw.as_bytes())
    }

    fn sign_in(&self) -> Response {
        let body = format!("{{\"key\":\"{}\"}}", self.key);
        self.request("POST", "/api/login", &[], &body)
    }

    /// Signs in; returns the cookie header value and the CSRF token.
    fn session(&self) -> (String, String) {
        let r = self.sign_in();
        assert_eq!(r.status, 200, "{}", r.text());
        let cookie = r.header("set-cookie").expect("cookie");
        let pair = cookie.split(';').next().expect("pair").to_string();
        let csrf = r.json()["csrf"].as_str().expect("csrf").to_string();
        (pair, csrf)
    }
}

impl Drop for ConsoleProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gate() -> (DemoServer, GateProc) {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let gate = GateProc::start(GateOpts::new(&up.base_url()), &[]);
    (up, gate)
}

fn token_count(gate: &GateProc) -> usize {
    let r = gate.admin("GET", "/tokens", None);
    r.json()["tokens"].as_array().map(Vec::len).unwrap_or(0)
}

const CREATE: &str = r#"{"tenant":"acme","idp":"okta","domains":["acme.com"]}"#;

#[test]
fn the_sign_in_key_works_once_and_opens_a_strict_http_only_session() {
    let (_up, gate) = gate();
    let console = ConsoleProc::for_gate(&gate);
    assert_eq!(console.key.len(), 64, "256-bit key in hex");

    let wrong = console.request("POST", "/api/login", &[], r#"{"key":"00"}"#);
    assert_eq!(wrong.status, 403);
    assert!(wrong.header("set-cookie").is_none());

    let first = console.sign_in();
    assert_eq!(first.status, 200, "{}", first.text());
    let cookie = first.header("set-cookie").expect("cookie");
    assert!(cookie.starts_with("scim_console="), "{cookie}");
    assert!(cookie.contains("; HttpOnly"), "{cookie}");
    assert!(cookie.contains("; SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains(&console.key), "the key is not the session");
    assert_eq!(
        first.json()["scim_url"].as_str(),
        Some(format!("http://127.0.0.1:{}/scim/v2", gate.port).as_str())
    );

    let second = console.sign_in();
    assert_eq!(second.status, 403);
    assert!(second.header("set-cookie").is_none());
    assert!(
        second.text().contains("already been used"),
        "{}",
        second.text()
    );
}

#[test]
fn a_change_needs_the_session_the_csrf_token_and_the_own_origin() {
    let (_up, gate) = gate();
    let console = ConsoleProc::for_gate(&gate);
    let (cookie, csrf) = console.session();
    let origin = format!("http://{}", console.addr);

    let no_session = console.request(
        "POST",
        "/api/admin/tokens",
        &[("X-CSRF-Token", &csrf), ("Origin", &origin)],
        CREATE,
    );
    assert_eq!(no_session.status, 401);
    let no_csrf = console.request(
        "POST",
        "/api/admin/tokens",
        &[("Cookie", &cookie), ("Origin", &origin)],
        CREATE,
    );
    assert_eq!(no_csrf.status, 403);
    let wrong_csrf = console.request(
        "POST",
        "/api/admin/tokens",
        &[
            ("Cookie", &cookie),
            ("X-CSRF-Token", "0000"),
            ("Origin", &origin),
        ],
        CREATE,
    );
    assert_eq!(wrong_csrf.status, 403);
    let foreign = console.request(
        "POST",
        "/api/admin/tokens",
        &[
            ("Cookie", &cookie),
            ("X-CSRF-Token", &csrf),
            ("Origin", "http://evil.example"),
        ],
        CREATE,
    );
    assert_eq!(foreign.status, 403);
    assert_eq!(token_count(&gate), 0, "no refused request created a token");

    let created = console.request(
        "POST",
        "/api/admin/tokens",
        &[
            ("Cookie", &cookie),
            ("X-CSRF-Token", &csrf),
            ("Origin", &origin),
        ],
        CREATE,
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let secret = created.json()["token"]
        .as_str()
        .expect("secret")
        .to_string();
    assert!(secret.starts_with("scimgate_"));
    assert_eq!(token_count(&gate), 1);
    // The secret works against the gate, and no later console answer repeats it.
    let users = gate.call("GET", "/scim/v2/Users", Some(&secret), None);
    assert_eq!(users.status, 200);
    let id = created.json()["id"].as_str().expect("id").to_string();
    for path in ["/api/admin/tokens", "/api/admin/audit"] {
        let r = console.request("GET", path, &[("Cookie", &cookie)], "");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert!(!r.text().contains(&secret), "{path} repeats the secret");
    }

    // Deleting needs the CSRF token too.
    let path = format!("/api/admin/tokens/{id}");
    let r = console.request("DELETE", &path, &[("Cookie", &cookie)], "");
    assert_eq!(r.status, 403);
    assert_eq!(token_count(&gate), 1);
    let r = console.request(
        "DELETE",
        &path,
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        "",
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(token_count(&gate), 0);
}

#[test]
fn a_reloaded_page_gets_a_new_csrf_token_and_the_old_one_dies() {
    let (_up, gate) = gate();
    let console = ConsoleProc::for_gate(&gate);
    let (cookie, old) = console.session();
    let r = console.request("GET", "/api/session", &[("Cookie", &cookie)], "");
    let fresh = r.json()["csrf"].as_str().expect("csrf").to_string();
    assert_ne!(fresh, old);
    let with_old = console.request(
        "POST",
        "/api/admin/tokens",
        &[("Cookie", &cookie), ("X-CSRF-Token", &old)],
        CREATE,
    );
    assert_eq!(with_old.status, 403);
    let signed_out = console.request(
        "POST",
        "/api/logout",
        &[("Cookie", &cookie), ("X-CSRF-Token", &fresh)],
        "",
    );
    assert_eq!(signed_out.status, 204);
    assert!(signed_out
        .header("set-cookie")
        .is_some_and(|c| c.contains("Max-Age=0")));
    let after = console.request("GET", "/api/admin/tokens", &[("Cookie", &cookie)], "");
    assert_eq!(after.status, 401);
}

#[test]
fn every_answer_carries_the_csp_and_no_store() {
    let (_up, gate) = gate();
    let console = ConsoleProc::for_gate(&gate);
    let (cookie, _) = console.session();
    let answers = [
        console.request("GET", "/", &[], ""),
        console.request("GET", "/login", &[], ""),
        console.request("GET", "/assets/console.js", &[], ""),
        console.request("GET", "/assets/console.css", &[], ""),
        console.request("GET", "/nope", &[], ""),
        console.request("GET", "/api/session", &[("Cookie", &cookie)], ""),
        console.request("GET", "/api/admin/tokens", &[], ""),
        console.sign_in(),
    ];
    for r in &answers {
        let csp = r.header("content-security-policy").expect("CSP");
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe") && !csp.contains("http"), "{csp}");
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
    assert_eq!(answers[0].status, 200);
    assert!(answers[0]
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/html")));
    assert_eq!(answers[4].status, 404);
    assert_eq!(answers[6].status, 401);
}

#[test]
fn only_loopback_addresses_are_accepted() {
    for listen in ["0.0.0.0:0", "[::]:0", "192.0.2.1:8000", "localhost:0"] {
        let out = Command::new(BIN)
            .args([
                "console",
                "--socket",
                "/nonexistent.sock",
                "--listen",
                listen,
            ])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{listen}");
        assert!(out.stdout.is_empty(), "{listen}: nothing printed, no key");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--listen"), "{listen}: {err}");
    }
}

#[test]
fn a_foreign_host_header_is_refused_before_anything_else() {
    let (_up, gate) = gate();
    let console = ConsoleProc::for_gate(&gate);
    let port = console.addr.port();
    let evil = format!("evil.example:{port}");
    let body = format!("{{\"key\":\"{}\"}}", console.key);
    let r = console.request_as(&evil, "POST", "/api/login", &[], &body);
    assert_eq!(r.status, 421);
    let r = console.request_as(&evil, "GET", "/", &[], "");
    assert_eq!(r.status, 421);
    // The key was not spent by the refused request.
    let localhost = format!("localhost:{port}");
    let r = console.request_as(&localhost, "POST", "/api/login", &[], &body);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn admin_socket_trouble_and_unknown_routes_are_said_in_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("missing.sock");
    let console = ConsoleProc::start(&["--socket", sock.to_str().expect("utf-8")]);
    let (cookie, _) = console.session();
    let r = console.request("GET", "/api/admin/tokens", &[("Cookie", &cookie)], "");
    assert_eq!(r.status, 502);
    let msg = r.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(msg.contains("cannot connect to the admin socket"), "{msg}");
    // A route outside the console's list is not forwarded.
    let r = console.request(
        "GET",
        "/api/admin/tokens/tok_1/refresh",
        &[("Cookie", &cookie)],
        "",
    );
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].is_string());
    let v: Value = r.json();
    assert!(v["error"]
        .as_str()
        .is_some_and(|e| e.contains("no GET /tokens/tok_1/refresh")));
}
