//! Behaviour tests: routes through `handle`, then the HTTP server over TCP and over TLS.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::message::find_header;

const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn call(dir: &DemoDirectory, method: &str, path: &str, body: Value) -> DemoResponse {
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let headers = vec![("Host".to_string(), "scim.test".to_string())];
    dir.handle(&DemoRequest {
        method: method.into(),
        path: path.into(),
        headers,
        body,
    })
}

fn patch(dir: &DemoDirectory, path: &str, ops: Value) -> DemoResponse {
    call(
        dir,
        "PATCH",
        path,
        json!({"schemas": [PATCH_URN], "Operations": ops}),
    )
}

fn user(dir: &DemoDirectory, name: &str, extra: Value) -> String {
    let mut body =
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name});
    if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra) {
        b.extend(extra);
    }
    let resp = call(dir, "POST", "/v2/Users", body);
    assert_eq!(resp.status, 201, "{}", String::from_utf8_lossy(&resp.body));
    resp.json()["id"].as_str().expect("id").to_string()
}

fn assert_error(resp: &DemoResponse, status: u16, scim_type: Option<&str>) {
    let body = resp.json();
    assert_eq!(resp.status, status, "{body}");
    assert_eq!(resp.header("content-type"), Some("application/scim+json"));
    assert_eq!(
        body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    assert_eq!(
        body["status"],
        json!(status.to_string()),
        "status is a string"
    );
    assert_eq!(body["scimType"].as_str(), scim_type, "{body}");
}

#[test]
fn post_user_creates_with_meta_location_and_ignores_read_only() {
    let dir = DemoDirectory::new("/v2");
    let resp = call(
        &dir,
        "POST",
        "/v2/Users",
        json!({"userName": "Ada", "id": "mine", "meta": {"version": "x"},
        "groups": [], "password": "hunter2", "name": {"givenName": "Ada"}}),
    );
    assert_eq!(resp.status, 201);
    assert_eq!(resp.header("content-type"), Some("application/scim+json"));
    let body = resp.json();
    let id = body["id"].as_str().unwrap();
    assert_ne!(id, "mine");
    assert_eq!(id.len(), 36);
    assert_eq!(id.matches('-').count(), 4);
    let location = format!("http://scim.test/v2/Users/{id}");
    assert_eq!(resp.header("location"), Some(location.as_str()));
    assert_eq!(body["meta"]["location"], json!(location));
    assert_eq!(body["meta"]["resourceType"], "User");
    assert_eq!(body["meta"]["version"], "W/\"1\"");
    assert_eq!(body["meta"]["created"], body["meta"]["lastModified"]);
    assert!(body.get("password").is_none() && body.get("groups").is_none());
    assert_eq!(
        body["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:User"])
    );
    assert_eq!(dir.user_count(), 1);
    assert_eq!(dir.get_user(id).unwrap()["name"]["givenName"], "Ada");

    let got = call(&dir, "GET", &format!("/v2/Users/{id}"), Value::Null);
    assert_eq!(got.status, 200);
    assert_eq!(got.json(), body);
}

#[test]
fn post_user_errors() {
    let dir = DemoDirectory::new("/v2");
    user(&dir, "bjensen@example.com", json!({}));
    assert_error(
        &call(
            &dir,
            "POST",
            "/v2/Users",
            json!({"UserName": "BJensen@Example.com"}),
        ),
        409,
        Some("uniqueness"),
    );
    assert_error(
        &call(&dir, "POST", "/v2/Users", json!({"displayName": "x"})),
        400,
        Some("invalidValue"),
    );
    assert_error(
        &call(&dir, "POST", "/v2/Users", json!({"userName": ""})),
        400,
        Some("invalidValue"),
    );
    let garbage = dir.handle(&DemoRequest {
        method: "POST".into(),
        path: "/v2/Users".into(),
        headers: vec![],
        body: b"{nope".to_vec(),
    });
    assert_error(&garbage, 400, Some("invalidSyntax"));
    assert_error(
        &call(&dir, "GET", "/v2/Users/nobody", Value::Null),
        404,
        None,
    );
    assert_eq!(dir.user_count(), 1);
}

