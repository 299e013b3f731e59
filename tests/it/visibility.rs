//! Visibility through the real binary (issue 11, `docs/troubleshooting.md`): `last_used_at`
//! (null before use, set after, written back and kept across a restart), the half-done-rotation
//! warning, the decision log with a reason per refusal and no user value or secret in it,
//! `scim-gate decisions --follow`, and the per-tenant metric with its cap.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use scim_demo::DemoServer;
use scim_gate::config::raw::{RawAdmin, RawMetrics, RawPolicy, RawTokens};

use crate::harness::{eventually, GateOpts, GateProc, TestToken, BIN};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn listed(gate: &GateProc, id: &str) -> serde_json::Value {
    let tokens = gate.admin("GET", "/tokens", None).json();
    tokens["tokens"]
        .as_array()
        .and_then(|l| l.iter().find(|t| t["id"] == id).cloned())
        .unwrap_or_else(|| panic!("{id} not listed: {tokens}"))
}

#[test]
fn last_used_at_is_set_by_use_written_back_and_kept_across_a_restart() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let used = TestToken::new("tok_used");
    let idle = TestToken::new("tok_idle");
    let mut opts = GateOpts::new(&up.base_url());
    opts.config.tokens = Some(RawTokens {
        file: Some("tokens.yaml".into()),
        last_used_interval: Some(Duration::from_millis(300)),
        ..RawTokens::default()
    });
    let mut gate = GateProc::start(opts, &[&used, &idle]);
    assert!(listed(&gate, "tok_used")["last_used_at"].is_null());
    let r = gate.call("GET", "/scim/v2/Users", Some(&used.plaintext), None);
    assert_eq!(r.status, 200);
    let at = listed(&gate, "tok_used")["last_used_at"].clone();
    assert!(at.is_string(), "set at once in memory: {at}");
    assert!(listed(&gate, "tok_idle")["last_used_at"].is_null());
    // Written back within the interval, without an admin change…
    assert!(
        eventually(Duration::from_secs(5), || std::fs::read_to_string(
            gate.path("tokens.yaml")
        )
        .is_ok_and(|t| t.contains("last_used_at"))),
        "never written back: {}",
        gate.log()
    );
    // …so a crash (SIGKILL: no shutdown write) keeps it.
    gate.restart(&[]);
    assert_eq!(listed(&gate, "tok_used")["last_used_at"], at);
    assert!(listed(&gate, "tok_idle")["last_used_at"].is_null());
    let audit = std::fs::read_to_string(gate.path("audit.jsonl")).unwrap_or_default();
    assert!(
        !audit.contains("tokens.reloaded"),
        "the gate's own write-back is not a reload: {audit}"
    );
}

