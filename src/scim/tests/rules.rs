//! The rules of `docs/scim-checks.md` under the default policy.

use serde_json::json;

use super::*;

fn n() -> Policy {
    policy(Dialect::Normalize)
}

fn user(extra: Value) -> Value {
    let mut u = json!({"schemas": [USER], "userName": "bjensen@acme.com"});
    if let (Some(o), Value::Object(e)) = (u.as_object_mut(), extra) {
        o.extend(e);
    }
    u
}

#[test]
fn body_must_be_a_json_object() {
    let p = n();
    for body in [&b"not json"[..], b"[1]", b"\"s\"", b"{", b"\xff\xfe{}"] {
        let r = run(&p, Resource::Users, WriteMethod::Post, body, &[], None);
        let e = rejection(r);
        assert_eq!(e.reason, RejectReason::InvalidJson);
        assert_eq!(e.scim_type, Some("invalidSyntax"));
        assert_eq!(e.status, 400);
    }
}

#[test]
fn duplicate_names_even_in_other_case_are_rejected() {
    let p = n();
    let body = br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a","UserName":"b"}"#;
    let e = rejection(run(&p, Resource::Users, WriteMethod::Post, body, &[], None));
    assert_eq!(e.reason, RejectReason::InvalidJson);
    assert!(e.detail.contains("duplicate"), "{}", e.detail);
    let body = br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a","userName":"b"}"#;
    assert!(run(&p, Resource::Users, WriteMethod::Post, body, &[], None).is_err());
}

#[test]
fn schemas_required_and_core_urn_case_insensitive() {
    let p = n();
    let e = rejection(post_user(&p, json!({"userName": "a"})));
    assert_eq!(e.reason, RejectReason::Schema);
    let e = rejection(post_user(&p, json!({"schemas": [GROUP], "userName": "a"})));
    assert_eq!(e.reason, RejectReason::Schema);
    assert!(post_user(
        &p,
        json!({"schemas": ["URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER"], "username": "a"})
    )
    .is_ok());
}

#[test]
fn user_name_and_display_name_required() {
    let p = n();
    let e = rejection(post_user(
        &p,
        json!({"schemas": [USER], "displayName": "x"}),
    ));
    assert!(e.detail.contains("userName"), "{}", e.detail);
    let e = rejection(run(
        &p,
        Resource::Groups,
        WriteMethod::Post,
        json!({"schemas": [GROUP]}).to_string().as_bytes(),
        &[],
        None,
    ));
    assert!(e.detail.contains("displayName"), "{}", e.detail);
}

#[test]
fn types_are_checked_and_named() {
    let p = n();
    for (extra, name) in [
        (json!({"active": 1}), "active"),
        (json!({"displayName": true}), "displayName"),
        (json!({"emails": "a@acme.com"}), "emails"),
        (json!({"emails": [{"value": 5}]}), "emails[0].value"),
        (json!({"name": "Barbara"}), "name"),
        (json!({"name": {"givenName": ["a"]}}), "name.givenName"),
        (json!({"emails": [{"primary": "yes"}]}), "emails[0].primary"),
    ] {
        let e = rejection(post_user(&p, user(extra.clone())));
        assert_eq!(e.reason, RejectReason::Schema, "{extra}");
        assert_eq!(e.scim_type, Some("invalidValue"));
        assert!(e.detail.contains(name), "{} should name {name}", e.detail);
    }
}

