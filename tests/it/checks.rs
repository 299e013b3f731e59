//! The SCIM checks (docs/scim-checks.md) through the real binary, in front of the in-process demo directory,
//! with the upstream looked at afterwards: every rejected write answers the right SCIM error
//! (status, scimType, a detail naming the path) AND left the upstream resource exactly as it was
//! (no write reached it, or — on the stream path — never a complete one).
//!
//! Sections: rules · dialects · no bypass (route spellings, /Bulk, /.search) · bodies (sizes,
//! chunked, Expect: 100-continue, large bodies byte-exact) · the slow 408 test
//! (`stalled_body_gets_408_within_the_body_deadline`, ~3 s: the harness's `server.body_timeout`).

use std::io::{Cursor, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::{
    assert_scim_error, read_response, send, GateOpts, GateProc, Response, TestToken,
};
use scim_demo::{DemoRequest, DemoServer};
use scim_gate::config::raw::{DialectName, RawPolicy};
use serde_json::{json, Value};

const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const BULK_URN: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
const SEARCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
const SCIM_JSON: &str = "application/scim+json";

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// The demo directory, the gate in front of it, a token without domains (`any`) and one limited
/// to `acme.com` (`acme`).
struct Env {
    up: DemoServer,
    gate: GateProc,
    any: TestToken,
    acme: TestToken,
}

fn env() -> Env {
    env_with(|_| {})
}

/// `policy` sets keys of the gate's `policy:` section, e.g. `|p| p.dialect = Some(Strict)`.
fn env_with(policy: impl FnOnce(&mut RawPolicy)) -> Env {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let any = TestToken::new("tok_any");
    let mut acme = TestToken::new("tok_acme");
    acme.idp = "entra".into();
    acme.domains = vec!["acme.com".into()];
    let mut opts = GateOpts::new(&up.base_url());
    let mut p = RawPolicy::default();
    policy(&mut p);
    if p != RawPolicy::default() {
        opts.config.policy = Some(p);
    }
    let gate = GateProc::start(opts, &[&any, &acme]);
    Env {
        up,
        gate,
        any,
        acme,
    }
}

impl Env {
    /// Creates a resource directly at the upstream (not through the gate); returns its id.
    fn seed(&self, endpoint: &str, body: &Value) -> String {
        let b = body.to_string();
        let raw = format!(
            "POST /v2/{endpoint} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: {SCIM_JSON}\r\nContent-Length: {}\r\n\r\n{b}",
            self.up.addr,
            b.len()
        );
        let r = send(self.up.addr, raw.as_bytes());
        assert_eq!(r.status, 201, "seeding {endpoint}: {}", r.text());
        let id = r.json()["id"].as_str().expect("id").to_string();
        self.up.dir.clear_received();
        id
    }

    fn seed_user(&self) -> String {
        self.seed("Users", &alice())
    }

    fn seed_group(&self) -> String {
        self.seed(
            "Groups",
            &json!({"schemas": [GROUP_URN], "displayName": "Engineering",
                    "members": [{"value": "m-0001"}, {"value": "m-0002"}]}),
        )
    }

    /// A group without members: the demo directory merges an `add` into existing members
    /// quadratically, which for thousands of members in a debug build takes longer than the
    /// harness's 2 s upstream read timeout; into an empty group it is linear.
    fn seed_empty_group(&self) -> String {
        self.seed(
            "Groups",
            &json!({"schemas": [GROUP_URN], "displayName": "Everyone"}),
        )
    }

    fn user(&self, id: &str) -> Value {
        self.up.dir.get_user(id).expect("user exists upstream")
    }

    fn group(&self, id: &str) -> Value {
        self.up.dir.get_group(id).expect("group exists upstream")
    }

    /// A request through the gate with an exact Content-Length and the given Content-Type.
    fn req_ct(&self, method: &str, path: &str, tok: &TestToken, ct: &str, body: &[u8]) -> Response {
        let mut raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
            self.gate.port,
            tok.plaintext,
            body.len()
        )
        .into_bytes();
        raw.extend_from_slice(body);
        send(self.gate.addr(), &raw)
    }

    fn req(&self, method: &str, path: &str, tok: &TestToken, body: &[u8]) -> Response {
        self.req_ct(method, path, tok, SCIM_JSON, body)
    }

    fn patch_user(&self, id: &str, ops: Value) -> Response {
        self.req(
            "PATCH",
            &format!("/scim/v2/Users/{id}"),
            &self.any,
            patch(ops).as_bytes(),
        )
    }

    /// The requests that reached the upstream with a method other than GET.
    fn writes(&self) -> Vec<DemoRequest> {
        self.up
            .dir
            .received()
            .into_iter()
            .filter(|r| r.method != "GET")
            .collect()
    }

    fn assert_no_write(&self, what: &str) {
        let w = self.writes();
        assert!(
            w.is_empty(),
            "{what}: a write reached the upstream: {:?}",
            w.iter().map(|r| (&r.method, &r.path)).collect::<Vec<_>>()
        );
    }

    /// The one write the upstream received.
    fn only_write(&self) -> DemoRequest {
        let w = self.writes();
        assert_eq!(
            w.len(),
            1,
            "exactly one write upstream: {:?}",
            w.iter().map(|r| (&r.method, &r.path)).collect::<Vec<_>>()
        );
        w.into_iter().next().expect("one")
    }
}

fn alice() -> Value {
    json!({
        "schemas": [USER_URN, ENT],
        "userName": "alice@acme.com",
        "externalId": "ext-alice",
        "name": {"givenName": "Alice", "familyName": "Smith"},
        "displayName": "Alice Smith",
        "title": "Engineer",
        "locale": "en-US",
        "emails": [{"value": "alice@acme.com", "type": "work", "primary": true}],
        "active": true,
        ENT: {"department": "R&D"}
    })
}

fn patch(ops: Value) -> String {
    json!({"schemas": [PATCH_URN], "Operations": ops}).to_string()
}