#[test]
fn token_list_shows_last_use_and_warns_of_a_half_done_rotation() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let gate = GateProc::start(GateOpts::new(&up.base_url()), &[]);
    let create = || {
        let r = gate.admin(
            "POST",
            "/tokens",
            Some(r#"{"tenant":"acme","idp":"entra"}"#),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let v = r.json();
        (
            v["id"].as_str().expect("id").to_string(),
            v["token"].as_str().expect("token").to_string(),
        )
    };
    let list = || {
        let out = Command::new(BIN)
            .args(["token", "list", "--socket"])
            .arg(gate.admin_socket())
            .output()
            .expect("cli");
        assert!(out.status.success());
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (old_id, old_secret) = create();
    assert_eq!(
        gate.call("GET", "/scim/v2/Users", Some(&old_secret), None)
            .status,
        200
    );
    let (stdout, stderr) = list();
    assert!(
        stdout.contains("LAST USED") && stdout.contains("just now ("),
        "{stdout}"
    );
    assert!(!stderr.contains("warning"), "{stderr}");
    // The second token of the rotation, not yet in the IdP.
    std::thread::sleep(Duration::from_millis(20));
    let (new_id, new_secret) = create();
    let (stdout, stderr) = list();
    assert!(stdout.contains("never"), "{stdout}");
    assert!(
        stderr.contains("warning") && stderr.contains(&new_id) && stderr.contains(&old_id),
        "{stderr}"
    );
    // Once the IdP uses it, the rotation can be finished: no warning.
    assert_eq!(
        gate.call("GET", "/scim/v2/Users", Some(&new_secret), None)
            .status,
        200
    );
    let (_, stderr) = list();
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[test]
fn every_refusal_is_in_the_decision_log_with_its_reason_and_no_user_value() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let mut t = TestToken::new("tok_dec");
    t.domains = vec!["acme.com".into()];
    let mut opts = GateOpts::new(&up.base_url());
    opts.config.policy = Some(RawPolicy::default());
    let gate = GateProc::start(opts, &[&t]);
    let tok = Some(t.plaintext.as_str());
    // A user to refuse changes to.
    let body = format!(r#"{{"schemas":["{USER}"],"userName":"ada@acme.com"}}"#);
    let r = gate.call("POST", "/scim/v2/Users", tok, Some(&body));
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_string();

    let secret_user = "mallory.secret-name@acme.com";
    let secret_mail = "private.person@evil-corp.example";
    let cases: Vec<(&str, crate::harness::Response)> = vec![
        ("token_missing", gate.call("GET", "/scim/v2/Users", None, None)),
        (
            "token_unknown",
            gate.call("GET", "/scim/v2/Users", Some("notarealtoken-unknown"), None),
        ),
        (
            "token_checksum",
            gate.call("GET", "/scim/v2/Users", Some("scimgate_notarealtoken"), None),
        ),
        ("route_unknown", gate.call("GET", "/scim/v2/Devices", tok, None)),
        ("method_not_allowed", gate.call("PATCH", "/scim/v2/Users", tok, Some("{}"))),
        (
            "mutability",
            gate.call(
                "PATCH",
                &format!("/scim/v2/Users/{id}"),
                tok,
                Some(&format!(
                    r#"{{"schemas":["{PATCH}"],"Operations":[{{"op":"replace","path":"userName","value":"{secret_user}"}}]}}"#
                )),
            ),
        ),
        (
            "domain",
            gate.call(
                "POST",
                "/scim/v2/Users",
                tok,
                Some(&format!(
                    r#"{{"schemas":["{USER}"],"userName":"{secret_mail}","emails":[{{"value":"{secret_mail}"}}]}}"#
                )),
            ),
        ),
        (
            "invalid_filter",
            gate.call(
                "POST",
                "/scim/v2/Users/.search",
                tok,
                Some(&format!(
                    r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"userName eq \"{secret_user}\" and ("}}"#
                )),
            ),
        ),
        (
            "path_unsafe",
            gate.call("GET", "/scim/v2/Users/%2e%2e%2fGroups", tok, None),
        ),
    ];
    for (reason, r) in &cases {
        assert!(r.status >= 400, "{reason}: {} {}", r.status, r.text());
    }
    // A refusal is logged when its request ends, just after the answer went out.
    assert!(eventually(Duration::from_secs(5), || {
        let d = gate.admin("GET", "/decisions?limit=100", None).json();
        d["decisions"].as_array().map_or(0, Vec::len) >= cases.len()
    }));
    let log = gate.admin("GET", "/decisions?limit=100", None);
    assert_eq!(log.status, 200);
    let text = log.text();
    let decisions = log.json()["decisions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (reason, r) in &cases {
        let d = decisions
            .iter()
            .find(|d| d["reason"] == *reason)
            .unwrap_or_else(|| panic!("no {reason} decision in {text}"));
        assert_eq!(d["status"], r.status, "{reason}: {d}");
        assert!(d["time"].is_string() && d["route"].is_string() && d["method"].is_string());
    }
    let mutability = decisions
        .iter()
        .find(|d| d["reason"] == "mutability")
        .expect("row");
    assert_eq!(mutability["token_id"], "tok_dec");
    assert_eq!(mutability["tenant"], "acme");
    assert_eq!(mutability["scim_type"], "mutability");
    for value in [
        secret_user,
        secret_mail,
        "evil-corp",
        t.plaintext.as_str(),
        "notarealtoken",
    ] {
        assert!(
            !text.contains(value),
            "{value:?} is in the decision log: {text}"
        );
    }
    // Filtered by token, newest first.
    let mine = gate
        .admin("GET", "/decisions?token_id=tok_dec", None)
        .json();
    let mine = mine["decisions"].as_array().cloned().unwrap_or_default();
    assert!(mine.iter().all(|d| d["token_id"] == "tok_dec") && !mine.is_empty());
    assert_eq!(mine[0]["reason"], "path_unsafe");
    assert_eq!(gate.admin("GET", "/decisions?limit=0", None).status, 400);
}

#[test]
fn decisions_follow_prints_a_refusal_as_it_happens() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let gate = GateProc::start(GateOpts::new(&up.base_url()), &[]);
    let mut follow = Command::new(BIN)
        .args(["decisions", "--follow", "--socket"])
        .arg(gate.admin_socket())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cli");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(gate.call("GET", "/scim/v2/Users", None, None).status, 401);
    let stdout = follow.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(10));
    let _ = follow.kill();
    let _ = follow.wait();
    let line = line.expect("a line within 10 s");
    assert!(
        line.contains("token_missing") && line.contains("401"),
        "{line}"
    );
}

#[test]
fn tenant_metrics_count_per_tenant_up_to_the_cap() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let mut a = TestToken::new("tok_ta");
    a.tenant = "alpha".into();
    let mut b = TestToken::new("tok_tb");
    b.tenant = "beta".into();
    let mut opts = GateOpts::new(&up.base_url());
    opts.config.metrics = Some(RawMetrics {
        max_tenants: Some(1),
        ..RawMetrics::default()
    });
    opts.config.admin = Some(RawAdmin {
        socket: Some("admin.sock".into()),
        decisions_kept: Some(50),
        ..RawAdmin::default()
    });
    let gate = GateProc::start(opts, &[&a, &b]);
    for _ in 0..3 {
        assert_eq!(
            gate.call("GET", "/scim/v2/Users", Some(&a.plaintext), None)
                .status,
            200
        );
    }
    assert_eq!(
        gate.call("GET", "/scim/v2/Users", Some(&b.plaintext), None)
            .status,
        200
    );
    assert_eq!(gate.call("GET", "/scim/v2/Users", None, None).status, 401);
    let series = |tenant: &str, outcome: &str| {
        gate.metric(&format!(
            "scim_gate_tenant_requests_total{{idp=\"{}\",outcome=\"{outcome}\",tenant=\"{tenant}\"}}",
            if tenant == "none" { "none" } else { "okta" }
        ))
    };
    assert_eq!(series("alpha", "forwarded"), 3.0, "{}", gate.metrics());
    assert_eq!(
        series("other", "forwarded"),
        1.0,
        "beta is over the cap of 1"
    );
    assert_eq!(series("beta", "forwarded"), 0.0);
    assert_eq!(series("none", "unauthorized"), 1.0);
}
