//! The OAuth 2.0 client-credentials token endpoint through the real binary (`docs/oauth.md`,
//! RFC 6749 §4.4): success with HTTP Basic and with form fields, each error, an access token
//! used for SCIM, expiry, revocation by the parent's refresh / deactivation / deletion before
//! the admin call returns, a restart keeping an unexpired access token, and no secret in any
//! file or log.

use std::time::Duration;

use base64::Engine;
use scim_demo::DemoServer;
use scim_gate::config::raw::RawOAuth;

use crate::harness::{all_files_text, GateOpts, GateProc, Response, TestToken};

fn gate(ttl: Duration) -> (DemoServer, GateProc, TestToken) {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let t = TestToken::new("tok_oauth");
    let mut opts = GateOpts::new(&up.base_url());
    opts.config.oauth = Some(RawOAuth {
        enabled: Some(true),
        access_token_ttl: Some(ttl),
    });
    let gate = GateProc::start(opts, &[&t]);
    (up, gate, t)
}

/// `POST /scim/v2/oauth/token` with these header lines and form body.
fn token_request(gate: &GateProc, headers: &[String], form: &str) -> Response {
    let mut lines: Vec<Vec<u8>> = headers.iter().map(|h| h.clone().into_bytes()).collect();
    lines.push(b"Content-Type: application/x-www-form-urlencoded".to_vec());
    lines.push(format!("Content-Length: {}", form.len()).into_bytes());
    let mut req = format!(
        "POST /scim/v2/oauth/token HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
        gate.port
    )
    .into_bytes();
    for l in &lines {
        req.extend_from_slice(l);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(form.as_bytes());
    crate::harness::send(gate.addr(), &req)
}

fn basic(id: &str, secret: &str) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    format!("Authorization: Basic {b}")
}