/// The SCIM error with this status and scimType whose detail mentions every one of `names`
/// (case-insensitively: attribute names are).
fn assert_rejected(r: &Response, status: u16, scim_type: Option<&str>, names: &[&str]) {
    assert_scim_error(r, status, scim_type);
    let detail = r.json()["detail"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    for n in names {
        assert!(
            detail.contains(&n.to_ascii_lowercase()),
            "detail {detail:?} should name {n:?}"
        );
    }
}

/// A PUT body: the stored user as an IdP would send it back (id and meta included, as Okta does).
fn put_body(current: &Value, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = current.clone();
    edit(&mut v);
    v.to_string().into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------------------

#[test]
fn type_errors_are_400_invalid_value_naming_the_attribute_and_change_nothing() {
    let e = env();
    let id = e.seed_user();
    let before = e.user(&id);
    let r = e.patch_user(
        &id,
        json!([{"op": "replace", "path": "active", "value": 42}]),
    );
    assert_rejected(&r, 400, Some("invalidValue"), &["active"]);
    let r = e.patch_user(
        &id,
        json!([{"op": "replace", "path": "displayName", "value": {"a": 1}}]),
    );
    assert_rejected(&r, 400, Some("invalidValue"), &["displayName"]);
    let r = e.patch_user(
        &id,
        json!([{"op": "replace", "path": "emails", "value": "not-a-list@acme.com"}]),
    );
    assert_scim_error(&r, 400, None);
    let mut bad = alice();
    bad["userName"] = json!("bob@acme.com");
    bad["name"] = json!("Bob");
    let r = e.req("POST", "/scim/v2/Users", &e.any, bad.to_string().as_bytes());
    assert_rejected(&r, 400, Some("invalidValue"), &["name"]);
    // userName is required on POST.
    let mut missing = alice();
    missing.as_object_mut().expect("obj").remove("userName");
    let r = e.req(
        "POST",
        "/scim/v2/Users",
        &e.any,
        missing.to_string().as_bytes(),
    );
    assert_scim_error(&r, 400, None);
    assert!(r.text().contains("userName"), "{}", r.text());
    // A body that is no PatchOp at all.
    let r = e.req(
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        &e.any,
        br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":{}}"#,
    );
    assert_rejected(&r, 400, None, &["Operations"]);
    assert_eq!(e.user(&id), before);
    e.assert_no_write("type errors");
    assert_eq!(e.up.dir.user_count(), 1);
}

#[test]
fn unknown_attributes_are_refused_by_name() {
    let e = env();
    let id = e.seed_user();
    let before = e.user(&id);
    let mut bad = alice();
    bad["userName"] = json!("carol@acme.com");
    bad["favouriteColour"] = json!("blue");
    let r = e.req("POST", "/scim/v2/Users", &e.any, bad.to_string().as_bytes());
    assert_rejected(&r, 400, Some("invalidValue"), &["favouriteColour"]);
    let r = e.patch_user(
        &id,
        json!([{"op": "add", "path": "favouriteColour", "value": "blue"}]),
    );
    assert_scim_error(&r, 400, None);
    assert!(r.text().contains("favouriteColour"), "{}", r.text());
    let r = e.patch_user(
        &id,
        json!([{"op": "replace", "path": "name.nickname2", "value": "x"}]),
    );
    assert_scim_error(&r, 400, None);
    assert!(r.text().contains("nickname2"), "{}", r.text());
    assert_eq!(e.user(&id), before);
    assert_eq!(e.up.dir.user_count(), 1);
    e.assert_no_write("unknown attributes");
}

#[test]
fn username_is_immutable_on_patch_and_put() {
    let e = env();
    let id = e.seed_user();
    let before = e.user(&id);
    for op in ["replace", "add", "Replace"] {
        let r = e.patch_user(
            &id,
            json!([{"op": op, "path": "userName", "value": "mallory@acme.com"}]),
        );
        assert_rejected(&r, 400, Some("mutability"), &["userName"]);
    }
    // No path, userName as a key of the value (as Okta / Entra do for other attributes).
    let r = e.patch_user(
        &id,
        json!([{"op": "replace", "value": {"userName": "mallory@acme.com"}}]),
    );
    assert_rejected(&r, 400, Some("mutability"), &["userName"]);
    e.assert_no_write("PATCH userName");
    let body = put_body(&before, |v| v["userName"] = json!("mallory@acme.com"));
    let r = e.req("PUT", &format!("/scim/v2/Users/{id}"), &e.any, &body);
    assert_rejected(&r, 400, Some("mutability"), &["userName"]);
    e.assert_no_write("PUT userName");
    assert_eq!(e.user(&id), before);
}

#[test]
fn patch_of_a_non_updatable_path_is_400_mutability_naming_the_path() {
    let e = env();
    let id = e.seed_user();
    let before = e.user(&id);
    for path in [
        "title",
        "externalId",
        "name.middleName",
        "phoneNumbers",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department2",
        "id",
        "meta.lastModified",
    ] {
        let r = e.patch_user(&id, json!([{"op": "replace", "path": path, "value": "x"}]));
        assert_scim_error(&r, 400, None);
        let detail = r.json()["detail"].as_str().unwrap_or_default().to_string();
        assert!(
            detail.contains(path.rsplit(':').next().unwrap_or(path)),
            "{path}: {detail}"
        );
    }
    // The plain non-updatable attributes name the rule too.
    for path in ["title", "externalId", "name.middleName"] {
        let r = e.patch_user(&id, json!([{"op": "replace", "path": path, "value": "x"}]));
        assert_rejected(&r, 400, Some("mutability"), &[path]);
    }
    // One bad op among good ones: nothing is applied (a PATCH is atomic).
    let r = e.patch_user(
        &id,
        json!([
            {"op": "replace", "path": "displayName", "value": "Changed"},
            {"op": "replace", "path": "title", "value": "CEO"}
        ]),
    );
    assert_rejected(&r, 400, Some("mutability"), &["title"]);
    assert_eq!(e.user(&id), before);
    e.assert_no_write("non-updatable PATCH");
    // And the updatable ones do reach the upstream.
    let r = e.patch_user(
        &id,
        json!([
            {"op": "replace", "path": "displayName", "value": "Alice S."},
            {"op": "replace", "path": "name.givenName", "value": "Alicia"},
            {"op": "replace", "path": format!("{ENT}:department"), "value": "Ops"}
        ]),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let after = e.user(&id);
    assert_eq!(after["displayName"], "Alice S.");
    assert_eq!(after["name"]["givenName"], "Alicia");
    assert_eq!(after[ENT]["department"], "Ops");
    assert_eq!(after["title"], "Engineer");
}

#[test]
fn extension_attributes_outside_the_policy_are_refused_on_post_put_and_patch() {
    let e = env();
    let id = e.seed_user();
    let before = e.user(&id);
    // POST
    let mut post = alice();
    post["userName"] = json!("dave@acme.com");
    post[ENT]["employeeNumber"] = json!("42");
    let r = e.req(
        "POST",
        "/scim/v2/Users",
        &e.any,
        post.to_string().as_bytes(),
    );
    assert_rejected(&r, 400, Some("invalidValue"), &["employeeNumber"]);
    // An extension the policy does not list at all.
    let mut post = alice();
    post["userName"] = json!("dave@acme.com");
    post["schemas"] = json!([
        USER_URN,
        "urn:example:params:scim:schemas:extension:acme:2.0:User"
    ]);
    post["urn:example:params:scim:schemas:extension:acme:2.0:User"] = json!({"badge": "7"});
    let r = e.req(
        "POST",
        "/scim/v2/Users",
        &e.any,
        post.to_string().as_bytes(),
    );
    assert_scim_error(&r, 400, None);
    assert!(r.text().contains("acme:2.0:User"), "{}", r.text());
    // PUT
    let body = put_body(&before, |v| v[ENT]["costCenter"] = json!("cc-9"));
    let r = e.req("PUT", &format!("/scim/v2/Users/{id}"), &e.any, &body);
    assert_rejected(&r, 400, Some("invalidValue"), &["costCenter"]);
    // PATCH, with the URN-prefixed path and as a no-path value keyed by the URN.
    let r = e.patch_user(
        &id,
        json!([{"op": "replace", "path": format!("{ENT}:manager.value"), "value": "boss"}]),
    );
    assert_rejected(&r, 400, None, &["manager"]);
    let r = e.patch_user(
        &id,
        json!([{"op": "add", "value": {ENT: {"division": "North"}}}]),
    );
    assert_rejected(&r, 400, None, &["division"]);
    assert_eq!(e.user(&id), before);
    assert_eq!(e.up.dir.user_count(), 1);
    e.assert_no_write("extensions");
}

#[test]
fn put_changing_a_non_updatable_attribute_is_refused_after_reading_the_current_user() {
    let e = env();
    let id = e.seed_user();
    let before = e.user(&id);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("title", put_body(&before, |v| v["title"] = json!("CEO"))),
        (
            "locale",
            put_body(&before, |v| {
                v.as_object_mut().expect("obj").remove("locale");
            }),
        ),
        (
            "externalId",
            put_body(&before, |v| v["externalId"] = json!("other")),
        ),
        (
            "middleName",
            put_body(&before, |v| v["name"]["middleName"] = json!("Q")),
        ),
    ];
    for (attr, body) in cases {
        e.up.dir.clear_received();
        let r = e.req("PUT", &format!("/scim/v2/Users/{id}"), &e.any, &body);
        assert_rejected(&r, 400, Some("mutability"), &[attr]);
        let seen = e.up.dir.received();
        assert!(
            seen.iter()
                .any(|q| q.method == "GET" && q.path == format!("/v2/Users/{id}")),
            "{attr}: the gate read the current user first: {seen:?}"
        );
        e.assert_no_write(attr);
    }
    assert_eq!(e.user(&id), before);
    // A PUT of a user that does not exist upstream: 404, nothing written.
    let r = e.req(
        "PUT",
        "/scim/v2/Users/does-not-exist",
        &e.any,
        &put_body(&before, |_| {}),
    );
    assert_scim_error(&r, 404, None);
    e.assert_no_write("PUT of a missing user");
}

#[test]
fn okta_style_put_of_the_whole_user_with_unchanged_non_updatable_attributes_passes() {
    let e = env();
    let id = e.seed_user();
    let before = e.user(&id);
    // Okta: GET the user, change the profile, PUT everything back, with `groups: []`, `meta`
    // and `id`, attributes in another order and another case for names.
    let mut body = json!({
        "schemas": [USER_URN, ENT],
        "id": id,
        "UserName": "ALICE@acme.com",
        "name": {"familyName": "Smith", "givenName": "Alicia"},
        "emails": [{"primary": true, "type": "work", "value": "alice@acme.com"}],
        "displayName": "Alicia Smith",
        "locale": "en-US",
        "externalId": "ext-alice",
        "title": "Engineer",
        "groups": [],
        "active": true,
        "meta": {"resourceType": "User"},
    });
    body[ENT] = json!({"department": "Platform"});
    let r = e.req(
        "PUT",
        &format!("/scim/v2/Users/{id}"),
        &e.any,
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let put = e.only_write();
    assert_eq!(put.method, "PUT");
    assert_eq!(put.path, format!("/v2/Users/{id}"));
    let after = e.user(&id);
    assert_eq!(after["displayName"], "Alicia Smith");
    assert_eq!(after["name"]["givenName"], "Alicia");
    assert_eq!(after[ENT]["department"], "Platform");
    assert_eq!(after["title"], before["title"]);
    assert_eq!(after["externalId"], before["externalId"]);
}

#[test]
fn password_on_put_is_refused_but_may_be_set_on_post() {
    let e = env();
    let id = e.seed_user();
    let before = e.user(&id);
    let body = put_body(&before, |v| v["password"] = json!("hunter2-Secret"));
    let r = e.req("PUT", &format!("/scim/v2/Users/{id}"), &e.any, &body);
    assert_rejected(&r, 400, Some("mutability"), &["password"]);
    assert!(
        !r.text().contains("hunter2"),
        "the password is never echoed"
    );
    e.assert_no_write("PUT password");
    let r = e.patch_user(
        &id,
        json!([{"op": "replace", "path": "password", "value": "hunter2-Secret"}]),
    );
    assert_rejected(&r, 400, Some("mutability"), &["password"]);
    e.assert_no_write("PATCH password");
    assert_eq!(e.user(&id), before);
    // Okta creates users with a password.
    let mut post = alice();
    post["userName"] = json!("erin@acme.com");
    post["password"] = json!("hunter2-Secret");
    let r = e.req(
        "POST",
        "/scim/v2/Users",
        &e.any,
        post.to_string().as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
}

#[test]
fn email_domains_outside_the_token_are_403_on_post_put_patch_and_bulk() {
    let e = env();
    let id = e.seed_user();
    let before = e.user(&id);
    let mut post = alice();
    post["userName"] = json!("bob@evil.com");
    post["emails"] = json!([{"value": "bob@evil.com"}]);
    let r = e.req(
        "POST",
        "/scim/v2/Users",
        &e.acme,
        post.to_string().as_bytes(),
    );
    assert_rejected(&r, 403, None, &["userName", "evil.com"]);
    assert!(
        !r.text().contains("bob@evil.com"),
        "the address is not echoed"
    );
    let mut post = alice();
    post["userName"] = json!("bob@acme.com");
    post["emails"] = json!([{"value": "bob@acme.com"}, {"value": "bob@Evil.com", "type": "home"}]);
    let r = e.req(
        "POST",
        "/scim/v2/Users",
        &e.acme,
        post.to_string().as_bytes(),
    );
    assert_rejected(&r, 403, None, &["emails"]);
    let body = put_body(&before, |v| {
        v["emails"] = json!([{"value": "alice@evil.com", "type": "work"}])
    });
    let r = e.req("PUT", &format!("/scim/v2/Users/{id}"), &e.acme, &body);
    assert_rejected(&r, 403, None, &["emails"]);
    for ops in [
        json!([{"op": "add", "path": "emails", "value": [{"value": "x@evil.com", "type": "home"}]}]),
        json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "x@evil.com"}]),
        json!([{"op": "replace", "value": {"emails": [{"value": "x@evil.com"}]}}]),
    ] {
        let r = e.req(
            "PATCH",
            &format!("/scim/v2/Users/{id}"),
            &e.acme,
            patch(ops.clone()).as_bytes(),
        );
        assert_rejected(&r, 403, None, &["evil.com"]);
    }
    let bulk = json!({"schemas": [BULK_URN], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "b1",
         "data": {"schemas": [USER_URN], "userName": "ok@acme.com"}},
        {"method": "POST", "path": "/Users", "bulkId": "b2",
         "data": {"schemas": [USER_URN], "userName": "eve@evil.com"}}
    ]});
    let r = e.req(
        "POST",
        "/scim/v2/Bulk",
        &e.acme,
        bulk.to_string().as_bytes(),
    );
    assert_rejected(&r, 403, None, &["Operations[1]", "evil.com"]);
    assert_eq!(e.user(&id), before);
    assert_eq!(e.up.dir.user_count(), 1);
    e.assert_no_write("domains");
    // The same writes in the token's domain pass, and a token without domains may write any.
    let r = e.req(
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        &e.acme,
        patch(json!([{"op": "add", "path": "emails", "value": [{"value": "a2@ACME.com", "type": "home"}]}]))
            .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let mut post = alice();
    post["userName"] = json!("bob@evil.com");
    post["emails"] = json!([{"value": "bob@evil.com"}]);
    let r = e.req(
        "POST",
        "/scim/v2/Users",
        &e.any,
        post.to_string().as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
}

#[test]
fn malformed_paths_are_400_invalid_path_naming_the_path() {
    let e = env();
    let id = e.seed_user();
    let before = e.user(&id);
    for path in [
        "emails[type eq \"work\"",
        "name..givenName",
        "emails[type zz \"work\"].value",
        "emails[]",
        "]",
        "",
        "emails[type eq \"work\"]]",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:",
    ] {
        let r = e.patch_user(&id, json!([{"op": "replace", "path": path, "value": "x"}]));
        assert_scim_error(&r, 400, Some("invalidPath"));
        let detail = r.json()["detail"].as_str().unwrap_or_default().to_string();
        assert!(
            path.is_empty() || detail.contains(path),
            "detail {detail:?} should quote {path:?}"
        );
    }
    // remove without a path: noTarget (RFC 7644 §3.5.2.2).
    let r = e.patch_user(&id, json!([{"op": "remove"}]));
    assert_scim_error(&r, 400, Some("noTarget"));
    assert_eq!(e.user(&id), before);
    e.assert_no_write("malformed paths");
}

#[test]
fn malformed_json_is_400_invalid_syntax() {
    let e = env();
    let id = e.seed_user();
    let before = e.user(&id);
    for body in [
        &b"{"[..],
        b"not json",
        b"[]",
        b"{\"schemas\":[\"urn:ietf:params:scim:api:messages:2.0:PatchOp\"],\"Operations\":[],}",
        b"{\"userName\":\"a\",\"userName\":\"b\"}",
        b"{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"\xff\xfe\"}",
        b"",
    ] {
        let r = e.req("PATCH", &format!("/scim/v2/Users/{id}"), &e.any, body);
        assert_scim_error(&r, 400, Some("invalidSyntax"));
        let r = e.req("POST", "/scim/v2/Users", &e.any, body);
        assert_scim_error(&r, 400, Some("invalidSyntax"));
    }
    assert_eq!(e.user(&id), before);
    assert_eq!(e.up.dir.user_count(), 1);
    e.assert_no_write("malformed JSON");
}

#[test]
fn wrong_content_type_is_415() {
    let e = env();
    let id = e.seed_user();
    let before = e.user(&id);
    let body = patch(json!([{"op": "replace", "path": "displayName", "value": "X"}]));
    for ct in [
        "text/plain",
        "application/xml",
        "application/x-www-form-urlencoded",
        "",
    ] {
        let r = e.req_ct(
            "PATCH",
            &format!("/scim/v2/Users/{id}"),
            &e.any,
            ct,
            body.as_bytes(),
        );
        assert_scim_error(&r, 415, None);
    }
    assert_eq!(e.user(&id), before);
    e.assert_no_write("415");
    // application/json with a charset is fine.
    let r = e.req_ct(
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        &e.any,
        "Application/JSON; charset=utf-8",
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// `max_body_bytes` at 100 000 so the tests stay small.
const SMALL_LIMIT: usize = 100_000;

#[test]
fn bodies_over_max_body_bytes_are_413_with_content_length_and_chunked() {
    let e = env_with(|p| p.max_body_bytes = Some(SMALL_LIMIT));
    let id = e.seed_group();
    let before = e.group(&id);
    // Content-Length over the limit: answered from the headers alone (the body is not sent).
    let head = format!(
        "PATCH /scim/v2/Groups/{id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Type: {SCIM_JSON}\r\nContent-Length: {}\r\n\r\n",
        e.any.plaintext,
        SMALL_LIMIT + 1
    );
    let r = send(e.gate.addr(), head.as_bytes());
    assert_scim_error(&r, 413, None);
    // Chunked: the limit is found while streaming; send a little more than it, then stop
    // (the final chunk is never sent) and read the answer.
    let body = member_patch(SMALL_LIMIT + 5_000, None);
    let mut s = connect(&e.gate);
    let head = format!(
        "PATCH /scim/v2/Groups/{id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Type: {SCIM_JSON}\r\nTransfer-Encoding: chunked\r\n\r\n",
        e.any.plaintext
    );
    s.write_all(head.as_bytes()).expect("head");
    for piece in body.as_bytes()[..SMALL_LIMIT + 4_000].chunks(8_000) {
        s.write_all(&chunk(piece)).expect("chunk");
    }
    let r = read_response(&mut s);
    assert_scim_error(&r, 413, None);
    // Exactly at the limit is fine.
    let body = member_patch(SMALL_LIMIT, None);
    assert_eq!(body.len(), SMALL_LIMIT);
    let r = e.req(
        "PATCH",
        &format!("/scim/v2/Groups/{id}"),
        &e.any,
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let w = e.only_write();
    assert_eq!(w.body, body.as_bytes());
    assert_ne!(e.group(&id), before);
}

// ---------------------------------------------------------------------------------------------
// Dialects
// ---------------------------------------------------------------------------------------------

/// Entra's disable: capitalised op, boolean as a string.
fn entra_disable() -> String {
    patch(json!([{"op": "Replace", "path": "active", "value": "False"}]))
}

#[test]
fn normalize_rewrites_entra_deviations_to_rfc_form_before_forwarding() {
    let e = env(); // normalize is the default
    let id = e.seed_user();
    let r = e.req(
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        &e.any,
        entra_disable().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let w = e.only_write();
    let got: Value = serde_json::from_slice(&w.body).expect("json upstream");
    assert_eq!(got["Operations"][0]["op"], "replace", "{got}");
    assert_eq!(got["Operations"][0]["value"], json!(false), "{got}");
    assert_eq!(
        w.header("content-length"),
        Some(w.body.len().to_string().as_str()),
        "exact Content-Length for the rewritten body"
    );
    assert_eq!(e.user(&id)["active"], json!(false));
    // Entra's member removal with a value list becomes a filter path.
    let gid = e.seed_group();
    let r = e.req(
        "PATCH",
        &format!("/scim/v2/Groups/{gid}"),
        &e.any,
        patch(json!([{"op": "Remove", "path": "members", "value": [{"value": "m-0001"}]}]))
            .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let got: Value = serde_json::from_slice(&e.only_write().body).expect("json");
    assert_eq!(got["Operations"][0]["op"], "remove", "{got}");
    assert_eq!(
        got["Operations"][0]["path"], "members[value eq \"m-0001\"]",
        "{got}"
    );
    assert_eq!(e.group(&gid)["members"], json!([{"value": "m-0002"}]));
    // No-path replace whose keys are paths becomes one op per path.
    e.up.dir.clear_received();
    let r = e.req(
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        &e.any,
        patch(json!([{"op": "replace", "value": {"name.givenName": "Ally", "displayName": "Ally Smith"}}]))
            .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let got: Value = serde_json::from_slice(&e.only_write().body).expect("json");
    let s = got.to_string();
    assert!(
        s.contains("\"path\":\"name.givenName\""),
        "rewritten to a path op: {s}"
    );
    assert_eq!(e.user(&id)["name"]["givenName"], "Ally");
}

#[test]
fn tolerate_forwards_the_deviations_byte_for_byte() {
    let e = env_with(|p| p.dialect = Some(DialectName::Tolerate));
    let id = e.seed_user();
    let sent = entra_disable();
    let r = e.req(
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        &e.any,
        sent.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let w = e.only_write();
    assert_eq!(
        String::from_utf8_lossy(&w.body),
        sent,
        "forwarded exactly as sent"
    );
    // tolerate still checks: a string that is no boolean is refused.
    e.up.dir.clear_received();
    let before = e.user(&id);
    let r = e.patch_user(
        &id,
        json!([{"op": "Replace", "path": "active", "value": "nope"}]),
    );
    assert_rejected(&r, 400, Some("invalidValue"), &["active"]);
    let r = e.patch_user(
        &id,
        json!([{"op": "Replace", "path": "title", "value": "x"}]),
    );
    assert_rejected(&r, 400, Some("mutability"), &["title"]);
    assert_eq!(e.user(&id), before);
    e.assert_no_write("tolerate rejections");
}

#[test]
fn strict_rejects_the_deviations_with_400() {
    let e = env_with(|p| p.dialect = Some(DialectName::Strict));
    let id = e.seed_user();
    let gid = e.seed_group();
    let before = e.user(&id);
    let gbefore = e.group(&gid);
    let r = e.req(
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        &e.any,
        entra_disable().as_bytes(),
    );
    assert_rejected(&r, 400, None, &["op"]);
    let r = e.patch_user(
        &id,
        json!([{"op": "replace", "path": "active", "value": "False"}]),
    );
    assert_rejected(&r, 400, Some("invalidValue"), &["active"]);
    let r = e.patch_user(
        &id,
        json!([{"op": "replace", "value": {"name.givenName": "Ally"}}]),
    );
    assert_scim_error(&r, 400, None);
    let r = e.patch_user(
        &id,
        json!([{"op": "replace", "path": format!("{ENT}:manager"), "value": "boss-id"}]),
    );
    assert_scim_error(&r, 400, None);
    let r = e.req(
        "PATCH",
        &format!("/scim/v2/Groups/{gid}"),
        &e.any,
        patch(json!([{"op": "remove", "path": "members", "value": [{"value": "m-0001"}]}]))
            .as_bytes(),
    );
    assert_scim_error(&r, 400, None);
    assert_eq!(e.user(&id), before);
    assert_eq!(e.group(&gid), gbefore);
    e.assert_no_write("strict");
    // RFC form passes.
    let r = e.patch_user(
        &id,
        json!([{"op": "replace", "path": "active", "value": false}]),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

// ---------------------------------------------------------------------------------------------
// No bypass
// ---------------------------------------------------------------------------------------------

#[test]
fn every_route_spelling_is_checked() {
    let e = env();
    let id = e.seed_user();
    let before = e.user(&id);
    let bad_patch = patch(json!([{"op": "replace", "path": "userName", "value": "m@acme.com"}]));
    for path in [
        format!("/scim/v2/users/{id}"),
        format!("/scim/v2/Users/{id}/"),
        format!("/scim/v2/%55sers/{id}"),
        format!("/SCIM/V2/USERS/{id}"),
        format!("/scim/v2/%75sers/{id}/"),
    ] {
        let r = e.req("PATCH", &path, &e.any, bad_patch.as_bytes());
        assert_rejected(&r, 400, Some("mutability"), &["userName"]);
        let r = e.req(
            "PUT",
            &path,
            &e.any,
            &put_body(&before, |v| v["title"] = json!("CEO")),
        );
        assert_rejected(&r, 400, Some("mutability"), &["title"]);
    }
    let mut bad_post = alice();
    bad_post["userName"] = json!("z@acme.com");
    bad_post["favouriteColour"] = json!("red");
    for path in [
        "/scim/v2/users",
        "/scim/v2/Users/",
        "/scim/v2/%55sers",
        "/scim/v2/USERS",
    ] {
        let r = e.req("POST", path, &e.any, bad_post.to_string().as_bytes());
        assert_rejected(&r, 400, None, &["favouriteColour"]);
    }
    // Groups too.
    let gid = e.seed_group();
    let gbefore = e.group(&gid);
    let r = e.req(
        "PATCH",
        &format!("/scim/v2/%47roups/{gid}"),
        &e.any,
        patch(json!([{"op": "replace", "path": "externalId", "value": "x"}])).as_bytes(),
    );
    assert_rejected(&r, 400, Some("mutability"), &["externalId"]);
    assert_eq!(e.user(&id), before);
    assert_eq!(e.group(&gid), gbefore);
    assert_eq!(e.up.dir.user_count(), 1);
    e.assert_no_write("route spellings");
}

#[test]
fn bulk_operations_are_checked_like_single_requests() {
    let e = env();
    let id = e.seed_user();
    let before = e.user(&id);
    let cases = [
        (
            json!({"method": "PATCH", "path": format!("/Users/{id}"),
                   "data": {"schemas": [PATCH_URN], "Operations": [
                       {"op": "replace", "path": "userName", "value": "m@acme.com"}]}}),
            "mutability",
            "userName",
        ),
        (
            json!({"method": "PATCH", "path": format!("/users/{id}"),
                   "data": {"schemas": [PATCH_URN], "Operations": [
                       {"op": "replace", "path": "emails[type eq", "value": "x"}]}}),
            "invalidPath",
            "emails[type eq",
        ),
        (
            json!({"method": "PUT", "path": format!("/Users/{id}"),
                   "data": serde_json::from_slice::<Value>(&put_body(&before, |v| v["title"] = json!("CEO"))).expect("json")}),
            "mutability",
            "title",
        ),
        (
            json!({"method": "POST", "path": "/Users", "bulkId": "x",
                   "data": {"schemas": [USER_URN], "userName": "q@acme.com", "favouriteColour": "red"}}),
            "invalidValue",
            "favouriteColour",
        ),
    ];
    for (op, scim_type, name) in cases {
        let ok = json!({"method": "PATCH", "path": format!("/Users/{id}"),
            "data": {"schemas": [PATCH_URN], "Operations": [
                {"op": "replace", "path": "displayName", "value": "fine"}]}});
        let bulk = json!({"schemas": [BULK_URN], "Operations": [ok, op]});
        let r = e.req("POST", "/scim/v2/Bulk", &e.any, bulk.to_string().as_bytes());
        assert_rejected(&r, 400, Some(scim_type), &["Operations[1]", name]);
    }
    // Bulk under another spelling, and a bulk op on an unsafe path.
    let bulk = json!({"schemas": [BULK_URN], "Operations": [
        {"method": "PATCH", "path": format!("/Users/../Users/{id}"),
         "data": {"schemas": [PATCH_URN], "Operations": [
             {"op": "replace", "path": "displayName", "value": "x"}]}}]});
    let r = e.req("POST", "/scim/v2/bulk", &e.any, bulk.to_string().as_bytes());
    assert_scim_error(&r, 400, None);
    assert_eq!(e.user(&id), before);
    e.assert_no_write("bulk");
    // A valid Bulk request is forwarded (the demo has no /Bulk and answers 404 itself).
    let bulk = json!({"schemas": [BULK_URN], "Operations": [
        {"method": "PATCH", "path": format!("/Users/{id}"),
         "data": {"schemas": [PATCH_URN], "Operations": [
             {"op": "replace", "path": "displayName", "value": "fine"}]}}]});
    let r = e.req("POST", "/scim/v2/Bulk", &e.any, bulk.to_string().as_bytes());
    assert_ne!(r.status, 400, "{}", r.text());
    let w = e.only_write();
    assert_eq!(w.path, "/v2/Bulk");
}

#[test]
fn search_cannot_write() {
    let e = env();
    let id = e.seed_user();
    let before = e.user(&id);
    let bad_patch = patch(json!([{"op": "replace", "path": "displayName", "value": "x"}]));
    for path in [
        "/scim/v2/Users/.search",
        "/scim/v2/.search",
        "/scim/v2/users/.SEARCH",
    ] {
        // A PatchOp or a resource posted to .search is not a SearchRequest.
        let r = e.req("POST", path, &e.any, bad_patch.as_bytes());
        assert_scim_error(&r, 400, None);
        let r = e.req("POST", path, &e.any, alice().to_string().as_bytes());
        assert_scim_error(&r, 400, None);
        // Other methods on .search are not allowed at all.
        for m in ["PUT", "PATCH", "DELETE"] {
            let r = e.req(m, path, &e.any, bad_patch.as_bytes());
            assert!(
                r.status == 405 || r.status == 400,
                "{m} {path}: {} {}",
                r.status,
                r.text()
            );
        }
        // A filter that does not parse is 400 invalidFilter, never an unfiltered list.
        let search = json!({"schemas": [SEARCH_URN], "filter": "userName eq"});
        let r = e.req("POST", path, &e.any, search.to_string().as_bytes());
        assert_scim_error(&r, 400, Some("invalidFilter"));
    }
    assert_eq!(e.user(&id), before);
    e.assert_no_write(".search");
    // A real SearchRequest goes through and finds the user.
    let search = json!({"schemas": [SEARCH_URN], "filter": "userName eq \"alice@acme.com\""});
    let r = e.req(
        "POST",
        "/scim/v2/Users/.search",
        &e.any,
        search.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["totalResults"], 1);
    assert_eq!(e.user(&id), before);
}

// ---------------------------------------------------------------------------------------------
// Bodies: large, chunked, Expect: 100-continue
// ---------------------------------------------------------------------------------------------

/// A group PATCH adding members, padded to exactly `size` bytes; `last` (if any) is an extra
/// operation appended at the end.
fn member_patch(size: usize, last: Option<Value>) -> String {
    let tail = match &last {
        Some(op) => format!(",{op}"),
        None => String::new(),
    };
    let head = format!("{{\"schemas\":[\"{PATCH_URN}\"],\"Operations\":[{{\"op\":\"add\",\"path\":\"members\",\"value\":[");
    let end = format!("]}}{tail}]}}");
    let mut s = head;
    let mut i = 0usize;
    loop {
        // Each member as Okta sends it, with the readOnly `display` (ignored, kept as sent).
        let m = format!(
            "{}{{\"value\":\"{i:08x}-0000-4000-8000-{i:012x}\",\"display\":\"Member {i:05}\"}}",
            if i == 0 { "" } else { "," }
        );
        if s.len() + m.len() + end.len() > size {
            break;
        }
        s.push_str(&m);
        i += 1;
    }
    // Pad with whitespace (valid JSON) to the exact size.
    let pad = size - s.len() - end.len();
    s.push_str(&" ".repeat(pad));
    s.push_str(&end);
    assert_eq!(s.len(), size);
    s
}

fn member_count(g: &Value) -> usize {
    g["members"].as_array().map_or(0, Vec::len)
}

const LARGE: usize = 900 * 1024;

#[test]
fn a_900_kib_group_patch_passes_and_arrives_byte_exact() {
    let e = env();
    let gid = e.seed_empty_group();
    let body = member_patch(LARGE, None);
    let r = e.req(
        "PATCH",
        &format!("/scim/v2/Groups/{gid}"),
        &e.any,
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let w = e.only_write();
    assert_eq!(w.method, "PATCH");
    assert_eq!(w.path, format!("/v2/Groups/{gid}"));
    assert_eq!(w.body.len(), body.len());
    assert!(w.body == body.as_bytes(), "the upstream got other bytes");
    assert_eq!(
        w.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert!(
        member_count(&e.group(&gid)) > 10_000,
        "thousands of members"
    );
}

#[test]
fn an_invalid_900_kib_body_is_rejected_and_does_not_change_the_group() {
    let e = env();
    let gid = e.seed_group();
    let before = e.group(&gid);
    for (last, scim_type, name) in [
        (
            json!({"op": "replace", "path": "members[value eq", "value": []}),
            "invalidPath",
            "members[value eq",
        ),
        (
            json!({"op": "replace", "path": "externalId", "value": "x"}),
            "mutability",
            "externalId",
        ),
    ] {
        let body = member_patch(LARGE, Some(last));
        let r = e.req(
            "PATCH",
            &format!("/scim/v2/Groups/{gid}"),
            &e.any,
            body.as_bytes(),
        );
        assert_rejected(&r, 400, Some(scim_type), &[name]);
        assert_eq!(e.group(&gid), before);
        e.assert_no_write("invalid large body");
    }
    // Invalid JSON at the very end.
    let mut body = member_patch(LARGE, None).into_bytes();
    let n = body.len();
    body[n - 1] = b',';
    let r = e.req("PATCH", &format!("/scim/v2/Groups/{gid}"), &e.any, &body);
    assert_scim_error(&r, 400, Some("invalidSyntax"));
    // A domain violation in a large POST.
    let mut members = String::new();
    for i in 0..12_000 {
        members.push_str(&format!(
            ",{{\"value\":\"a{i:07}@acme.com\",\"type\":\"other\"}}"
        ));
    }
    let post = format!(
        "{{\"schemas\":[\"{USER_URN}\"],\"userName\":\"big@acme.com\",\"emails\":[{{\"value\":\"big@acme.com\"}}{members},{{\"value\":\"x@evil.com\"}}]}}"
    );
    assert!(post.len() > 64 * 1024);
    let r = e.req("POST", "/scim/v2/Users", &e.acme, post.as_bytes());
    assert_rejected(&r, 403, None, &["evil.com"]);
    assert_eq!(e.group(&gid), before);
    assert_eq!(e.up.dir.user_count(), 0);
    e.assert_no_write("invalid large bodies");
}

fn connect(gate: &GateProc) -> TcpStream {
    let s = TcpStream::connect(gate.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s
}

fn chunk(piece: &[u8]) -> Vec<u8> {
    let mut c = format!("{:x}\r\n", piece.len()).into_bytes();
    c.extend_from_slice(piece);
    c.extend_from_slice(b"\r\n");
    c
}

fn send_chunked(e: &Env, method: &str, path: &str, body: &[u8], piece: usize) -> Response {
    let mut s = connect(&e.gate);
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Type: {SCIM_JSON}\r\nTransfer-Encoding: chunked\r\n\r\n",
        e.any.plaintext
    );
    s.write_all(head.as_bytes()).expect("head");
    for p in body.chunks(piece) {
        s.write_all(&chunk(p)).expect("chunk");
    }
    s.write_all(b"0\r\n\r\n").expect("last chunk");
    read_response(&mut s)
}

#[test]
fn chunked_request_bodies_are_checked_and_forwarded() {
    let e = env();
    let id = e.seed_user();
    let before = e.user(&id);
    // Small and valid (normalised on the way: the upstream gets RFC form).
    let r = send_chunked(
        &e,
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        entra_disable().as_bytes(),
        7,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let w = e.only_write();
    let got: Value = serde_json::from_slice(&w.body).expect("json");
    assert_eq!(got["Operations"][0]["op"], "replace");
    assert_eq!(got["Operations"][0]["value"], json!(false));
    assert_eq!(e.user(&id)["active"], json!(false));
    // Small and invalid: refused, the user as it was after the first PATCH.
    e.up.dir.clear_received();
    let mid = e.user(&id);
    assert_ne!(mid, before);
    let r = send_chunked(
        &e,
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        patch(json!([{"op": "replace", "path": "userName", "value": "m@acme.com"}])).as_bytes(),
        5,
    );
    assert_rejected(&r, 400, Some("mutability"), &["userName"]);
    assert_eq!(e.user(&id), mid);
    e.assert_no_write("chunked invalid");
    // Large and valid: byte-exact.
    let gid = e.seed_empty_group();
    let body = member_patch(300 * 1024, None);
    let r = send_chunked(
        &e,
        "PATCH",
        &format!("/scim/v2/Groups/{gid}"),
        body.as_bytes(),
        16_000,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let w = e.only_write();
    assert!(
        w.body == body.as_bytes(),
        "chunked large body arrives byte-exact"
    );
    // Large and invalid.
    e.up.dir.clear_received();
    let gbefore = e.group(&gid);
    let body = member_patch(
        300 * 1024,
        Some(json!({"op": "add", "path": "displayName", "value": 7})),
    );
    let r = send_chunked(
        &e,
        "PATCH",
        &format!("/scim/v2/Groups/{gid}"),
        body.as_bytes(),
        16_000,
    );
    assert_rejected(&r, 400, Some("invalidValue"), &["displayName"]);
    assert_eq!(e.group(&gid), gbefore);
    e.assert_no_write("chunked large invalid");
}

/// Reads one response head; returns (status, the head bytes).
fn read_head(s: &mut TcpStream) -> (u16, Vec<u8>) {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => buf.push(b[0]),
            other => panic!(
                "no response head ({other:?}): {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
    }
    let status = String::from_utf8_lossy(&buf)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, buf)
}

fn expect_continue_head(tok: &str, path: &str, len: usize) -> String {
    format!(
        "PATCH {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {tok}\r\nContent-Type: {SCIM_JSON}\r\nContent-Length: {len}\r\nExpect: 100-continue\r\n\r\n",
    )
}

#[test]
fn expect_100_continue_gets_100_then_the_final_answer() {
    let e = env_with(|p| p.max_body_bytes = Some(SMALL_LIMIT));
    let id = e.seed_user();
    let gid = e.seed_group();
    let path = format!("/scim/v2/Users/{id}");
    // Small valid body: 100, then 200; the upstream sees no Expect header.
    let body = patch(json!([{"op": "replace", "path": "displayName", "value": "Cont"}]));
    let mut s = connect(&e.gate);
    s.write_all(expect_continue_head(&e.any.plaintext, &path, body.len()).as_bytes())
        .expect("head");
    let (status, _) = read_head(&mut s);
    assert_eq!(status, 100, "interim answer before the body");
    s.write_all(body.as_bytes()).expect("body");
    let r = read_response(&mut s);
    assert_eq!(r.status, 200, "{}", r.text());
    let w = e.only_write();
    assert!(w.header("expect").is_none(), "{:?}", w.headers);
    assert_eq!(e.user(&id)["displayName"], "Cont");
    // Small invalid body: 100, then the SCIM error.
    e.up.dir.clear_received();
    let body = patch(json!([{"op": "replace", "path": "title", "value": "x"}]));
    let mut s = connect(&e.gate);
    s.write_all(expect_continue_head(&e.any.plaintext, &path, body.len()).as_bytes())
        .expect("head");
    assert_eq!(read_head(&mut s).0, 100);
    s.write_all(body.as_bytes()).expect("body");
    let r = read_response(&mut s);
    assert_rejected(&r, 400, Some("mutability"), &["title"]);
    e.assert_no_write("100-continue invalid");
    // Stream-path body (> 64 KiB): 100, then 200, byte-exact.
    let body = member_patch(90_000, None);
    let gpath = format!("/scim/v2/Groups/{gid}");
    let mut s = connect(&e.gate);
    s.write_all(expect_continue_head(&e.any.plaintext, &gpath, body.len()).as_bytes())
        .expect("head");
    assert_eq!(read_head(&mut s).0, 100);
    s.write_all(body.as_bytes()).expect("body");
    let r = read_response(&mut s);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(e.only_write().body == body.as_bytes());
    // Refused for the token: the final 401 without a 100 (the body is never sent).
    e.up.dir.clear_received();
    let mut s = connect(&e.gate);
    s.write_all(expect_continue_head("scimgate_wrong", &path, 40).as_bytes())
        .expect("head");
    let (status, head) = read_head(&mut s);
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&head));
    let r = read_response(&mut Cursor::new(head).chain(&mut s));
    assert_scim_error(&r, 401, None);
    // Refused for its size: the final 413 without a 100.
    let mut s = connect(&e.gate);
    s.write_all(expect_continue_head(&e.any.plaintext, &gpath, SMALL_LIMIT + 1).as_bytes())
        .expect("head");
    let (status, head) = read_head(&mut s);
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&head));
    let r = read_response(&mut Cursor::new(head).chain(&mut s));
    assert_scim_error(&r, 413, None);
    // Refused for its media type: the final 415 without a 100.
    let mut s = connect(&e.gate);
    let head = expect_continue_head(&e.any.plaintext, &path, 10).replace(SCIM_JSON, "text/plain");
    s.write_all(head.as_bytes()).expect("head");
    assert_eq!(read_head(&mut s).0, 415);
    e.assert_no_write("refused 100-continue");
}

// ---------------------------------------------------------------------------------------------
// The slow one: a client that stops sending
// ---------------------------------------------------------------------------------------------

/// Sends the head and half of `body` as a PATCH to `path`, then stalls; returns the answer
/// (the read waits at most 20 s; the harness sets `server.body_timeout: 3s`).
fn stall(e: &Env, path: &str, body: &str) -> Response {
    let mut s = TcpStream::connect(e.gate.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Type: {SCIM_JSON}\r\nContent-Length: {}\r\n\r\n",
        e.any.plaintext,
        body.len()
    );
    s.write_all(head.as_bytes()).expect("head");
    s.write_all(&body.as_bytes()[..body.len() / 2])
        .expect("part");
    read_response(&mut s)
}

/// Takes `server.body_timeout` (3 s in the harness). What is asserted is the
/// answer (408) and the untouched upstream, not the time; the wait is bounded.
/// Replay path (a body ≤ 64 KiB, read in `request_filter`).
#[test]
fn stalled_body_gets_408_within_the_body_deadline() {
    let e = env();
    let id = e.seed_user();
    let before = e.user(&id);
    let r = stall(
        &e,
        &format!("/scim/v2/Users/{id}"),
        &patch(json!([{"op": "replace", "path": "displayName", "value": "Stalled"}])),
    );
    assert_scim_error(&r, 408, None);
    assert_eq!(e.user(&id), before);
    e.assert_no_write("stalled body");
}

/// Stream path (a body > 64 KiB): the gate has already sent the head upstream and withholds the
/// body; the downstream read timeout (`server.body_timeout`) answers 408 before the upstream's
/// read timeout, which the gate stretches by the same amount for streamed bodies.
#[test]
fn stalled_large_body_gets_408_within_the_body_deadline() {
    let e = env();
    let gid = e.seed_group();
    let before = e.group(&gid);
    let r = stall(
        &e,
        &format!("/scim/v2/Groups/{gid}"),
        &member_patch(200_000, None),
    );
    assert_scim_error(&r, 408, None);
    assert_eq!(e.group(&gid), before);
    e.assert_no_write("stalled large body");
}

/// Reliability finding 1: a filter of ~100 000 `or` terms (search or PATCH value path) fits in
/// the 1 MiB body and used to abort the whole process with a stack overflow. Now it is a 400
/// `invalidFilter`, the gate keeps serving, and `policy.max_filter_terms` sets the bound.
#[test]
fn a_filter_with_too_many_terms_is_400_and_the_gate_survives() {
    let e = env_with(|p| p.max_filter_terms = Some(50));
    let id = e.seed_user();
    let before = e.user(&id);
    // `a pr or a pr or …`: 100 000 terms in ~800 KB.
    let chain = |n: usize| vec!["a pr"; n].join(" or ");
    let search = |n: usize| {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
               "filter": chain(n)})
        .to_string()
    };
    let huge = search(100_000);
    assert!(huge.len() < 1_048_576, "{}", huge.len());
    let r = e.req("POST", "/scim/v2/Users/.search", &e.any, huge.as_bytes());
    assert_scim_error(&r, 400, Some("invalidFilter"));
    let r = e.req("POST", "/scim/v2/.search", &e.any, search(51).as_bytes());
    assert_scim_error(&r, 400, Some("invalidFilter"));
    // At the bound the gate forwards (the demo directory then refuses `pr` itself).
    e.req(
        "POST",
        "/scim/v2/Users/.search",
        &e.any,
        search(50).as_bytes(),
    );
    let forwarded = e.writes();
    assert_eq!(forwarded.len(), 1, "the search at the bound is forwarded");
    assert!(
        forwarded[0].path.ends_with("/Users/.search"),
        "{}",
        forwarded[0].path
    );
    e.up.dir.clear_received();
    let path = format!("emails[{}].value", chain(80_000).replace('a', "value"));
    let r = e.patch_user(
        &id,
        json!([{"op": "replace", "path": path, "value": "x@y"}]),
    );
    assert_scim_error(&r, 400, Some("invalidFilter"));
    // Still alive, still answering.
    let r = e.req("GET", &format!("/scim/v2/Users/{id}"), &e.any, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(e.user(&id), before);
    e.assert_no_write("over-long filters");
}

// ---------------------------------------------------------------------------------------------
// SCIM-side reliability (issue 15 findings 4, 6, 12 and the recursion audit), through the binary
// ---------------------------------------------------------------------------------------------

/// Deep JSON and deep filters answer 400 with a detail that names the bound; the gate keeps
/// serving and nothing reached the upstream.
#[test]
fn deep_input_is_400_and_the_gate_survives() {
    let e = env();
    let id = e.seed_user();
    let depth = 100_000;
    let body = format!(
        "{{\"schemas\":[\"{USER_URN}\"],\"userName\":\"deep@acme.com\",\"x\":{}1{}}}",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let r = e.req("POST", "/scim/v2/Users", &e.any, body.as_bytes());
    assert_scim_error(&r, 400, Some("invalidSyntax"));
    assert!(
        r.text().contains("nested deeper than 64 levels"),
        "{}",
        r.text()
    );
    let deep = format!(
        "{}userName eq \"a\"{}",
        "(".repeat(depth),
        ")".repeat(depth)
    );
    let search = json!({"schemas": [SEARCH_URN], "filter": deep}).to_string();
    let r = e.req("POST", "/scim/v2/.search", &e.any, search.as_bytes());
    assert_scim_error(&r, 400, Some("invalidFilter"));
    let r = e.req("GET", &format!("/scim/v2/Users/{id}"), &e.any, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    e.assert_no_write("deep input");
}

/// A fullwidth `＠` and a second `@` cannot smuggle a foreign domain past a domain-limited token,
/// and neither can an address inside a PATCH value filter.
#[test]
fn domain_tricks_are_403() {
    let e = env();
    let id = e.seed_user();
    for user_name in ["victim\u{FF20}evil.com", "x@evil.com@acme.com"] {
        let body = json!({"schemas": [USER_URN], "userName": user_name}).to_string();
        let r = e.req("POST", "/scim/v2/Users", &e.acme, body.as_bytes());
        assert_scim_error(&r, 403, None);
    }
    let ops =
        json!([{"op": "add", "path": "emails[value eq \"x@evil.com\"].primary", "value": true}]);
    let body = json!({"schemas": [PATCH_URN], "Operations": ops}).to_string();
    let r = e.req(
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        &e.acme,
        body.as_bytes(),
    );
    assert_scim_error(&r, 403, None);
    e.assert_no_write("domain tricks");
}
