//! Slow and numerous clients (issue 15, reliability finding 3): a request head must arrive
//! within `server.header_timeout` however it trickles, an idle connection closes after
//! `server.idle_timeout`, at most `server.max_connections` are open, and with every client slot
//! taken the admin socket, the token watcher and the metrics still work.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::{eventually, read_response, token_file, GateOpts, GateProc, TestToken};
use scim_demo::DemoServer;

fn gate_with(opts: impl FnOnce(&mut GateOpts)) -> (DemoServer, GateProc, TestToken) {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let t = TestToken::new("tok_conn");
    let mut o = GateOpts::new(&up.base_url());
    opts(&mut o);
    let gate = GateProc::start(o, &[&t]);
    (up, gate, t)
}

/// Reads until the peer closes; `true` when it closed (end of stream or reset) before `limit`.
fn closes_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).expect("timeout");
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// A request on a fresh connection, answered 401 (no token): the listener serves.
fn served(gate: &GateProc) -> bool {
    let Ok(mut s) = TcpStream::connect(gate.addr()) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!(
        "GET /scim/v2/Users HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        gate.port
    );
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut first = [0u8; 12];
    matches!(s.read_exact(&mut first), Ok(())) && &first == b"HTTP/1.1 401"
}

#[test]
fn a_trickled_request_head_is_cut_at_the_header_timeout_with_a_408() {
    let (_up, gate, _t) = gate_with(|o| {
        o.server().header_timeout = Some(Duration::from_secs(1));
    });
    let mut s = TcpStream::connect(gate.addr()).expect("connect");
    let mut writer = s.try_clone().expect("clone");
    let start = Instant::now();
    // One header line every 200 ms for up to 20 s: each read re-arms Pingora's own timer.
    let trickle = std::thread::spawn(move || {
        let _ = writer.write_all(b"GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\n");
        for i in 0..100 {
            std::thread::sleep(Duration::from_millis(200));
            if writer
                .write_all(format!("X-Slow-{i}: a\r\n").as_bytes())
                .is_err()
            {
                return;
            }
        }
    });
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let r = read_response(&mut s);
    let took = start.elapsed();
    assert_eq!(r.status, 408, "{}", r.text());
    assert_eq!(r.json()["status"], "408");
    assert!(
        took < Duration::from_secs(10),
        "the head was cut only after {took:?}: the trickle kept the connection"
    );
    assert!(closes_within(&mut s, Duration::from_secs(10)));
    let _ = trickle.join();
    assert!(
        eventually(Duration::from_secs(5), || gate.metric(
            "scim_gate_connections_closed_total{reason=\"header_timeout\"}"
        ) >= 1.0),
        "{}",
        gate.metrics()
    );
}

#[test]
fn a_head_sent_in_pieces_within_the_timeout_is_served() {
    let (_up, gate, t) = gate_with(|o| {
        o.server().header_timeout = Some(Duration::from_secs(2));
    });
    let mut s = TcpStream::connect(gate.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let head = format!(
        "GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        t.plaintext
    );
    for piece in head.as_bytes().chunks(16) {
        s.write_all(piece).expect("write");
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = read_response(&mut s);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn an_idle_connection_is_closed_at_the_idle_timeout_before_and_between_requests() {
    let (_up, gate, t) = gate_with(|o| {
        o.server().idle_timeout = Some(Duration::from_secs(1));
    });
    // Nothing sent at all.
    let mut silent = TcpStream::connect(gate.addr()).expect("connect");
    assert!(closes_within(&mut silent, Duration::from_secs(10)));

    // One request on a keep-alive connection, then silence.
    let mut s = TcpStream::connect(gate.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let req = format!(
        "GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        t.plaintext
    );
    s.write_all(req.as_bytes()).expect("write");
    let r = read_response(&mut s);
    assert_eq!(r.status, 200, "{}", r.text());
    // A second request at once is still served on the same connection…
    s.write_all(req.as_bytes()).expect("write");
    assert_eq!(read_response(&mut s).status, 200);
    // …and then the idle connection closes.
    assert!(closes_within(&mut s, Duration::from_secs(10)));
    assert!(
        gate.metric("scim_gate_connections_closed_total{reason=\"idle_timeout\"}") >= 2.0,
        "{}",
        gate.metrics()
    );
}

#[test]
fn connections_over_max_connections_are_closed_at_once_and_slots_come_back() {
    let (_up, gate, _t) = gate_with(|o| {
        o.server().max_connections = Some(3);
    });
    // The harness's own readiness probes hold a slot until the gate has seen them close; a
    // connection opened before that would be the fourth.
    assert!(
        eventually(Duration::from_secs(5), || gate
            .metric("scim_gate_connections")
            == 0.0),
        "{}",
        gate.metrics()
    );
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(gate.addr()).expect("connect"))
        .collect();
    assert!(
        eventually(Duration::from_secs(5), || gate
            .metric("scim_gate_connections")
            == 3.0),
        "{}",
        gate.metrics()
    );
    let mut fourth = TcpStream::connect(gate.addr()).expect("the kernel accepts");
    assert!(
        closes_within(&mut fourth, Duration::from_secs(5)),
        "a fourth connection stayed open"
    );
    assert!(!served(&gate), "a request was served over the limit");
    assert!(
        gate.metric("scim_gate_connections_closed_total{reason=\"max_connections\"}") >= 2.0,
        "{}",
        gate.metrics()
    );
    held.pop();
    assert!(
        eventually(Duration::from_secs(5), || served(&gate)),
        "a closed connection's slot did not come back"
    );
}

#[test]
fn with_every_client_slot_taken_the_admin_socket_watcher_and_metrics_still_work() {
    // 256 descriptors: the gate keeps its reserve and lowers max_connections to (256 - 64) / 2.
    let (_up, gate, t) = gate_with(|o| {
        o.open_files = Some(256);
        o.server().idle_timeout = Some(Duration::from_secs(60));
    });
    assert!(
        gate.log_shows("server.max_connections 10000 lowered to 96"),
        "{}",
        gate.log()
    );
    let held: Vec<TcpStream> = (0..140)
        .filter_map(|_| TcpStream::connect(gate.addr()).ok())
        .collect();
    assert!(
        eventually(Duration::from_secs(10), || gate
            .metric("scim_gate_connections")
            == 96.0),
        "{}",
        gate.metrics()
    );
    // The admin socket answers and can create a token (a file write, an audit line).
    let r = gate.admin("GET", "/tokens", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = gate.admin(
        "POST",
        "/tokens",
        Some(r#"{"tenant":"acme","idp":"entra"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    // The watcher still reloads a hand edit of the token file.
    let added = TestToken::new("tok_hand");
    std::fs::write(gate.path("tokens.yaml"), token_file(&[&t, &added])).expect("edit");
    assert!(
        eventually(Duration::from_secs(5), || gate
            .admin("GET", "/tokens", None)
            .text()
            .contains("tok_hand")),
        "the hand edit was not reloaded: {}",
        gate.log()
    );
    drop(held);
    assert!(
        eventually(Duration::from_secs(5), || served(&gate)),
        "the listener did not recover"
    );
    // And the new token works.
    let r = gate.call("GET", "/scim/v2/Users", Some(&added.plaintext), None);
    assert_eq!(r.status, 200, "{}", r.text());
}
