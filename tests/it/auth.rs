//! Bearer authentication through the real binary (docs/operations.md#authentication): every odd spelling an IdP or an
//! attacker may send is refused with the right status and challenge, and none reaches the upstream.

use crate::harness::{assert_scim_error, GateOpts, GateProc, Response, TestToken};
use scim_demo::DemoServer;
use std::time::Duration;

const CHALLENGE: &str = "Bearer realm=\"scim\"";
const CHALLENGE_INVALID: &str = "Bearer realm=\"scim\", error=\"invalid_token\"";

struct Fixture {
    up: DemoServer,
    gate: GateProc,
    good: TestToken,
}

fn fixture(extra_tokens: &[&TestToken]) -> Fixture {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let good = TestToken::new("tok_good");
    let mut all = vec![&good];
    all.extend_from_slice(extra_tokens);
    let gate = GateProc::start(GateOpts::new(&up.base_url()), &all);
    Fixture { up, gate, good }
}

impl Fixture {
    fn get(&self, header_lines: &[&[u8]]) -> Response {
        self.gate.raw_request("GET", "/scim/v2/Users", header_lines)
    }

    fn assert_upstream_saw_nothing(&self) {
        let seen = self.up.dir.received();
        assert!(seen.is_empty(), "the upstream received {seen:?}");
    }
}

/// 401, a SCIM error body, and exactly this challenge.
fn assert_401(r: &Response, challenge: &str) {
    assert_scim_error(r, 401, None);
    assert_eq!(
        r.header("www-authenticate"),
        Some(challenge),
        "challenge; body {}",
        r.text()
    );
}

#[test]
fn no_authorization_header_is_401_with_a_bare_challenge() {
    let f = fixture(&[]);
    let r = f.get(&[]);
    assert_401(&r, CHALLENGE);
    f.assert_upstream_saw_nothing();
}

#[test]
fn bearer_with_nothing_after_it_is_401() {
    let f = fixture(&[]);
    for line in [
        &b"Authorization: Bearer"[..],
        b"Authorization: Bearer    ",
        b"Authorization:",
    ] {
        let r = f.get(&[line]);
        assert_eq!(
            r.status,
            401,
            "{:?}: {}",
            String::from_utf8_lossy(line),
            r.text()
        );
        assert_scim_error(&r, 401, None);
        assert!(
            r.header("www-authenticate")
                .is_some_and(|w| w.starts_with(CHALLENGE)),
            "challenge for {:?}: {:?}",
            String::from_utf8_lossy(line),
            r.header("www-authenticate")
        );
    }
    f.assert_upstream_saw_nothing();
}