#[test]
fn list_filters_by_user_name_external_id_and_display_name() {
    let dir = DemoDirectory::new("/v2");
    user(
        &dir,
        "alice@example.com",
        json!({"externalId": "Ext-1", "displayName": "Alice A"}),
    );
    user(&dir, "bob@example.com", json!({"externalId": "ext-2"}));
    let total = |path: &str| {
        let resp = call(&dir, "GET", path, Value::Null);
        assert_eq!(resp.status, 200, "{path}: {}", resp.json());
        assert_eq!(
            resp.json()["schemas"],
            json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
        );
        resp.json()["totalResults"].as_u64().unwrap()
    };
    assert_eq!(
        total("/v2/Users?filter=userName%20eq%20%22ALICE@example.com%22"),
        1
    );
    assert_eq!(
        total("/v2/Users?filter=UserName+EQ+%22bob@example.com%22"),
        1
    );
    assert_eq!(total("/v2/Users?filter=externalId%20eq%20%22Ext-1%22"), 1);
    assert_eq!(
        total("/v2/Users?filter=externalId%20eq%20%22ext-1%22"),
        0,
        "externalId is caseExact"
    );
    assert_eq!(
        total("/v2/Users?filter=displayName%20eq%20%22alice%20a%22"),
        1
    );
    // Entra's Test Connection: a random GUID must give 200 with zero results.
    let none = call(
        &dir,
        "GET",
        "/v2/Users?filter=userName%20eq%20%2200000000-0000%22",
        Value::Null,
    );
    assert_eq!(
        (
            none.json()["totalResults"].clone(),
            none.json()["Resources"].clone()
        ),
        (json!(0), json!([]))
    );
    assert_eq!(total("/v2/Users"), 2);
    for bad in [
        "userName%20co%20%22a%22",
        "title%20eq%20%22x%22",
        "userName%20eq%20%22a%22%20or%20userName%20eq%20%22b%22",
        "userName%20eq%20alice",
        "(",
        "userName%20eq%20%22a",
    ] {
        assert_error(
            &call(&dir, "GET", &format!("/v2/Users?filter={bad}"), Value::Null),
            400,
            Some("invalidFilter"),
        );
    }
}

#[test]
fn list_pages_with_start_index_and_count() {
    let dir = DemoDirectory::new("/v2");
    for i in 1..=5 {
        user(&dir, &format!("u{i}"), json!({}));
    }
    let page = |q: &str| call(&dir, "GET", &format!("/v2/Users?{q}"), Value::Null).json();
    let p = page("startIndex=2&count=2");
    assert_eq!(
        (
            p["totalResults"].as_u64(),
            p["startIndex"].as_u64(),
            p["itemsPerPage"].as_u64()
        ),
        (Some(5), Some(2), Some(2))
    );
    let names: Vec<&str> = p["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["u2", "u3"]);
    assert_eq!(page("count=0")["itemsPerPage"], 0);
    assert_eq!(page("count=0")["totalResults"], 5);
    assert_eq!(
        page("startIndex=0&count=1")["Resources"][0]["userName"],
        "u1"
    );
    assert_eq!(page("startIndex=5&count=10")["itemsPerPage"], 1);
    assert_eq!(page("startIndex=9")["itemsPerPage"], 0);
    assert_eq!(
        page("count=1")["Resources"][0]["meta"]["location"]
            .as_str()
            .map(|l| l.starts_with("http://scim.test/v2/Users/")),
        Some(true)
    );
    assert_error(
        &call(&dir, "GET", "/v2/Users?count=lots", Value::Null),
        400,
        Some("invalidValue"),
    );
    let search = call(
        &dir,
        "POST",
        "/v2/Users/.search",
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": "userName eq \"U4\"", "startIndex": 1, "count": 10}),
    );
    assert_eq!(search.json()["Resources"][0]["userName"], "u4");
    assert_eq!(search.json()["totalResults"], 1);
}

#[test]
fn put_replaces_but_keeps_id_and_created() {
    let dir = DemoDirectory::new("/v2");
    let other = user(&dir, "other", json!({}));
    let id = user(
        &dir,
        "ada",
        json!({"displayName": "Ada", "title": "Countess"}),
    );
    let before = dir.get_user(&id).unwrap();
    let resp = call(
        &dir,
        "PUT",
        &format!("/v2/Users/{id}"),
        json!({"userName": "ada", "id": other, "active": false}),
    );
    assert_eq!(resp.status, 200);
    let body = resp.json();
    assert_eq!(body["id"], json!(id));
    assert_eq!(body["active"], false);
    assert!(
        body.get("title").is_none(),
        "PUT replaces the whole resource"
    );
    assert_eq!(body["meta"]["version"], "W/\"2\"");
    assert_eq!(body["meta"]["created"], before["meta"]["created"]);
    assert_error(
        &call(
            &dir,
            "PUT",
            &format!("/v2/Users/{id}"),
            json!({"userName": "OTHER"}),
        ),
        409,
        Some("uniqueness"),
    );
    assert_error(
        &call(&dir, "PUT", "/v2/Users/missing", json!({"userName": "x"})),
        404,
        None,
    );
}

