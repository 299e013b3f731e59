//! Cluster mode (docs/cluster.md): real etcd, several real gate processes. Each test runs its
//! own etcd (under a second to start) on its own ports and key prefix.

use std::process::Command;
use std::time::{Duration, Instant};

use scim_demo::DemoServer;
use scim_gate::config::raw::{BackendName, RawEtcd};

use crate::harness::etcd::Etcd;
use crate::harness::proxy::Partition;
use crate::harness::{assert_scim_error, eventually, send, GateOpts, GateProc, Response, BIN};

/// The lease and ack timeout of the test replicas in the fencing tests: short, so they stay
/// quick.
const LEASE_TTL: Duration = Duration::from_secs(2);
const ACK_TIMEOUT: Duration = Duration::from_millis(1000);
/// For tests where no replica should be fenced: generous, so a loaded machine's late
/// acknowledgement is not mistaken for a silent replica.
const PATIENT_ACK: Duration = Duration::from_secs(5);
/// Scheduling slack on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(1500);
/// A fence marker's lease outlives the replica's by a second (docs/cluster.md#protocol).
const MARKER_EXTRA: Duration = Duration::from_secs(1);

/// The cluster tests run one at a time: each runs an etcd and up to three gates, and two of
/// them at once on two cores turn timing margins into flakes.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// An etcd, a directory, and replicas sharing one prefix.
struct Cluster {
    etcd: Etcd,
    _up: DemoServer,
    up_url: String,
    prefix: String,
    lease_ttl: Duration,
    ack_timeout: Duration,
    replicas: Vec<GateProc>,
}

impl Cluster {
    /// `n` replicas on a single etcd, with the fencing tests' short timings.
    fn start(n: usize) -> Cluster {
        Cluster::build(Etcd::single(), n, LEASE_TTL, ACK_TIMEOUT)
    }

    /// `n` replicas that should never need fencing.
    fn patient(n: usize) -> Cluster {
        Cluster::build(Etcd::single(), n, LEASE_TTL, PATIENT_ACK)
    }

    fn build(etcd: Etcd, n: usize, lease_ttl: Duration, ack_timeout: Duration) -> Cluster {
        let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
        let prefix = format!("/scim-gate/test-{:08x}", rand::random::<u32>());
        let mut c = Cluster {
            etcd,
            up_url: up.base_url(),
            _up: up,
            prefix,
            lease_ttl,
            ack_timeout,
            replicas: Vec::new(),
        };
        for _ in 0..n {
            let r = c.spawn_replica(c.etcd.endpoints());
            c.replicas.push(r);
        }
        for r in &c.replicas {
            wait_serving(r);
        }
        c
    }

    fn opts(&self, endpoints: Vec<String>) -> GateOpts {
        let mut o = GateOpts::new(&self.up_url);
        let tokens = o.config.tokens.get_or_insert_with(Default::default);
        tokens.backend = Some(BackendName::Etcd);
        tokens.file = None;
        o.config.etcd = Some(RawEtcd {
            endpoints: Some(endpoints),
            prefix: Some(self.prefix.clone()),
            lease_ttl: Some(self.lease_ttl),
            ack_timeout: Some(self.ack_timeout),
            ..RawEtcd::default()
        });
        o
    }

    /// A replica talking to etcd through `endpoints` (a [`Partition`] for the partition tests).
    fn spawn_replica(&self, endpoints: Vec<String>) -> GateProc {
        let dir = tempfile::tempdir().expect("tempdir");
        GateProc::start_in(dir, self.opts(endpoints))
    }

    /// Adds a replica that reaches etcd only through a [`Partition`] the test can freeze.
    fn add_partitioned_replica(&mut self) -> Partition {
        let addr = self.etcd.endpoints()[0]
            .trim_start_matches("http://")
            .parse()
            .expect("addr");
        let cut = Partition::start(addr);
        let r = self.spawn_replica(vec![cut.url()]);
        wait_serving(&r);
        self.replicas.push(r);
        cut
    }

