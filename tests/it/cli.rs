//! `scim-gate token …` (docs/admin-api.md#cli) against a running gate: every command in human and `--json`
//! form, exit codes 0/1/2, finding the socket from `-c`, and no plaintext token anywhere on disk,
//! in the log or in the metrics after a run of every command.

use std::process::{Command, Output};

use crate::harness::{all_files_text, GateOpts, GateProc, BIN};
use scim_demo::DemoServer;
use scim_gate::tokens::file;
use serde_json::Value;

const USERS: &str = "/scim/v2/Users";

fn demo() -> DemoServer {
    DemoServer::start("/v2", "127.0.0.1:0").expect("demo")
}

/// `scim-gate token ARGS…` with the given socket flags.
fn cli(flags: &[&str], args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("token")
        .args(args)
        .args(flags)
        .env("RUST_LOG", "info")
        .env_remove("UPSTREAM_AUTH")
        .output()
        .expect("run the CLI")
}

fn sock_flags(gate: &GateProc) -> Vec<String> {
    vec!["--socket".into(), gate.admin_socket().display().to_string()]
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(gate: &GateProc, args: &[&str]) -> Run {
    let flags = sock_flags(gate);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let o = cli(&flags, args);
    Run {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn ok(gate: &GateProc, args: &[&str]) -> String {
    let r = run(gate, args);
    assert_eq!(
        r.code,
        Some(0),
        "{args:?}: stdout {:?} stderr {:?}",
        r.stdout,
        r.stderr
    );
    r.stdout
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

fn assert_token_line(line: &str) {
    assert!(
        line.starts_with("scimgate_") && line.len() == 58 && !line.contains(' '),
        "not a token alone: {line:?}"
    );
}

/// The `id: …` line of the human output.
fn field(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name}: in {out}"))
        .to_string()
}

fn json_after_token(out: &str) -> Value {
    let mut lines = out.lines();
    assert_token_line(lines.next().expect("token line"));
    let rest: Vec<&str> = lines.collect();
    assert_eq!(rest.len(), 1, "one JSON object after the token: {out}");
    serde_json::from_str(rest[0]).expect("JSON")
}

fn only_json(out: &str) -> Value {
    assert_eq!(out.lines().count(), 1, "one JSON object: {out}");
    serde_json::from_str(out.trim()).expect("JSON")
}

fn status_of(gate: &GateProc, token: &str) -> u16 {
    gate.call("GET", USERS, Some(token), None).status
}

#[test]
fn every_command_in_human_and_json_form() {
    let up = demo();
    let gate = GateProc::start(GateOpts::new(&up.base_url()), &[]);

    // create, human: the token alone on line 1, then the details.
    let out = ok(
        &gate,
        &[
            "create", "--tenant", "acme", "--idp", "entra", "--domain", "acme.com", "--domain",
            "acme.org",
        ],
    );
    let t1 = first_line(&out);
    assert_token_line(&t1);
    let id1 = field(&out, "id");
    assert_eq!(field(&out, "tenant"), "acme");
    assert_eq!(field(&out, "idp"), "entra");
    assert_eq!(field(&out, "status"), "active");
    assert_eq!(field(&out, "domains"), "acme.com,acme.org");
    assert_eq!(field(&out, "expires_at"), "never");
    assert_eq!(out.matches(&t1).count(), 1, "shown once: {out}");
    assert_eq!(status_of(&gate, &t1), 200);

    // create --json: the token line, then one object.
    let out = ok(
        &gate,
        &[
            "create",
            "--tenant",
            "acme",
            "--idp",
            "entra",
            "--expires-in",
            "30d",
            "--json",
        ],
    );
    let t2 = first_line(&out);
    let b = json_after_token(&out);
    let id2 = b["id"].as_str().expect("id").to_string();
    assert_eq!(b["token"].as_str(), Some(t2.as_str()));
    assert!(
        b["expires_at"].is_string() && b.get("sha256").is_none(),
        "{b}"
    );
    assert_eq!(status_of(&gate, &t2), 200);

    // list, human: a header and one row per token; no secret.
    let out = ok(&gate, &["list"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("TENANT") && lines[0].contains("IDP"),
        "{out}"
    );
    let row1 = lines
        .iter()
        .find(|l| l.starts_with(&id1))
        .expect("row for id1");
    assert!(
        row1.contains("acme")
            && row1.contains("entra")
            && row1.contains("active")
            && row1.contains("acme.com,acme.org")
    );
    assert!(lines.iter().any(|l| l.starts_with(&id2)), "{out}");
    assert!(!out.contains("scimgate_"), "{out}");
    // list --json
    let b = only_json(&ok(&gate, &["list", "--json"]));
    let tokens = b["tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len(), 2);
    assert!(
        tokens
            .iter()
            .all(|t| t.get("token").is_none() && t.get("sha256").is_none()),
        "{b}"
    );

    // refresh, human and --json: same id, new secret, old one dead.
    let out = ok(&gate, &["refresh", &id1]);
    let t1b = first_line(&out);
    assert_token_line(&t1b);
    assert_eq!(field(&out, "id"), id1);
    assert_ne!(t1b, t1);
    assert_eq!(status_of(&gate, &t1), 401);
    assert_eq!(status_of(&gate, &t1b), 200);
    let out = ok(&gate, &["refresh", &id1, "--json"]);
    let t1c = first_line(&out);
    assert_eq!(json_after_token(&out)["id"].as_str(), Some(id1.as_str()));
    assert_eq!(status_of(&gate, &t1b), 401);
    assert_eq!(status_of(&gate, &t1c), 200);

    // deactivate / activate, human and --json.
    let out = ok(&gate, &["deactivate", &id1]);
    assert_eq!(field(&out, "status"), "inactive");
    assert!(!out.contains("scimgate_"));
    assert_eq!(status_of(&gate, &t1c), 401);
    let b = only_json(&ok(&gate, &["activate", &id1, "--json"]));
    assert_eq!(b["status"].as_str(), Some("active"));
    assert_eq!(status_of(&gate, &t1c), 200);
    let b = only_json(&ok(&gate, &["deactivate", &id2, "--json"]));
    assert_eq!(b["status"].as_str(), Some("inactive"));
    let out = ok(&gate, &["activate", &id2]);
    assert_eq!(field(&out, "status"), "active");

    // delete, human and --json.
    let out = ok(&gate, &["delete", &id1]);
    assert!(out.contains(&id1), "{out}");
    assert_eq!(status_of(&gate, &t1c), 401);
    let b = only_json(&ok(&gate, &["delete", &id2, "--json"]));
    assert_eq!(
        (b["id"].as_str(), b["deleted"].as_bool()),
        (Some(id2.as_str()), Some(true))
    );
    assert_eq!(status_of(&gate, &t2), 401);
    let b = only_json(&ok(&gate, &["list", "--json"]));
    assert_eq!(b["tokens"].as_array().map(Vec::len), Some(0));
    let on_disk =
        file::parse(&std::fs::read(gate.path("tokens.yaml")).expect("file"), 2).expect("parses");
    assert!(on_disk.is_empty());

    // The audit trail names every step and the IdP.
    let audit = std::fs::read_to_string(gate.path("audit.jsonl")).expect("audit");
    let events: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(
        names,
        [
            "token.created",
            "token.created",
            "token.refreshed",
            "token.refreshed",
            "token.deactivated",
            "token.activated",
            "token.deactivated",
            "token.activated",
            "token.deleted",
            "token.deleted"
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e["idp"] == "entra" && e["tenant"] == "acme" && e["uid"] == 0),
        "{audit}"
    );
}

#[test]
fn exit_codes_are_0_ok_1_refused_2_usage() {
    let up = demo();
    let gate = GateProc::start(GateOpts::new(&up.base_url()), &[]);
    for _ in 0..2 {
        ok(&gate, &["create", "--tenant", "acme", "--idp", "okta"]);
    }
    // Refused by the gate: 1, the gate's reason on stderr, nothing on stdout.
    let refused: [&[&str]; 7] = [
        &["create", "--tenant", "acme", "--idp", "okta"],
        &["create", "--tenant", "acme", "--idp", "myspace"],
        &[
            "create",
            "--tenant",
            "acme",
            "--idp",
            "google",
            "--expires-in",
            "5y",
        ],
        &["refresh", "tok_nope"],
        &["activate", "tok_nope"],
        &["deactivate", "tok_nope"],
        &["delete", "tok_nope"],
    ];
    let wants = [
        "409",
        "myspace",
        "expires_in",
        "tok_nope",
        "tok_nope",
        "tok_nope",
        "tok_nope",
    ];
    for (args, want) in refused.iter().zip(wants) {
        let r = run(&gate, args);
        assert_eq!(r.code, Some(1), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains(want),
            "{args:?}: stderr {:?} should mention {want}",
            r.stderr
        );
        assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
    }
    let r = run(&gate, &["delete", "tok_nope"]);
    assert!(r.stderr.contains("404"), "{}", r.stderr);

    // Usage: 2.
    let sock = gate.admin_socket().display().to_string();
    let config = gate.config.display().to_string();
    let usage: [&[&str]; 6] = [
        &["token", "create", "--idp", "okta", "--socket", &sock],
        &["token", "create", "--tenant", "acme", "--socket", &sock],
        &["token", "list"],
        &["token", "refresh", "--socket", &sock],
        &["token", "list", "--socket", &sock, "-c", &config],
        &["token", "frobnicate", "--socket", &sock],
    ];
    for args in usage {
        let o = Command::new(BIN).args(args).output().expect("run");
        assert_eq!(
            o.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!o.stderr.is_empty() && o.stdout.is_empty(), "{args:?}");
    }
    let o = Command::new(BIN)
        .args(["token", "list"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--socket") && err.contains("-c"), "{err}");
    // Nothing was created by any of that.
    assert_eq!(
        only_json(&ok(&gate, &["list", "--json"]))["tokens"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

#[test]
fn the_config_flag_finds_the_socket_and_a_missing_socket_is_explained() {
    let up = demo();
    // The gate has its upstream credential in its environment; the admin's shell does not, and
    // must not need it just to find the socket.
    let mut opts = GateOpts::new(&up.base_url());
    opts.config.upstream.authorization_env = Some("UPSTREAM_AUTH".into());
    opts.env = vec![("UPSTREAM_AUTH".into(), "Bearer upstream-secret".into())];
    let gate = GateProc::start(opts, &[]);
    let config = gate.config.display().to_string();
    let o = cli(
        &["-c", &config],
        &["create", "--tenant", "acme", "--idp", "google"],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let token = first_line(&String::from_utf8_lossy(&o.stdout));
    assert_token_line(&token);
    assert_eq!(status_of(&gate, &token), 200);
    let o = cli(&["--config", &config], &["list", "--json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        only_json(&String::from_utf8_lossy(&o.stdout))["tokens"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // A relative -c path resolves the socket against the config's folder, not the cwd.
    let o = Command::new(BIN)
        .current_dir(gate.dir.path())
        .args(["token", "list", "-c", "gate.yaml"])
        .output()
        .expect("run");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // No socket at that path: a clear message naming it, exit 1, nothing on stdout.
    let missing = gate.dir.path().join("nope.sock");
    let o = cli(&["--socket", &missing.display().to_string()], &["list"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&missing.display().to_string()) && err.contains("is the gate running"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
    // A config file that does not exist.
    let o = cli(&["-c", "/nonexistent/gate.yaml"], &["list"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/gate.yaml"));
}

fn grep_secrets(haystack: &str, secrets: &[String], what: &str) {
    for s in secrets {
        assert!(
            !haystack.contains(s.as_str()),
            "a plaintext token appears in {what}"
        );
        // The random part alone (a log that strips the prefix would still leak).
        assert!(
            !haystack.contains(&s[9..]),
            "a token's random part appears in {what}"
        );
    }
}

#[test]
fn no_plaintext_token_in_files_logs_audit_or_metrics() {
    let up = demo();
    let mut opts = GateOpts::new(&up.base_url());
    opts.env = vec![("RUST_LOG".into(), "debug".into())];
    let gate = GateProc::start(opts, &[]);
    let mut issued = Vec::new();

    let out = ok(
        &gate,
        &[
            "create", "--tenant", "acme", "--idp", "okta", "--domain", "acme.com",
        ],
    );
    issued.push(first_line(&out));
    let id = field(&out, "id");
    let out = ok(
        &gate,
        &[
            "create",
            "--tenant",
            "acme",
            "--idp",
            "okta",
            "--expires-in",
            "1d",
            "--json",
        ],
    );
    issued.push(first_line(&out));
    let id2 = json_after_token(&out)["id"]
        .as_str()
        .expect("id")
        .to_string();
    ok(&gate, &["list"]);
    ok(&gate, &["list", "--json"]);
    issued.push(first_line(&ok(&gate, &["refresh", &id])));
    issued.push(first_line(&ok(&gate, &["refresh", &id2, "--json"])));
    ok(&gate, &["deactivate", &id]);
    ok(&gate, &["activate", &id, "--json"]);
    let r = run(&gate, &["create", "--tenant", "acme", "--idp", "okta"]);
    assert_eq!(r.code, Some(1));
    // Every token, live or dead, is presented to the proxy (valid, refreshed-away, deleted).
    for t in &issued {
        gate.call("GET", USERS, Some(t), None);
        gate.call("POST", USERS, Some(t), Some(r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a@acme.com"}"#));
    }
    ok(&gate, &["delete", &id]);
    ok(&gate, &["delete", &id2, "--json"]);
    for t in &issued {
        assert_eq!(status_of(&gate, t), 401);
    }
    for t in &issued {
        assert_token_line(t);
    }
    assert_eq!(issued.len(), 4);

    let metrics = gate.metrics();
    assert!(metrics.contains("scim_gate_requests_total"), "{metrics}");
    // Let the watcher and the log settle, then look everywhere.
    std::thread::sleep(std::time::Duration::from_millis(600));
    grep_secrets(
        &std::fs::read_to_string(gate.path("tokens.yaml")).expect("tokens"),
        &issued,
        "the token file",
    );
    grep_secrets(
        &std::fs::read_to_string(gate.path("audit.jsonl")).expect("audit"),
        &issued,
        "the audit log",
    );
    let log = gate.flushed_log();
    assert!(
        log.contains("DEBUG") || log.contains("INFO"),
        "the gate logged something: {log}"
    );
    grep_secrets(&log, &issued, "the gate's log");
    grep_secrets(&metrics, &issued, "/metrics");
    grep_secrets(
        &all_files_text(gate.dir.path()),
        &issued,
        "the gate's folder",
    );
}
