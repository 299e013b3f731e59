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

// ----------------------------------------------------------------- finding 6: e-mail domains

fn acme() -> Vec<String> {
    vec!["acme.com".to_string()]
}

fn post_for_acme(body: Value) -> Result<Checked, Rejection> {
    run(
        &policy(Dialect::Normalize),
        Resource::Users,
        WriteMethod::Post,
        body.to_string().as_bytes(),
        &acme(),
        None,
    )
}

fn patch_for_acme(ops: Value) -> Result<Checked, Rejection> {
    run(
        &policy(Dialect::Normalize),
        Resource::Users,
        WriteMethod::Patch,
        &patch_body(ops),
        &acme(),
        None,
    )
}

#[test]
fn an_address_has_exactly_one_at_and_no_control_characters() {
    for addr in [
        "x@evil.com@acme.com",
        "x@evil.com\u{0}@acme.com",
        "x@evil.com\n@acme.com",
        "@acme.com",
        "x@",
        "x @acme.com",
    ] {
        let e = rejection(post_for_acme(json!({"schemas": [USER], "userName": addr})));
        assert_eq!(
            (e.status, e.reason),
            (403, RejectReason::Domain),
            "{addr:?}"
        );
        let e = rejection(post_for_acme(
            json!({"schemas": [USER], "userName": "u", "emails": [{"value": addr}]}),
        ));
        assert_eq!(e.reason, RejectReason::Domain, "{addr:?}");
    }
    assert!(post_for_acme(json!({"schemas": [USER], "userName": "x@acme.com"})).is_ok());
}

#[test]
fn addresses_are_checked_after_nfkc() {
    // FULLWIDTH COMMERCIAL AT: NFKC makes this victim@evil.com.
    let e = rejection(post_for_acme(
        json!({"schemas": [USER], "userName": "victim\u{FF20}evil.com"}),
    ));
    assert_eq!(e.reason, RejectReason::Domain);
    assert!(
        e.detail.contains("evil.com") && !e.detail.contains("victim"),
        "{}",
        e.detail
    );
    let e = rejection(post_for_acme(json!({"schemas": [USER], "userName": "u",
        "emails": [{"value": "victim\u{FE6B}evil.com"}]})));
    assert_eq!(e.reason, RejectReason::Domain);
    // Fullwidth letters in an allowed domain are the allowed domain.
    assert!(
        post_for_acme(json!({"schemas": [USER], "userName": "kim\u{FF20}\u{FF41}cme.com"})).is_ok()
    );
}

#[test]
fn addresses_inside_patch_value_filters_are_checked() {
    for ops in [
        json!([{"op": "add", "path": "emails[value eq \"x@evil.com\"].primary", "value": true}]),
        json!([{"op": "replace", "path": "emails[type eq \"work\" and value eq \"x@evil.com\"]", "value": {"primary": true}}]),
        json!([{"op": "replace", "value": {"emails[value eq \"x@evil.com\"].type": "work"}}]),
    ] {
        let e = rejection(patch_for_acme(ops.clone()));
        assert_eq!((e.status, e.reason), (403, RejectReason::Domain), "{ops}");
        assert!(!e.detail.contains("x@"), "{}", e.detail);
    }
    assert!(patch_for_acme(
        json!([{"op": "add", "path": "emails[value eq \"x@acme.com\"].primary", "value": true}])
    )
    .is_ok());
    // A removal writes no address.
    assert!(
        patch_for_acme(json!([{"op": "remove", "path": "emails[value eq \"x@evil.com\"]"}]))
            .is_ok()
    );
}

// ------------------------------------------------------------ finding 12: readOnly attributes

const MODES: [Dialect; 3] = [Dialect::Normalize, Dialect::Tolerate, Dialect::Strict];

