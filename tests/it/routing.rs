//! Routing and forwarding rules (docs/operations.md#routes, #forwarding) through the real binary: unsafe path spellings are 400
//! and never forwarded, equivalent spellings reach the upstream canonically, unknown routes are
//! 404/501/405 as SCIM errors, and the header and URL rewriting rules hold at the upstream.

use crate::harness::{assert_scim_error, GateOpts, GateProc, TestToken};
use scim_demo::{DemoRequest, DemoServer};

const USER: &str = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice@acme.com","name":{"givenName":"Alice","familyName":"Smith"}}"#;

fn setup() -> (DemoServer, GateProc, TestToken) {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let t = TestToken::new("tok_route");
    let gate = GateProc::start(GateOpts::new(&up.base_url()), &[&t]);
    (up, gate, t)
}

fn only_request(up: &DemoServer) -> DemoRequest {
    let seen = up.dir.received();
    assert_eq!(
        seen.len(),
        1,
        "exactly one request reached the upstream: {seen:?}"
    );
    seen.into_iter().next().expect("one")
}

fn all_headers(req: &DemoRequest, name: &str) -> Vec<String> {
    req.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .collect()
}

#[test]
fn every_unsafe_spelling_is_400_invalid_path_and_never_forwarded() {
    let (up, gate, t) = setup();
    for path in [
        "/scim/v2/Users/../Groups",
        "/scim/v2/./Users",
        "/scim/v2/%2e%2e/Users",
        "/scim/v2/Users/%2E%2E/Groups",
        "/scim/v2/Users/.%2e/Groups",
        "/scim/v2//Users",
        "/scim//v2/Users",
        "/scim/v2/Users//abc",
        "/scim/v2/Users%2Fabc",
        "/scim/v2/Users/abc%2fdef",
        "/scim/v2/Users%5Cabc",
        "/scim/v2/Users/abc%5cdef",
        "/scim/v2/Users/abc%00",
    ] {
        for method in ["GET", "DELETE"] {
            let r = gate.call(method, path, Some(&t.plaintext), None);
            assert_scim_error(&r, 400, Some("invalidPath"));
            let detail = r.json()["detail"].as_str().unwrap_or("").to_string();
            assert!(!detail.is_empty(), "{method} {path}: the detail says why");
        }
        // A write too: refused before its body is even looked at.
        let r = gate.call("PATCH", path, Some(&t.plaintext), Some("{}"));
        assert_scim_error(&r, 400, Some("invalidPath"));
    }
    let seen = up.dir.received();
    assert!(
        seen.is_empty(),
        "an unsafe spelling reached the upstream: {seen:?}"
    );
}