#[test]
fn patch_user_paths_as_idps_send_them() {
    let dir = DemoDirectory::new("/v2");
    let id = user(
        &dir,
        "ada",
        json!({"emails": [{"type": "home", "value": "a@home.test"}], "name": {"familyName": "Lovelace"}, "active": true}),
    );
    let path = format!("/v2/Users/{id}");
    let resp = patch(
        &dir,
        &path,
        json!([
            // Entra: capitalised op, no path, keys that are paths.
            {"op": "Replace", "value": {"name.givenName": "Ada", "Active": false, "displayName": "Ada L"}},
            // Entra: add through a value filter that matches nothing yet.
            {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "ada@work.test"},
            {"op": "replace", "path": "emails[type eq \"HOME\"].primary", "value": true},
            {"op": "add", "path": format!("{ENT}:department"), "value": "Engines"},
            {"op": "add", "path": format!("{ENT}:manager"), "value": {"value": "boss-id"}},
        ]),
    );
    assert_eq!(resp.status, 200, "{}", resp.json());
    let u = resp.json();
    assert_eq!(
        u["name"],
        json!({"familyName": "Lovelace", "givenName": "Ada"})
    );
    assert_eq!(u["active"], false);
    assert_eq!(u["displayName"], "Ada L");
    assert_eq!(
        u["emails"],
        json!([{"type": "home", "value": "a@home.test", "primary": true}, {"type": "work", "value": "ada@work.test"}])
    );
    assert_eq!(
        u[ENT],
        json!({"department": "Engines", "manager": {"value": "boss-id"}})
    );
    assert!(
        u["schemas"].as_array().unwrap().contains(&json!(ENT)),
        "extension declared in schemas"
    );
    assert_eq!(u["meta"]["version"], "W/\"2\"");

    let resp = patch(
        &dir,
        &path,
        json!([
            {"op": "remove", "path": "emails[type eq \"home\"]"},
            {"op": "remove", "path": format!("{}:department", ENT.to_uppercase())},
            {"op": "replace", "path": "name.familyName", "value": "King"},
            {"op": "replace", "value": {ENT: {"department": "Analytics"}}},
        ]),
    );
    let u = resp.json();
    assert_eq!(
        u["emails"],
        json!([{"type": "work", "value": "ada@work.test"}])
    );
    assert_eq!(u[ENT]["department"], "Analytics");
    assert_eq!(u["name"]["familyName"], "King");
}

#[test]
fn patch_errors_leave_the_resource_unchanged() {
    let dir = DemoDirectory::new("/v2");
    user(&dir, "taken", json!({}));
    let id = user(&dir, "ada", json!({"displayName": "Ada"}));
    let path = format!("/v2/Users/{id}");
    let before = dir.get_user(&id).unwrap();
    let cases = [
        (
            json!([{"op": "replace", "path": "displayName", "value": "X"}, {"op": "remove"}]),
            400,
            "noTarget",
        ),
        (
            json!([{"op": "replace", "path": "displayName", "value": "X"}, {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "x"}]),
            400,
            "noTarget",
        ),
        (
            json!([{"op": "replace", "path": "name..givenName", "value": "X"}]),
            400,
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "emails[type co \"w\"].value", "value": "X"}]),
            400,
            "invalidFilter",
        ),
        (
            json!([{"op": "replace", "path": "id", "value": "X"}]),
            400,
            "mutability",
        ),
        (
            json!([{"op": "replace", "path": "userName", "value": "TAKEN"}]),
            409,
            "uniqueness",
        ),
        (
            json!([{"op": "remove", "path": "userName"}]),
            400,
            "invalidValue",
        ),
        (
            json!([{"op": "merge", "path": "displayName", "value": "X"}]),
            400,
            "invalidSyntax",
        ),
        (
            json!([{"op": "add", "path": "displayName"}]),
            400,
            "invalidValue",
        ),
    ];
    for (ops, status, scim_type) in cases {
        assert_error(&patch(&dir, &path, ops), status, Some(scim_type));
    }
    let no_schema = call(
        &dir,
        "PATCH",
        &path,
        json!({"Operations": [{"op": "replace", "path": "displayName", "value": "X"}]}),
    );
    assert_error(&no_schema, 400, Some("invalidSyntax"));
    assert_eq!(dir.get_user(&id).unwrap(), before);
    assert_error(&patch(&dir, "/v2/Users/missing", json!([])), 404, None);
}

