//! Routing and the Users/Groups store (RFC 7644 §3), behind one lock held by the caller.

use serde_json::{json, Map, Value};

use crate::attrs::{get_ci, remove_ci, set_ci};
use crate::error::ScimError;
use crate::filter::parse_eq_filter;
use crate::message::DemoResponse;
use crate::patch;
use crate::urn::{ENTERPRISE_URN, GROUP_URN, LIST_URN, SPC_URN, USER_URN};

/// Advertised as `filter.maxResults`; `count` is clamped to it.
const MAX_RESULTS: usize = 200;
const DEMO_NOTICE: &str =
    "scim-gate DEMO directory: in memory, not a product; data is lost on exit";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    User,
    Group,
}

impl Kind {
    fn from_endpoint(s: &str) -> Option<Kind> {
        match s.to_ascii_lowercase().as_str() {
            "users" => Some(Kind::User),
            "groups" => Some(Kind::Group),
            _ => None,
        }
    }
    fn endpoint(self) -> &'static str {
        match self {
            Kind::User => "Users",
            Kind::Group => "Groups",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
        }
    }
    fn urn(self) -> &'static str {
        match self {
            Kind::User => USER_URN,
            Kind::Group => GROUP_URN,
        }
    }
    /// The attribute every resource of this kind must have, and the filterable ones with their
    /// `caseExact` (RFC 7643 §4.1, §4.2: userName and displayName are not case-exact).
    fn required(self) -> &'static str {
        match self {
            Kind::User => "userName",
            Kind::Group => "displayName",
        }
    }
    fn filterable(self, attr: &str) -> Option<bool> {
        let list: &[(&str, bool)] = match self {
            Kind::User => &[
                ("userName", false),
                ("externalId", true),
                ("displayName", false),
                ("id", true),
            ],
            Kind::Group => &[("displayName", false), ("externalId", true), ("id", true)],
        };
        list.iter()
            .find(|(a, _)| a.eq_ignore_ascii_case(attr))
            .map(|&(_, exact)| exact)
    }
}

/// Resources in creation order; lookups are linear, which is fine at demo sizes.
#[derive(Default)]
pub(crate) struct Store {
    users: Vec<Value>,
    groups: Vec<Value>,
}

fn uuid_v4() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-{:x}{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        8 | (b[8] & 3),
        &h[17..20],
        &h[20..]
    )
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn parse_json(body: &[u8]) -> Result<Value, ScimError> {
    serde_json::from_slice(body)
        .map_err(|e| ScimError::new(400, Some("invalidSyntax"), format!("body is not JSON: {e}")))
}

fn query_params(q: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// What a list or `.search` asked for (RFC 7644 §3.4.2, §3.4.3).
#[derive(Default)]
struct ListQuery {
    filter: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    attributes: Vec<String>,
    excluded: Vec<String>,
}

impl ListQuery {
    fn from_query(q: &str) -> Result<Self, ScimError> {
        let params = query_params(q);
        let get = |n: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.as_str())
        };
        let int = |n: &str| {
            get(n)
                .map(|v| {
                    v.trim().parse::<i64>().map_err(|_| {
                        ScimError::new(400, Some("invalidValue"), format!("{n} must be an integer"))
                    })
                })
                .transpose()
        };
        let list = |n: &str| {
            get(n)
                .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
                .unwrap_or_default()
        };
        Ok(ListQuery {
            filter: get("filter").map(String::from),
            start_index: int("startIndex")?,
            count: int("count")?,
            attributes: list("attributes"),
            excluded: list("excludedAttributes"),
        })
    }

    fn from_search(body: &Value) -> Result<Self, ScimError> {
        let obj = body.as_object().ok_or_else(|| {
            ScimError::new(
                400,
                Some("invalidSyntax"),
                "SearchRequest must be an object",
            )
        })?;
        let list = |n: &str| match get_ci(obj, n) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect(),
            _ => Vec::new(),
        };
        Ok(ListQuery {
            filter: get_ci(obj, "filter")
                .and_then(Value::as_str)
                .map(String::from),
            start_index: get_ci(obj, "startIndex").and_then(Value::as_i64),
            count: get_ci(obj, "count").and_then(Value::as_i64),
            attributes: list("attributes"),
            excluded: list("excludedAttributes"),
        })
    }

    /// `attributes` / `excludedAttributes`, top-level names only; id, schemas and meta stay.
    fn project(&self, mut v: Value) -> Value {
        let always = |k: &str| {
            ["id", "schemas", "meta"]
                .iter()
                .any(|a| k.eq_ignore_ascii_case(a))
        };
        let top = |a: &String| a.split('.').next().unwrap_or_default().to_string();
        if let Some(obj) = v.as_object_mut() {
            if !self.attributes.is_empty() {
                let keep: Vec<String> = self.attributes.iter().map(top).collect();
                obj.retain(|k, _| always(k) || keep.iter().any(|a| a.eq_ignore_ascii_case(k)));
            }
            for a in self
                .excluded
                .iter()
                .filter(|a| !a.contains('.') && !always(a))
            {
                remove_ci(obj, a);
            }
        }
        v
    }
}

