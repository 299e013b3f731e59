//! Guard rails through the real binary (`docs/guards.md`): the rate limit per token, the bound
//! on requests in flight to the directory, the destructive-change breaker (every kind of
//! destructive request, trip at exactly `max`+1, release, audit), allowed networks with and
//! without trusted proxies, token networks, Okta's schemeless `Authorization`, and bad values.

use std::process::Command;
use std::time::Duration;

use scim_demo::DemoServer;
use scim_gate::config::raw::DialectName;
use scim_gate::config::raw::{
    RawConfig, RawDestructive, RawGuards, RawLimits, RawPolicy, RawRate, RawServer, RawUpstream,
};

use crate::harness::{assert_scim_error, GateOpts, GateProc, Response, TestToken, BIN};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

fn start(
    up: &DemoServer,
    tokens: &[&TestToken],
    configure: impl FnOnce(&mut GateOpts),
) -> GateProc {
    let mut opts = GateOpts::new(&up.base_url());
    configure(&mut opts);
    GateProc::start(opts, tokens)
}

fn limits(rate: f64, burst: u32) -> RawLimits {
    RawLimits {
        rate: Some(rate),
        burst: Some(burst),
        upstream_max_in_flight: Some(10_000),
        ..RawLimits::default()
    }
}

fn assert_retry_after(r: &Response) {
    let secs: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After in whole seconds: {:?}", r.headers));
    assert!(secs >= 1);
}

#[test]
fn a_token_over_its_rate_gets_429_and_other_tokens_do_not() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let a = TestToken::new("tok_a");
    let b = TestToken::new("tok_b");
    let mut o = TestToken::new("tok_o");
    o.idp = "entra".into();
    let gate = start(&up, &[&a, &b, &o], |opts| {
        // One request per 10 s after the burst: the 12 requests below finish long before.
        let mut l = limits(0.1, 5);
        // Entra tokens get a larger bucket.
        l.per_idp = Some(
            [(
                "entra".to_string(),
                RawRate {
                    rate: None,
                    burst: Some(50),
                },
            )]
            .into(),
        );
        opts.config.limits = Some(l);
    });
    let statuses: Vec<Response> = (0..12)
        .map(|_| gate.call("GET", "/scim/v2/Users", Some(&a.plaintext), None))
        .collect();
    let ok = statuses.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 5, "a burst of 5 at 0.1/s");
    let limited = statuses.iter().find(|r| r.status == 429).expect("a 429");
    assert_scim_error(limited, 429, None);
    assert_retry_after(limited);
    assert!(limited.text().contains("rate limit"), "{}", limited.text());
    // Token B (same tenant and IdP) has its own bucket; the Entra token its larger one.
    assert_eq!(
        gate.call("GET", "/scim/v2/Users", Some(&b.plaintext), None)
            .status,
        200
    );
    let entra_ok = (0..12)
        .filter(|_| {
            gate.call("GET", "/scim/v2/Users", Some(&o.plaintext), None)
                .status
                == 200
        })
        .count();
    assert_eq!(entra_ok, 12);
    assert!(gate.metric("scim_gate_limited_total{reason=\"rate\"}") >= 6.0);
    assert!(
        gate.log_shows("limited=rate"),
        "the access log names the reason"
    );
}

#[test]
fn the_directory_never_has_more_than_upstream_max_in_flight() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    up.dir.set_delay(Duration::from_millis(1500));
    let t = TestToken::new("tok_sat");
    let gate = start(&up, &[&t], |opts| {
        let mut l = limits(1000.0, 1000);
        l.upstream_max_in_flight = Some(2);
        opts.config.limits = Some(l);
        opts.config.upstream.read_timeout = Some(Duration::from_secs(10));
    });
    let gate = std::sync::Arc::new(gate);
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let gate = gate.clone();
            let token = t.plaintext.clone();
            std::thread::spawn(move || gate.call("GET", "/scim/v2/Users", Some(&token), None))
        })
        .collect();
    let answers: Vec<Response> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    let ok = answers.iter().filter(|r| r.status == 200).count();
    let busy: Vec<&Response> = answers.iter().filter(|r| r.status == 503).collect();
    assert_eq!(ok + busy.len(), 6, "{answers:?}");
    assert!(
        ok >= 2 && !busy.is_empty(),
        "{ok} passed, {} busy",
        busy.len()
    );
    assert_scim_error(busy[0], 503, None);
    assert_retry_after(busy[0]);
    let reached = up.dir.received().len();
    assert_eq!(reached, ok, "a refused request reached the directory");
    assert!(gate.metric("scim_gate_limited_total{reason=\"upstream_busy\"}") >= 1.0);
}

