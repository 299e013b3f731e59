//! Tenant names (issue 15, finding 13): a name with `,`, a space or non-ASCII would make
//! `X-Scim-Tenant` ambiguous, so only `[A-Za-z0-9._-]{1,64}` is taken — at an admin create
//! (API and CLI), in a hot-reloaded token file, and in the token file at start.

use std::process::Command;
use std::time::Duration;

use crate::harness::{eventually, GateOpts, GateProc, TestToken, BIN};
use scim_demo::DemoServer;

const RELOAD_ERRORS: &str = r#"scim_gate_token_reloads_total{result="error"}"#;

fn bad_names() -> Vec<String> {
    vec![
        "acme,evil".into(),
        "acme evil".into(),
        "acmé".into(),
        "ｅｖｉｌ".into(),
        "x".repeat(65),
    ]
}

#[test]
fn create_refuses_an_ambiguous_tenant_over_the_api_and_the_cli() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let gate = GateProc::start(GateOpts::new(&up.base_url()), &[]);
    for name in bad_names() {
        let body = serde_json::json!({ "tenant": name, "idp": "okta" }).to_string();
        let r = gate.admin("POST", "/tokens", Some(&body));
        assert_eq!(r.status, 400, "{name:?}: {}", r.text());
        let e = r.json()["error"].as_str().unwrap_or("").to_string();
        assert!(
            e.contains("tenant may hold only") || e.contains("at most 64"),
            "{e}"
        );
        let out = Command::new(BIN)
            .args([
                "token", "create", "--tenant", &name, "--idp", "okta", "--socket",
            ])
            .arg(gate.admin_socket())
            .output()
            .expect("cli");
        assert_eq!(out.status.code(), Some(1), "{name:?}");
        assert!(out.stdout.is_empty(), "no token printed for {name:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("tenant"));
    }
    let listed = gate.admin("GET", "/tokens", None).json();
    assert_eq!(listed["tokens"].as_array().map(Vec::len), Some(0));
    let ok = gate.admin(
        "POST",
        "/tokens",
        Some(r#"{"tenant":"Acme-Corp_2.eu","idp":"okta"}"#),
    );
    assert_eq!(ok.status, 201, "{}", ok.text());
}

#[test]
fn the_token_file_is_held_to_the_same_rule_at_reload_and_at_start() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let good = TestToken::new("tok_good");
    let gate = GateProc::start(GateOpts::new(&up.base_url()), &[&good]);
    let file = gate.path("tokens.yaml");
    for (i, name) in bad_names().into_iter().enumerate() {
        let mut bad = TestToken::new("tok_bad");
        bad.tenant = format!("{name:?}");
        let before = gate.metric(RELOAD_ERRORS);
        let tmp = gate.path("edit.tmp");
        std::fs::write(&tmp, crate::harness::token_file(&[&good, &bad])).expect("write");
        std::fs::rename(&tmp, &file).expect("rename");
        assert!(
            eventually(Duration::from_secs(2), || gate.metric(RELOAD_ERRORS)
                > before),
            "edit {i} ({name:?}) was taken in: {}",
            gate.log()
        );
        let r = gate.call("GET", "/scim/v2/Users", Some(&bad.plaintext), None);
        assert_eq!(r.status, 401, "{name:?}: the bad record is not in force");
        let r = gate.call("GET", "/scim/v2/Users", Some(&good.plaintext), None);
        assert_eq!(r.status, 200, "the previous set stays in force");
    }
    assert!(gate.log_shows("tenant may hold only"), "{}", gate.log());

    // At start, the same file is a start failure that says why.
    let config = std::fs::read_to_string(&gate.config).expect("config");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("gate.yaml"), config).expect("config");
    let mut bad = TestToken::new("tok_bad");
    bad.tenant = "\"acme,evil\"".into();
    std::fs::write(
        dir.path().join("tokens.yaml"),
        crate::harness::token_file(&[&bad]),
    )
    .expect("file");
    let out = Command::new(BIN)
        .args(["run", "-c"])
        .arg(dir.path().join("gate.yaml"))
        .env("RUST_LOG", "off")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("token tok_bad: tenant may hold only"),
        "{stderr}"
    );
}