impl Store {
    fn coll(&self, kind: Kind) -> &Vec<Value> {
        match kind {
            Kind::User => &self.users,
            Kind::Group => &self.groups,
        }
    }
    fn coll_mut(&mut self, kind: Kind) -> &mut Vec<Value> {
        match kind {
            Kind::User => &mut self.users,
            Kind::Group => &mut self.groups,
        }
    }
    pub(crate) fn count(&self, kind: Kind) -> usize {
        self.coll(kind).len()
    }
    pub(crate) fn get(&self, kind: Kind, id: &str) -> Option<&Value> {
        self.coll(kind).iter().find(|r| r["id"] == id)
    }
    fn position(&self, kind: Kind, id: &str) -> Result<usize, ScimError> {
        self.coll(kind)
            .iter()
            .position(|r| r["id"] == id)
            .ok_or_else(|| ScimError::not_found(&format!("{} {id}", kind.name())))
    }

    /// Dispatches one request; `segments` are the decoded path segments under the base path.
    pub(crate) fn route(
        &mut self,
        method: &str,
        segments: &[String],
        query: &str,
        body: &[u8],
        base_url: &str,
    ) -> Result<DemoResponse, ScimError> {
        let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
        let method = method.to_ascii_uppercase();
        if let Some(kind) = seg.first().and_then(|s| Kind::from_endpoint(s)) {
            let one = |r: &Value, status| Ok(resource_response(status, kind, r, base_url));
            return match (method.as_str(), &seg[1..]) {
                ("GET", []) => self.list(kind, &ListQuery::from_query(query)?, base_url),
                ("POST", [".search"]) => {
                    self.list(kind, &ListQuery::from_search(&parse_json(body)?)?, base_url)
                }
                ("POST", []) => one(&self.create(kind, parse_json(body)?)?, 201),
                ("GET", [id]) => {
                    let found = self
                        .get(kind, id)
                        .ok_or_else(|| ScimError::not_found(&format!("{} {id}", kind.name())))?;
                    let mut resp = resource_response(200, kind, found, base_url);
                    resp.body = ListQuery::from_query(query)?
                        .project(resp.json())
                        .to_string()
                        .into_bytes();
                    Ok(resp)
                }
                ("PUT", [id]) => one(&self.replace(kind, id, parse_json(body)?)?, 200),
                ("PATCH", [id]) => one(&self.patch(kind, id, &parse_json(body)?)?, 200),
                ("DELETE", [id]) => {
                    self.delete(kind, id)?;
                    Ok(DemoResponse {
                        status: 204,
                        headers: Vec::new(),
                        body: Vec::new(),
                    })
                }
                (_, [] | [_]) => Err(ScimError::new(
                    405,
                    None,
                    format!("{method} is not allowed here"),
                )),
                _ => Err(ScimError::not_found(&format!("/{}", seg.join("/")))),
            };
        }
        let lower: Vec<String> = seg.iter().map(|s| s.to_ascii_lowercase()).collect();
        let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
        let listed = |items: Vec<Value>| json!({"schemas": [LIST_URN], "totalResults": items.len(), "startIndex": 1, "itemsPerPage": items.len(), "Resources": items});
        let pick = |items: Vec<Value>, id: &str| {
            items
                .into_iter()
                .find(|s| s["id"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(id)))
                .ok_or_else(|| ScimError::not_found(id))
        };
        let body = match (method.as_str(), lower.as_slice()) {
            ("GET", ["serviceproviderconfig"]) => service_provider_config(base_url),
            ("GET", ["schemas"]) => listed(schemas()),
            ("GET", ["schemas", _]) => pick(schemas(), seg[1])?,
            ("GET", ["resourcetypes"]) => listed(resource_types(base_url)),
            ("GET", ["resourcetypes", _]) => pick(resource_types(base_url), seg[1])?,
            ("POST", [".search"]) => {
                return Err(ScimError::new(
                    501,
                    None,
                    "root-level .search is not supported by the demo",
                ))
            }
            ("GET", ["me"]) => return Err(ScimError::new(501, None, "/Me is not supported")),
            _ => return Err(ScimError::not_found(&format!("/{}", seg.join("/")))),
        };
        Ok(DemoResponse::scim(200, &body))
    }