#[test]
fn onelogin_templates_are_read_in_their_rfc_form() {
    let body = json!({
        "schemas": ["urn:scim:schemas:core:1.0", "urn:scim:schemas:extension:enterprise:1.0"],
        "userName": "jdoe@acme.com",
        "emails": {"value": "jdoe@acme.com", "type": "work", "primary": true},
        "urn:scim:schemas:extension:enterprise:1.0": {
            "department": "Eng",
            "manager": {"managerId": "12345", "displayName": "Ann Boss"}
        }
    });
    let all_of = |dialect| match Policy::compile(&PolicySpec {
        dialect,
        extensions: vec![
            (ENT.to_string(), ExtensionAllow::All),
            (IVANTI.to_string(), ExtensionAllow::All),
        ],
        ..PolicySpec::default()
    }) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    // normalize: rewritten to RFC 7643 (2.0 URNs, an emails array, manager.value).
    let v = rewritten(post_user(&all_of(Dialect::Normalize), body.clone()));
    assert_eq!(v["schemas"], json!([USER, ENT]));
    assert_eq!(v["emails"][0]["value"], "jdoe@acme.com");
    assert_eq!(v[ENT]["manager"]["value"], "12345");
    assert!(v[ENT]["manager"].get("managerId").is_none());
    assert!(v.get("urn:scim:schemas:extension:enterprise:1.0").is_none());
    // tolerate: checked in that form, forwarded as sent (without manager.displayName, which
    // as a readOnly sub-attribute is removed under every dialect, and a removal re-encodes the
    // body in its checked form).
    let mut plain = body.clone();
    plain["urn:scim:schemas:extension:enterprise:1.0"]["manager"] = json!({"managerId": "12345"});
    let r = post_user(&all_of(Dialect::Tolerate), plain);
    assert_eq!(r.map(|c| c.body), Ok(None));
    // strict: refused as a dialect deviation.
    let e = rejection(post_user(&all_of(Dialect::Strict), body));
    assert_eq!(e.reason, RejectReason::Dialect);
    // The domains still hold for an address inside the single object.
    let evil = json!({"schemas": ["urn:scim:schemas:core:1.0"], "userName": "x",
        "emails": {"value": "eve@evil.com"}});
    let r = run(
        &n(),
        Resource::Users,
        WriteMethod::Post,
        evil.to_string().as_bytes(),
        &["acme.com".to_string()],
        None,
    );
    assert_eq!(rejection(r).reason, RejectReason::Domain);
}

#[test]
fn unknown_attributes_are_rejected() {
    let p = n();
    let e = rejection(post_user(&p, user(json!({"favouriteColour": "red"}))));
    assert!(e.detail.contains("favouriteColour"));
    let e = rejection(post_user(&p, user(json!({"name": {"nickname": "x"}}))));
    assert!(e.detail.contains("name.nickname"), "{}", e.detail);
}

#[test]
fn extension_object_must_be_listed_in_schemas() {
    let p = n();
    let e = rejection(post_user(&p, user(json!({ENT: {"department": "R&D"}}))));
    assert_eq!(e.reason, RejectReason::Schema);
    let ok = json!({"schemas": [USER, ENT], "userName": "a", ENT: {"department": "R&D"}});
    assert!(post_user(&p, ok).is_ok());
}

#[test]
fn extension_attributes_outside_policy_rejected_everywhere() {
    let p = n();
    let body = json!({"schemas": [USER, ENT], "userName": "a", ENT: {"employeeNumber": "7"}});
    let e = rejection(post_user(&p, body));
    assert_eq!(e.reason, RejectReason::Extension);
    assert!(e.detail.contains("employeeNumber"));
    let e = rejection(patch_users(
        &p,
        json!([{"op": "add", "path": format!("{ENT}:costCenter"), "value": "1"}]),
    ));
    assert_eq!(e.reason, RejectReason::Extension);
    let other = "urn:example:custom:2.0:User";
    let body = json!({"schemas": [USER, other], "userName": "a", other: {"x": 1}});
    assert_eq!(
        rejection(post_user(&p, body)).reason,
        RejectReason::Extension
    );
    // The ivanti extension allows everything, and is updatable as a whole.
    let body =
        json!({"schemas": [USER, IVANTI], "userName": "a", IVANTI: {"Anything": {"deep": [1]}}});
    assert!(post_user(&p, body).is_ok());
    assert!(patch_users(
        &p,
        json!([{"op": "replace", "path": format!("{IVANTI}:Cost"), "value": 3}])
    )
    .is_ok());
}

#[test]
fn read_only_attributes_ignored_and_stripped_in_every_dialect() {
    let body = user(json!({"id": "x", "meta": {"resourceType": "User"}, "groups": []}));
    let out = rewritten(post_user(&n(), body.clone()));
    assert!(out.get("id").is_none() && out.get("meta").is_none() && out.get("groups").is_none());
    assert_eq!(out["userName"], "bjensen@acme.com");
    // tolerate and strict drop them too (RFC 7643 §2.2: ignored, not an error; issue 15
    // finding 12: they used to be forwarded as sent).
    for d in [Dialect::Tolerate, Dialect::Strict] {
        let out = rewritten(post_user(&policy(d), body.clone()));
        assert!(
            out.get("id").is_none() && out.get("meta").is_none() && out.get("groups").is_none(),
            "{d:?}: {out}"
        );
    }
    // Even ill-typed readOnly values are ignored, not checked.
    assert!(post_user(&n(), user(json!({"meta": 5}))).is_ok());
}