#[test]
fn equivalent_spellings_reach_the_upstream_as_the_canonical_path() {
    let (up, gate, t) = setup();
    for path in [
        "/scim/v2/users",
        "/scim/v2/Users/",
        "/scim/v2/%55sers",
        "/SCIM/V2/USERS",
        "/scim/v2/%75sers/",
    ] {
        up.dir.clear_received();
        let r = gate.call("GET", path, Some(&t.plaintext), None);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let req = only_request(&up);
        assert_eq!(req.method, "GET");
        assert_eq!(
            req.path, "/v2/Users",
            "{path} was forwarded as {}",
            req.path
        );
    }
    // The query string travels unchanged.
    up.dir.clear_received();
    let r = gate.call(
        "GET",
        "/scim/v2/users?filter=userName%20eq%20%22x%22&count=5",
        Some(&t.plaintext),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        only_request(&up).path,
        "/v2/Users?filter=userName%20eq%20%22x%22&count=5"
    );
    // Other resources map the same way.
    up.dir.clear_received();
    let r = gate.call(
        "GET",
        "/scim/v2/serviceproviderconfig",
        Some(&t.plaintext),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(only_request(&up).path, "/v2/ServiceProviderConfig");
}

#[test]
fn unknown_routes_are_404_me_is_501_and_wrong_methods_are_405() {
    let (up, gate, t) = setup();
    for path in [
        "/scim/v2/Nope",
        "/scim/v2",
        "/",
        "/other/Users",
        "/scim/v2/Users/1/extra",
        "/scim/v3/Users",
    ] {
        let r = gate.call("GET", path, Some(&t.plaintext), None);
        assert_scim_error(&r, 404, None);
    }
    for path in ["/scim/v2/Me", "/scim/v2/me"] {
        let r = gate.call("GET", path, Some(&t.plaintext), None);
        assert_scim_error(&r, 501, None);
    }
    let r = gate.call(
        "POST",
        "/scim/v2/Users/some-id",
        Some(&t.plaintext),
        Some(USER),
    );
    assert_scim_error(&r, 405, None);
    let r = gate.call("PATCH", "/scim/v2/Users", Some(&t.plaintext), Some("{}"));
    assert_scim_error(&r, 405, None);
    let r = gate.call("GET", "/scim/v2/.search", Some(&t.plaintext), None);
    assert_scim_error(&r, 405, None);
    let seen = up.dir.received();
    assert!(seen.is_empty(), "{seen:?}");
}

#[test]
fn the_upstream_never_sees_the_idps_token() {
    let (up, gate, t) = setup();
    let r = gate.call("GET", "/scim/v2/Users", Some(&t.plaintext), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = gate.call("POST", "/scim/v2/Users", Some(&t.plaintext), Some(USER));
    assert_eq!(r.status, 201, "{}", r.text());
    let seen = up.dir.received();
    assert_eq!(seen.len(), 2);
    for req in &seen {
        assert_eq!(
            req.header("authorization"),
            None,
            "no credential configured, so none is sent"
        );
        let anywhere = format!("{:?}{}", req.headers, String::from_utf8_lossy(&req.body));
        assert!(
            !anywhere.contains(&t.plaintext),
            "the IdP's token reached the upstream: {req:?}"
        );
    }
}

#[test]
fn the_configured_upstream_credential_replaces_the_idps() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    // The directory itself now insists on its own credential.
    up.dir.set_bearer(Some("directory-secret".into()));
    let t = TestToken::new("tok_route");
    let mut opts = GateOpts::new(&up.base_url());
    opts.config.upstream.authorization_env = Some("UPSTREAM_AUTH".into());
    opts.env = vec![
        ("UPSTREAM_AUTH".into(), "Bearer directory-secret".into()),
        // Pingora dumps upstream request headers at debug/trace; the credential must not show.
        ("RUST_LOG".into(), "trace".into()),
    ];
    let gate = GateProc::start(opts, &[&t]);
    let r = gate.call("GET", "/scim/v2/Users", Some(&t.plaintext), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let req = only_request(&up);
    assert_eq!(
        all_headers(&req, "authorization"),
        vec!["Bearer directory-secret".to_string()]
    );
    assert!(!format!("{:?}", req.headers).contains(&t.plaintext));
    // The upstream credential is a secret as well: not in the gate's log (even at trace) or metrics.
    let log = gate.flushed_log();
    assert!(!log.contains("directory-secret"), "{log}");
    assert!(!gate.metrics().contains("directory-secret"));
}

#[test]
fn spoofed_identity_headers_are_dropped_and_replaced_by_the_tokens() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let mut t = TestToken::new("tok_real");
    t.tenant = "realtenant".into();
    let gate = GateProc::start(GateOpts::new(&up.base_url()), &[&t]);
    let auth = format!("Authorization: Bearer {}", t.plaintext);
    let r = gate.raw_request(
        "GET",
        "/scim/v2/Users",
        &[
            auth.as_bytes(),
            b"X-Scim-Tenant: evilcorp",
            b"x-scim-tenant: evilcorp2",
            b"X-SCIM-Token-Id: tok_admin",
            b"X-Forwarded-Host: evil.example",
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let req = only_request(&up);
    assert_eq!(
        all_headers(&req, "x-scim-tenant"),
        vec!["realtenant".to_string()],
        "{:?}",
        req.headers
    );
    assert_eq!(
        all_headers(&req, "x-scim-token-id"),
        vec!["tok_real".to_string()],
        "{:?}",
        req.headers
    );
    // Also on writes, where the body is read and replayed.
    up.dir.clear_received();
    let mut req_bytes = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n{auth}\r\nX-Scim-Tenant: evilcorp\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n",
        gate.port,
        USER.len()
    )
    .into_bytes();
    req_bytes.extend_from_slice(USER.as_bytes());
    let r = crate::harness::send(gate.addr(), &req_bytes);
    assert_eq!(r.status, 201, "{}", r.text());
    let req = only_request(&up);
    assert_eq!(
        all_headers(&req, "x-scim-tenant"),
        vec!["realtenant".to_string()]
    );
    assert_eq!(
        all_headers(&req, "x-scim-token-id"),
        vec!["tok_real".to_string()]
    );
}

#[test]
fn host_is_the_upstreams() {
    let (up, gate, t) = setup();
    let r = gate.raw_request(
        "GET",
        "/scim/v2/Groups",
        &[format!("Authorization: Bearer {}", t.plaintext).as_bytes()],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let req = only_request(&up);
    let upstream_authority = up.addr.to_string();
    assert_eq!(all_headers(&req, "host"), vec![upstream_authority]);
}

#[test]
fn location_and_meta_location_come_back_as_the_gates_public_url() {
    let (up, gate, t) = setup();
    let public = format!("http://127.0.0.1:{}/scim/v2", gate.port);
    let upstream_prefix = up.base_url();
    let r = gate.call("POST", "/scim/v2/Users", Some(&t.plaintext), Some(USER));
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_string();
    let expected = format!("{public}/Users/{id}");
    assert_eq!(
        r.header("location"),
        Some(expected.as_str()),
        "Location header"
    );
    assert_eq!(
        r.json()["meta"]["location"],
        serde_json::json!(expected),
        "meta.location"
    );
    assert!(!r.text().contains(&upstream_prefix), "{}", r.text());
    // The upstream did build its own URL; the rewrite is the gate's doing.
    let up_user = only_request(&up);
    assert_eq!(up_user.method, "POST");

    let r = gate.call(
        "GET",
        &format!("/scim/v2/Users/{id}"),
        Some(&t.plaintext),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["meta"]["location"], serde_json::json!(expected));
    assert_eq!(
        r.json()["userName"],
        "alice@acme.com",
        "the rest of the body is unchanged"
    );

    let r = gate.call("GET", "/scim/v2/Users", Some(&t.plaintext), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["Resources"][0]["meta"]["location"],
        serde_json::json!(expected)
    );
    assert!(!r.text().contains(&upstream_prefix), "{}", r.text());

    // The public URL follows the Host the IdP used (a gate behind a load balancer).
    let raw = format!(
        "GET /scim/v2/Users/{id} HTTP/1.1\r\nHost: scim.acme.example\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\r\n",
        t.plaintext
    );
    let r = crate::harness::send(gate.addr(), raw.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["meta"]["location"],
        serde_json::json!(format!("http://scim.acme.example/scim/v2/Users/{id}"))
    );
}

/// When the upstream's own URL is longer than the gate's public one (a long internal root), the
/// rewrite can only shorten the body: the gate keeps the upstream's Content-Length and pads the
/// JSON with whitespace instead of re-framing the response as chunked.
#[test]
fn a_shorter_public_url_keeps_the_upstream_content_length() {
    let up = DemoServer::start("/internal/directory/scim/v2", "127.0.0.1:0").expect("demo");
    let t = TestToken::new("tok_pad");
    let gate = GateProc::start(GateOpts::new(&up.base_url()), &[&t]);
    let r = gate.call("POST", "/scim/v2/Users", Some(&t.plaintext), Some(USER));
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_string();
    let r = gate.call(
        "GET",
        &format!("/scim/v2/Users/{id}"),
        Some(&t.plaintext),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("transfer-encoding"), None, "not re-framed");
    let length: usize = r
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .expect("Content-Length");
    assert_eq!(length, r.body.len());
    assert_eq!(
        r.json()["meta"]["location"],
        serde_json::json!(format!("http://127.0.0.1:{}/scim/v2/Users/{id}", gate.port))
    );
    assert!(!r.text().contains("/internal/directory"), "{}", r.text());
}
