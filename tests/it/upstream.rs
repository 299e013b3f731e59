//! Upstream failures (docs/operations.md#upstream): unreachable → 502, too slow → 504, both SCIM errors, both within
//! the configured timeouts (harness: connect_timeout 1s, read_timeout 2s), both counted.
//! The time bounds are behaviour bounds (the timeout plus 1 s of slack), not benchmarks.

use std::net::TcpStream;
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::harness::{
    assert_scim_error, free_port, metric_sum, vm_kib, GateOpts, GateProc, TestToken,
};
use scim_demo::DemoServer;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const READ_TIMEOUT: Duration = Duration::from_secs(2);
const SLACK: Duration = Duration::from_secs(1);

fn upstream_errors(gate: &GateProc, kind: &str) -> f64 {
    metric_sum(
        &gate.metrics(),
        "scim_gate_upstream_errors_total",
        &[&format!("kind=\"{kind}\"")],
    )
}

#[test]
fn upstream_refusing_connections_is_502_within_the_connect_timeout() {
    // A port nobody listens on.
    let url = format!("http://127.0.0.1:{}/v2", free_port());
    let t = TestToken::new("tok_up");
    let gate = GateProc::start(GateOpts::new(&url), &[&t]);
    for (method, body) in [
        ("GET", None),
        (
            "POST",
            Some(
                r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a@acme.com"}"#,
            ),
        ),
    ] {
        let start = Instant::now();
        let r = gate.call(method, "/scim/v2/Users", Some(&t.plaintext), body);
        let took = start.elapsed();
        assert_scim_error(&r, 502, None);
        assert!(
            took < CONNECT_TIMEOUT + SLACK,
            "{method}: 502 after {took:?}"
        );
    }
    assert!(
        upstream_errors(&gate, "connect") >= 2.0,
        "{}",
        gate.metrics()
    );
    // Counted in the logging phase, which may run just after the client has its answer.
    let count = || {
        metric_sum(
            &gate.metrics(),
            "scim_gate_requests_total",
            &["outcome=\"upstream_error\""],
        )
    };
    assert!(
        crate::harness::eventually(Duration::from_secs(1), || count() >= 2.0),
        "{}",
        gate.metrics()
    );
}

/// A listener whose accept queue is full: the kernel drops further SYNs, so a connect neither
/// succeeds nor is refused — it times out. (Linux: `listen(fd, 0)` queues one connection.)
struct BlackHole {
    _listener: OwnedFd,
    _fillers: Vec<TcpStream>,
    port: u16,
}

fn black_hole() -> BlackHole {
    // SAFETY: plain socket syscalls on a fresh descriptor that OwnedFd then owns.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket");
        let listener = OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        addr.sin_port = 0;
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(
            libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len),
            0,
            "bind"
        );
        assert_eq!(libc::listen(fd, 0), 0, "listen");
        let mut bound: libc::sockaddr_in = std::mem::zeroed();
        let mut blen = len;
        assert_eq!(
            libc::getsockname(fd, &mut bound as *mut _ as *mut libc::sockaddr, &mut blen),
            0
        );
        let port = u16::from_be(bound.sin_port);
        let mut fillers = Vec::new();
        // Fill the queue until a connect stalls.
        for _ in 0..8 {
            match TcpStream::connect_timeout(
                &([127, 0, 0, 1], port).into(),
                Duration::from_millis(200),
            ) {
                Ok(s) => fillers.push(s),
                Err(_) => break,
            }
        }
        BlackHole {
            _listener: listener,
            _fillers: fillers,
            port,
        }
    }
}

#[test]
fn upstream_not_answering_the_handshake_is_502_within_the_connect_timeout() {
    let hole = black_hole();
    // Check the trick works on this kernel before relying on it.
    let probe = TcpStream::connect_timeout(
        &([127, 0, 0, 1], hole.port).into(),
        Duration::from_millis(300),
    );
    assert!(
        probe.is_err(),
        "the black hole accepted a connection; cannot test a connect timeout here"
    );
    let t = TestToken::new("tok_up");
    let gate = GateProc::start(
        GateOpts::new(&format!("http://127.0.0.1:{}/v2", hole.port)),
        &[&t],
    );
    let start = Instant::now();
    let r = gate.call("GET", "/scim/v2/Users", Some(&t.plaintext), None);
    let took = start.elapsed();
    assert_scim_error(&r, 502, None);
    assert!(took < CONNECT_TIMEOUT + SLACK, "502 after {took:?}");
    assert!(
        took >= CONNECT_TIMEOUT - Duration::from_millis(500),
        "502 after {took:?}: the connect was refused, not timed out"
    );
    assert!(
        upstream_errors(&gate, "connect") >= 1.0,
        "{}",
        gate.metrics()
    );
}