#[test]
fn members_display_is_read_only_in_post() {
    let body = json!({"schemas": [GROUP], "displayName": "g", "members": [{"value": "1", "display": "Ann"}]});
    let out = rewritten(run(
        &n(),
        Resource::Groups,
        WriteMethod::Post,
        body.to_string().as_bytes(),
        &[],
        None,
    ));
    assert_eq!(out["members"], json!([{"value": "1"}]));
}

#[test]
fn untouched_body_is_forwarded_byte_exact() {
    let p = n();
    let body = br#"{ "schemas" : ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName":"a" }"#;
    let r = run(&p, Resource::Users, WriteMethod::Post, body, &[], None);
    assert_eq!(
        r,
        Ok(Checked {
            body: None,
            destructive: 0
        })
    );
}

#[test]
fn patch_targets_must_be_updatable() {
    let p = n();
    for path in [
        "userName",
        "title",
        "externalId",
        "name.formatted",
        "name",
        "password",
        "name.middleName",
    ] {
        let e = rejection(patch_users(
            &p,
            json!([{"op": "replace", "path": path, "value": "x"}]),
        ));
        assert_eq!(e.reason, RejectReason::Mutability, "{path}: {e:?}");
        assert_eq!(e.scim_type, Some("mutability"));
        assert!(e.detail.contains(path), "{} should name {path}", e.detail);
    }
    for (path, value) in [
        ("displayName", json!("x")),
        ("name.givenName", json!("x")),
        ("NAME.FAMILYNAME", json!("x")),
        ("active", json!(false)),
        ("emails", json!([{"value": "a@b.c"}])),
        (r#"emails[type eq "work"].value"#, json!("a@b.c")),
        (r#"emails[type eq "work"]"#, json!({"value": "a@b.c"})),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
            json!("R&D"),
        ),
    ] {
        let r = patch_users(&p, json!([{"op": "replace", "path": path, "value": value}]));
        assert!(r.is_ok(), "{path}: {r:?}");
    }
}

#[test]
fn name_object_allowed_when_each_sub_attribute_is() {
    let p = n();
    let ok =
        json!([{"op": "replace", "path": "name", "value": {"givenName": "A", "familyName": "B"}}]);
    assert!(patch_users(&p, ok).is_ok());
    let bad =
        json!([{"op": "replace", "path": "name", "value": {"givenName": "A", "formatted": "A B"}}]);
    assert_eq!(
        rejection(patch_users(&p, bad)).reason,
        RejectReason::Mutability
    );
    // Removing the whole name would remove non-updatable sub-attributes.
    let rm = json!([{"op": "remove", "path": "name"}]);
    assert_eq!(
        rejection(patch_users(&p, rm)).reason,
        RejectReason::Mutability
    );
    let nopath = json!([{"op": "replace", "value": {"name": {"givenName": "A"}}}]);
    assert!(patch_users(&p, nopath).is_ok());
}

#[test]
fn patch_structure_errors() {
    let p = n();
    let e = rejection(patch_users(&p, json!([{"op": "remove"}])));
    assert_eq!(
        (e.reason, e.scim_type),
        (RejectReason::NoTarget, Some("noTarget"))
    );
    let e = rejection(patch_users(
        &p,
        json!([{"op": "add", "path": "displayName"}]),
    ));
    assert_eq!(e.reason, RejectReason::Schema);
    let e = rejection(patch_users(
        &p,
        json!([{"op": "move", "path": "displayName", "value": "x"}]),
    ));
    assert_eq!(e.reason, RejectReason::Schema);
    let e = rejection(patch_users(&p, json!([])));
    assert_eq!(e.reason, RejectReason::Schema);
    let e = rejection(patch_users(
        &p,
        json!([{"op": "replace", "path": "emails[type eq work]", "value": "x"}]),
    ));
    assert_eq!(
        (e.reason, e.scim_type),
        (RejectReason::InvalidPath, Some("invalidPath"))
    );
    assert!(e.detail.contains("emails[type eq work]"), "{}", e.detail);
    let e = rejection(patch_users(
        &p,
        json!([{"op": "replace", "path": "nosuch", "value": "x"}]),
    ));
    assert_eq!(e.reason, RejectReason::InvalidPath);
    let body = json!({"schemas": [USER], "Operations": [{"op": "add", "path": "displayName", "value": "x"}]});
    let e = rejection(run(
        &p,
        Resource::Users,
        WriteMethod::Patch,
        body.to_string().as_bytes(),
        &[],
        None,
    ));
    assert_eq!(e.reason, RejectReason::Schema);
    let e = rejection(patch_users(
        &p,
        json!([{"op": "replace", "path": "id", "value": "x"}]),
    ));
    assert_eq!(e.reason, RejectReason::Mutability);
}

#[test]
fn patch_value_types_checked() {
    let p = n();
    let e = rejection(patch_users(
        &p,
        json!([{"op": "replace", "path": "active", "value": "maybe"}]),
    ));
    assert_eq!(e.reason, RejectReason::Schema);
    let e = rejection(patch_users(
        &p,
        json!([{"op": "replace", "path": "name.givenName", "value": 3}]),
    ));
    assert_eq!(e.reason, RejectReason::Schema);
}

#[test]
fn no_path_keys_are_checked_as_paths() {
    let p = n();
    let e = rejection(patch_users(
        &p,
        json!([{"op": "replace", "value": {"displayName": "x", "title": "y"}}]),
    ));
    assert!(e.detail.contains("title"), "{}", e.detail);
    let ext = json!([{"op": "replace", "value": {ENT: {"department": "x"}}}]);
    assert!(patch_users(&p, ext).is_ok());
    let ext = json!([{"op": "replace", "value": {ENT: {"division": "x"}}}]);
    assert_eq!(
        rejection(patch_users(&p, ext)).reason,
        RejectReason::Extension
    );
    let e = rejection(patch_users(&p, json!([{"op": "replace", "value": "x"}])));
    assert_eq!(e.reason, RejectReason::Schema);
}

#[test]
fn groups_members_and_display_name() {
    let p = n();
    assert!(patch_groups(
        &p,
        json!([{"op": "add", "path": "members", "value": [{"value": "u1"}]}])
    )
    .is_ok());
    assert!(patch_groups(
        &p,
        json!([{"op": "remove", "path": "members[value eq \"u1\"]"}])
    )
    .is_ok());
    let e = rejection(patch_groups(
        &p,
        json!([{"op": "replace", "path": "externalId", "value": "x"}]),
    ));
    assert_eq!(e.reason, RejectReason::Mutability);
    let e = rejection(patch_groups(
        &p,
        json!([{"op": "replace", "path": "emails", "value": []}]),
    ));
    assert_eq!(e.reason, RejectReason::InvalidPath);
}

#[test]
fn domains_checked_on_post_put_patch_and_named_without_address() {
    let p = n();
    let d = vec!["acme.com".to_string()];
    let post = |body: Value| {
        run(
            &p,
            Resource::Users,
            WriteMethod::Post,
            body.to_string().as_bytes(),
            &d,
            None,
        )
    };
    assert!(post(user(json!({"emails": [{"value": "x@ACME.com"}]}))).is_ok());
    let e = rejection(post(
        json!({"schemas": [USER], "userName": "secret.person@evil.com"}),
    ));
    assert_eq!((e.status, e.reason), (403, RejectReason::Domain));
    assert!(
        e.detail.contains("evil.com") && !e.detail.contains("secret.person"),
        "{}",
        e.detail
    );
    let e = rejection(post(user(
        json!({"emails": [{"value": "a@acme.com"}, {"value": "b@evil.com"}]}),
    )));
    assert!(e.detail.contains("emails[1].value"), "{}", e.detail);
    assert!(post(json!({"schemas": [USER], "userName": "plainname"})).is_ok());
    let patch = |ops: Value| {
        run(
            &p,
            Resource::Users,
            WriteMethod::Patch,
            &patch_body(ops),
            &d,
            None,
        )
    };
    for ops in [
        json!([{"op": "add", "path": "emails", "value": [{"value": "a@evil.com"}]}]),
        json!([{"op": "add", "path": "emails", "value": {"value": "a@evil.com"}}]),
        json!([{"op": "replace", "path": "emails[type eq \"work\"]", "value": {"value": "a@evil.com"}}]),
        json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "a@evil.com"}]),
        json!([{"op": "replace", "value": {"emails": [{"value": "a@evil.com"}]}}]),
        json!([{"op": "replace", "value": {"emails[type eq \"work\"].value": "a@evil.com"}}]),
    ] {
        assert_eq!(
            rejection(patch(ops.clone())).reason,
            RejectReason::Domain,
            "{ops}"
        );
    }
    assert!(patch(
        json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "a@acme.com"}])
    )
    .is_ok());
    // Without domains, anything goes.
    assert!(patch_users(
        &p,
        json!([{"op": "add", "path": "emails", "value": [{"value": "a@evil.com"}]}])
    )
    .is_ok());
}

