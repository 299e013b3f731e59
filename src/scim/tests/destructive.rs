//! Which writes count for the destructive-change breaker (`Checked::destructive`), in every
//! form an IdP sends them.

use serde_json::json;

use super::*;

fn count(r: Result<Checked, Rejection>) -> u32 {
    match r {
        Ok(c) => c.destructive,
        Err(e) => panic!("the request was refused: {e}"),
    }
}

#[test]
fn a_user_set_inactive_counts_in_every_dialect_form() {
    for dialect in [Dialect::Normalize, Dialect::Tolerate] {
        let p = policy(dialect);
        // Entra: "Replace" with a string boolean.
        let entra = json!([{"op": "Replace", "path": "active", "value": "False"}]);
        assert_eq!(count(patch_users(&p, entra)), 1, "{dialect:?}");
        // Okta: no path, the attribute in the value.
        let okta = json!([{"op": "replace", "value": {"id": "id1", "active": false}}]);
        assert_eq!(count(patch_users(&p, okta)), 1, "{dialect:?}");
        // With the schema URN in the path.
        let urn = json!([{"op": "replace", "path": format!("{USER}:active"), "value": false}]);
        assert_eq!(count(patch_users(&p, urn)), 1, "{dialect:?}");
    }
    let p = policy(Dialect::Normalize);
    for harmless in [
        json!([{"op": "replace", "path": "active", "value": true}]),
        json!([{"op": "replace", "path": "displayName", "value": "False"}]),
        json!([{"op": "replace", "value": {"displayName": "x"}}]),
    ] {
        assert_eq!(count(patch_users(&p, harmless.clone())), 0, "{harmless}");
    }
}

#[test]
fn a_group_emptied_counts_a_member_removed_does_not() {
    let p = policy(Dialect::Normalize);
    for emptied in [
        json!([{"op": "remove", "path": "members"}]),
        json!([{"op": "replace", "path": "members", "value": []}]),
        json!([{"op": "replace", "value": {"members": []}}]),
    ] {
        assert_eq!(count(patch_groups(&p, emptied.clone())), 1, "{emptied}");
    }
    for kept in [
        json!([{"op": "remove", "path": "members[value eq \"u1\"]"}]),
        json!([{"op": "replace", "path": "members", "value": [{"value": "u2"}]}]),
        json!([{"op": "add", "path": "members", "value": [{"value": "u2"}]}]),
        json!([{"op": "replace", "path": "displayName", "value": "G"}]),
    ] {
        assert_eq!(count(patch_groups(&p, kept.clone())), 0, "{kept}");
    }
}

#[test]
fn a_put_counts_when_it_changes_the_current_resource_that_way() {
    let p = policy(Dialect::Normalize);
    let u = |active: bool| json!({"schemas": [USER], "id": "id1", "userName": "ada@acme.com", "active": active});
    let put_user = |body: Value, current: Value| {
        run(
            &p,
            Resource::Users,
            WriteMethod::Put,
            body.to_string().as_bytes(),
            &[],
            Some(current),
        )
    };
    assert_eq!(count(put_user(u(false), u(true))), 1);
    assert_eq!(count(put_user(u(false), u(false))), 0, "already inactive");
    assert_eq!(count(put_user(u(true), u(true))), 0);
    let g = |members: Value| json!({"schemas": [GROUP], "id": "id1", "displayName": "G", "members": members});
    let put_group = |body: Value, current: Value| {
        run(
            &p,
            Resource::Groups,
            WriteMethod::Put,
            body.to_string().as_bytes(),
            &[],
            Some(current),
        )
    };
    let some = json!([{"value": "u1"}]);
    assert_eq!(count(put_group(g(json!([])), g(some.clone()))), 1);
    let without = json!({"schemas": [GROUP], "id": "id1", "displayName": "G"});
    assert_eq!(
        count(put_group(without, g(some.clone()))),
        1,
        "members left out"
    );
    assert_eq!(
        count(put_group(g(json!([])), g(json!([])))),
        0,
        "already empty"
    );
    assert_eq!(count(put_group(g(some.clone()), g(some))), 0);
}

#[test]
fn a_bulk_request_counts_each_destructive_operation() {
    let p = policy(Dialect::Normalize);
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "DELETE", "path": "/Users/u1"},
            {"method": "delete", "path": "/Groups/g1"},
            {"method": "PATCH", "path": "/Users/u2", "data": {"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}},
            {"method": "PATCH", "path": "/Groups/g2", "data": {"schemas": [PATCH], "Operations": [{"op": "remove", "path": "members"}]}},
            {"method": "PATCH", "path": "/Users/u3", "data": {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "displayName", "value": "x"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "b1", "data": {"schemas": [USER], "userName": "bo@acme.com"}},
            {"method": "PUT", "path": "/Users/u4", "data": {"schemas": [USER], "userName": "cy@acme.com", "active": false}}
        ]
    });
    let prepared = match p.prepare_bulk(body.to_string().as_bytes(), &[]) {
        Ok(x) => x,
        Err(e) => panic!("{e}"),
    };
    let mut current = HashMap::new();
    current.insert(
        (Resource::Users, "u4".to_string()),
        json!({"schemas": [USER], "id": "u4", "userName": "cy@acme.com", "active": true}),
    );
    assert_eq!(count(prepared.finish(&current)), 5);
}