#[test]
fn groups_members_and_delete() {
    let dir = DemoDirectory::new("/v2");
    let (a, b, c) = (
        user(&dir, "a", json!({})),
        user(&dir, "b", json!({})),
        user(&dir, "c", json!({})),
    );
    let resp = call(
        &dir,
        "POST",
        "/v2/Groups",
        json!({"displayName": "Eng", "members": [{"value": a, "display": "a"}]}),
    );
    assert_eq!(resp.status, 201);
    assert_eq!(resp.json()["meta"]["resourceType"], "Group");
    let gid = resp.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        resp.header("location").unwrap(),
        format!("http://scim.test/v2/Groups/{gid}")
    );
    let path = format!("/v2/Groups/{gid}");
    let members = |dir: &DemoDirectory| -> Vec<String> {
        let g = dir.get_group(&gid).unwrap();
        g["members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|m| m["value"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    // add is idempotent per member value
    let r = patch(
        &dir,
        &path,
        json!([{"op": "add", "path": "members", "value": [{"value": a}, {"value": b}, {"value": c}]}]),
    );
    assert_eq!(r.status, 200);
    assert_eq!(members(&dir), [a.as_str(), b.as_str(), c.as_str()]);
    // RFC form, then the Entra/JumpCloud form (remove with a value list).
    patch(
        &dir,
        &path,
        json!([{"op": "remove", "path": format!("members[value eq \"{b}\"]")}]),
    );
    assert_eq!(members(&dir), [a.as_str(), c.as_str()]);
    patch(
        &dir,
        &path,
        json!([{"op": "Remove", "path": "members", "value": [{"value": a}]}]),
    );
    assert_eq!(members(&dir), [c.as_str()]);
    // Okta rename: a no-path replace that carries the group's own id.
    let r = patch(
        &dir,
        &path,
        json!([{"op": "replace", "value": {"id": gid, "displayName": "Engineering"}}]),
    );
    assert_eq!(r.json()["displayName"], "Engineering");
    assert_eq!(r.json()["id"], json!(gid));
    let slim = call(
        &dir,
        "GET",
        &format!("{path}?excludedAttributes=members"),
        Value::Null,
    )
    .json();
    assert!(slim.get("members").is_none() && slim["displayName"] == "Engineering");
    // Deleting a user takes it out of its groups.
    assert_eq!(
        call(&dir, "DELETE", &format!("/v2/Users/{c}"), Value::Null).status,
        204
    );
    assert!(dir
        .get_group(&gid)
        .unwrap()
        .get("members")
        .is_some_and(|m| m == &json!([])));
    let filtered = call(
        &dir,
        "GET",
        "/v2/Groups?filter=displayName%20eq%20%22engineering%22",
        Value::Null,
    )
    .json();
    assert_eq!(filtered["totalResults"], 1);
    assert_error(
        &call(&dir, "POST", "/v2/Groups", json!({"members": []})),
        400,
        Some("invalidValue"),
    );
    let del = call(&dir, "DELETE", &path, Value::Null);
    assert_eq!((del.status, del.body.len()), (204, 0));
    assert_error(&call(&dir, "GET", &path, Value::Null), 404, None);
    assert_error(&call(&dir, "DELETE", &path, Value::Null), 404, None);
    assert_eq!(dir.user_count(), 2);
}

#[test]
fn discovery_endpoints_and_unknown_routes() {
    let dir = DemoDirectory::new("/v2/");
    let spc = call(&dir, "GET", "/v2/ServiceProviderConfig", Value::Null).json();
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["bulk"]["supported"], false);
    assert_eq!(spc["filter"], json!({"supported": true, "maxResults": 200}));
    assert_eq!(spc["authenticationSchemes"][0]["type"], "oauthbearertoken");
    assert!(spc["authenticationSchemes"][0]["description"]
        .as_str()
        .unwrap()
        .contains("DEMO"));
    let schemas = call(&dir, "GET", "/v2/Schemas", Value::Null).json();
    assert_eq!(schemas["totalResults"], 3);
    let user_schema = call(
        &dir,
        "GET",
        "/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
        Value::Null,
    )
    .json();
    assert_eq!(user_schema["attributes"][0]["name"], "userName");
    let rts = call(&dir, "GET", "/v2/resourcetypes", Value::Null).json();
    assert_eq!(rts["Resources"][0]["endpoint"], "/Users");
    assert_eq!(
        call(&dir, "GET", "/v2/ResourceTypes/Group", Value::Null).json()["schema"],
        "urn:ietf:params:scim:schemas:core:2.0:Group"
    );
    assert_error(&call(&dir, "GET", "/v2/Nope", Value::Null), 404, None);
    assert_error(&call(&dir, "GET", "/other/Users", Value::Null), 404, None);
    assert_error(&call(&dir, "GET", "/v2Users", Value::Null), 404, None);
    assert_error(&call(&dir, "GET", "/v2/Users/a/b", Value::Null), 404, None);
    assert_error(
        &call(&dir, "GET", "/v2/Schemas/urn:nope", Value::Null),
        404,
        None,
    );
    assert_error(&call(&dir, "DELETE", "/v2/Users", Value::Null), 405, None);
    assert_error(&call(&dir, "GET", "/v2/Me", Value::Null), 501, None);
}