/// A gate whose breaker trips at the third destructive change, with one token per check so no
/// check's window carries into the next.
fn breaker_gate(up: &DemoServer, tokens: &[&TestToken]) -> GateProc {
    start(up, tokens, |opts| {
        opts.config.guards = Some(RawGuards {
            destructive: Some(RawDestructive {
                max: Some(2),
                window: Some(Duration::from_secs(600)),
            }),
        });
    })
}

fn create_user(gate: &GateProc, t: &TestToken, name: &str) -> String {
    let body = format!(r#"{{"schemas":["{USER}"],"userName":"{name}@acme.com","active":true}}"#);
    let r = gate.call("POST", "/scim/v2/Users", Some(&t.plaintext), Some(&body));
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().expect("id").to_string()
}

fn create_group(gate: &GateProc, t: &TestToken, name: &str, member: &str) -> String {
    let body = format!(
        r#"{{"schemas":["{GROUP}"],"displayName":"{name}","members":[{{"value":"{member}"}}]}}"#
    );
    let r = gate.call("POST", "/scim/v2/Groups", Some(&t.plaintext), Some(&body));
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().expect("id").to_string()
}

fn patch(ops: &str) -> String {
    format!(r#"{{"schemas":["{PATCH}"],"Operations":{ops}}}"#)
}

/// How one kind of destructive request is sent: (gate, token, resource id) → answer.
type Send<'a> = &'a dyn Fn(&GateProc, &TestToken, &str) -> Response;

#[test]
fn the_breaker_trips_at_max_plus_one_for_every_kind_and_an_admin_releases_it() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let tokens: Vec<TestToken> = (0..7)
        .map(|i| {
            let mut t = TestToken::new(&format!("tok_d{i}"));
            t.tenant = format!("tenant{i}");
            t
        })
        .collect();
    let refs: Vec<&TestToken> = tokens.iter().collect();
    let gate = breaker_gate(&up, &refs);
    let is_active = |id: &str| up.dir.get_user(id).map(|u| u["active"] == true);

    let delete_user = |g: &GateProc, t: &TestToken, id: &str| {
        g.call(
            "DELETE",
            &format!("/scim/v2/Users/{id}"),
            Some(&t.plaintext),
            None,
        )
    };
    let entra_deactivate = |g: &GateProc, t: &TestToken, id: &str| {
        let body = patch(r#"[{"op":"Replace","path":"active","value":"False"}]"#);
        g.call(
            "PATCH",
            &format!("/scim/v2/Users/{id}"),
            Some(&t.plaintext),
            Some(&body),
        )
    };
    let okta_deactivate = |g: &GateProc, t: &TestToken, id: &str| {
        let body = patch(r#"[{"op":"replace","value":{"active":false}}]"#);
        g.call(
            "PATCH",
            &format!("/scim/v2/Users/{id}"),
            Some(&t.plaintext),
            Some(&body),
        )
    };
    let put_inactive = |g: &GateProc, t: &TestToken, id: &str| {
        let current = up.dir.get_user(id).expect("user");
        let body = format!(
            r#"{{"schemas":["{USER}"],"id":"{id}","userName":{},"active":false}}"#,
            current["userName"]
        );
        g.call(
            "PUT",
            &format!("/scim/v2/Users/{id}"),
            Some(&t.plaintext),
            Some(&body),
        )
    };
    let kinds: [(&str, Send); 4] = [
        ("DELETE", &delete_user),
        ("PATCH as Entra sends it", &entra_deactivate),
        ("PATCH as Okta sends it", &okta_deactivate),
        ("PUT", &put_inactive),
    ];
    for ((kind, send), t) in kinds.iter().zip(&tokens) {
        let ids: Vec<String> = (0..4)
            .map(|i| create_user(&gate, t, &format!("{}-{i}", t.id)))
            .collect();
        for id in &ids[..2] {
            let r = send(&gate, t, id);
            assert!(r.status < 300, "{kind}: {} {}", r.status, r.text());
        }
        // The third: refused, and nothing happened upstream.
        let r = send(&gate, t, &ids[2]);
        assert_scim_error(&r, 503, None);
        assert_retry_after(&r);
        assert!(
            r.text().contains(&format!("guard release {}", t.id)),
            "{kind}: {}",
            r.text()
        );
        assert_eq!(
            is_active(&ids[2]),
            Some(true),
            "{kind}: the third got through"
        );
        // Meanwhile a non-destructive request of the same token passes.
        let rename = patch(r#"[{"op":"replace","path":"displayName","value":"Still here"}]"#);
        let r = gate.call(
            "PATCH",
            &format!("/scim/v2/Users/{}", ids[3]),
            Some(&t.plaintext),
            Some(&rename),
        );
        assert_eq!(r.status, 200, "{kind}: {}", r.text());
        let listed = gate.admin("GET", "/guards", None).json();
        assert!(listed.to_string().contains(&t.id), "{kind}: {listed}");
        let r = gate.admin("POST", &format!("/guards/{}/release", t.id), None);
        assert_eq!(r.status, 200, "{}", r.text());
        let r = send(&gate, t, &ids[2]);
        assert!(
            r.status < 300,
            "{kind} after release: {} {}",
            r.status,
            r.text()
        );
    }

    // Groups emptied: all members removed, or replaced by an empty list.
    let t = &tokens[4];
    let owner = create_user(&gate, t, "owner");
    let groups: Vec<String> = (0..3)
        .map(|i| create_group(&gate, t, &format!("g{i}"), &owner))
        .collect();
    let members = |id: &str| {
        up.dir
            .get_group(id)
            .and_then(|g| g["members"].as_array().map(Vec::len))
            .unwrap_or(0)
    };
    let remove_all = patch(r#"[{"op":"remove","path":"members"}]"#);
    let empty_list = patch(r#"[{"op":"replace","path":"members","value":[]}]"#);
    for (id, body) in groups[..2].iter().zip([&remove_all, &empty_list]) {
        let r = gate.call(
            "PATCH",
            &format!("/scim/v2/Groups/{id}"),
            Some(&t.plaintext),
            Some(body),
        );
        assert!(r.status < 300, "{} {}", r.status, r.text());
        assert_eq!(members(id), 0);
    }
    let r = gate.call(
        "PATCH",
        &format!("/scim/v2/Groups/{}", groups[2]),
        Some(&t.plaintext),
        Some(&remove_all),
    );
    assert_scim_error(&r, 503, None);
    assert_eq!(members(&groups[2]), 1, "the third group was emptied");

    // Inside Bulk: three deletes in one request are three changes.
    let t = &tokens[5];
    let ids: Vec<String> = (0..3)
        .map(|i| create_user(&gate, t, &format!("b{i}")))
        .collect();
    let ops: Vec<String> = ids
        .iter()
        .map(|id| format!(r#"{{"method":"DELETE","path":"/Users/{id}"}}"#))
        .collect();
    let bulk = format!(
        r#"{{"schemas":["{BULK}"],"Operations":[{}]}}"#,
        ops.join(",")
    );
    let r = gate.call("POST", "/scim/v2/Bulk", Some(&t.plaintext), Some(&bulk));
    assert_scim_error(&r, 503, None);
    assert!(ids.iter().all(|id| up.dir.get_user(id).is_some()));

    // The audit trail has both events; the CLI lists and releases.
    let audit = std::fs::read_to_string(gate.path("audit.jsonl")).expect("audit");
    assert!(audit.contains("\"event\":\"guard.tripped\""), "{audit}");
    assert!(audit.contains("\"event\":\"guard.released\""), "{audit}");
    let socket = gate.admin_socket();
    let cli = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .arg("--socket")
            .arg(&socket)
            .output()
            .expect("cli")
    };
    let list = cli(&["guard", "list"]);
    assert!(
        String::from_utf8_lossy(&list.stdout).contains(&t.id),
        "{list:?}"
    );
    assert!(cli(&["guard", "release", &t.id]).status.success());
    assert_eq!(
        cli(&["guard", "release", &t.id]).status.code(),
        Some(1),
        "nothing left"
    );
    assert!(gate.metric("scim_gate_limited_total{reason=\"destructive\"}") >= 6.0);
}

#[test]
fn networks_are_checked_and_forwarded_for_is_believed_only_from_trusted_proxies() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let t = TestToken::new("tok_net");
    let server = |allowed: &[&str], trusted: &[&str]| RawServer {
        allowed_networks: Some(allowed.iter().map(|s| s.to_string()).collect()),
        trusted_proxies: Some(trusted.iter().map(|s| s.to_string()).collect()),
        threads: Some(2),
        ..RawServer::default()
    };
    let get = |gate: &GateProc, xff: Option<&str>| {
        let mut lines: Vec<Vec<u8>> =
            vec![format!("Authorization: Bearer {}", t.plaintext).into_bytes()];
        if let Some(x) = xff {
            lines.push(format!("X-Forwarded-For: {x}").into_bytes());
        }
        let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        gate.raw_request("GET", "/scim/v2/Users", &refs)
    };
    // Outside the allowed networks: 403 before authentication, even without a token.
    let gate = start(&up, &[&t], |o| {
        o.config.server = Some(server(&["10.0.0.0/8"], &[]))
    });
    let r = get(&gate, None);
    assert_scim_error(&r, 403, None);
    assert_eq!(gate.call("GET", "/scim/v2/Users", None, None).status, 403);
    // A spoofed X-Forwarded-For from an untrusted peer changes nothing.
    assert_eq!(get(&gate, Some("10.1.2.3")).status, 403);
    drop(gate);
    let gate = start(&up, &[&t], |o| {
        o.config.server = Some(server(&["127.0.0.0/8"], &[]))
    });
    assert_eq!(get(&gate, None).status, 200);
    drop(gate);
    // Behind a trusted proxy (the test client is 127.0.0.1): the rightmost untrusted hop.
    let gate = start(&up, &[&t], |o| {
        o.config.server = Some(server(&["192.0.2.0/24"], &["127.0.0.1/32"]))
    });
    assert_eq!(get(&gate, Some("192.0.2.5")).status, 200);
    assert_eq!(get(&gate, Some("192.0.2.5, 203.0.113.1")).status, 403);
    assert_eq!(get(&gate, Some("203.0.113.1, 192.0.2.5")).status, 200);
    assert_eq!(
        get(&gate, None).status,
        403,
        "the proxy itself is not allowed"
    );
    assert!(gate.metric("scim_gate_limited_total{reason=\"network\"}") >= 2.0);
}

#[test]
fn a_token_is_used_only_from_its_networks() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let mut far = TestToken::new("tok_far");
    far.networks = vec!["10.0.0.0/8".into()];
    let mut near = TestToken::new("tok_near");
    near.networks = vec!["127.0.0.1/32".into(), "::1/128".into()];
    let gate = start(&up, &[&far, &near], |_| {});
    let r = gate.call("GET", "/scim/v2/Users", Some(&far.plaintext), None);
    assert_scim_error(&r, 403, None);
    assert!(r.text().contains("token's networks"), "{}", r.text());
    assert_eq!(
        gate.call("GET", "/scim/v2/Users", Some(&near.plaintext), None)
            .status,
        200
    );
    // Created with networks over the admin socket and the CLI.
    let r = gate.admin(
        "POST",
        "/tokens",
        Some(r#"{"tenant":"beta","idp":"okta","networks":["10.0.0.0/8"]}"#),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["networks"][0], "10.0.0.0/8");
    let token = r.json()["token"].as_str().expect("token").to_string();
    assert_eq!(
        gate.call("GET", "/scim/v2/Users", Some(&token), None)
            .status,
        403
    );
    let bad = gate.admin(
        "POST",
        "/tokens",
        Some(r#"{"tenant":"beta","idp":"entra","networks":["10.1.2.3/8"]}"#),
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
    let out = Command::new(BIN)
        .args([
            "token",
            "create",
            "--tenant",
            "gamma",
            "--idp",
            "okta",
            "--network",
            "127.0.0.0/8",
            "--socket",
        ])
        .arg(gate.admin_socket())
        .output()
        .expect("cli");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let token = stdout
        .lines()
        .next()
        .expect("token line")
        .trim()
        .to_string();
    assert!(stdout.contains("networks: 127.0.0.0/8"), "{stdout}");
    assert_eq!(
        gate.call("GET", "/scim/v2/Users", Some(&token), None)
            .status,
        200
    );
}

#[test]
fn okta_schemeless_authorization_is_accepted_unless_strict() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let t = TestToken::new("tok_okta");
    for (dialect, expected) in [
        (DialectName::Normalize, 200),
        (DialectName::Tolerate, 200),
        (DialectName::Strict, 401),
    ] {
        let gate = start(&up, &[&t], |o| {
            o.config.policy = Some(RawPolicy {
                dialect: Some(dialect),
                ..RawPolicy::default()
            })
        });
        let header = format!("Authorization: {}", t.plaintext);
        let r = gate.raw_request("GET", "/scim/v2/Users", &[header.as_bytes()]);
        assert_eq!(r.status, expected, "{dialect:?}: {}", r.text());
        // Not any schemeless value: a wrong one is still 401.
        let r = gate.raw_request(
            "GET",
            "/scim/v2/Users",
            &[b"Authorization: not-a-gate-token"],
        );
        assert_eq!(r.status, 401, "{dialect:?}");
    }
}

#[test]
fn bad_guard_values_fail_at_start_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: Vec<(&str, RawConfig)> = vec![
        (
            "limits.rate",
            RawConfig {
                limits: Some(limits(0.0, 10)),
                ..base()
            },
        ),
        (
            "limits.per_idp",
            RawConfig {
                limits: Some(RawLimits {
                    per_idp: Some([("okla".to_string(), RawRate::default())].into()),
                    ..RawLimits::default()
                }),
                ..base()
            },
        ),
        (
            "server.allowed_networks",
            RawConfig {
                server: Some(RawServer {
                    allowed_networks: Some(vec!["10.0.0.0/33".into()]),
                    ..RawServer::default()
                }),
                ..base()
            },
        ),
        (
            "guards.destructive.window",
            RawConfig {
                guards: Some(RawGuards {
                    destructive: Some(RawDestructive {
                        max: Some(5),
                        window: Some(Duration::ZERO),
                    }),
                }),
                ..base()
            },
        ),
    ];
    for (key, cfg) in cases {
        let path = dir.path().join("gate.yaml");
        std::fs::write(&path, serde_yaml::to_string(&cfg).expect("yaml")).expect("write");
        let out = Command::new(BIN)
            .args(["check-config", "-c"])
            .arg(&path)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{key}: accepted");
        assert!(err.contains(key), "{key}: {err}");
    }
}

fn base() -> RawConfig {
    RawConfig {
        upstream: RawUpstream {
            url: "http://127.0.0.1:9/v2".into(),
            ..RawUpstream::default()
        },
        ..RawConfig::default()
    }
}
