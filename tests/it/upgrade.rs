//! Graceful upgrade (`run --upgrade`, docs/operations.md#upgrade): a new gate started with `--upgrade` receives the
//! listeners when the old one gets SIGQUIT, and requests keep working across the handover.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{eventually, GateOpts, GateProc, TestToken, BIN};
use scim_demo::DemoServer;

#[test]
fn sigquit_hands_the_listeners_to_the_new_binary() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let t = TestToken::new("tok_up");
    let mut old = GateProc::start(GateOpts::new(&up.base_url()), &[&t]);
    assert_eq!(
        old.call("GET", "/scim/v2/Users", Some(&t.plaintext), None)
            .status,
        200
    );

    let log = std::fs::File::create(old.path("new-gate.log")).expect("log");
    let mut new = Command::new(BIN)
        .args(["run", "--upgrade", "-c"])
        .arg(&old.config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn new gate");
    // The new process waits on the upgrade socket; give it a moment to listen there.
    let upgrade_sock = old.path("scim-gate-upgrade.sock");
    assert!(
        eventually(Duration::from_secs(10), || upgrade_sock.exists()),
        "new gate never opened the upgrade socket"
    );
    // SAFETY: plain signal delivery to a child we own.
    unsafe { libc::kill(old.pid() as i32, libc::SIGQUIT) };

    // The old process exits after the handover; the port keeps answering all along.
    let mut old_child = old.child.take().expect("old gate");
    let mut answered = 0;
    let exited = eventually(Duration::from_secs(15), || {
        let r = old.call("GET", "/scim/v2/Users", Some(&t.plaintext), None);
        assert_eq!(
            r.status,
            200,
            "a request during the handover failed: {}",
            r.text()
        );
        answered += 1;
        matches!(old_child.try_wait(), Ok(Some(_)))
    });
    assert!(exited, "the old gate did not exit after SIGQUIT");
    assert!(answered > 0);
    // Now only the new process serves the port.
    let r = old.call("GET", "/scim/v2/Users", Some(&t.plaintext), None);
    assert_eq!(r.status, 200);
    let r = old.call("GET", "/scim/v2/Users", Some("wrong"), None);
    assert_eq!(r.status, 401);
    assert!(
        matches!(new.try_wait(), Ok(None)),
        "the new gate must still run"
    );
    let _ = new.kill();
    let _ = new.wait();
}
