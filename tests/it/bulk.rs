//! Bulk amplification (issue 15, reliability finding 2): a Bulk request's PUTs make the gate read
//! what they replace, so their number (`policy.bulk_max_operations`, advertised in
//! ServiceProviderConfig), the reads' memory (a budget of 4 × `max_body_bytes`), their time
//! (`upstream.read_timeout`) and their repetition (one read per resource) are bounded. The
//! upstream here is a small directory of this file's own that counts the reads.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use scim_gate::config::raw::RawPolicy;

use crate::harness::{assert_scim_error, vm_kib, GateOpts, GateProc, TestToken};

const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const BULK_URN: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

/// A directory whose Groups named `big*` hold `members` members each (about 60 bytes a
/// member), whose other Groups are small, which answers every Bulk request with an empty
/// BulkResponse, and which counts the Group reads.
struct Directory {
    base: String,
    reads: Arc<AtomicUsize>,
}

fn directory(members: usize) -> Directory {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}/v2", listener.local_addr().expect("addr"));
    let reads = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&reads);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let counted = Arc::clone(&counted);
            std::thread::spawn(move || serve(stream, members, &counted));
        }
    });
    Directory { base, reads }
}

/// One keep-alive connection of [`directory`].
fn serve(stream: TcpStream, members: usize, reads: &AtomicUsize) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut out = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
        let answer = if let Some(id) = path.strip_prefix("/v2/Groups/") {
            reads.fetch_add(1, Ordering::SeqCst);
            group(id, if id.starts_with("big") { members } else { 0 })
        } else if path == "/v2/ServiceProviderConfig" {
            r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],"patch":{"supported":true},"bulk":{"supported":true,"maxOperations":5000,"maxPayloadSize":10485760},"filter":{"supported":true,"maxResults":200}}"#.to_string()
        } else {
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkResponse"],"Operations":[]}"#
                .to_string()
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n",
            answer.len()
        );
        if out.write_all(head.as_bytes()).is_err() || out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn group(id: &str, members: usize) -> String {
    let members: Vec<serde_json::Value> = (0..members)
        .map(|i| serde_json::json!({"value": format!("user-{i:08}-aaaaaaaaaaaaaaaaaaaaaaaa")}))
        .collect();
    serde_json::json!({"schemas": [GROUP_URN], "id": id, "displayName": id, "members": members})
        .to_string()
}

/// A Bulk request of PUTs that rename each named Group (displayName is updatable).
fn bulk_of_puts(ids: &[String]) -> String {
    let ops: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| {
            serde_json::json!({"method": "PUT", "path": format!("/Groups/{id}"),
                "data": {"schemas": [GROUP_URN], "displayName": "renamed"}})
        })
        .collect();
    serde_json::json!({"schemas": [BULK_URN], "Operations": ops}).to_string()
}

fn gate(dir: &Directory, policy: Option<RawPolicy>) -> (GateProc, TestToken) {
    let t = TestToken::new("tok_bulk");
    let mut opts = GateOpts::new(&dir.base);
    opts.config.policy = policy;
    (GateProc::start(opts, &[&t]), t)
}

/// The finding: 120 large Groups named by one small request took the gate to 1.9 GB. Now the
/// reads stop when their budget (4 MiB by default) is spent, and the answer is 413.
#[test]
fn a_small_bulk_naming_many_large_groups_is_413_and_holds_little() {
    let dir = directory(25_000); // about 1.5 MiB a Group
    let (gate, t) = gate(&dir, None);
    let ids: Vec<String> = (0..120).map(|i| format!("big{i}")).collect();
    let body = bulk_of_puts(&ids);
    assert!(
        body.len() < 16 * 1024,
        "the request is small: {}",
        body.len()
    );
    let before = vm_kib(gate.pid(), "VmRSS");
    let r = gate.call("POST", "/scim/v2/Bulk", Some(&t.plaintext), Some(&body));
    assert_scim_error(&r, 413, None);
    assert!(r.text().contains("PATCH"), "{}", r.text());
    let reads = dir.reads.load(Ordering::SeqCst);
    assert!(
        reads <= 8,
        "the gate went on reading after its budget: {reads} reads"
    );
    let grew_mib = vm_kib(gate.pid(), "VmHWM").saturating_sub(before) / 1024;
    eprintln!("120 large Groups: {reads} reads, peak memory +{grew_mib} MiB");
    assert!(
        grew_mib < 64,
        "the gate's peak memory grew by {grew_mib} MiB for one 16 KB request"
    );
}

#[test]
fn more_operations_than_bulk_max_operations_is_413_before_any_read() {
    let dir = directory(0);
    let policy = RawPolicy {
        bulk_max_operations: Some(10),
        ..RawPolicy::default()
    };
    let (gate, t) = gate(&dir, Some(policy));
    let ids: Vec<String> = (0..11).map(|i| format!("g{i}")).collect();
    let r = gate.call(
        "POST",
        "/scim/v2/Bulk",
        Some(&t.plaintext),
        Some(&bulk_of_puts(&ids)),
    );
    assert_scim_error(&r, 413, None);
    assert!(r.text().contains("at most 10"), "{}", r.text());
    assert_eq!(dir.reads.load(Ordering::SeqCst), 0);
    // Ten pass, and ServiceProviderConfig tells the IdP the bound.
    let r = gate.call(
        "POST",
        "/scim/v2/Bulk",
        Some(&t.plaintext),
        Some(&bulk_of_puts(&ids[..10])),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let spc = gate
        .call(
            "GET",
            "/scim/v2/ServiceProviderConfig",
            Some(&t.plaintext),
            None,
        )
        .json();
    assert_eq!(spc["bulk"]["maxOperations"], 10, "{spc}");
    assert_eq!(spc["bulk"]["maxPayloadSize"], 1048576, "{spc}");
}

#[test]
fn each_resource_a_bulk_replaces_is_read_once() {
    let dir = directory(0);
    let (gate, t) = gate(&dir, None);
    let ids: Vec<String> = ["a", "b", "a", "a", "b", "c"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let r = gate.call(
        "POST",
        "/scim/v2/Bulk",
        Some(&t.plaintext),
        Some(&bulk_of_puts(&ids)),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(dir.reads.load(Ordering::SeqCst), 3);
    // The default bound is advertised too.
    let spc = gate
        .call(
            "GET",
            "/scim/v2/ServiceProviderConfig",
            Some(&t.plaintext),
            None,
        )
        .json();
    assert_eq!(spc["bulk"]["maxOperations"], 1000, "{spc}");
}

#[test]
fn reads_that_outlast_the_read_timeout_are_504() {
    // A directory that accepts and never answers: each read would wait for its own timeout,
    // one after another; the whole set is bounded by upstream.read_timeout (2 s here).
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}/v2", listener.local_addr().expect("addr"));
    let _held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for s in listener.incoming().flatten() {
            open.push(s);
        }
    });
    let t = TestToken::new("tok_slow");
    let gate = GateProc::start(GateOpts::new(&base), &[&t]);
    let ids: Vec<String> = (0..40).map(|i| format!("g{i}")).collect();
    let start = std::time::Instant::now();
    let r = gate.call(
        "POST",
        "/scim/v2/Bulk",
        Some(&t.plaintext),
        Some(&bulk_of_puts(&ids)),
    );
    assert_scim_error(&r, 504, None);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "40 reads took {:?}: they were not bounded as a whole",
        start.elapsed()
    );
}