fn current_user() -> Value {
    json!({
        "schemas": [USER, ENT],
        "id": "id1",
        "userName": "BJensen@acme.com",
        "externalId": "ext-1",
        "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Ms. Barbara Jensen"},
        "title": "Tour Guide",
        "emails": [{"value": "a@acme.com", "type": "work", "primary": true}, {"value": "b@acme.com", "type": "home"}],
        "active": true,
        "groups": [{"value": "g1", "display": "G"}],
        "meta": {"resourceType": "User", "version": "W/\"1\""},
        ENT: {"department": "R&D", "employeeNumber": "7"}
    })
}

fn put(p: &Policy, body: Value, current: Value) -> Result<Checked, Rejection> {
    run(
        p,
        Resource::Users,
        WriteMethod::Put,
        body.to_string().as_bytes(),
        &[],
        Some(current),
    )
}

#[test]
fn put_may_change_only_updatable_attributes() {
    let p = policy_allowing_employee_number();
    let mut body = current_user();
    body["userName"] = json!("bjensen@ACME.com"); // caseExact false: same value
    body["name"]["givenName"] = json!("Babs");
    body["displayName"] = json!("Babs Jensen");
    body["emails"] = json!([{"value": "b@acme.com", "type": "home"}]);
    body[ENT]["department"] = json!("Sales");
    body["id"] = json!("other");
    body["meta"] = json!({"x": 1});
    body["groups"] = json!([]);
    body["title"] = json!("Tour Guide");
    body["active"] = json!("False");
    let r = put(&p, body, current_user());
    assert!(r.is_ok(), "{r:?}");
}