    /// Validates a POST/PUT body into what is stored: readOnly attributes dropped (RFC 7643 §7,
    /// clients send `meta`, `groups: []` anyway), the demo keeps no passwords, the required
    /// attribute present, and userName unique case-insensitively.
    fn clean(
        &self,
        kind: Kind,
        body: Value,
        id: Option<&str>,
    ) -> Result<Map<String, Value>, ScimError> {
        let Value::Object(mut obj) = body else {
            return Err(ScimError::new(
                400,
                Some("invalidSyntax"),
                "a resource must be a JSON object",
            ));
        };
        for readonly in ["id", "meta", "groups", "password"] {
            if kind == Kind::User || !["groups", "password"].contains(&readonly) {
                remove_ci(&mut obj, readonly);
            }
        }
        if get_ci(&obj, "schemas").is_none() {
            obj.insert("schemas".into(), json!([kind.urn()]));
        }
        self.check(kind, &obj, id)?;
        Ok(obj)
    }

    fn check(
        &self,
        kind: Kind,
        obj: &Map<String, Value>,
        id: Option<&str>,
    ) -> Result<(), ScimError> {
        let required = kind.required();
        let name = match get_ci(obj, required) {
            Some(Value::String(s)) if !s.trim().is_empty() => s,
            _ => {
                return Err(ScimError::new(
                    400,
                    Some("invalidValue"),
                    format!("{required} is required"),
                ))
            }
        };
        let taken = kind == Kind::User
            && self.users.iter().any(|u| {
                u["id"].as_str() != id
                    && u.as_object()
                        .and_then(|o| get_ci(o, "userName"))
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
            });
        if taken {
            return Err(ScimError::new(
                409,
                Some("uniqueness"),
                format!("userName {name:?} is already taken"),
            ));
        }
        Ok(())
    }

    fn create(&mut self, kind: Kind, body: Value) -> Result<Value, ScimError> {
        let mut obj = self.clean(kind, body, None)?;
        let t = now();
        obj.insert("id".into(), json!(uuid_v4()));
        obj.insert("meta".into(), json!({"resourceType": kind.name(), "created": t, "lastModified": t, "version": "W/\"1\""}));
        let v = Value::Object(obj);
        self.coll_mut(kind).push(v.clone());
        Ok(v)
    }

    /// PUT replaces everything but `id` and `meta.created` (RFC 7644 §3.5.1).
    fn replace(&mut self, kind: Kind, id: &str, body: Value) -> Result<Value, ScimError> {
        let i = self.position(kind, id)?;
        let mut obj = self.clean(kind, body, Some(id))?;
        let old = &self.coll(kind)[i];
        obj.insert("id".into(), old["id"].clone());
        obj.insert("meta".into(), bumped(&old["meta"]));
        self.coll_mut(kind)[i] = Value::Object(obj);
        Ok(self.coll(kind)[i].clone())
    }

