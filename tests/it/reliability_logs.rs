//! Reliability finding 10: no secret in any log line, at any level, whoever writes it
//! (docs/operations.md#logging), and token-file errors that name a place, never the text found
//! there (docs/token-file.md).

use std::process::Command;
use std::time::Duration;

use crate::harness::{eventually, GateOpts, GateProc, TestToken, BIN};
use scim_demo::DemoServer;

/// Hand-made tokens (any string an operator hashed into the token file: nothing marks them as
/// secrets) sent where the gate does not look for them (the query string, another header) and in
/// `Authorization`: none appears in the log, even at `trace`, where Pingora prints whole request
/// heads and its error path names the request URI.
#[test]
fn tokens_in_queries_headers_and_authorization_never_reach_the_log_at_trace() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let mut t = TestToken::new("tok_log");
    t.plaintext = "handmade-Valid-7f3a9c2e41d0b6a8c5e2f19b3d7a6c40".into();
    let mut stray = TestToken::new("tok_stray");
    stray.plaintext = "handmade-Stray-0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e".into();
    let mut opts = GateOpts::new(&up.base_url());
    opts.env = vec![("RUST_LOG".into(), "trace".into())];
    let gate = GateProc::start(opts, &[&t]);
    let query = format!("/scim/v2/Users?access_token={}", stray.plaintext);
    let r = gate.call("GET", &query, Some(&t.plaintext), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let custom = format!("X-Api-Key: {}", stray.plaintext);
    let r = gate.raw_request(
        "GET",
        "/scim/v2/Users",
        &[
            format!("Authorization: Bearer {}", t.plaintext).as_bytes(),
            custom.as_bytes(),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // An unknown token in the query of a refused request: Pingora's error path names the URI.
    let r = gate.call("GET", &query, Some(&stray.plaintext), None);
    assert_eq!(r.status, 401);
    assert!(
        eventually(Duration::from_secs(3), || gate.log().lines().count() > 20),
        "trace logging is on"
    );
    let log = gate.flushed_log();
    for secret in [&t.plaintext, &stray.plaintext] {
        assert!(!log.contains(secret.as_str()), "a token reached the log");
        // Nor its distinctive part (a token cut by a line-wrapping logger).
        assert!(
            !log.contains(&secret[15..40]),
            "part of a token reached the log"
        );
    }
    assert!(
        !log.contains("access_token="),
        "the query string was logged"
    );
}

/// A plaintext token pasted into the token file by mistake: the gate refuses to start and says
/// where the problem is, without repeating the token (serde's own message would quote it).
#[test]
fn a_token_pasted_into_the_token_file_is_never_echoed() {
    let t = TestToken::new("tok_x");
    let dir = tempfile::tempdir().expect("tempdir");
    let gate = GateProc::configure(dir, &GateOpts::new("http://127.0.0.1:9/v2"));
    // The plaintext where a status belongs, and as a stray key.
    let file = format!(
        "tokens:\n  - id: tok_x\n    tenant: acme\n    idp: okta\n    status: {}\n    sha256: {}\n    domains: []\n    created_at: 2026-11-22T10:00:00Z\n",
        t.plaintext,
        "0".repeat(64)
    );
    std::fs::write(gate.path("tokens.yaml"), file).expect("token file");
    let out = Command::new(BIN)
        .args(["run", "-c"])
        .arg(&gate.config)
        .env("RUST_LOG", "trace")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        !stderr.contains(&t.plaintext),
        "the token was echoed: {stderr}"
    );
    assert!(
        !stderr.contains(&t.plaintext[9..40]),
        "part of the token was echoed"
    );
    assert!(
        stderr.contains("line 5 column"),
        "the error names its place: {stderr}"
    );
}
