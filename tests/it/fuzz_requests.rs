//! Whole requests, mutated at random, through the gate's proxy app in-process (issue 15: a fuzz
//! target for whole requests through admission). The coverage-guided version is
//! `fuzz/fuzz_targets/request.rs` (libFuzzer, run by hand; figures in `docs/threat-model.md`);
//! this is its stable twin in the test command: the seeds of `tests/fixtures/requests/` and
//! `SCIM_GATE_FUZZ_ITERS` (default 3000) mutations of them, from `SCIM_GATE_FUZZ_SEED` (default
//! fixed, so a failure repeats). Every answer must be an HTTP answer or nothing, and must never
//! echo the token; the process must not panic or hang.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::harness::in_process::{check_answer, InProcess};

/// Bytes that matter to HTTP, JSON, SCIM paths and filters.
const INTERESTING: &[u8] = b"{}[]:,\"\\\r\n\0 %/.?&=#@+-eqornotandpr()$TOKEN\xff\xc3";

fn seeds() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/requests");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .expect("seed folder")
        .flatten()
        .map(|e| std::fs::read(e.path()).expect("seed"))
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 10, "the seeds are missing");
    seeds
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One to four random edits of `input`, sometimes spliced with another seed.
fn mutate(rng: &mut StdRng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.gen_range(1..=4) {
        let len = out.len().max(1);
        let at = rng.gen_range(0..len).min(out.len());
        match rng.gen_range(0..7) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << rng.gen_range(0..8);
            }
            1 => out.insert(at, INTERESTING[rng.gen_range(0..INTERESTING.len())]),
            2 => {
                let end = (at + rng.gen_range(1..16)).min(out.len());
                out.drain(at..end);
            }
            3 => {
                let end = (at + rng.gen_range(1..32)).min(out.len());
                let copy = out[at..end].to_vec();
                let n = rng.gen_range(1..64);
                for _ in 0..n {
                    out.splice(at..at, copy.iter().copied());
                }
            }
            4 => out.truncate(at),
            5 if !other.is_empty() => {
                let from = rng.gen_range(0..other.len());
                let end = (from + rng.gen_range(1..64)).min(other.len());
                out.splice(at..at, other[from..end].iter().copied());
            }
            _ => {
                let n = rng.gen_range(0..100_000u32).to_string();
                out.splice(at..at, n.bytes());
            }
        }
    }
    if rng.gen_bool(0.5) {
        fix_content_length(&mut out);
    }
    out
}

/// Makes a `Content-Length` header (if any) match the bytes after the head, so mutated bodies
/// reach the checks instead of stopping at framing.
fn fix_content_length(req: &mut Vec<u8>) {
    let Some(head_end) = req.windows(4).position(|w| w == b"\r\n\r\n") else {
        return;
    };
    let body_len = req.len() - head_end - 4;
    let Ok(head) = std::str::from_utf8(&req[..head_end]) else {
        return; // not UTF-8; leave it
    };
    let Some(start) = head.find("Content-Length: ") else {
        return;
    };
    let digits = start + "Content-Length: ".len();
    let end = head[digits..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(head.len(), |i| digits + i);
    req.splice(digits..end, body_len.to_string().bytes());
}

#[test]
fn mutated_requests_always_get_an_http_answer_and_never_the_token() {
    let ip = InProcess::new("http://127.0.0.1:9/v2");
    let seeds = seeds();
    for seed in &seeds {
        let answer = ip.answer(seed);
        check_answer(&ip.token, seed, &answer);
        assert!(
            !answer.is_empty(),
            "no answer to a seed: {:?}",
            String::from_utf8_lossy(seed)
        );
    }
    let iters = env_or("SCIM_GATE_FUZZ_ITERS", 3000);
    let mut rng = StdRng::seed_from_u64(env_or("SCIM_GATE_FUZZ_SEED", 0x5c17_6a7e));
    let mut answered = 0u64;
    for _ in 0..iters {
        let a = &seeds[rng.gen_range(0..seeds.len())];
        let b = &seeds[rng.gen_range(0..seeds.len())];
        let req = mutate(&mut rng, a, b);
        let answer = ip.answer(&req);
        check_answer(&ip.token, &req, &answer);
        answered += u64::from(!answer.is_empty());
    }
    // Most mutations still look like HTTP; if almost none were answered, the driver is broken.
    assert!(
        answered * 2 > iters,
        "only {answered} of {iters} mutated requests were answered"
    );
}

/// Found by the libFuzzer target: a made-up method holding the token (`PATCH<token>`) was
/// echoed in the 405's detail. The gate now names only methods it knows.
#[test]
fn a_method_holding_the_token_is_not_echoed() {
    let ip = InProcess::new("http://127.0.0.1:9/v2");
    for method in ["PATCH$TOKEN", "X$TOKEN", "$TOKEN"] {
        let req = format!(
            "{method} /scim/v2/Users/42 HTTP/1.1\r\nHost: gate\r\nAuthorization: Bearer $TOKEN\r\nConnection: close\r\n\r\n"
        );
        let answer = ip.answer(req.as_bytes());
        check_answer(&ip.token, req.as_bytes(), &answer);
        assert!(
            answer.starts_with(b"HTTP/1.1 405") || answer.starts_with(b"HTTP/1.1 400"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
}
