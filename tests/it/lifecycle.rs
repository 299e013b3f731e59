//! Process lifecycle and secret hygiene: SIGTERM drains and exits within `server.shutdown_grace`
//! (3 s in the harness config), and no plaintext token ends up in a file the gate writes or in
//! its metrics.

use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::{all_files_text, eventually, token_file, GateOpts, GateProc, TestToken};
use scim_demo::DemoServer;

/// The harness config's `shutdown_grace`.
const GRACE: Duration = Duration::from_secs(3);

fn sigterm(pid: u32) {
    let pid = libc::pid_t::try_from(pid).expect("pid");
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "kill");
}

/// Waits up to `limit` for the child to exit; returns its exit status and when it exited.
fn wait_exit(child: &mut Child, limit: Duration) -> Option<(std::process::ExitStatus, Instant)> {
    let mut status = None;
    eventually(limit, || match child.try_wait() {
        Ok(Some(s)) => {
            status = Some((s, Instant::now()));
            true
        }
        _ => false,
    });
    status
}

#[test]
fn sigterm_with_no_traffic_exits_within_the_grace() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let t = TestToken::new("tok_life");
    let mut gate = GateProc::start(GateOpts::new(&up.base_url()), &[&t]);
    assert_eq!(
        gate.call("GET", "/scim/v2/Users", Some(&t.plaintext), None)
            .status,
        200
    );
    let mut child = gate.child.take().expect("child");
    let sent = Instant::now();
    sigterm(child.id());
    let exited = wait_exit(&mut child, GRACE);
    let Some((status, at)) = exited else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("still running {GRACE:?} after SIGTERM: {}", gate.log());
    };
    assert!(status.success(), "exit status {status}: {}", gate.log());
    assert!(at - sent < GRACE, "exited after {:?}", at - sent);
}

#[test]
fn sigterm_lets_an_in_flight_request_finish_then_exits_within_the_grace() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let t = Arc::new(TestToken::new("tok_life"));
    let mut gate = GateProc::start(GateOpts::new(&up.base_url()), &[&t]);
    up.dir.set_delay(Duration::from_secs(1));
    let addr = gate.addr();
    let port = gate.port;
    let token = t.plaintext.clone();
    let slow = std::thread::spawn(move || {
        let raw = format!(
            "GET /scim/v2/Users HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
        );
        crate::harness::send(addr, raw.as_bytes())
    });
    // The request is in flight once the upstream has it (it records before its delay).
    assert!(
        eventually(Duration::from_secs(5), || !up.dir.received().is_empty()),
        "the slow request never arrived"
    );
    let mut child = gate.child.take().expect("child");
    let sent = Instant::now();
    sigterm(child.id());
    // New connections are no longer accepted while the old request drains.
    assert!(
        eventually(Duration::from_secs(2), || std::net::TcpStream::connect(
            addr
        )
        .is_err()),
        "the gate still accepts connections after SIGTERM"
    );
    let r = slow.join().expect("client thread");
    assert_eq!(
        r.status,
        200,
        "the in-flight request completed: {}",
        r.text()
    );
    assert_eq!(r.json()["totalResults"], 0);
    let exited = wait_exit(&mut child, GRACE.saturating_sub(sent.elapsed()));
    let Some((status, at)) = exited else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("still running {GRACE:?} after SIGTERM: {}", gate.log());
    };
    assert!(status.success(), "exit status {status}: {}", gate.log());
    assert!(at - sent < GRACE, "exited after {:?}", at - sent);
    assert_eq!(up.dir.received().len(), 1);
}