#[test]
fn bearer_required_when_set_and_requests_recorded() {
    let dir = DemoDirectory::new("/v2");
    dir.set_bearer(Some("s3cret".into()));
    let no_auth = call(&dir, "GET", "/v2/Users", Value::Null);
    assert_error(&no_auth, 401, None);
    assert!(no_auth
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer"));
    let mut req = DemoRequest {
        method: "GET".into(),
        path: "/v2/Users?count=1".into(),
        headers: vec![("authorization".into(), "Bearer wrong".into())],
        body: vec![],
    };
    assert_eq!(dir.handle(&req).status, 401);
    req.headers[0].1 = "Bearer s3cret".into();
    assert_eq!(dir.handle(&req).status, 200);
    let seen = dir.received();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[2], req);
    dir.clear_received();
    assert!(dir.received().is_empty());
    dir.set_bearer(None);
    assert_eq!(call(&dir, "GET", "/v2/Users", Value::Null).status, 200);
}

/// Reads one response off a raw connection: (status, headers, body); `buf` keeps the surplus.
async fn read_response<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut tmp = [0u8; 4096];
        let n = s.read(&mut tmp).await.unwrap();
        assert!(n > 0, "connection closed before a response head");
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8(buf.drain(..end + 4).collect()).unwrap();
    let mut lines = head.trim_end().split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| l.split_once(": ").unwrap())
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let len = find_header(&headers, "content-length").map_or(0, |l| l.parse().unwrap());
    while buf.len() < len {
        let mut tmp = [0u8; 4096];
        let n = s.read(&mut tmp).await.unwrap();
        assert!(n > 0, "connection closed inside a body");
        buf.extend_from_slice(&tmp[..n]);
    }
    (status, headers, buf.drain(..len).collect())
}

async fn serve_local(dir: &Arc<DemoDirectory>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(dir.clone().serve(listener));
    addr
}

#[tokio::test]
async fn tcp_chunked_body_and_keep_alive() {
    let dir = DemoDirectory::new("/v2");
    let addr = serve_local(&dir).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = br#"{"userName":"chunky","displayName":"C"}"#;
    let (a, b) = body.split_at(10);
    let mut req = format!("POST /v2/Users HTTP/1.1\r\nHost: up.test:1\r\nX-Dup: 1\r\nx-dup: 2\r\nContent-Type: application/scim+json\r\nTransfer-Encoding: chunked\r\n\r\n{:x};ext=1\r\n", a.len()).into_bytes();
    req.extend_from_slice(a);
    req.extend_from_slice(format!("\r\n{:X}\r\n", b.len()).as_bytes());
    req.extend_from_slice(b);
    req.extend_from_slice(b"\r\n0\r\nTrailer: x\r\n\r\n");
    s.write_all(&req).await.unwrap();
    let mut buf = Vec::new();
    let (status, headers, resp_body) = read_response(&mut s, &mut buf).await;
    assert_eq!(status, 201);
    assert!(
        find_header(&headers, "connection").is_none(),
        "HTTP/1.1 stays open"
    );
    let created: Value = serde_json::from_slice(&resp_body).unwrap();
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        find_header(&headers, "location").unwrap(),
        format!("http://up.test:1/v2/Users/{id}")
    );

    // Second request on the same connection.
    s.write_all(
        format!("GET /v2/Users/{id} HTTP/1.1\r\nHost: up.test:1\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let (status, headers, resp_body) = read_response(&mut s, &mut buf).await;
    assert_eq!(status, 200);
    assert_eq!(find_header(&headers, "connection"), Some("close"));
    assert_eq!(
        serde_json::from_slice::<Value>(&resp_body).unwrap()["userName"],
        "chunky"
    );
    assert_eq!(
        s.read(&mut [0u8; 16]).await.unwrap(),
        0,
        "closed after Connection: close"
    );

    // curl's Expect: 100-continue: the interim response comes before the body is sent.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body2 = br#"{"userName":"patient"}"#;
    let head = format!(
        "POST /v2/Users HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body2.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_response(&mut s, &mut buf).await.0, 100);
    s.write_all(body2).await.unwrap();
    assert_eq!(read_response(&mut s, &mut buf).await.0, 201);

    let seen = dir.received();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].body, body, "exact body bytes after de-chunking");
    let dups: Vec<&str> = seen[0]
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-dup"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(dups, ["1", "2"]);
    assert_eq!(seen[1].path, format!("/v2/Users/{id}"));
}