    fn patch(&mut self, kind: Kind, id: &str, body: &Value) -> Result<Value, ScimError> {
        let i = self.position(kind, id)?;
        let old = &self.coll(kind)[i];
        let mut obj = old.as_object().cloned().unwrap_or_default();
        patch::apply(&mut obj, body, kind.urn())?;
        self.check(kind, &obj, Some(id))?;
        // An extension written by PATCH must be declared in `schemas` (RFC 7643 §3).
        let exts: Vec<String> = obj
            .iter()
            .filter(|(k, v)| k.to_ascii_lowercase().starts_with("urn:") && v.is_object())
            .map(|(k, _)| k.clone())
            .collect();
        if let Some(Value::Array(schemas)) = obj.get_mut("schemas") {
            for e in exts {
                if !schemas
                    .iter()
                    .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(&e)))
                {
                    schemas.push(json!(e));
                }
            }
        }
        if Value::Object(obj.clone()) != *old {
            set_ci(&mut obj, "meta", bumped(&old["meta"]));
        }
        self.coll_mut(kind)[i] = Value::Object(obj);
        Ok(self.coll(kind)[i].clone())
    }

    fn delete(&mut self, kind: Kind, id: &str) -> Result<(), ScimError> {
        let i = self.position(kind, id)?;
        self.coll_mut(kind).remove(i);
        if kind == Kind::User {
            // A deleted user leaves the groups it was in, as a real directory would.
            for g in self.groups.iter_mut() {
                if let Some(Value::Array(members)) = g.get_mut("members") {
                    members.retain(|m| m["value"] != id);
                }
            }
        }
        Ok(())
    }

    fn list(&self, kind: Kind, q: &ListQuery, base_url: &str) -> Result<DemoResponse, ScimError> {
        let filter = match q.filter.as_deref().map(str::trim) {
            None | Some("") => Vec::new(),
            Some(f) => self.parse_list_filter(kind, f)?,
        };
        let matches = |r: &&Value| {
            filter.iter().all(|(attr, want, exact)| {
                let have = r
                    .as_object()
                    .and_then(|o| get_ci(o, attr))
                    .and_then(Value::as_str);
                have.is_some_and(|h| {
                    if *exact {
                        h == want
                    } else {
                        h.eq_ignore_ascii_case(want)
                    }
                })
            })
        };
        let hits: Vec<&Value> = self.coll(kind).iter().filter(matches).collect();
        // RFC 7644 §3.4.2.4: startIndex < 1 means 1; a negative count means 0.
        let start = q.start_index.unwrap_or(1).max(1) as usize;
        let count = q
            .count
            .map_or(MAX_RESULTS, |c| c.clamp(0, MAX_RESULTS as i64) as usize);
        let page: Vec<Value> = hits
            .iter()
            .skip(start - 1)
            .take(count)
            .map(|r| q.project(render(kind, r, base_url)))
            .collect();
        let body = json!({"schemas": [LIST_URN], "totalResults": hits.len(), "startIndex": start, "itemsPerPage": page.len(), "Resources": page});
        Ok(DemoResponse::scim(200, &body))
    }

    /// Only `attr eq "value"` (joined by `and`) on the attributes IdPs look resources up by.
    /// Anything else is 400 invalidFilter: an unfiltered answer would make an IdP create duplicates.
    fn parse_list_filter(
        &self,
        kind: Kind,
        f: &str,
    ) -> Result<Vec<(String, String, bool)>, ScimError> {
        let invalid = |d: String| ScimError::new(400, Some("invalidFilter"), d);
        let mut out = Vec::new();
        for (attr, value) in parse_eq_filter(f).map_err(invalid)? {
            let exact = kind.filterable(&attr).ok_or_else(|| {
                invalid(format!(
                    "the demo cannot filter {} on {attr:?}",
                    kind.endpoint()
                ))
            })?;
            let Value::String(value) = value else {
                return Err(invalid(format!("{attr} compares to a string")));
            };
            out.push((attr, value, exact));
        }
        Ok(out)
    }
}

fn bumped(meta: &Value) -> Value {
    let mut meta = meta.clone();
    let n: u64 = meta["version"]
        .as_str()
        .and_then(|v| v.trim_start_matches("W/").trim_matches('"').parse().ok())
        .unwrap_or(0);
    meta["version"] = json!(format!("W/\"{}\"", n + 1));
    meta["lastModified"] = json!(now());
    meta
}

