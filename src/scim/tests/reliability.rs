//! Regression tests of the reliability review (issue 15): each fails on the code before its fix.

use serde_json::json;

use super::*;

fn current() -> Value {
    json!({
        "schemas": [USER],
        "id": "id1",
        "userName": "kim@acme.com",
        "externalId": "ext-abc",
        "title": "Guide",
        "active": true
    })
}

fn put_user(p: &Policy, body: &Value) -> Result<Checked, Rejection> {
    run(
        p,
        Resource::Users,
        WriteMethod::Put,
        body.to_string().as_bytes(),
        &[],
        Some(current()),
    )
}

// ------------------------------------------------ finding 4: PUT comparison and case folding

#[test]
fn kelvin_sign_is_not_a_k_in_the_put_comparison() {
    let p = policy(Dialect::Normalize);
    let mut body = current();
    // U+212A KELVIN SIGN lower-cases to 'k' under Unicode rules: a rename, not the same name.
    body["userName"] = json!("\u{212A}im@acme.com");
    let e = rejection(put_user(&p, &body));
    assert_eq!(e.reason, RejectReason::Mutability, "{e:?}");
    assert!(e.detail.contains("userName"), "{}", e.detail);
    // The same for another case-insensitive attribute that is not updatable: U+2126 OHM SIGN
    // lower-cases to U+03C9 GREEK SMALL LETTER OMEGA.
    let mut cur = current();
    cur["title"] = json!("\u{03C9}mega");
    let mut body = cur.clone();
    body["title"] = json!("\u{2126}mega");
    let r = run(
        &p,
        Resource::Users,
        WriteMethod::Put,
        body.to_string().as_bytes(),
        &[],
        Some(cur),
    );
    assert_eq!(rejection(r).reason, RejectReason::Mutability);
}

#[test]
fn put_comparison_follows_case_exact_per_attribute() {
    let p = policy(Dialect::Normalize);
    // userName is caseExact false (RFC 7643 §4.1.1): an ASCII case change is the same value.
    let mut body = current();
    body["userName"] = json!("KIM@ACME.COM");
    assert!(put_user(&p, &body).is_ok());
    // externalId is caseExact true (RFC 7643 §3.1): a case change is a change.
    let mut body = current();
    body["externalId"] = json!("EXT-ABC");
    let e = rejection(put_user(&p, &body));
    assert!(e.detail.contains("externalId"), "{}", e.detail);
    // Non-ASCII letters are never folded: a case-only change of one is refused (fail closed).
    let mut cur = current();
    cur["title"] = json!("émile");
    let mut body = cur.clone();
    body["title"] = json!("Émile");
    let r = run(
        &p,
        Resource::Users,
        WriteMethod::Put,
        body.to_string().as_bytes(),
        &[],
        Some(cur),
    );
    assert_eq!(rejection(r).reason, RejectReason::Mutability);
}