#[tokio::test]
async fn tcp_rejects_garbage_and_oversize() {
    let dir = DemoDirectory::new("/v2");
    let addr = serve_local(&dir).await;
    let cases: [(&[u8], u16); 6] = [
        (b"hello there\r\n\r\n", 400),
        (b"GET /v2/Users HTTP/1.1\r\nBad Header\r\n\r\n", 400),
        (b"GET /v2/Users HTTP/2.0\r\n\r\n", 400),
        (
            b"POST /v2/Users HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (
            b"POST /v2/Users HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
        ),
        (
            b"POST /v2/Users HTTP/1.1\r\nContent-Length: 9000000\r\n\r\n",
            413,
        ),
    ];
    for (raw, want) in cases {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(raw).await.unwrap();
        let mut buf = Vec::new();
        let (status, headers, body) = read_response(&mut s, &mut buf).await;
        assert_eq!(status, want, "{}", String::from_utf8_lossy(raw));
        assert_eq!(find_header(&headers, "connection"), Some("close"));
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap()["status"],
            json!(want.to_string())
        );
    }
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let big = format!(
        "GET /v2/Users HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    s.write_all(big.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut s, &mut Vec::new()).await.0, 431);
    assert!(
        dir.received().is_empty(),
        "nothing malformed reaches the directory"
    );
}

#[test]
fn demo_server_thread_delay_and_stop_on_drop() {
    use std::io::{Read, Write};
    let server = DemoServer::start("/scim/v2", "127.0.0.1:0").unwrap();
    assert_eq!(server.base_url(), format!("http://{}/scim/v2", server.addr));
    server.dir.set_delay(Duration::from_millis(500));
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    let started = Instant::now();
    s.write_all(b"GET /scim/v2/ServiceProviderConfig HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    while server.dir.received().is_empty() && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(server.dir.received().len(), 1);
    s.set_nonblocking(true).unwrap();
    let pending = s.peek(&mut [0u8; 1]).map_err(|e| e.kind());
    assert_eq!(
        pending,
        Err(std::io::ErrorKind::WouldBlock),
        "recorded before the delayed response"
    );
    s.set_nonblocking(false).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap(); // HTTP/1.0 without keep-alive: closed after one
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("\r\nConnection: close\r\n"));
    let addr = server.addr;
    drop(server);
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "stopped when dropped"
    );
}

#[tokio::test]
async fn tls_serve_connection() {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert_der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der());
    let server_cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key.into())
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der).unwrap();
    let client_cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();

    let dir = DemoDirectory::new("/v2");
    dir.set_scheme("https");
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_cfg));
    let served = dir.clone();
    let server = tokio::spawn(async move {
        let tls = acceptor.accept(server_io).await.unwrap();
        served.serve_connection(tls).await
    });
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_cfg));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, client_io).await.unwrap();
    let body = r#"{"userName":"tls-user"}"#;
    tls.write_all(
        format!(
            "POST /v2/Users HTTP/1.1\r\nHost: secure.test\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let (status, headers, resp) = read_response(&mut tls, &mut Vec::new()).await;
    assert_eq!(status, 201);
    assert!(find_header(&headers, "location")
        .unwrap()
        .starts_with("https://secure.test/v2/Users/"));
    assert_eq!(
        serde_json::from_slice::<Value>(&resp).unwrap()["userName"],
        "tls-user"
    );
    tls.shutdown().await.unwrap();
    server.await.unwrap().unwrap();
    assert_eq!(dir.user_count(), 1);
}
