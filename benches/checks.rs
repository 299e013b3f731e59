//! The cost of the SCIM checks (`docs/scim-checks.md`) per request, with the default policy under `normalize`:
//! a typical Entra PATCH and an Okta PUT (with its current resource) from tests/fixtures/idp,
//! a 1 MiB group PATCH (thousands of members, as large as `max_body_bytes` allows), and the
//! PATCH path parser on the example paths of RFC 7644 §3.5.2. Run: `cargo bench --bench checks`.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use scim_gate::scim::{parse_path, Policy, PolicySpec, Request, Resource, WriteMethod};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/idp");

fn fixture(name: &str) -> Value {
    let path = format!("{FIXTURES}/{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn policy() -> Policy {
    Policy::compile(&PolicySpec::default()).expect("default policy")
}

/// Phase one and phase two, as the gate runs them (the current resources already read).
fn check(
    p: &Policy,
    resource: Resource,
    method: WriteMethod,
    body: &[u8],
    current: &HashMap<(Resource, String), Value>,
) -> bool {
    let prepared = p
        .prepare(&Request {
            resource,
            method,
            id: Some("23a35c27-23d3-4c03-b4c5-6443c09e7173"),
            body,
            domains: &[],
        })
        .expect("passes phase one");
    prepared.finish(current).is_ok()
}

/// A group PATCH adding members, as Okta sends them, padded to exactly `size` bytes.
fn member_patch(size: usize) -> Vec<u8> {
    let head = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":["#;
    let end = "]}]}";
    let mut s = String::from(head);
    let mut i = 0usize;
    loop {
        let m = format!(
            "{}{{\"value\":\"{i:08x}-0000-4000-8000-{i:012x}\",\"display\":\"Member {i:05}\"}}",
            if i == 0 { "" } else { "," }
        );
        if s.len() + m.len() + end.len() > size {
            break;
        }
        s.push_str(&m);
        i += 1;
    }
    s.push_str(&" ".repeat(size - s.len() - end.len()));
    s.push_str(end);
    s.into_bytes()
}

fn bench_checks(c: &mut Criterion) {
    let p = policy();
    let none = HashMap::new();

    let entra = fixture("entra-update-user-multivalued.json")["body"].to_string();
    let mut g = c.benchmark_group("check");
    g.throughput(Throughput::Bytes(entra.len() as u64));
    g.bench_function("entra_patch", |b| {
        b.iter(|| {
            check(
                &p,
                Resource::Users,
                WriteMethod::Patch,
                black_box(entra.as_bytes()),
                &none,
            )
        })
    });

    let okta = fixture("okta-update-user-put.json");
    let okta_body = okta["body"].to_string();
    let mut current = HashMap::new();
    current.insert(
        (
            Resource::Users,
            "23a35c27-23d3-4c03-b4c5-6443c09e7173".to_string(),
        ),
        okta["current"].clone(),
    );
    g.throughput(Throughput::Bytes(okta_body.len() as u64));
    g.bench_function("okta_put", |b| {
        b.iter(|| {
            check(
                &p,
                Resource::Users,
                WriteMethod::Put,
                black_box(okta_body.as_bytes()),
                &current,
            )
        })
    });

    let big = member_patch(1024 * 1024);
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.sample_size(20);
    g.bench_function("group_patch_1mib", |b| {
        b.iter(|| {
            check(
                &p,
                Resource::Groups,
                WriteMethod::Patch,
                black_box(&big),
                &none,
            )
        })
    });
    g.finish();
}

/// The PATCH paths that appear in RFC 7644 §3.5.2 (and its filter examples).
const RFC_PATHS: &[&str] = &[
    "members",
    "name.familyName",
    "addresses[type eq \"work\"]",
    "members[value eq \"2819c223-7f76-453a-919d-413861904646\"]",
    "members[value eq \"2819c223-7f76-453a-919d-413861904646\"].displayName",
    "emails[type eq \"work\" and value ew \"example.com\"]",
    "addresses[type eq \"work\"].streetAddress",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    "emails[type eq \"work\" and value co \"@example.com\" or not (primary pr)]",
    "x509Certificates[value eq \"MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMx\"]",
];

/// The URNs the default policy knows.
const URNS: &[&str] = &[
    "urn:ietf:params:scim:schemas:core:2.0:User",
    "urn:ietf:params:scim:schemas:core:2.0:Group",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    "urn:ietf:params:scim:schemas:extension:ivanti:2.0:User",
];

fn bench_paths(c: &mut Criterion) {
    for p in RFC_PATHS {
        assert!(parse_path(p, URNS).is_ok(), "{p}");
    }
    let mut g = c.benchmark_group("path");
    g.throughput(criterion::Throughput::Elements(RFC_PATHS.len() as u64));
    g.bench_function("rfc7644_examples", |b| {
        b.iter(|| {
            for p in RFC_PATHS {
                black_box(parse_path(black_box(p), URNS).is_ok());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench_checks, bench_paths);
criterion_main!(benches);
