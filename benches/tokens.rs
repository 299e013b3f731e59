//! Token lookup cost with 10, 100 000 and 1 000 000 tokens loaded: the goal is a flat line
//! (within 1.2x), since every request pays it. Run: `cargo bench --bench tokens`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use scim_gate::tokens::{secret, Idp, Lookup, Status, TokenRecord, TokenStore};

/// `n` records over enough tenants that no (tenant, idp) holds more than two tokens.
fn store(n: usize) -> (TokenStore, Vec<String>) {
    let idps = [
        Idp::Entra,
        Idp::Okta,
        Idp::Google,
        Idp::Onelogin,
        Idp::Jumpcloud,
        Idp::Other,
    ];
    let now = chrono::Utc::now();
    let mut plain = Vec::with_capacity(n);
    let records = (0..n)
        .map(|i| {
            let token = format!("bench-token-{i:08}");
            let r = TokenRecord {
                id: format!("tok_{i:08x}"),
                tenant: format!("tenant{}", i / 12),
                idp: idps[(i / 2) % 6],
                status: Status::Active,
                sha256: secret::to_hex(&secret::sha256(token.as_bytes())),
                domains: vec![],
                networks: vec![],
                created_at: now,
                refreshed_at: None,
                expires_at: None,
                last_used_at: None,
                access: Vec::new(),
            };
            plain.push(token);
            r
        })
        .collect();
    (
        TokenStore::from_records(records, 2).expect("valid set"),
        plain,
    )
}

/// Three query patterns per set size:
/// * `hot`: the same 8 tokens again and again among `n` loaded — what a gate sees (a handful of
///   IdPs), and the case the "flat from 10 to 1 000 000" goal is about;
/// * `cold`: a different random token each time — the worst case, where every lookup misses the
///   CPU caches once the set is larger than them;
/// * `unknown`: a token that is not loaded (an attacker's guess).
fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("token_lookup");
    for n in [10usize, 100_000, 1_000_000] {
        let (store, plain) = store(n);
        // Fixed-size, contiguous queries so the harness adds one cache line per lookup at most.
        let queries: Vec<[u8; 20]> = plain
            .iter()
            .map(|p| {
                let mut q = [0u8; 20];
                q.copy_from_slice(p.as_bytes());
                q
            })
            .collect();
        let mut i = 0usize;
        group.bench_with_input(BenchmarkId::new("hot", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % 8.min(queries.len());
                let hit = store.lookup(black_box(&queries[i * queries.len() / 8][..]));
                assert!(matches!(hit, Lookup::Valid(_)));
            })
        });
        let mut i = 0usize;
        group.bench_with_input(BenchmarkId::new("cold", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 7919) % queries.len();
                let hit = store.lookup(black_box(&queries[i][..]));
                assert!(matches!(hit, Lookup::Valid(_)));
            })
        });
        group.bench_with_input(BenchmarkId::new("unknown", n), &n, |b, _| {
            b.iter(|| store.lookup(black_box(b"scimgate_not-a-token")))
        });
    }
    group.finish();
}

/// The SHA-256 of one presented gate token, natively: the request path's one cryptographic
/// step. Under valgrind (the instruction counts of `benches/instructions.sh`) the CPU's SHA
/// extensions are hidden and the portable code runs; this is the figure a real CPU pays
/// (BENCHMARKS.md, "Where the rest goes").
fn sha256(c: &mut Criterion) {
    let token = secret::NewToken::generate();
    let presented = token.expose().as_bytes().to_vec();
    c.bench_function("sha256_gate_token", |b| {
        b.iter(|| secret::sha256(black_box(&presented)))
    });
}

criterion_group!(benches, lookup, sha256);
criterion_main!(benches);