#[test]
fn read_only_attributes_are_dropped_from_post_and_put_in_every_dialect() {
    let body = json!({"schemas": [USER], "userName": "a", "id": "x", "meta": {"resourceType": "User"},
        "groups": [{"value": "g1"}], "active": "True"});
    for d in MODES {
        if d == Dialect::Strict {
            // strict refuses the boolean string; without it the readOnly ones are dropped.
            let mut b = body.clone();
            b["active"] = json!(true);
            let out = rewritten(post_user(&policy(d), b));
            assert!(
                out.get("groups").is_none() && out.get("id").is_none(),
                "{out}"
            );
            continue;
        }
        let out = rewritten(post_user(&policy(d), body.clone()));
        assert!(
            out.get("groups").is_none() && out.get("meta").is_none() && out.get("id").is_none(),
            "{d:?}: {out}"
        );
        // tolerate forwards every other deviation as sent.
        let active = if d == Dialect::Tolerate {
            json!("True")
        } else {
            json!(true)
        };
        assert_eq!(out["active"], active, "{d:?}");
    }
    // A readOnly sub-attribute of a group POST too.
    let group = json!({"schemas": [GROUP], "displayName": "g", "members": [{"value": "1", "display": "Ann"}]});
    for d in MODES {
        let out = rewritten(run(
            &policy(d),
            Resource::Groups,
            WriteMethod::Post,
            group.to_string().as_bytes(),
            &[],
            None,
        ));
        assert_eq!(out["members"], json!([{"value": "1"}]), "{d:?}");
    }
}

#[test]
fn read_only_attributes_in_no_path_values_are_never_forwarded() {
    let ops =
        json!([{"op": "replace", "value": {"groups": [{"value": "g1"}], "displayName": "D"}}]);
    for d in [Dialect::Normalize, Dialect::Tolerate] {
        let out = rewritten(patch_users(&policy(d), ops.clone()));
        assert_eq!(
            out["Operations"],
            json!([{"op": "replace", "value": {"displayName": "D"}}]),
            "{d:?}"
        );
    }
    assert_eq!(
        rejection(patch_users(&policy(Dialect::Strict), ops)).reason,
        RejectReason::Dialect
    );
}

// ---------------------------------------------------- recursion audit: input decides no depth

const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

fn nested(depth: usize) -> String {
    format!(
        "{{\"schemas\":[\"{USER}\",\"{IVANTI}\"],\"userName\":\"a\",\"{IVANTI}\":{{\"x\":{}1{}}}}}",
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

#[test]
fn deep_json_is_a_400_that_says_so() {
    let p = policy(Dialect::Normalize);
    // 60 levels of arrays inside the extension (two more around them) pass.
    let ok = run(
        &p,
        Resource::Users,
        WriteMethod::Post,
        nested(60).as_bytes(),
        &[],
        None,
    );
    assert!(ok.is_ok(), "{ok:?}");
    for depth in [70, 200, 100_000] {
        let e = rejection(run(
            &p,
            Resource::Users,
            WriteMethod::Post,
            nested(depth).as_bytes(),
            &[],
            None,
        ));
        assert_eq!((e.status, e.reason), (400, RejectReason::InvalidJson));
        assert!(
            e.detail.contains("nested deeper than 64 levels"),
            "{}",
            e.detail
        );
    }
}

#[test]
fn deep_filters_and_paths_are_a_400_that_says_so() {
    let p = policy(Dialect::Normalize);
    let deep = format!(
        "{}userName eq \"a\"{}",
        "(".repeat(50_000),
        ")".repeat(50_000)
    );
    let body = json!({"schemas": [SEARCH], "filter": deep}).to_string();
    let e = match p.check_search(body.as_bytes()) {
        Err(e) => e,
        Ok(()) => panic!("a 50 000-deep filter passed"),
    };
    assert_eq!(e.reason, RejectReason::InvalidFilter);
    assert!(e.detail.contains("nested too deeply"), "{}", e.detail);
    // Value paths nested in a PATCH path.
    let path = format!(
        "emails[{}value eq \"a\"{}]",
        "value[".repeat(10_000),
        "]".repeat(10_000)
    );
    let e = rejection(patch_users(&p, json!([{"op": "remove", "path": path}])));
    assert_eq!(e.status, 400);
    assert!(e.detail.contains("nested too deeply"), "{}", e.detail);
}
