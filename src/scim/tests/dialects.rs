//! Each known IdP deviation under normalize, tolerate and strict.

use serde_json::json;

use super::*;

const MODES: [Dialect; 3] = [Dialect::Normalize, Dialect::Tolerate, Dialect::Strict];

/// normalize rewrites to `expected`, tolerate forwards unchanged, strict rejects (dialect).
fn check_deviation(resource: Resource, ops: Value, expected_ops: Value) {
    let body = patch_body(ops);
    for d in MODES {
        let r = run(&policy(d), resource, WriteMethod::Patch, &body, &[], None);
        match d {
            Dialect::Normalize => {
                assert_eq!(rewritten(r)["Operations"], expected_ops);
            }
            Dialect::Tolerate => assert_eq!(r.map(|c| c.body), Ok(None)),
            Dialect::Strict => {
                let e = rejection(r);
                assert_eq!(e.reason, RejectReason::Dialect, "{e:?}");
                assert_eq!(e.status, 400);
                assert!(e.detail.contains("Operations[0]"), "{}", e.detail);
            }
        }
    }
}

#[test]
fn capitalised_op() {
    check_deviation(
        Resource::Users,
        json!([{"op": "Replace", "path": "displayName", "value": "x"}]),
        json!([{"op": "replace", "path": "displayName", "value": "x"}]),
    );
}

#[test]
fn boolean_as_string_in_path_value() {
    check_deviation(
        Resource::Users,
        json!([{"op": "replace", "path": "active", "value": "False"}]),
        json!([{"op": "replace", "path": "active", "value": false}]),
    );
    check_deviation(
        Resource::Users,
        json!([{"op": "replace", "path": "emails[type eq \"work\"].primary", "value": "true"}]),
        json!([{"op": "replace", "path": "emails[type eq \"work\"].primary", "value": true}]),
    );
}

#[test]
fn boolean_as_string_in_no_path_value() {
    check_deviation(
        Resource::Users,
        json!([{"op": "replace", "value": {"active": "TRUE"}}]),
        json!([{"op": "replace", "value": {"active": true}}]),
    );
}

#[test]
fn boolean_strings_only_where_schema_says_boolean() {
    // A string attribute keeps its "true" text, in every mode.
    for d in MODES {
        let r = patch_users(
            &policy(d),
            json!([{"op": "replace", "path": "displayName", "value": "True"}]),
        );
        assert_eq!(
            r,
            Ok(Checked {
                body: None,
                destructive: 0
            }),
            "{d:?}"
        );
    }
}

#[test]
fn boolean_as_string_in_post() {
    let body = json!({"schemas": [USER], "userName": "a", "active": "True", "emails": [{"value": "a@b.c", "primary": "false"}]});
    let out = rewritten(post_user(&policy(Dialect::Normalize), body.clone()));
    assert_eq!(out["active"], json!(true));
    assert_eq!(out["emails"][0]["primary"], json!(false));
    assert_eq!(
        post_user(&policy(Dialect::Tolerate), body.clone()),
        Ok(Checked {
            body: None,
            destructive: 0
        })
    );
    assert_eq!(
        rejection(post_user(&policy(Dialect::Strict), body)).reason,
        RejectReason::Dialect
    );
}

