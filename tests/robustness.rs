//! Robustness of the request path through the real binary (issue 15's reliability findings):
//! early answers reach a client still sending, no body or method override rides on GET/DELETE,
//! no `Upgrade` passes, identity headers cannot be spoofed in any spelling, slow clients are
//! bounded.
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{assert_scim_error, read_response, GateOpts, GateProc, Response, TestToken};
use scim_gate::demo::DemoServer;

fn setup() -> (DemoServer, GateProc, TestToken) {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let t = TestToken::new("tok_rob");
    let gate = GateProc::start(GateOpts::new(&up.base_url()), &[&t]);
    (up, gate, t)
}

/// Sends `head` and then `body_len` bytes in 64 KiB chunks with a pause between them, like an
/// HTTP client (Python's `http.client`) that writes the whole body before it reads the answer.
/// `None` when a write failed (the gate closed and the kernel reset the connection: such a
/// client never reads the answer) or no answer could be read.
fn send_slowly(gate: &GateProc, head: &str, body_len: usize) -> Option<Response> {
    let mut s = TcpStream::connect(gate.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    s.write_all(head.as_bytes()).ok()?;
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < body_len {
        let n = chunk.len().min(body_len - sent);
        s.write_all(&chunk[..n]).ok()?;
        sent += n;
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut first = [0u8; 1];
    match s.read(&mut first) {
        Ok(1) => {}
        _ => return None,
    }
    let mut rest = std::io::Cursor::new(first.to_vec()).chain(s);
    Some(read_response(&mut rest))
}

fn post_head(gate: &GateProc, token: Option<&str>, content_type: &str, len: usize) -> String {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{auth}Content-Type: {content_type}\r\nContent-Length: {len}\r\n\r\n",
        gate.port
    )
}

#[test]
fn an_early_answer_reaches_a_client_still_sending_its_body() {
    let (_up, gate, t) = setup();
    let big = 3 * 1024 * 1024; // over the 1 MiB default limit
    for i in 0..5 {
        let head = post_head(&gate, Some(&t.plaintext), "application/scim+json", big);
        let r = send_slowly(&gate, &head, big);
        let r = r.unwrap_or_else(|| panic!("try {i}: the 413 was lost (connection reset)"));
        assert_scim_error(&r, 413, None);
    }
    // Any refusal before the body: no token (401), a wrong media type (415).
    let head = post_head(&gate, None, "application/scim+json", 512 * 1024);
    let r = send_slowly(&gate, &head, 512 * 1024).expect("the 401 arrives");
    assert_eq!(r.status, 401);
    let head = post_head(&gate, Some(&t.plaintext), "text/plain", 512 * 1024);
    let r = send_slowly(&gate, &head, 512 * 1024).expect("the 415 arrives");
    assert_scim_error(&r, 415, Some("invalidSyntax"));
    // A chunked body over the limit is refused mid-stream: that answer arrives too.
    let head = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\nContent-Type: application/scim+json\r\nTransfer-Encoding: chunked\r\n\r\n",
        gate.port, t.plaintext
    );
    let r = send_chunked_slowly(&gate, &head, 3 * 1024 * 1024).expect("the chunked 413 arrives");
    assert_scim_error(&r, 413, None);
}

/// As [`send_slowly`], with the body in HTTP/1.1 chunks.
fn send_chunked_slowly(gate: &GateProc, head: &str, body_len: usize) -> Option<Response> {
    let mut s = TcpStream::connect(gate.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    s.write_all(head.as_bytes()).ok()?;
    let mut chunk = format!("{:x}\r\n", 64 * 1024).into_bytes();
    chunk.extend(std::iter::repeat_n(b' ', 64 * 1024));
    chunk.extend_from_slice(b"\r\n");
    let mut sent = 0;
    while sent < body_len {
        s.write_all(&chunk).ok()?;
        sent += 64 * 1024;
        std::thread::sleep(Duration::from_millis(2));
    }
    s.write_all(b"0\r\n\r\n").ok()?;
    let mut first = [0u8; 1];
    match s.read(&mut first) {
        Ok(1) => {}
        _ => return None,
    }
    let mut rest = std::io::Cursor::new(first.to_vec()).chain(s);
    Some(read_response(&mut rest))
}