/// A change applied to a copy of the current user.
type Change = Box<dyn Fn(&mut Value)>;

#[test]
fn put_changing_or_dropping_non_updatable_is_rejected() {
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|b| b["userName"] = json!("other@acme.com")),
            "userName",
        ),
        (Box::new(|b| b["externalId"] = json!("EXT-1")), "externalId"),
        (Box::new(|b| b["title"] = json!("Boss")), "title"),
        (
            Box::new(|b| {
                b.as_object_mut().map(|o| o.remove("title"));
            }),
            "title",
        ),
        (Box::new(|b| b["name"]["formatted"] = json!("B")), "name"),
        (
            Box::new(|b| b[ENT]["employeeNumber"] = json!("8")),
            "employeeNumber",
        ),
        (
            Box::new(|b| {
                b.as_object_mut().map(|o| o.remove(ENT));
            }),
            "employeeNumber",
        ),
    ];
    for (change, name) in cases {
        let mut body = current_user();
        change(&mut body);
        // employeeNumber must be an allowed (but not updatable) extension attribute here.
        let r = put(&policy_allowing_employee_number(), body, current_user());
        let e = rejection(r);
        assert_eq!(e.reason, RejectReason::Mutability, "{name}: {e:?}");
        assert!(e.detail.contains(name), "{} should name {name}", e.detail);
    }
    // null, [] and missing are the same; so is "" (OneLogin).
    let mut body = current_user();
    body["nickName"] = json!("");
    body["phoneNumbers"] = json!([]);
    body["locale"] = Value::Null;
    assert!(put(&policy_allowing_employee_number(), body, current_user()).is_ok());
    // Multi-valued attributes are unordered.
    let mut body = current_user();
    body["emails"] = json!([{"value": "b@acme.com", "type": "home"}, {"value": "a@acme.com", "type": "work", "primary": "True"}]);
    let mut cur = current_user();
    cur["emails"] = json!([{"value": "a@acme.com", "type": "work", "primary": true}, {"value": "b@acme.com", "type": "home"}]);
    let strict_emails = Policy::compile(&PolicySpec {
        users_updatable: vec!["displayName".into()],
        extensions: vec![(ENT.into(), ExtensionAllow::All)],
        ..PolicySpec::default()
    });
    let Ok(strict_emails) = strict_emails else {
        panic!("policy")
    };
    assert!(put(&strict_emails, body.clone(), cur.clone()).is_ok());
    // ... but a changed element is a change.
    let mut changed = body;
    changed["emails"][0]["type"] = json!("other");
    assert_eq!(
        rejection(put(&strict_emails, changed, cur)).reason,
        RejectReason::Mutability
    );
}