#[test]
fn lowercase_bearer_scheme_is_accepted_as_rfc_9110_says() {
    // The scheme is case-insensitive (RFC 9110 §11.1); IdPs do send `bearer`.
    let f = fixture(&[]);
    let line = format!("Authorization: bearer {}", f.good.plaintext);
    let r = f.get(&[line.as_bytes()]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(f.up.dir.received().len(), 1);
    // …and an unknown token in lowercase is still refused before the upstream.
    f.up.dir.clear_received();
    let bad = TestToken::new("tok_unknown");
    let line = format!("Authorization: bearer {}", bad.plaintext);
    assert_401(&f.get(&[line.as_bytes()]), CHALLENGE_INVALID);
    f.assert_upstream_saw_nothing();
}

#[test]
fn two_authorization_headers_are_400_invalid_request() {
    let f = fixture(&[]);
    let line = format!("Authorization: Bearer {}", f.good.plaintext);
    // Even two copies of the *valid* token: which one would the upstream believe?
    let r = f.get(&[line.as_bytes(), line.as_bytes()]);
    assert_scim_error(&r, 400, None);
    let w = r.header("www-authenticate").unwrap_or("");
    assert!(
        w.contains("error=\"invalid_request\""),
        "WWW-Authenticate: {w:?}"
    );
    assert!(!r.text().contains(&f.good.plaintext));
    let other = TestToken::new("tok_other");
    let line2 = format!("Authorization: Bearer {}", other.plaintext);
    let r = f.get(&[line.as_bytes(), line2.as_bytes()]);
    assert_scim_error(&r, 400, None);
    f.assert_upstream_saw_nothing();
}

#[test]
fn surrounding_whitespace_around_a_valid_token_is_tolerated() {
    // HTTP strips OWS around a field value; extra spaces/tabs between scheme and token are
    // forgiven too. The token itself must still be exact.
    let f = fixture(&[]);
    for line in [
        format!("Authorization:    Bearer {}   ", f.good.plaintext),
        format!("Authorization: Bearer \t  {}\t", f.good.plaintext),
    ] {
        let r = f.get(&[line.as_bytes()]);
        assert_eq!(r.status, 200, "{line:?}: {}", r.text());
    }
    assert_eq!(f.up.dir.received().len(), 2);
    f.up.dir.clear_received();
    // A space inside the token is not whitespace around it.
    let (a, b) = f.good.plaintext.split_at(20);
    let line = format!("Authorization: Bearer {a} {b}");
    assert_401(&f.get(&[line.as_bytes()]), CHALLENGE_INVALID);
    f.assert_upstream_saw_nothing();
}

#[test]
fn an_8_kib_header_value_is_refused_without_reaching_the_upstream() {
    let f = fixture(&[]);
    let line = format!("Authorization: Bearer {}", "A".repeat(8 * 1024));
    let r = f.get(&[line.as_bytes()]);
    assert_401(&r, CHALLENGE_INVALID);
    assert!(
        r.body.len() < 1024,
        "the error does not echo the value back"
    );
    // A valid token padded to 8 KiB with trailing junk is not the token either.
    let line = format!(
        "Authorization: Bearer {}{}",
        f.good.plaintext,
        "x".repeat(8 * 1024)
    );
    assert_401(&f.get(&[line.as_bytes()]), CHALLENGE_INVALID);
    f.assert_upstream_saw_nothing();
    // The gate is still fine afterwards.
    let ok = format!("Authorization: Bearer {}", f.good.plaintext);
    assert_eq!(f.get(&[ok.as_bytes()]).status, 200);
}

#[test]
fn non_ascii_bytes_in_the_value_are_401() {
    let f = fixture(&[]);
    let mut with_latin1 = format!("Authorization: Bearer {}", f.good.plaintext).into_bytes();
    with_latin1.push(0xff);
    let mut utf8 = b"Authorization: Bearer ".to_vec();
    utf8.extend_from_slice("tökén-🔑".as_bytes());
    let mut inside = format!("Authorization: Bearer {}", f.good.plaintext).into_bytes();
    inside.insert(30, 0xe9);
    for line in [&with_latin1, &utf8, &inside] {
        let r = f.get(&[line.as_slice()]);
        // Not a b64token (RFC 6750 §2.1): refused as an invalid token, never forwarded.
        assert_401(&r, CHALLENGE_INVALID);
        assert!(!r.text().contains(&f.good.plaintext));
    }
    f.assert_upstream_saw_nothing();
}

#[test]
fn basic_scheme_is_401_with_the_bearer_challenge() {
    let f = fixture(&[]);
    let r = f.get(&[b"Authorization: Basic dXNlcjpwYXNzd29yZA=="]);
    assert_401(&r, CHALLENGE);
    // A Basic header carrying a valid gate token is still not Bearer.
    let line = format!("Authorization: Basic {}", f.good.plaintext);
    assert_401(&f.get(&[line.as_bytes()]), CHALLENGE);
    f.assert_upstream_saw_nothing();
}

#[test]
fn unknown_token_is_401_invalid_token_with_a_scim_body() {
    let f = fixture(&[]);
    let unknown = TestToken::new("tok_unknown");
    let r = f
        .gate
        .call("GET", "/scim/v2/Users", Some(&unknown.plaintext), None);
    assert_401(&r, CHALLENGE_INVALID);
    let v = r.json();
    assert_eq!(v["status"], "401");
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{v}");
    assert!(!r.text().contains(&unknown.plaintext));
    // A token that is not a scimgate_ token at all (hand-managed) is just as unknown.
    let r = f
        .gate
        .call("GET", "/scim/v2/Groups", Some("some-opaque-token"), None);
    assert_401(&r, CHALLENGE_INVALID);
    f.assert_upstream_saw_nothing();
}

#[test]
fn inactive_token_is_401_and_the_detail_says_inactive() {
    let mut inactive = TestToken::new("tok_inactive");
    inactive.status = "inactive".into();
    let f = fixture(&[&inactive]);
    let r = f
        .gate
        .call("GET", "/scim/v2/Users", Some(&inactive.plaintext), None);
    assert_401(&r, CHALLENGE_INVALID);
    let detail = r.json()["detail"]
        .as_str()
        .unwrap_or("")
        .to_ascii_lowercase();
    assert!(detail.contains("inactive"), "detail: {detail}");
    assert!(
        !r.text().contains(&inactive.plaintext),
        "the token never appears in the body"
    );
    f.assert_upstream_saw_nothing();
}

#[test]
fn expired_token_is_401_and_the_detail_says_expired() {
    let mut expired = TestToken::new("tok_expired");
    expired.expires_at = Some("2020-01-01T00:00:00Z".into());
    let f = fixture(&[&expired]);
    let r = f
        .gate
        .call("GET", "/scim/v2/Users", Some(&expired.plaintext), None);
    assert_401(&r, CHALLENGE_INVALID);
    let detail = r.json()["detail"]
        .as_str()
        .unwrap_or("")
        .to_ascii_lowercase();
    assert!(detail.contains("expired"), "detail: {detail}");
    assert!(
        !r.text().contains(&expired.plaintext),
        "the token never appears in the body"
    );
    f.assert_upstream_saw_nothing();
}

#[test]
fn a_scimgate_token_with_a_bad_checksum_is_401() {
    let f = fixture(&[]);
    // The good token with its last checksum character changed: same prefix, same length.
    let mut typo = f.good.plaintext.clone();
    let last = typo.pop().expect("non-empty");
    typo.push(if last == '0' { '1' } else { '0' });
    let r = f.gate.call("GET", "/scim/v2/Users", Some(&typo), None);
    assert_401(&r, CHALLENGE_INVALID);
    let detail = r.json()["detail"]
        .as_str()
        .unwrap_or("")
        .to_ascii_lowercase();
    assert!(
        detail.contains("checksum") || detail.contains("malformed"),
        "detail: {detail}"
    );
    assert!(!r.text().contains(&typo));
    // Truncated by one character.
    let short = &f.good.plaintext[..f.good.plaintext.len() - 1];
    assert_401(
        &f.gate.call("GET", "/scim/v2/Users", Some(short), None),
        CHALLENGE_INVALID,
    );
    f.assert_upstream_saw_nothing();
}

#[test]
fn refused_requests_count_as_unauthorized_in_metrics() {
    let f = fixture(&[]);
    for _ in 0..3 {
        assert_eq!(f.gate.call("GET", "/scim/v2/Users", None, None).status, 401);
    }
    // Counted in the logging phase, which may run just after the client has its answer.
    let count = || {
        crate::harness::metric_sum(
            &f.gate.metrics(),
            "scim_gate_requests_total",
            &["outcome=\"unauthorized\""],
        )
    };
    assert!(
        crate::harness::eventually(Duration::from_secs(1), || count() >= 3.0),
        "unauthorized count {} in\n{}",
        count(),
        f.gate.metrics()
    );
    f.assert_upstream_saw_nothing();
}