fn access_token(r: &Response) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let v = r.json();
    assert_eq!(v["token_type"], "Bearer");
    assert!(v["expires_in"].as_u64().is_some_and(|n| n > 0), "{v}");
    v["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

fn scim(gate: &GateProc, token: &str) -> u16 {
    gate.call("GET", "/scim/v2/Users", Some(token), None).status
}

#[test]
fn client_credentials_give_an_access_token_that_works_like_its_parent() {
    let (_up, gate, t) = gate(Duration::from_secs(3600));
    let grant = "grant_type=client_credentials";
    // HTTP Basic …
    let a = access_token(&token_request(&gate, &[basic(&t.id, &t.plaintext)], grant));
    assert_ne!(a, t.plaintext);
    assert_eq!(scim(&gate, &a), 200);
    // … or form fields.
    let form = format!("{grant}&client_id={}&client_secret={}", t.id, t.plaintext);
    let b = access_token(&token_request(&gate, &[], &form));
    assert_eq!(scim(&gate, &b), 200);
    // The access token acts as its parent: the upstream sees the parent's identity, and the
    // parent's last use moves.
    let tokens = gate.admin("GET", "/tokens", None).json();
    assert!(tokens["tokens"][0]["last_used_at"].is_string(), "{tokens}");
    // An access token is not a client secret.
    let r = token_request(&gate, &[basic(&t.id, &a)], grant);
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(gate.metric("scim_gate_oauth_tokens_issued_total{idp=\"okta\"}") >= 2.0);
    // Only hashes on disk, nothing in the log.
    let files = all_files_text(gate.dir.path());
    for secret in [&a, &b, &t.plaintext] {
        assert!(
            !files.contains(secret.as_str()),
            "a plaintext is in the gate's files"
        );
    }
    assert!(
        files.contains("\"access\""),
        "the access tokens' hashes are recorded"
    );
}

#[test]
fn each_error_is_the_rfc_6749_answer() {
    let (_up, gate, t) = gate(Duration::from_secs(3600));
    let grant = "grant_type=client_credentials";
    let err = |r: &Response| r.json()["error"].as_str().unwrap_or("").to_string();
    let wrong = token_request(&gate, &[basic(&t.id, "scimgate_wrong")], grant);
    assert_eq!(
        (wrong.status, err(&wrong).as_str()),
        (401, "invalid_client")
    );
    assert_eq!(
        wrong.header("www-authenticate"),
        Some("Basic realm=\"scim\"")
    );
    let other_id = token_request(&gate, &[basic("tok_other", &t.plaintext)], grant);
    assert_eq!(err(&other_id), "invalid_client");
    let none = token_request(&gate, &[], grant);
    assert_eq!((none.status, err(&none).as_str()), (401, "invalid_client"));
    let no_grant = token_request(&gate, &[basic(&t.id, &t.plaintext)], "scope=x");
    assert_eq!(
        (no_grant.status, err(&no_grant).as_str()),
        (400, "invalid_request")
    );
    let password = token_request(&gate, &[basic(&t.id, &t.plaintext)], "grant_type=password");
    assert_eq!(
        (password.status, err(&password).as_str()),
        (400, "unsupported_grant_type")
    );
    let both = token_request(
        &gate,
        &[basic(&t.id, &t.plaintext)],
        &format!("{grant}&client_id={}&client_secret={}", t.id, t.plaintext),
    );
    assert_eq!((both.status, err(&both).as_str()), (400, "invalid_request"));
    let twice = token_request(
        &gate,
        &[basic(&t.id, &t.plaintext)],
        &format!("{grant}&{grant}"),
    );
    assert_eq!(err(&twice), "invalid_request");
    for r in [&wrong, &no_grant, &password] {
        assert!(!r.text().contains(&t.plaintext));
    }
    // The refusals are in the decision log, without the secret.
    std::thread::sleep(Duration::from_millis(200));
    let log = gate.admin("GET", "/decisions", None).text();
    assert!(log.contains("oauth_invalid_client") && log.contains("oauth_unsupported_grant_type"));
    assert!(!log.contains(&t.plaintext));
}

#[test]
fn an_access_token_expires() {
    let (_up, gate, t) = gate(Duration::from_secs(1));
    let a = access_token(&token_request(
        &gate,
        &[basic(&t.id, &t.plaintext)],
        "grant_type=client_credentials",
    ));
    assert_eq!(scim(&gate, &a), 200);
    std::thread::sleep(Duration::from_millis(1200));
    let r = gate.call("GET", "/scim/v2/Users", Some(&a), None);
    assert_eq!(r.status, 401);
    assert!(r.text().contains("expired"), "{}", r.text());
    assert_eq!(scim(&gate, &t.plaintext), 200, "the parent still works");
}

#[test]
fn refresh_deactivate_and_delete_of_the_parent_revoke_its_access_tokens_at_once() {
    let (_up, mut gate, t) = gate(Duration::from_secs(3600));
    let issue = |gate: &GateProc, secret: &str| {
        access_token(&token_request(
            gate,
            &[basic(&t.id, secret)],
            "grant_type=client_credentials",
        ))
    };
    // A restart keeps an unexpired access token.
    let kept = issue(&gate, &t.plaintext);
    gate.restart(&[]);
    assert_eq!(scim(&gate, &kept), 200);
    // Refresh.
    let r = gate.admin("POST", &format!("/tokens/{}/refresh", t.id), None);
    assert_eq!(r.status, 200);
    assert_eq!(
        scim(&gate, &kept),
        401,
        "refresh left the access token alive"
    );
    let secret = r.json()["token"].as_str().expect("new secret").to_string();
    // Deactivate.
    let a = issue(&gate, &secret);
    assert_eq!(scim(&gate, &a), 200);
    assert_eq!(
        gate.admin("POST", &format!("/tokens/{}/deactivate", t.id), None)
            .status,
        200
    );
    assert_eq!(scim(&gate, &a), 401);
    assert_eq!(
        gate.admin("POST", &format!("/tokens/{}/activate", t.id), None)
            .status,
        200
    );
    assert_eq!(scim(&gate, &a), 401, "reactivation does not bring it back");
    // Delete.
    let b = issue(&gate, &secret);
    assert_eq!(scim(&gate, &b), 200);
    assert_eq!(
        gate.admin("DELETE", &format!("/tokens/{}", t.id), None)
            .status,
        204
    );
    assert_eq!(scim(&gate, &b), 401);
    let audit = std::fs::read_to_string(gate.path("audit.jsonl")).expect("audit");
    assert!(audit.contains("\"revoked_access_tokens\":1"), "{audit}");
}

#[test]
fn with_oauth_off_the_endpoint_is_not_there() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let t = TestToken::new("tok_nooauth");
    let mut opts = GateOpts::new(&up.base_url());
    opts.config.oauth = Some(RawOAuth {
        enabled: Some(false),
        access_token_ttl: None,
    });
    let gate = GateProc::start(opts, &[&t]);
    let r = token_request(
        &gate,
        &[format!("Authorization: Bearer {}", t.plaintext)],
        "grant_type=client_credentials",
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(up.dir.received().is_empty(), "the path was forwarded");
}

#[test]
fn the_parents_rate_limit_holds_at_the_token_endpoint() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let t = TestToken::new("tok_oauth_rate");
    let mut opts = GateOpts::new(&up.base_url());
    opts.config.limits = Some(scim_gate::config::raw::RawLimits {
        rate: Some(0.1),
        burst: Some(2),
        ..Default::default()
    });
    let gate = GateProc::start(opts, &[&t]);
    let ask = || {
        token_request(
            &gate,
            &[basic(&t.id, &t.plaintext)],
            "grant_type=client_credentials",
        )
    };
    assert_eq!(ask().status, 200);
    assert_eq!(ask().status, 200);
    let r = ask();
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"], "temporarily_unavailable");
    assert!(r.header("retry-after").is_some());
}