fn policy_allowing_employee_number() -> Policy {
    let mut spec = PolicySpec::default();
    spec.extensions[0].1 =
        ExtensionAllow::Attrs(vec!["department".into(), "employeeNumber".into()]);
    match Policy::compile(&spec) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn put_password_rejected_unless_updatable_but_post_allows_it() {
    let p = n();
    let mut body = current_user();
    body["password"] = json!("s3cret");
    let e = rejection(put(
        &policy_allowing_employee_number(),
        body.clone(),
        current_user(),
    ));
    assert_eq!(e.reason, RejectReason::Mutability);
    assert!(e.detail.contains("password"));
    assert!(!e.detail.contains("s3cret"));
    let e = rejection(patch_users(
        &p,
        json!([{"op": "replace", "path": "password", "value": "x"}]),
    ));
    assert_eq!(e.reason, RejectReason::Mutability);
    assert!(post_user(&p, user(json!({"password": "x"}))).is_ok());
    let mut spec = PolicySpec::default();
    spec.users_updatable.push("password".into());
    spec.extensions[0].1 =
        ExtensionAllow::Attrs(vec!["department".into(), "employeeNumber".into()]);
    let Ok(with_pw) = Policy::compile(&spec) else {
        panic!("policy")
    };
    assert!(put(&with_pw, body, current_user()).is_ok());
}

#[test]
fn put_needs_current_and_reports_404() {
    let p = n();
    let body = user(json!({})).to_string();
    let req = Request {
        resource: Resource::Users,
        method: WriteMethod::Put,
        id: Some("u9"),
        body: body.as_bytes(),
        domains: &[],
    };
    let prepared = match p.prepare(&req) {
        Ok(x) => x,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(prepared.needs(), &[(Resource::Users, "u9".to_string())]);
    let e = rejection(prepared.finish(&HashMap::new()));
    assert_eq!((e.status, e.reason), (404, RejectReason::NotFound));
    let no_id = Request { id: None, ..req };
    assert!(p.prepare(&no_id).is_err());
}

#[test]
fn bulk_checks_every_operation_and_names_its_index() {
    let p = n();
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "q1", "data": user(json!({}))},
            {"method": "DELETE", "path": "/Users/abc"},
            {"method": "PATCH", "path": "/groups/g1", "data": {"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": "bulkId:q1"}]}]}},
            {"method": "PUT", "path": "/Users/u2", "data": user(json!({"title": "x"}))}
        ]
    });
    let prepared = match p.prepare_bulk(body.to_string().as_bytes(), &[]) {
        Ok(x) => x,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(prepared.needs(), &[(Resource::Users, "u2".to_string())]);
    let mut cur = HashMap::new();
    cur.insert(
        (Resource::Users, "u2".to_string()),
        user(json!({"title": "y"})),
    );
    let e = rejection(prepared.finish(&cur));
    assert!(e.detail.starts_with("Operations[3]: "), "{}", e.detail);
    assert_eq!(e.reason, RejectReason::Mutability);

    let bad = |op: Value| {
        let b = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [{"method": "POST", "path": "/Users", "data": user(json!({}))}, op]});
        match p.prepare_bulk(b.to_string().as_bytes(), &[]) {
            Err(e) => e,
            Ok(_) => panic!("expected a rejection"),
        }
    };
    let e = bad(json!({"method": "POST", "path": "/Devices", "data": {}}));
    assert!(e.detail.starts_with("Operations[1]: "), "{}", e.detail);
    assert_eq!(e.reason, RejectReason::InvalidPath);
    let e = bad(json!({"method": "POST", "path": "/Users/x", "data": {}}));
    assert_eq!(e.reason, RejectReason::InvalidPath);
    let e = bad(
        json!({"method": "PATCH", "path": "/Users/x", "data": {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "userName", "value": "x"}]}}),
    );
    assert_eq!(e.reason, RejectReason::Mutability);
    assert!(e.detail.starts_with("Operations[1]: "));
}

