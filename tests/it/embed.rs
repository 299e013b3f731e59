//! `examples/embed.rs` — an operator's own Pingora proxy with the gate embedded — is built and
//! run against the in-process demo directory: tokens are enforced and the operator's own header
//! is on the responses.
//!
//! Integration tests cannot see example binaries, so the test builds the example with the same
//! cargo that runs it and takes the executable's path from cargo's JSON messages (which works
//! for any target directory and profile layout).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::harness::{assert_scim_error, GateOpts, GateProc, TestToken};
use scim_demo::DemoServer;

fn embed_binary() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let mut cargo = Command::new(env!("CARGO"));
        cargo.current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "build",
            "--example",
            "embed",
            "--message-format=json-render-diagnostics",
        ]);
        // Cargo sets these for the test process. Build scripts (ring's, for one) declare
        // `rerun-if-env-changed` on some of them, so passing them on would make this build and
        // the next `cargo test` each think the other's artifacts are stale and rebuild.
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("CARGO_PKG_")
                || k.starts_with("CARGO_MANIFEST_")
                || k.starts_with("CARGO_BIN_EXE_")
                || matches!(
                    &*k,
                    "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR"
                )
            {
                cargo.env_remove(&key);
            }
        }
        let out = cargo.output().expect("run cargo");
        assert!(
            out.status.success(),
            "cargo build --example embed failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "embed")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported the embed executable")
    })
}

fn start(up: &DemoServer, tokens: &[&TestToken]) -> GateProc {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("tokens.yaml"),
        crate::harness::token_file(tokens),
    )
    .expect("tokens");
    GateProc::start_program(embed_binary(), dir, GateOpts::new(&up.base_url()))
}

#[test]
fn the_embedded_gate_passes_a_valid_token_and_adds_the_operators_header() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let t = TestToken::new("tok_embed");
    let proxy = start(&up, &[&t]);
    let r = proxy.call("GET", "/scim/v2/Users", Some(&t.plaintext), None);
    assert_eq!(r.status, 200, "{}\n{}", r.text(), proxy.log());
    assert_eq!(
        r.header("x-embedded-by"),
        Some("example"),
        "{:?}",
        r.headers
    );
    assert_eq!(r.json()["totalResults"], 0);
    // Forwarded by the gate's rules: canonical path, identity headers, no IdP token.
    let seen = up.dir.received();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v2/Users");
    assert_eq!(seen[0].header("x-scim-tenant"), Some("acme"));
    assert_eq!(seen[0].header("x-scim-token-id"), Some("tok_embed"));
    assert_eq!(seen[0].header("authorization"), None);
    // The operator's request_filter saw the decision with the token's identity.
    assert!(
        proxy
            .log()
            .contains("forwarding for tenant acme (token tok_embed)"),
        "{}",
        proxy.log()
    );

    // A write goes through the gate's body path and comes back with public locations.
    let body =
        r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"emb@acme.com"}"#;
    let r = proxy.call("POST", "/scim/v2/Users", Some(&t.plaintext), Some(body));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("x-embedded-by"), Some("example"));
    let id = r.json()["id"].as_str().expect("id").to_string();
    assert_eq!(
        r.header("location"),
        Some(format!("http://127.0.0.1:{}/scim/v2/Users/{id}", proxy.port).as_str())
    );
    assert_eq!(
        up.dir.received().last().map(|r| r.body.clone()),
        Some(body.as_bytes().to_vec())
    );
}

#[test]
fn the_embedded_gate_refuses_a_missing_or_unknown_token() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let t = TestToken::new("tok_embed");
    let proxy = start(&up, &[&t]);
    let r = proxy.call("GET", "/scim/v2/Users", None, None);
    assert_scim_error(&r, 401, None);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"scim\""));
    let other = TestToken::new("tok_other");
    let r = proxy.call("GET", "/scim/v2/Users", Some(&other.plaintext), None);
    assert_scim_error(&r, 401, None);
    let r = proxy.call("GET", "/scim/v2/Users/../Groups", Some(&t.plaintext), None);
    assert_scim_error(&r, 400, Some("invalidPath"));
    assert!(up.dir.received().is_empty(), "{:?}", up.dir.received());
}

#[test]
fn the_embedded_gate_reports_upstream_failures_as_scim_errors() {
    let url = format!("http://127.0.0.1:{}/v2", crate::harness::free_port());
    let t = TestToken::new("tok_embed");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("tokens.yaml"),
        crate::harness::token_file(&[&t]),
    )
    .expect("tokens");
    let proxy = GateProc::start_program(embed_binary(), dir, GateOpts::new(&url));
    let r = proxy.call("GET", "/scim/v2/Users", Some(&t.plaintext), None);
    assert_scim_error(&r, 502, None);
}

/// The embedder of `examples/embed.rs` adds only its own routing (`EMBED_UPSTREAM` replaces the
/// configured upstream, which here is a dead port). It cannot bypass a check: a chunked body
/// over the limit and a PATCH the policy refuses are answered by the gate and never reach its
/// directory; what does reach it carries the gate's identity headers, not the IdP's token nor a
/// client-supplied `X-Scim-Tenant` in any spelling.
#[test]
fn an_embedder_with_its_own_routing_cannot_bypass_a_check() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let t = TestToken::new("tok_route");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("tokens.yaml"),
        crate::harness::token_file(&[&t]),
    )
    .expect("tokens");
    let mut opts = GateOpts::new("http://127.0.0.1:9/v2");
    let addr = up.base_url();
    let hostport = addr
        .trim_start_matches("http://")
        .trim_end_matches("/v2")
        .to_string();
    opts.env = vec![("EMBED_UPSTREAM".into(), hostport)];
    let proxy = GateProc::start_program(embed_binary(), dir, opts);
    let auth = format!("Authorization: Bearer {}", t.plaintext);

    // Routed by the embedder: the configured upstream (port 9) is dead, the directory answers.
    let r = proxy.raw_request(
        "GET",
        "/scim/v2/Users",
        &[
            auth.as_bytes(),
            b"X-Scim-Tenant: victim",
            b"x_scim_tenant: victim",
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = up.dir.received();
    assert_eq!(seen.len(), 1);
    let tenants: Vec<&str> = seen[0]
        .headers
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase().replace('_', "-") == "x-scim-tenant")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(tenants, ["acme"], "only the gate's tenant header arrives");
    assert!(
        seen[0]
            .headers
            .iter()
            .all(|(_, v)| !v.contains(&t.plaintext)),
        "the IdP's token reached the directory"
    );

    // A chunked body over the 1 MiB limit: 413 from the gate, nothing forwarded.
    up.dir.clear_received();
    let mut req = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\r\n\
         Content-Type: application/scim+json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    let chunk = vec![b' '; 256 * 1024];
    for _ in 0..5 {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(&chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let r = crate::harness::send(proxy.addr(), &req);
    assert_scim_error(&r, 413, None);

    // A PATCH the policy refuses (userName is immutable): 400 from the gate.
    let r = proxy.call(
        "PATCH",
        "/scim/v2/Users/1",
        Some(&t.plaintext),
        Some(r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"userName","value":"x"}]}"#),
    );
    assert_scim_error(&r, 400, Some("mutability"));
    assert!(
        up.dir.received().is_empty(),
        "a refused request reached the directory"
    );
}
