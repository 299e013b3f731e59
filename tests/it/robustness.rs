//! Robustness of the request path through the real binary (issue 15's reliability findings):
//! early answers reach a client still sending, no body or method override rides on GET/DELETE,
//! no `Upgrade` passes, identity headers cannot be spoofed in any spelling, slow clients are
//! bounded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::{assert_scim_error, read_response, GateOpts, GateProc, Response, TestToken};
use scim_demo::DemoServer;

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

fn headers_named(req: &scim_demo::DemoRequest, folded: &str) -> Vec<(String, String)> {
    req.headers
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase().replace('_', "-") == folded)
        .cloned()
        .collect()
}

#[test]
fn identity_headers_cannot_be_spoofed_in_any_spelling() {
    let (up, gate, t) = setup();
    let r = gate.raw_request(
        "GET",
        "/scim/v2/Users",
        &[
            format!("Authorization: Bearer {}", t.plaintext).as_bytes(),
            b"X_Scim_Tenant: victim",
            b"x_scim_token_id: tok_victim",
            b"X-SCIM-TENANT: victim",
            b"x-Scim_Token-Id: tok_victim",
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = up.dir.received();
    assert_eq!(seen.len(), 1);
    let tenant = headers_named(&seen[0], "x-scim-tenant");
    assert_eq!(tenant, vec![("X-Scim-Tenant".into(), "acme".into())]);
    let id = headers_named(&seen[0], "x-scim-token-id");
    assert_eq!(id, vec![("X-Scim-Token-Id".into(), "tok_rob".into())]);
}

#[test]
fn no_body_and_no_method_override_on_get_or_delete() {
    let (up, gate, t) = setup();
    let auth = format!("Authorization: Bearer {}", t.plaintext);
    for method in ["GET", "DELETE"] {
        let r = gate.raw_request(
            method,
            "/scim/v2/Users/abc",
            &[
                auth.as_bytes(),
                b"Content-Type: application/scim+json",
                b"Content-Length: 2\r\n\r\n{}",
            ],
        );
        assert_scim_error(&r, 400, Some("invalidSyntax"));
        let r = gate.raw_request(
            method,
            "/scim/v2/Users/abc",
            &[
                auth.as_bytes(),
                b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n",
            ],
        );
        assert_scim_error(&r, 400, Some("invalidSyntax"));
    }
    for header in [
        &b"X-HTTP-Method-Override: DELETE"[..],
        b"X-HTTP-Method: DELETE",
        b"x-method-override: DELETE",
        b"X_HTTP_Method_Override: DELETE",
    ] {
        let r = gate.raw_request("GET", "/scim/v2/Users", &[auth.as_bytes(), header]);
        assert_scim_error(&r, 400, Some("invalidSyntax"));
    }
    for query in ["_method=DELETE", "a=1&_METHOD=DELETE", "%5Fmethod=DELETE"] {
        let r = gate.raw_request(
            "GET",
            &format!("/scim/v2/Users?{query}"),
            &[auth.as_bytes()],
        );
        assert_scim_error(&r, 400, Some("invalidSyntax"));
    }
    assert!(up.dir.received().is_empty(), "nothing was forwarded");
    // An empty body (Content-Length: 0) is no body.
    let r = gate.raw_request(
        "GET",
        "/scim/v2/Users",
        &[auth.as_bytes(), b"Content-Length: 0"],
    );
    assert_eq!(r.status, 200);
}

#[test]
fn upgrade_is_never_forwarded_and_a_101_is_no_tunnel() {
    let (up, gate, t) = setup();
    let auth = format!("Authorization: Bearer {}", t.plaintext);
    let r = gate.raw_request(
        "GET",
        "/scim/v2/Users",
        &[
            auth.as_bytes(),
            b"Connection: Upgrade",
            b"Upgrade: websocket",
        ],
    );
    assert_eq!(r.status, 200);
    let seen = up.dir.received();
    assert!(seen[0].header("upgrade").is_none(), "{:?}", seen[0].headers);

    // An upstream that switches protocols anyway.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).is_ok_and(|n| n == 1) {
                head.push(b[0]);
            }
            let _ = s.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nTUNNEL-BYTES",
            );
        }
    });
    let gate2 = GateProc::start(GateOpts::new(&format!("http://127.0.0.1:{port}/v2")), &[&t]);
    let r = gate2.raw_request(
        "GET",
        "/scim/v2/Users",
        &[
            auth.as_bytes(),
            b"Connection: Upgrade",
            b"Upgrade: websocket",
        ],
    );
    assert_scim_error(&r, 502, None);
    assert!(!r.text().contains("TUNNEL"), "{}", r.text());
    drop(gate);
}