#[test]
fn bulk_operations_are_bounded_and_each_put_target_is_read_once() {
    let spec = PolicySpec {
        bulk_max_operations: 3,
        ..PolicySpec::default()
    };
    let p = match Policy::compile(&spec) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let put = |id: &str| json!({"method": "PUT", "path": format!("/Users/{id}"), "data": user(json!({}))});
    let bulk = |ops: Vec<Value>| {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops})
            .to_string()
    };
    let e = match p.prepare_bulk(
        bulk(vec![put("a"), put("b"), put("c"), put("d")]).as_bytes(),
        &[],
    ) {
        Err(e) => e,
        Ok(_) => panic!("four operations passed a bound of three"),
    };
    assert_eq!((e.status, e.reason), (413, RejectReason::TooManyOperations));
    assert!(e.detail.contains("at most 3"), "{}", e.detail);
    let prepared = match p.prepare_bulk(bulk(vec![put("a"), put("b"), put("a")]).as_bytes(), &[]) {
        Ok(x) => x,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        prepared.needs(),
        &[
            (Resource::Users, "a".to_string()),
            (Resource::Users, "b".to_string())
        ]
    );
    // The default bound is the contract's 1000.
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"method": "DELETE", "path": format!("/Users/u{i}")}))
        .collect();
    let e = match n().prepare_bulk(bulk(many).as_bytes(), &[]) {
        Err(e) => e,
        Ok(_) => panic!("1001 operations passed the default bound"),
    };
    assert_eq!(e.status, 413);
}

#[test]
fn bulk_rewrites_under_normalize() {
    let p = n();
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [{"method": "PATCH", "path": "/Users/u1", "data": {"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}}]
    });
    let prepared = match p.prepare_bulk(body.to_string().as_bytes(), &[]) {
        Ok(x) => x,
        Err(e) => panic!("{e}"),
    };
    let out = rewritten(prepared.finish(&HashMap::new()));
    assert_eq!(
        out["Operations"][0]["data"]["Operations"][0],
        json!({"op": "replace", "path": "active", "value": false})
    );
}

#[test]
fn search_filter_must_parse() {
    let p = n();
    let ok = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName eq \"a\"", "startIndex": 1, "count": 10, "attributes": ["displayName"]});
    assert!(p.check_search(ok.to_string().as_bytes()).is_ok());
    let bad = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName eq"});
    let e = match p.check_search(bad.to_string().as_bytes()) {
        Err(e) => e,
        Ok(()) => panic!("expected invalidFilter"),
    };
    assert_eq!(
        (e.reason, e.scim_type),
        (RejectReason::InvalidFilter, Some("invalidFilter"))
    );
    let unknown =
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filtr": "x"});
    assert!(p.check_search(unknown.to_string().as_bytes()).is_err());
}

