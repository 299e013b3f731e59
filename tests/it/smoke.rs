//! The shortest path through the real binary: a token passes, no token does not.

use crate::harness::{GateOpts, GateProc, TestToken};
use scim_demo::DemoServer;

#[test]
fn a_valid_token_reaches_the_directory_and_a_missing_one_does_not() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let t = TestToken::new("tok_smoke");
    let gate = GateProc::start(GateOpts::new(&up.base_url()), &[&t]);
    let r = gate.call("GET", "/scim/v2/Users", Some(&t.plaintext), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["totalResults"], 0);
    let r = gate.call("GET", "/scim/v2/Users", None, None);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"scim\""));
    assert_eq!(
        up.dir.received().len(),
        1,
        "only the authenticated request reached the upstream"
    );
}