/// A stored resource as served: `meta.location` from the requester's Host.
fn render(kind: Kind, r: &Value, base_url: &str) -> Value {
    let mut v = r.clone();
    let location = format!(
        "{base_url}/{}/{}",
        kind.endpoint(),
        r["id"].as_str().unwrap_or_default()
    );
    if let Some(meta) = v.get_mut("meta").and_then(Value::as_object_mut) {
        meta.insert("location".into(), json!(location));
    }
    v
}

fn resource_response(status: u16, kind: Kind, r: &Value, base_url: &str) -> DemoResponse {
    let v = render(kind, r, base_url);
    let mut resp = DemoResponse::scim(status, &v);
    if status == 201 {
        resp.headers.push((
            "Location".into(),
            v["meta"]["location"].as_str().unwrap_or_default().into(),
        ));
    }
    resp
}

fn service_provider_config(base_url: &str) -> Value {
    json!({
        "schemas": [SPC_URN],
        "documentationUri": "https://www.rfc-editor.org/rfc/rfc7644",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": DEMO_NOTICE,
            "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
            "primary": true
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base_url}/ServiceProviderConfig")}
    })
}

/// RFC 7643 §7 attribute definition with the common defaults; callers override what differs.
fn attr(name: &str, ty: &str, multi: bool, extra: Value) -> Value {
    let mut a = json!({"name": name, "type": ty, "multiValued": multi, "required": false, "caseExact": false,
        "mutability": "readWrite", "returned": "default", "uniqueness": "none"});
    if let (Some(a), Value::Object(extra)) = (a.as_object_mut(), extra) {
        a.extend(extra);
    }
    a
}

fn schemas() -> Vec<Value> {
    let s = |t| attr("", t, false, json!({}));
    let sub = |names: &[&str]| json!({"subAttributes": names.iter().map(|n| { let mut a = s("string"); a["name"] = json!(n); a }).collect::<Vec<_>>()});
    let schema = |id: &str, name: &str, attrs: Vec<Value>| {
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"], "id": id, "name": name,
               "description": DEMO_NOTICE, "attributes": attrs, "meta": {"resourceType": "Schema"}})
    };
    vec![
        schema(
            USER_URN,
            "User",
            vec![
                attr(
                    "userName",
                    "string",
                    false,
                    json!({"required": true, "uniqueness": "server"}),
                ),
                attr("externalId", "string", false, json!({"caseExact": true})),
                attr(
                    "name",
                    "complex",
                    false,
                    sub(&["givenName", "familyName", "formatted"]),
                ),
                attr("displayName", "string", false, json!({})),
                attr("active", "boolean", false, json!({})),
                attr(
                    "emails",
                    "complex",
                    true,
                    sub(&["value", "type", "primary"]),
                ),
            ],
        ),
        schema(
            GROUP_URN,
            "Group",
            vec![
                attr("displayName", "string", false, json!({"required": true})),
                attr("externalId", "string", false, json!({"caseExact": true})),
                attr(
                    "members",
                    "complex",
                    true,
                    sub(&["value", "display", "type", "$ref"]),
                ),
            ],
        ),
        schema(
            ENTERPRISE_URN,
            "EnterpriseUser",
            vec![
                attr("department", "string", false, json!({})),
                attr("manager", "complex", false, sub(&["value", "displayName"])),
            ],
        ),
    ]
}

fn resource_types(base_url: &str) -> Vec<Value> {
    let rt = |kind: Kind, ext: Value| {
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"], "id": kind.name(), "name": kind.name(),
               "endpoint": format!("/{}", kind.endpoint()), "schema": kind.urn(), "schemaExtensions": ext,
               "meta": {"resourceType": "ResourceType", "location": format!("{base_url}/ResourceTypes/{}", kind.name())}})
    };
    vec![
        rt(
            Kind::User,
            json!([{"schema": ENTERPRISE_URN, "required": false}]),
        ),
        rt(Kind::Group, json!([])),
    ]
}