#[test]
fn error_body_follows_rfc7644() {
    let e = rejection(patch_users(
        &n(),
        json!([{"op": "replace", "path": "userName", "value": "x"}]),
    ));
    let v: Value = match serde_json::from_slice(&e.to_scim_json()) {
        Ok(v) => v,
        Err(err) => panic!("{err}"),
    };
    assert_eq!(
        v["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    assert_eq!(v["status"], json!("400"));
    assert_eq!(v["scimType"], json!("mutability"));
    assert!(v["detail"].as_str().is_some_and(|d| d.contains("userName")));
    let labels: Vec<&str> = [
        RejectReason::InvalidJson,
        RejectReason::Schema,
        RejectReason::Mutability,
        RejectReason::InvalidPath,
        RejectReason::Extension,
        RejectReason::Domain,
        RejectReason::Dialect,
        RejectReason::InvalidFilter,
        RejectReason::NoTarget,
        RejectReason::NotFound,
        RejectReason::TooManyOperations,
    ]
    .iter()
    .map(|r| r.label())
    .collect();
    assert!(labels
        .iter()
        .all(|l| l.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
}

#[test]
fn policy_spec_errors_name_the_entry() {
    let bad = |users: &[&str]| {
        let spec = PolicySpec {
            users_updatable: users.iter().map(|s| s.to_string()).collect(),
            ..PolicySpec::default()
        };
        match Policy::compile(&spec) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{users:?} should not compile"),
        }
    };
    assert!(bad(&["emails[type eq"]).contains("emails[type eq"));
    assert!(bad(&["nosuch"]).contains("nosuch"));
    assert!(bad(&["id"]).contains("readOnly"));
    assert!(bad(&["urn:example:unlisted:User:x"]).contains("urn:example:unlisted"));
    assert!(bad(&[&format!("{ENT}:manager")]).contains("manager"));
    let spec = PolicySpec {
        extensions: vec![("not-a-urn".into(), ExtensionAllow::All)],
        ..PolicySpec::default()
    };
    assert!(Policy::compile(&spec).is_err());
}

#[test]
fn user_name_renames_follow_the_policy_and_the_domains() {
    let renames = match Policy::compile(&PolicySpec {
        users_updatable: vec!["userName".into(), "displayName".into()],
        ..PolicySpec::default()
    }) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let ops = json!([{"op": "replace", "path": "userName", "value": "new@acme.com"}]);
    // Immutable by default…
    assert_eq!(
        rejection(patch_users(&n(), ops.clone())).reason,
        RejectReason::Mutability
    );
    // …updatable when listed, by PATCH and PUT.
    assert!(patch_users(&renames, ops.clone()).is_ok());
    let put = |p: &Policy, name: &str, domains: &[String]| {
        run(
            p,
            Resource::Users,
            WriteMethod::Put,
            user(json!({"userName": name})).to_string().as_bytes(),
            domains,
            Some(user(json!({"id": "id1"}))),
        )
    };
    assert!(put(&renames, "renamed@acme.com", &[]).is_ok());
    assert_eq!(
        rejection(put(&n(), "renamed@acme.com", &[])).reason,
        RejectReason::Mutability
    );
    // The token's domains hold for the new name.
    let acme = ["acme.com".to_string()];
    let evil = json!([{"op": "replace", "path": "userName", "value": "eve@evil.com"}]);
    let r = run(
        &renames,
        Resource::Users,
        WriteMethod::Patch,
        &patch_body(evil),
        &acme,
        None,
    );
    assert_eq!(rejection(r).reason, RejectReason::Domain);
    let ok = run(
        &renames,
        Resource::Users,
        WriteMethod::Patch,
        &patch_body(ops),
        &acme,
        None,
    );
    assert!(ok.is_ok());
    assert_eq!(
        rejection(put(&renames, "eve@evil.com", &acme)).reason,
        RejectReason::Domain
    );
}

#[test]
fn large_member_patch_is_accepted_untouched() {
    // Its cost is measured in benches/checks.rs; here only the behaviour is asserted.
    let p = n();
    let members: Vec<Value> = (0..20_000)
        .map(|i| json!({"value": format!("2819c223-7f76-453a-919d-{i:012}"), "display": format!("User Number {i}")}))
        .collect();
    let body = patch_body(json!([{"op": "add", "path": "members", "value": members}]));
    assert!(body.len() > 1_000_000, "{}", body.len());
    let r = run(&p, Resource::Groups, WriteMethod::Patch, &body, &[], None);
    assert_eq!(
        r,
        Ok(Checked {
            body: None,
            destructive: 0
        })
    );
}

#[test]
fn a_schemas_key_inside_an_extension_object_is_ignored() {
    // scim2-client repeats the URN inside the extension object, on POST and PATCH alike.
    let p = n();
    let body = user(json!({"schemas": [USER, ENT], ENT: {"schemas": [ENT], "department": "x"}}));
    let r = run(
        &p,
        Resource::Users,
        WriteMethod::Post,
        body.to_string().as_bytes(),
        &[],
        None,
    );
    assert!(r.is_ok(), "{r:?}");
    let value = json!({"schemas": [ENT], "department": "y"});
    for op in [
        json!({"op": "add", "path": ENT, "value": value}),
        json!({"op": "replace", "value": {ENT: value}}),
    ] {
        let r = run(
            &p,
            Resource::Users,
            WriteMethod::Patch,
            &patch_body(json!([op])),
            &[],
            None,
        );
        assert!(r.is_ok(), "{op}: {r:?}");
    }
    // Anything else in it is still judged by the policy.
    let op = json!({"op": "add", "path": ENT, "value": {"schemas": [ENT], "employeeNumber": "7"}});
    let e = rejection(run(
        &p,
        Resource::Users,
        WriteMethod::Patch,
        &patch_body(json!([op])),
        &[],
        None,
    ));
    assert_eq!(e.reason, RejectReason::Extension);
}

/// A PUT that changes a non-updatable sub-attribute of `name` (whose `givenName` is updatable)
/// names the sub-attribute, not the whole `name`.
#[test]
fn put_changing_a_non_updatable_sub_attribute_names_it() {
    let p = policy_allowing_employee_number();
    let mut body = current_user();
    body["name"]["givenName"] = json!("Babs");
    body["name"]["middleName"] = json!("Q");
    let e = rejection(put(&p, body, current_user()));
    assert_eq!(e.reason, RejectReason::Mutability);
    assert!(e.detail.contains("'name.middleName'"), "{}", e.detail);
    let mut body = current_user();
    body["name"].as_object_mut().map(|o| o.remove("formatted"));
    let e = rejection(put(&p, body, current_user()));
    assert!(e.detail.contains("'name.formatted'"), "{}", e.detail);
    assert!(e.detail.contains("drops"), "{}", e.detail);
}
