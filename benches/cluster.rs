//! Cluster mode: how long an admin change takes to be in force on every replica.
//!
//! Starts a real etcd (one member, then three), the demo directory and three real gate
//! replicas (the binary of this build), creates a token and refreshes it through replica 1's
//! socket. For each refresh it records the gate's own figure — commit → every replica
//! acknowledged, from the `in force on … after its commit` log line — and the admin call's round
//! trip, and checks the old secret is refused on all three replicas (stale accepts must be 0).
//!
//!   cargo bench --bench cluster            300 refreshes per setup, prints a table
//!   cargo test --bench cluster             (what the test command runs) 5 refreshes, checks only
//!
//! Results: BENCHMARKS.md#cluster-mode. Data on tmpfs, loopback, as in docs/cluster.md.

#[allow(dead_code, unused_imports)]
#[path = "../tests/it/harness/mod.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::etcd::Etcd;
use harness::{eventually, GateOpts, GateProc};
use scim_demo::DemoServer;
use scim_gate::config::raw::{BackendName, RawEtcd};

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rotations = if full { 300 } else { 5 };
    println!("| etcd | refreshes | commit → all acked p50 | p99 | max | admin call p50 | p99 | max | stale accepts |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for members in [1, 3] {
        run(members, rotations);
    }
}

fn run(members: usize, rotations: usize) {
    let etcd = Etcd::cluster(members);
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let prefix = format!("/scim-gate/bench-{:08x}", rand::random::<u32>());
    let replicas: Vec<GateProc> = (0..3)
        .map(|_| {
            let mut o = GateOpts::new(&up.base_url());
            let tokens = o.config.tokens.get_or_insert_with(Default::default);
            tokens.backend = Some(BackendName::Etcd);
            tokens.file = None;
            o.config.etcd = Some(RawEtcd {
                endpoints: Some(etcd.endpoints()),
                prefix: Some(prefix.clone()),
                ..RawEtcd::default()
            });
            GateProc::start_in(tempfile::tempdir().expect("tempdir"), o)
        })
        .collect();
    for r in &replicas {
        assert!(
            eventually(Duration::from_secs(20), || r
                .call("GET", "/scim/v2/Users", Some("x"), None)
                .status
                == 401),
            "replica never served: {}",
            r.log()
        );
    }
    let created = replicas[0].admin("POST", "/tokens", Some(r#"{"tenant":"b","idp":"okta"}"#));
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].as_str().expect("id").to_string();
    let mut secret = created.json()["token"].as_str().expect("token").to_string();
    let mut calls = Vec::with_capacity(rotations);
    let mut stale = 0;
    for _ in 0..rotations {
        let t0 = Instant::now();
        let r = replicas[0].admin("POST", &format!("/tokens/{id}/refresh"), None);
        calls.push(t0.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["confirmed"].as_array().map(Vec::len), Some(3));
        let new = r.json()["token"].as_str().expect("token").to_string();
        for g in &replicas {
            if g.call("GET", "/scim/v2/Users", Some(&secret), None).status == 200 {
                stale += 1;
            }
        }
        secret = new;
    }
    // The gate's own measure, one line per change (the creation first); the log is written
    // in batches, so wait for the last line.
    let figures = || -> Vec<f64> {
        replicas[0]
            .log()
            .lines()
            .filter(|l| l.contains("after its commit"))
            .filter_map(|l| l.split(", 0 fenced, ").nth(1))
            .filter_map(|t| t.trim_end_matches(" ms after its commit").parse().ok())
            .collect()
    };
    eventually(Duration::from_secs(5), || figures().len() > rotations);
    let mut acked = figures();
    acked.remove(0);
    assert_eq!(acked.len(), rotations, "one figure per refresh");
    assert_eq!(
        stale, 0,
        "an old secret was accepted after its refresh returned"
    );
    let (a, c) = (percentiles(&mut acked), percentiles(&mut calls));
    println!(
        "| {members} member{} | {rotations} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {stale} |",
        if members == 1 { "" } else { "s" },
        a.0, a.1, a.2, c.0, c.1, c.2
    );
}

/// p50, p99, max.
fn percentiles(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99), at(1.0))
}