#[test]
fn plaintext_tokens_appear_in_no_file_and_no_metric() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let good = TestToken::new("tok_good");
    let mut inactive = TestToken::new("tok_inactive");
    inactive.status = "inactive".into();
    inactive.idp = "entra".into();
    let mut expired = TestToken::new("tok_expired");
    expired.expires_at = Some("2020-01-01T00:00:00Z".into());
    expired.idp = "google".into();
    let mut added = TestToken::new("tok_added");
    added.idp = "onelogin".into();
    let unknown = TestToken::new("tok_unknown");
    let mut opts = GateOpts::new(&up.base_url());
    // The most talkative log level: debug output must not carry secrets either.
    opts.env = vec![("RUST_LOG".into(), "trace".into())];
    let gate = GateProc::start(opts, &[&good, &inactive, &expired]);

    let body =
        r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"sec@acme.com"}"#;
    assert_eq!(
        gate.call(
            "GET",
            "/scim/v2/Users?filter=userName%20eq%20%22sec%40acme.com%22",
            Some(&good.plaintext),
            None
        )
        .status,
        200
    );
    assert_eq!(
        gate.call("POST", "/scim/v2/Users", Some(&good.plaintext), Some(body))
            .status,
        201
    );
    for t in [&inactive, &expired, &unknown] {
        assert_eq!(
            gate.call("GET", "/scim/v2/Users", Some(&t.plaintext), None)
                .status,
            401
        );
    }
    let mut typo = good.plaintext.clone();
    typo.pop();
    typo.push('#');
    assert_eq!(
        gate.call("GET", "/scim/v2/Users", Some(&typo), None).status,
        401
    );
    let two = format!("Authorization: Bearer {}", good.plaintext);
    assert_eq!(
        gate.raw_request("GET", "/scim/v2/Users", &[two.as_bytes(), two.as_bytes()])
            .status,
        400
    );
    assert_eq!(
        gate.call(
            "GET",
            "/scim/v2/Users/../Groups",
            Some(&good.plaintext),
            None
        )
        .status,
        400
    );
    // A hot reload that adds a token, then its use.
    std::fs::write(
        gate.path("tokens.yaml"),
        token_file(&[&good, &inactive, &expired, &added]),
    )
    .expect("write");
    assert!(eventually(Duration::from_secs(1), || {
        gate.call("GET", "/scim/v2/Groups", Some(&added.plaintext), None)
            .status
            == 200
    }));
    // Upstream failure paths log too.
    up.dir.set_delay(Duration::from_secs(3));
    assert_eq!(
        gate.call("GET", "/scim/v2/Users", Some(&good.plaintext), None)
            .status,
        504
    );

    let metrics = gate.metrics();
    let files = all_files_text(gate.dir.path());
    assert!(
        files.contains("tok_good"),
        "the log is there and names token ids: {}",
        gate.log()
    );
    for t in [&good, &inactive, &expired, &added, &unknown] {
        assert!(
            !files.contains(&t.plaintext),
            "{}'s plaintext is in a file of the gate's folder, here (redacted):\n{}",
            t.id,
            lines_with(&files, &t.plaintext)
        );
        // Half a token is a leak as well (e.g. a log that truncates).
        let half = &t.plaintext[..t.plaintext.len() / 2];
        assert!(
            !files.contains(half),
            "part of {}'s plaintext is in a file:\n{}",
            t.id,
            lines_with(&files, half)
        );
        assert!(
            !metrics.contains(half),
            "{}'s plaintext is in /metrics",
            t.id
        );
    }
    assert!(!files.contains(&typo[..typo.len() / 2]));
    // Query values carry user names; the access log keeps none. (Pingora's own debug/trace
    // output does show URIs and bodies; only the token is withheld there.)
    let access: String = gate
        .flushed_log()
        .lines()
        .filter(|l| l.contains(" access]"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        access.lines().count() >= 8,
        "one access line per request:\n{access}"
    );
    assert!(
        !access.contains("sec%40acme.com")
            && !access.contains("sec@acme.com")
            && !access.contains("filter"),
        "a query value is in the access log:\n{access}"
    );
}

/// The lines of `text` that contain `secret`, with it replaced, for a failure message.
fn lines_with(text: &str, secret: &str) -> String {
    text.lines()
        .filter(|l| l.contains(secret))
        .map(|l| l.replace(secret, "<SECRET>"))
        .map(|l| l.chars().take(400).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}
