//! Upstream failures (docs/operations.md#upstream): unreachable → 502, too slow → 504, both SCIM errors, both within
//! the configured timeouts (harness: connect_timeout 1s, read_timeout 2s), both counted.
//! The time bounds are behaviour bounds (the timeout plus 1 s of slack), not benchmarks.

use std::net::TcpStream;
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::harness::{assert_scim_error, free_port, metric_sum, GateOpts, GateProc, TestToken};
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