    /// Creates a token on replica `on`; (id, secret).
    fn create(&self, on: usize) -> (String, String) {
        let r =
            self.replicas[on].admin("POST", "/tokens", Some(r#"{"tenant":"acme","idp":"okta"}"#));
        assert_eq!(r.status, 201, "{}", r.text());
        let v = r.json();
        (
            v["id"].as_str().expect("id").to_string(),
            v["token"].as_str().expect("token").to_string(),
        )
    }
}

/// `/readyz` on the metrics listener.
fn readyz(g: &GateProc) -> u16 {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], g.metrics_port));
    send(
        addr,
        b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .status
}

fn wait_serving(g: &GateProc) {
    assert!(
        eventually(Duration::from_secs(15), || readyz(g) == 200),
        "replica never served: {}",
        g.log()
    );
}

fn status(g: &GateProc, token: &str) -> u16 {
    g.call("GET", "/scim/v2/Users", Some(token), None).status
}

fn ids(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The replica id each gate registered with (from `GET /cluster`).
fn replica_ids(c: &Cluster) -> Vec<String> {
    let r = c.replicas[0].admin("GET", "/cluster", None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["replicas"]
        .as_array()
        .expect("replicas")
        .iter()
        .map(|x| x["id"].as_str().expect("id").to_string())
        .collect()
}

#[test]
fn every_change_on_one_replica_is_in_force_on_all_before_the_call_returns() {
    let _serial = serial();
    let c = Cluster::patient(3);
    let (id, mut secret) = c.create(0);
    for g in &c.replicas {
        assert_eq!(status(g, &secret), 200, "created: {}", g.log());
    }
    for i in 0..200 {
        let r = c.replicas[0].admin("POST", &format!("/tokens/{id}/refresh"), None);
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(ids(&v["confirmed"]).len(), 3, "refresh {i}: {v}");
        assert!(ids(&v["fenced"]).is_empty(), "refresh {i}: {v}");
        let new = v["token"].as_str().expect("token").to_string();
        for (n, g) in c.replicas.iter().enumerate() {
            // Never the old secret; the new one at once — or, if this replica is
            // resynchronising on a loaded machine (503), as soon as it serves again.
            let old = status(g, &secret);
            assert!(
                old == 401 || old == 503,
                "refresh {i}: old secret on replica {n}: {old}"
            );
            assert!(
                status(g, &new) == 200
                    || eventually(Duration::from_secs(5), || status(g, &new) == 200),
                "refresh {i}: new secret on replica {n}"
            );
        }
        secret = new;
    }
    let r = c.replicas[1].admin("POST", &format!("/tokens/{id}/deactivate"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    for g in &c.replicas {
        assert_eq!(status(g, &secret), 401, "deactivated");
    }
    let r = c.replicas[2].admin("POST", &format!("/tokens/{id}/activate"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    for g in &c.replicas {
        assert_eq!(status(g, &secret), 200, "activated");
    }
    let r = c.replicas[2].admin("DELETE", &format!("/tokens/{id}"), None);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        r.header("scim-gate-confirmed")
            .map(|h| h.split(", ").count()),
        Some(3)
    );
    for g in &c.replicas {
        assert_eq!(status(g, &secret), 401, "deleted");
    }
    // No plaintext ever reached etcd.
    let dump = c.etcd.dump(&c.prefix);
    assert!(
        dump.contains("/tokens/") || dump.contains("/audit/"),
        "{dump}"
    );
    assert!(!dump.contains(&secret), "a secret is in etcd");
    assert!(
        !dump.contains("scimgate_"),
        "a token-shaped value is in etcd:\n{dump}"
    );
}

#[test]
fn a_paused_replica_is_fenced_and_its_first_answer_after_resuming_is_a_refusal() {
    let _serial = serial();
    let c = Cluster::start(3);
    let (id, old) = c.create(0);
    let paused_id = {
        let all = replica_ids(&c);
        let r = c.replicas[2].admin("GET", "/cluster", None);
        assert_eq!(r.status, 200);
        // Which id is replica 2's own: the one whose host-pid matches its pid.
        let pid = c.replicas[2].pid().to_string();
        all.into_iter()
            .find(|i| i.contains(&format!("-{pid}-")))
            .expect("replica 2 registered")
    };
    signal(&c.replicas[2], "STOP");
    let t0 = Instant::now();
    let r = c.replicas[0].admin("POST", &format!("/tokens/{id}/refresh"), None);
    let took = t0.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(ids(&v["fenced"]), vec![paused_id.clone()], "{v}");
    assert_eq!(ids(&v["confirmed"]).len(), 2, "{v}");
    assert!(
        took <= ACK_TIMEOUT + LEASE_TTL + MARKER_EXTRA + SLACK,
        "the call took {took:?}"
    );
    let new = v["token"].as_str().expect("token").to_string();
    signal(&c.replicas[2], "CONT");
    // Its first answer to the old secret is not a success (503 while fenced, 401 once
    // resynchronised).
    let first = status(&c.replicas[2], &old);
    assert!(
        first == 503 || first == 401,
        "first answer after SIGCONT: {first}"
    );
    for _ in 0..20 {
        assert_ne!(status(&c.replicas[2], &old), 200);
    }
    // It resynchronises and serves the new state.
    assert!(
        eventually(Duration::from_secs(10), || status(&c.replicas[2], &new)
            == 200),
        "{}",
        c.replicas[2].log()
    );
    assert_eq!(status(&c.replicas[2], &old), 401);
    let took_ms = took.as_millis();
    eprintln!("fenced-replica call: {took_ms} ms");
}

#[test]
fn a_killed_replica_is_fenced_and_the_others_keep_serving() {
    let _serial = serial();
    let mut c = Cluster::start(3);
    let (id, old) = c.create(0);
    c.replicas[1].kill();
    let t0 = Instant::now();
    let r = c.replicas[0].admin("POST", &format!("/tokens/{id}/refresh"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(t0.elapsed() <= ACK_TIMEOUT + LEASE_TTL + MARKER_EXTRA + SLACK);
    let v = r.json();
    assert_eq!(ids(&v["fenced"]).len(), 1, "{v}");
    let new = v["token"].as_str().expect("token");
    for n in [0, 2] {
        assert_eq!(status(&c.replicas[n], &old), 401);
        assert_eq!(status(&c.replicas[n], new), 200);
    }
    // The dead replica is gone from the membership: the next change does not wait for its
    // acknowledgement again, only (if it comes at once) for the rest of its fence marker's life.
    let t0 = Instant::now();
    let r = c.replicas[2].admin("POST", &format!("/tokens/{id}/refresh"), None);
    assert_eq!(r.status, 200);
    assert!(
        t0.elapsed() < ACK_TIMEOUT + MARKER_EXTRA,
        "waited for a dead replica again: {:?}",
        t0.elapsed()
    );
    assert_eq!(ids(&r.json()["confirmed"]).len(), 2);
    assert!(ids(&r.json()["fenced"]).is_empty());
}

#[test]
fn with_etcd_down_every_replica_refuses_and_all_recover_when_it_returns() {
    let _serial = serial();
    let mut c = Cluster::start(2);
    let (id, secret) = c.create(0);
    c.etcd.kill(0);
    let t0 = Instant::now();
    for g in &c.replicas {
        assert!(
            eventually(LEASE_TTL + SLACK, || status(g, &secret) == 503),
            "still serving {:?} after etcd stopped",
            t0.elapsed()
        );
    }
    let r = c.replicas[0].call("GET", "/scim/v2/Users", Some(&secret), None);
    assert_scim_error(&r, 503, None);
    assert!(r.header("retry-after").is_some());
    assert_eq!(readyz(&c.replicas[0]), 503);
    // The admin side says why, and changes nothing.
    let r = c.replicas[1].admin("POST", &format!("/tokens/{id}/refresh"), None);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.text().contains("etcd") || r.text().contains("following"),
        "{}",
        r.text()
    );
    // etcd returns: service recovers, with the same secret.
    c.etcd.restart(0);
    c.etcd.wait_ready();
    for g in &c.replicas {
        assert!(
            eventually(Duration::from_secs(15), || status(g, &secret) == 200),
            "{}",
            g.log()
        );
    }
    let r = c.replicas[1].admin("POST", &format!("/tokens/{id}/refresh"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    for g in &c.replicas {
        assert_eq!(status(g, &secret), 401);
    }
}

#[test]
fn max_per_idp_holds_across_replicas_under_concurrent_creates() {
    let _serial = serial();
    let c = Cluster::patient(3);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..9)
            .map(|i| {
                let g = &c.replicas[i % 3];
                s.spawn(move || {
                    g.admin(
                        "POST",
                        "/tokens",
                        Some(r#"{"tenant":"race","idp":"entra"}"#),
                    )
                    .status
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        7,
        "{statuses:?}"
    );
    let listed = c.replicas[2].admin("GET", "/tokens", None).json();
    let race = listed["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .filter(|t| t["tenant"] == "race")
        .count();
    assert_eq!(race, 2);
}

#[test]
fn audit_and_cluster_status_on_any_replica_show_the_whole_cluster() {
    let _serial = serial();
    let c = Cluster::patient(3);
    let (id, _) = c.create(0);
    let r = c.replicas[1].admin("POST", &format!("/tokens/{id}/refresh"), None);
    assert_eq!(r.status, 200);
    let revision = r.json()["revision"].as_u64().expect("revision");
    let audit = c.replicas[2].admin("GET", "/audit", None).json();
    let events: Vec<&str> = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["token_id"] == id.as_str())
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert_eq!(events, ["token.created", "token.refreshed"]);
    let status = c.replicas[2].admin("GET", "/cluster", None).json();
    assert!(status["revision"].as_u64().expect("revision") >= revision);
    let replicas = status["replicas"].as_array().expect("replicas");
    assert_eq!(replicas.len(), 3);
    for r in replicas {
        assert_eq!(r["serving"], true);
        assert!(r["applied_revision"].as_u64().expect("applied") >= revision);
        assert!(r["host"].is_string() && r["started_at"].is_string());
    }
    // The CLI shows the same.
    let out = Command::new(BIN)
        .args(["cluster", "status", "--json", "-c"])
        .arg(&c.replicas[0].config)
        .output()
        .expect("cli");
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["replicas"].as_array().map(Vec::len), Some(3));
    let out = Command::new(BIN)
        .args(["cluster", "status", "-c"])
        .arg(&c.replicas[0].config)
        .output()
        .expect("cli");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("serving") && text.lines().count() >= 4,
        "{text}"
    );
}

#[test]
fn tokens_import_copies_a_token_file_into_etcd_and_refuses_existing_ids() {
    let _serial = serial();
    let c = Cluster::patient(2);
    let a = crate::harness::TestToken::new("tok_imported");
    let file = c.replicas[0].path("import.yaml");
    std::fs::write(&file, crate::harness::token_file(&[&a])).expect("file");
    let import = || {
        Command::new(BIN)
            .args(["tokens", "import", "--from"])
            .arg(&file)
            .arg("-c")
            .arg(&c.replicas[0].config)
            .output()
            .expect("cli")
    };
    let out = import();
    assert!(out.status.success(), "{out:?}");
    for g in &c.replicas {
        assert!(
            eventually(Duration::from_secs(5), || status(g, &a.plaintext) == 200),
            "the imported token works on every replica"
        );
    }
    let out = import();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("tok_imported"));
    let listed = c.replicas[1].admin("GET", "/tokens", None).json();
    assert_eq!(listed["tokens"].as_array().map(Vec::len), Some(1));
}

#[test]
fn a_watch_cancelled_by_a_compaction_makes_the_replica_resynchronise() {
    let _serial = serial();
    // A long lease: the partition below must outlast nothing but the watch's buffers.
    let mut c = Cluster::build(Etcd::single(), 1, Duration::from_secs(10), PATIENT_ACK);
    let cut = c.add_partitioned_replica();
    let (_, secret) = c.create(0);
    // Cut replica 1 off; write far more into P/tokens/ than its watch's buffers hold (etcd moves
    // the watcher to its unsynced group), then compact past what it has seen.
    cut.freeze();
    let prefix = c.prefix.clone();
    let flooded = Instant::now();
    c.etcd.with_client(async |client| {
        use futures_util::StreamExt;
        let domains: Vec<String> = (0..200).map(|i| format!("d{i}.example.com")).collect();
        let puts = (0..1000).map(|i| {
            let mut client = client.clone();
            let record = serde_json::json!({
                "id": format!("tok_flood{i:04}"), "tenant": "flood", "idp": "other",
                "status": "inactive", "sha256": format!("{:064x}", i),
                "domains": domains, "networks": [],
                "created_at": "2026-12-01T00:00:00Z", "refreshed_at": null, "expires_at": null,
            });
            let key = format!("{prefix}/tokens/tok_flood{i:04}");
            async move {
                client
                    .put(key, record.to_string(), None)
                    .await
                    .expect("put")
            }
        });
        futures_util::stream::iter(puts)
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await;
    });
    eprintln!("flood written in {:?}", flooded.elapsed());
    c.etcd.compact();
    std::thread::sleep(Duration::from_millis(200));
    cut.thaw();
    let g = &c.replicas[1];
    assert!(
        g.log_shows("compacted"),
        "the replica's watch was not cancelled by the compaction: {}",
        g.log()
    );
    // It resynchronised from a fresh snapshot and serves the current state.
    assert!(
        eventually(Duration::from_secs(10), || status(g, &secret) == 200),
        "{}",
        g.log()
    );
    let listed = g.admin("GET", "/tokens", None).json();
    assert_eq!(listed["tokens"].as_array().map(Vec::len), Some(1001));
}

#[test]
fn concurrent_admin_calls_wait_for_a_replica_another_call_fenced() {
    let _serial = serial();
    let mut c = Cluster::build(Etcd::single(), 1, Duration::from_secs(3), ACK_TIMEOUT);
    let cut = c.add_partitioned_replica();
    let (one, _) = c.create(0);
    let (two, secret_two) = c.create(0);
    assert!(eventually(Duration::from_secs(5), || status(
        &c.replicas[1],
        &secret_two
    ) == 200));
    // Replica 1 loses etcd but not its clients. Call A (a refresh) fences it after
    // ack_timeout; call B (a deactivation) starts while A waits for the fence to hold.
    cut.freeze();
    std::thread::scope(|s| {
        let a = s.spawn(|| c.replicas[0].admin("POST", &format!("/tokens/{one}/refresh"), None));
        std::thread::sleep(ACK_TIMEOUT + Duration::from_millis(300));
        let b = c.replicas[0].admin("POST", &format!("/tokens/{two}/deactivate"), None);
        assert_eq!(b.status, 200, "{}", b.text());
        // B has returned: the deactivated token must be refused everywhere from now on,
        // including by the replica cut off from etcd.
        let until = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < until {
            assert_ne!(
                status(&c.replicas[1], &secret_two),
                200,
                "the cut-off replica accepted a token deactivated before the request"
            );
        }
        assert_eq!(a.join().expect("call A").status, 200);
    });
    cut.thaw();
    assert!(
        eventually(Duration::from_secs(15), || status(
            &c.replicas[1],
            &secret_two
        ) == 401),
        "{}",
        c.replicas[1].log()
    );
}

#[test]
fn an_etcd_wiped_and_started_afresh_never_leaves_an_old_secret_in_force() {
    let _serial = serial();
    let mut c = Cluster::start(2);
    let (id, old) = c.create(0);
    // Move the revision well past where a fresh store starts.
    for _ in 0..20 {
        let r = c.replicas[1].admin("POST", &format!("/tokens/{id}/deactivate"), None);
        assert_eq!(r.status, 200);
        let r = c.replicas[1].admin("POST", &format!("/tokens/{id}/activate"), None);
        assert_eq!(r.status, 200);
    }
    // A new, empty store whose revisions start again from 1, below what every replica has
    // applied.
    c.etcd.wipe(0);
    for g in &c.replicas {
        assert!(
            eventually(Duration::from_secs(15), || status(g, &old) == 401),
            "the wiped store's token is still accepted: {}",
            g.log()
        );
    }
    let (_, fresh) = c.create(1);
    for g in &c.replicas {
        assert!(
            eventually(Duration::from_secs(5), || status(g, &fresh) == 200),
            "{}",
            g.log()
        );
    }
}

#[test]
fn health_and_readiness_answer_in_file_mode_too() {
    let _serial = serial();
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let g = GateProc::start(GateOpts::new(&up.base_url()), &[]);
    assert_eq!(readyz(&g), 200);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], g.metrics_port));
    let r: Response = send(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(g.metric("scim_gate_cluster_serving"), 1.0);
    let r = g.admin("GET", "/cluster", None);
    assert_eq!(r.status, 404, "{}", r.text());
}

fn signal(g: &GateProc, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(g.pid().to_string())
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{sig}");
}

#[test]
fn a_three_member_etcd_losing_its_leader_mid_rotation_accepts_no_stale_secret() {
    let _serial = serial();
    let mut c = Cluster::build(Etcd::cluster(3), 3, LEASE_TTL, ACK_TIMEOUT);
    let (id, mut current) = c.create(0);
    let mut stale_accepts = 0;
    let mut failed_calls = 0;
    let mut killed = None;
    for i in 0..60 {
        if i == 20 {
            let leader = c.etcd.leader().expect("a leader");
            c.etcd.kill(leader);
            killed = Some(leader);
        }
        let r = c.replicas[i % 3].admin("POST", &format!("/tokens/{id}/refresh"), None);
        if r.status != 200 {
            // Refused during the election (nothing changed) or committed but not confirmed
            // (the new secret is lost with the answer): either way the old one must die.
            assert!(matches!(r.status, 503 | 504), "{}", r.text());
            // Committed but not confirmed (the new secret is lost with the answer): the old
            // one must still die within the replicas' lease deadlines.
            if r.status == 504 && !r.text().contains("revision 0,") {
                for g in &c.replicas {
                    assert!(
                        eventually(LEASE_TTL + MARKER_EXTRA + SLACK, || status(g, &current)
                            != 200),
                        "a secret whose refresh was committed stayed in force"
                    );
                }
            }
            failed_calls += 1;
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let new = r.json()["token"].as_str().expect("token").to_string();
        for g in &c.replicas {
            if status(g, &current) == 200 {
                stale_accepts += 1;
            }
        }
        current = new;
    }
    assert_eq!(stale_accepts, 0);
    // The service recovers: a refresh succeeds and its secret works everywhere.
    let mut last = None;
    assert!(
        eventually(Duration::from_secs(15), || {
            let r = c.replicas[0].admin("POST", &format!("/tokens/{id}/refresh"), None);
            last = r.json()["token"].as_str().map(String::from);
            r.status == 200
        }),
        "admin calls did not recover"
    );
    let current = last.expect("a secret");
    for g in &c.replicas {
        assert!(
            eventually(Duration::from_secs(15), || status(g, &current) == 200),
            "{}",
            g.log()
        );
    }
    eprintln!("leader {killed:?} killed: {failed_calls} admin calls refused during the election, 0 stale accepts");
}

/// One request of the recorded history: which secret, when it was sent, what came back.
struct Sent {
    secret: usize,
    at: Instant,
    status: u16,
}

#[test]
fn replicas_restarted_while_rotating_never_accept_a_secret_revoked_before_the_request() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let _serial = serial();
    let mut c = Cluster::start(3);
    let (id, first) = c.create(0);
    // secrets[i] was revoked at revoked[i] (the moment the refresh that replaced it returned).
    let secrets = Arc::new(Mutex::new(vec![first]));
    let revoked: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    let ports: Vec<u16> = c.replicas.iter().map(|g| g.port).collect();

    let clients: Vec<_> = (0..2)
        .map(|k| {
            let (secrets, done, ports) = (secrets.clone(), done.clone(), ports.clone());
            std::thread::spawn(move || {
                let mut history = Vec::new();
                let mut n = k;
                while !done.load(Ordering::Relaxed) {
                    let (i, secret) = {
                        let s = secrets.lock().expect("lock");
                        // Mostly the newest two secrets: the interesting ones.
                        let i = s.len().saturating_sub(1 + n % 3);
                        (i, s[i].clone())
                    };
                    let port = ports[n % ports.len()];
                    n += 1;
                    let at = Instant::now();
                    let status = try_status(port, &secret);
                    history.push(Sent {
                        secret: i,
                        at,
                        status,
                    });
                }
                history
            })
        })
        .collect();

    let t0 = Instant::now();
    let mut restarts = 0;
    let mut refreshes = 0;
    while t0.elapsed() < Duration::from_secs(15) {
        // Restart replica 1 or 2 (SIGKILL, or SIGTERM and a clean leave), then rotate.
        let victim = 1 + restarts % 2;
        if restarts % 2 == 0 {
            c.replicas[victim].kill();
        } else {
            signal(&c.replicas[victim], "TERM");
            if let Some(child) = c.replicas[victim].child.as_mut() {
                let _ = child.wait();
            }
        }
        c.replicas[victim].restart(&[]);
        restarts += 1;
        for _ in 0..3 {
            let r = c.replicas[0].admin("POST", &format!("/tokens/{id}/refresh"), None);
            assert_eq!(r.status, 200, "{}", r.text());
            let returned = Instant::now();
            let new = r.json()["token"].as_str().expect("token").to_string();
            revoked.lock().expect("lock").push(returned);
            secrets.lock().expect("lock").push(new);
            refreshes += 1;
        }
    }
    done.store(true, Ordering::Relaxed);
    let history: Vec<Sent> = clients
        .into_iter()
        .flat_map(|h| h.join().expect("client"))
        .collect();
    let revoked = revoked.lock().expect("lock");
    let stale: Vec<&Sent> = history
        .iter()
        .filter(|s| s.status == 200)
        .filter(|s| revoked.get(s.secret).is_some_and(|r| s.at >= *r))
        .collect();
    let accepted = history.iter().filter(|s| s.status == 200).count();
    eprintln!(
        "{restarts} restarts, {refreshes} refreshes, {} requests ({accepted} accepted), {} stale accepts",
        history.len(),
        stale.len()
    );
    assert!(
        accepted > 0,
        "the history must hold accepted requests to mean anything"
    );
    assert!(
        stale.is_empty(),
        "{} requests were accepted with a secret revoked before they were sent",
        stale.len()
    );
}

/// The status of a GET with `token` on `port`; 0 when the replica is down.
fn try_status(port: u16, token: &str) -> u16 {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!(
        "GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).is_err() {
        return 0;
    }
    let mut head = [0u8; 12];
    match s.read_exact(&mut head) {
        Ok(()) => std::str::from_utf8(&head[9..12])
            .ok()
            .and_then(|x| x.parse().ok())
            .unwrap_or(0),
        Err(_) => 0,
    }
}