#[test]
fn member_removal_with_value_list() {
    check_deviation(
        Resource::Groups,
        json!([{"op": "Remove", "path": "members", "value": [{"value": "u1"}, {"value": "u\"2"}]}]),
        json!([
            {"op": "remove", "path": "members[value eq \"u1\"]"},
            {"op": "remove", "path": "members[value eq \"u\\\"2\"]"}
        ]),
    );
    // The rewritten paths parse back to the ids.
    let out = rewritten(patch_groups(
        &policy(Dialect::Normalize),
        json!([{"op": "remove", "path": "members", "value": [{"value": "u\"2"}]}]),
    ));
    let path = out["Operations"][0]["path"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let parsed = parse_path(&path, &[]);
    assert!(
        matches!(parsed, Ok(PatchPath { filter: Some(Filter::Compare { value: Literal::String(ref s), .. }), .. }) if s == "u\"2")
    );
}

#[test]
fn remove_with_other_values_is_refused() {
    for d in MODES {
        let e = rejection(patch_groups(
            &policy(d),
            json!([{"op": "remove", "path": "members", "value": "u1"}]),
        ));
        assert_eq!(e.reason, RejectReason::Schema, "{d:?}");
        let e = rejection(patch_groups(
            &policy(d),
            json!([{"op": "remove", "path": "members", "value": []}]),
        ));
        assert_eq!(e.reason, RejectReason::Schema, "{d:?}");
    }
}

fn manager_policy(d: Dialect) -> Policy {
    let mut spec = PolicySpec {
        dialect: d,
        ..PolicySpec::default()
    };
    spec.extensions[0].1 = ExtensionAllow::All;
    spec.users_updatable.push(ENT.into());
    match Policy::compile(&spec) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn manager_as_bare_string() {
    let path = format!("{ENT}:manager");
    let ops = json!([{"op": "replace", "path": path, "value": "boss-id"}]);
    let body = patch_body(ops);
    let r = run(
        &manager_policy(Dialect::Normalize),
        Resource::Users,
        WriteMethod::Patch,
        &body,
        &[],
        None,
    );
    assert_eq!(
        rewritten(r)["Operations"][0]["value"],
        json!({"value": "boss-id"})
    );
    let r = run(
        &manager_policy(Dialect::Tolerate),
        Resource::Users,
        WriteMethod::Patch,
        &body,
        &[],
        None,
    );
    assert_eq!(
        r,
        Ok(Checked {
            body: None,
            destructive: 0
        })
    );
    let r = run(
        &manager_policy(Dialect::Strict),
        Resource::Users,
        WriteMethod::Patch,
        &body,
        &[],
        None,
    );
    assert_eq!(rejection(r).reason, RejectReason::Dialect);
    // In a POST too.
    let post = json!({"schemas": [USER, ENT], "userName": "a", ENT: {"manager": "boss-id"}});
    let out = rewritten(post_user(&manager_policy(Dialect::Normalize), post));
    assert_eq!(out[ENT]["manager"], json!({"value": "boss-id"}));
}

#[test]
fn no_path_value_with_path_keys() {
    check_deviation(
        Resource::Users,
        json!([{"op": "replace", "value": {"displayName": "D", "name.givenName": "A", "emails[type eq \"work\"].value": "a@b.c"}}]),
        json!([
            {"op": "replace", "value": {"displayName": "D"}},
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "a@b.c"},
            {"op": "replace", "path": "name.givenName", "value": "A"}
        ]),
    );
    check_deviation(
        Resource::Users,
        json!([{"op": "replace", "value": {"name.givenName": "A", format!("{ENT}:department"): "X"}}]),
        json!([
            {"op": "replace", "path": "name.givenName", "value": "A"},
            {"op": "replace", "path": format!("{ENT}:department"), "value": "X"}
        ]),
    );
}

#[test]
fn path_keys_are_still_policed() {
    for d in [Dialect::Normalize, Dialect::Tolerate] {
        let e = rejection(patch_users(
            &policy(d),
            json!([{"op": "replace", "value": {"name.formatted": "A"}}]),
        ));
        assert_eq!(e.reason, RejectReason::Mutability, "{d:?}");
    }
}

#[test]
fn add_on_value_filter() {
    let ops = json!([{"op": "add", "path": "emails[type eq \"work\"].value", "value": "a@b.c"}]);
    for d in [Dialect::Normalize, Dialect::Tolerate] {
        // normalize keeps it as sent: only the upstream knows whether the filter matches.
        assert_eq!(
            patch_users(&policy(d), ops.clone()).map(|c| c.body),
            Ok(None),
            "{d:?}"
        );
    }
    let e = rejection(patch_users(&policy(Dialect::Strict), ops));
    assert_eq!(e.reason, RejectReason::Dialect);
}

#[test]
fn read_only_id_in_no_path_value() {
    let ops = json!([{"op": "replace", "value": {"id": "g1", "displayName": "New"}}]);
    let expected = json!([{"op": "replace", "value": {"displayName": "New"}}]);
    // normalize and (since issue 15 finding 12) tolerate remove it; strict refuses it.
    for d in [Dialect::Normalize, Dialect::Tolerate] {
        let r = patch_groups(&policy(d), ops.clone());
        assert_eq!(rewritten(r)["Operations"], expected, "{d:?}");
    }
    let e = rejection(patch_groups(&policy(Dialect::Strict), ops));
    assert_eq!(e.reason, RejectReason::Dialect, "{e:?}");
    assert!(e.detail.contains("Operations[0]"), "{}", e.detail);
}

#[test]
fn rfc_form_passes_strict_untouched() {
    let ops = json!([
        {"op": "replace", "path": "active", "value": false},
        {"op": "add", "path": "emails", "value": [{"value": "a@b.c", "type": "work", "primary": true}]},
        {"op": "replace", "value": {"displayName": "x", ENT: {"department": "y"}}}
    ]);
    for d in MODES {
        assert_eq!(
            patch_users(&policy(d), ops.clone()).map(|c| c.body),
            Ok(None),
            "{d:?}"
        );
    }
}

#[test]
fn entra_adscim_group_schema_is_tolerated_and_removed_by_normalize() {
    let adscim = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";
    let body = json!({"schemas": [GROUP, adscim], "displayName": "Group1DisplayName", "externalId": "8aa1a0c0"})
        .to_string();
    for d in [Dialect::Tolerate, Dialect::Strict] {
        let r = run(
            &policy(d),
            Resource::Groups,
            WriteMethod::Post,
            body.as_bytes(),
            &[],
            None,
        );
        assert_eq!(
            r,
            Ok(Checked {
                body: None,
                destructive: 0
            }),
            "{d:?} forwards it as sent"
        );
    }
    let r = run(
        &policy(Dialect::Normalize),
        Resource::Groups,
        WriteMethod::Post,
        body.as_bytes(),
        &[],
        None,
    );
    let out: Value =
        serde_json::from_slice(&r.expect("accepted").body.expect("rewritten")).expect("json");
    assert_eq!(out["schemas"], json!([GROUP]));
    assert_eq!(out["displayName"], "Group1DisplayName");
}