#[test]
fn upstream_stalling_is_504_within_the_read_timeout() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let t = TestToken::new("tok_up");
    let gate = GateProc::start(GateOpts::new(&up.base_url()), &[&t]);
    assert_eq!(
        gate.call("GET", "/scim/v2/Users", Some(&t.plaintext), None)
            .status,
        200
    );
    let before = upstream_errors(&gate, "timeout");
    up.dir.set_delay(Duration::from_secs(5));
    let start = Instant::now();
    let r = gate.call("GET", "/scim/v2/Users", Some(&t.plaintext), None);
    let took = start.elapsed();
    assert_scim_error(&r, 504, None);
    assert!(took < READ_TIMEOUT + SLACK, "504 after {took:?}");
    assert!(
        took >= READ_TIMEOUT - Duration::from_millis(500),
        "504 too early ({took:?}): not the read timeout"
    );
    assert!(
        upstream_errors(&gate, "timeout") > before,
        "{}",
        gate.metrics()
    );
    // The request did arrive; it was the answer that was late.
    assert_eq!(up.dir.received().len(), 2);
    // Once the upstream is fast again, so is the gate.
    up.dir.set_delay(Duration::ZERO);
    assert_eq!(
        gate.call("GET", "/scim/v2/Users", Some(&t.plaintext), None)
            .status,
        200
    );
}

#[test]
fn a_stalled_write_is_504_too() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let t = TestToken::new("tok_up");
    let gate = GateProc::start(GateOpts::new(&up.base_url()), &[&t]);
    up.dir.set_delay(Duration::from_secs(5));
    let start = Instant::now();
    let body =
        r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"slow@acme.com"}"#;
    let r = gate.call("POST", "/scim/v2/Users", Some(&t.plaintext), Some(body));
    let took = start.elapsed();
    assert_scim_error(&r, 504, None);
    assert!(took < READ_TIMEOUT + SLACK, "504 after {took:?}");
    assert!(
        upstream_errors(&gate, "timeout") >= 1.0,
        "{}",
        gate.metrics()
    );
}

/// An upstream that answers one request with a chunked JSON body of `n` references to itself,
/// cut into chunks whose size (a prime) splits URLs across chunk boundaries.
fn big_json_upstream(n: usize) -> (String, std::thread::JoinHandle<()>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}/v2", listener.local_addr().expect("addr"));
    let me = base.clone();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut line = String::new();
        while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) && line != "\r\n" {
            line.clear();
        }
        let mut body = Vec::with_capacity(n * 64);
        body.extend_from_slice(b"{\"Resources\":[");
        for i in 0..n {
            let sep = if i + 1 == n { "" } else { "," };
            body.extend_from_slice(format!("{{\"$ref\":\"{me}/Users/{i}\"}}{sep}").as_bytes());
        }
        body.extend_from_slice(b"]}");
        let mut out = std::io::BufWriter::new(stream);
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/scim+json\r\n\
                    Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        let _ = out.write_all(head.as_bytes());
        for chunk in body.chunks(65_521) {
            let _ = write!(out, "{:x}\r\n", chunk.len());
            let _ = out.write_all(chunk);
            let _ = out.write_all(b"\r\n");
        }
        let _ = out.write_all(b"0\r\n\r\n");
        let _ = out.flush();
    });
    (base, handle)
}

/// Reliability finding 7: the URL rewrite streams. A 26 MiB upstream answer used to be held
/// whole, twice (read, then rewritten); now the gate's peak memory grows by far less than the
/// body, and every upstream URL, wherever the chunks cut it, comes out rewritten.
#[test]
fn a_large_upstream_answer_is_rewritten_as_a_stream() {
    let n = 500_000; // ~26 MiB of `{"$ref":"http://127.0.0.1:PORT/v2/Users/N"},`
    let (base, upstream) = big_json_upstream(n);
    let t = TestToken::new("tok_big");
    let gate = GateProc::start(GateOpts::new(&base), &[&t]);
    let before = vm_kib(gate.pid(), "VmRSS");
    let r = gate.call("GET", "/scim/v2/Users", Some(&t.plaintext), None);
    upstream.join().expect("upstream thread");
    assert_eq!(r.status, 200);
    let body = String::from_utf8(r.body.clone()).expect("utf-8");
    assert!(
        body.len() > 20 << 20,
        "the whole body arrived: {} bytes",
        body.len()
    );
    assert_eq!(body.matches(&base).count(), 0, "an upstream URL leaked");
    let public = format!("http://127.0.0.1:{}/scim/v2/Users/", gate.port);
    assert_eq!(
        body.matches(&public).count(),
        n,
        "every reference rewritten"
    );
    let v: serde_json::Value = serde_json::from_str(&body).expect("still JSON");
    assert_eq!(v["Resources"].as_array().map(Vec::len), Some(n));
    let grew_mib = vm_kib(gate.pid(), "VmHWM").saturating_sub(before) / 1024;
    assert!(
        grew_mib < 16,
        "the gate's peak memory grew by {grew_mib} MiB for a 26 MiB body: it was buffered"
    );
}
