//! Which writes are destructive, for the destructive-change breaker (`docs/guards.md`): a User
//! set inactive, a Group emptied, and (decided by the proxy from the route) a DELETE. Read from
//! the checked, normalized body, so every dialect form the checks accept is seen the same way:
//! Entra's `"op":"Replace"` with `"value":"False"`, Okta's no-path `{"active": false}`, a PUT
//! with `"active": false`, `remove` of `members` without a filter, `members` replaced by `[]`.
//! A PUT counts only when it changes the current resource that way (phase two).

use serde_json::{Map, Value};

use super::bulk::parse_bulk_path;
use crate::scim::json::get_ci;
use crate::scim::policy::Resource;

const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User:";
const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group:";

/// `false`, or a string that says so in any case (`"False"`: Entra's string booleans).
fn false_ish(v: &Value) -> bool {
    match v {
        Value::Bool(b) => !b,
        Value::String(s) => s.trim().eq_ignore_ascii_case("false"),
        _ => false,
    }
}

/// Absent, `null` or `[]`.
fn no_members(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

/// Whether a PATCH path names exactly `attr` (no filter, no sub-attribute), with or without the
/// core schema URN in front.
fn path_is(path: &str, resource: Resource, attr: &str) -> bool {
    let urn = match resource {
        Resource::Users => USER_URN,
        Resource::Groups => GROUP_URN,
    };
    let path = path.trim();
    let bare = match path.get(..urn.len()) {
        Some(head) if head.eq_ignore_ascii_case(urn) => &path[urn.len()..],
        _ => path,
    };
    bare.eq_ignore_ascii_case(attr)
}

/// Whether a PatchOp body deactivates its User or empties its Group.
pub(super) fn patch(resource: Resource, root: &Value) -> bool {
    let Some(ops) = root
        .as_object()
        .and_then(|o| get_ci(o, "Operations"))
        .and_then(Value::as_array)
    else {
        return false;
    };
    ops.iter().filter_map(Value::as_object).any(|op| {
        let name = get_ci(op, "op").and_then(Value::as_str).unwrap_or("");
        let path = get_ci(op, "path").and_then(Value::as_str);
        let value = get_ci(op, "value");
        let sets = name.eq_ignore_ascii_case("replace") || name.eq_ignore_ascii_case("add");
        match (resource, path) {
            (Resource::Users, Some(p)) => {
                sets && path_is(p, resource, "active") && value.is_some_and(false_ish)
            }
            (Resource::Users, None) => {
                sets && value
                    .and_then(Value::as_object)
                    .and_then(|v| get_ci(v, "active"))
                    .is_some_and(false_ish)
            }
            (Resource::Groups, Some(p)) => {
                path_is(p, resource, "members")
                    && (name.eq_ignore_ascii_case("remove")
                        || (name.eq_ignore_ascii_case("replace") && no_members(value)))
            }
            (Resource::Groups, None) => {
                name.eq_ignore_ascii_case("replace")
                    && value.and_then(Value::as_object).is_some_and(|v| {
                        get_ci(v, "members").is_some() && no_members(get_ci(v, "members"))
                    })
            }
        }
    })
}

/// Whether a PUT turns an active User inactive or a Group with members into an empty one.
pub(super) fn put(
    resource: Resource,
    body: &Map<String, Value>,
    current: &Map<String, Value>,
) -> bool {
    match resource {
        Resource::Users => {
            get_ci(body, "active").is_some_and(false_ish)
                && !get_ci(current, "active").is_some_and(false_ish)
        }
        Resource::Groups => {
            no_members(get_ci(body, "members")) && !no_members(get_ci(current, "members"))
        }
    }
}

/// The destructive operations of a Bulk request known before phase two: each DELETE of a User
/// or Group, each PATCH that deactivates or empties (its PUTs are judged in phase two).
pub(super) fn bulk(root: &Value) -> u32 {
    let Some(ops) = root
        .as_object()
        .and_then(|o| get_ci(o, "Operations"))
        .and_then(Value::as_array)
    else {
        return 0;
    };
    let mut n = 0u32;
    for op in ops.iter().filter_map(Value::as_object) {
        let method = get_ci(op, "method").and_then(Value::as_str).unwrap_or("");
        let Some((resource, id)) = get_ci(op, "path")
            .and_then(Value::as_str)
            .and_then(parse_bulk_path)
        else {
            continue;
        };
        let destructive = if method.eq_ignore_ascii_case("DELETE") {
            id.is_some()
        } else if method.eq_ignore_ascii_case("PATCH") {
            get_ci(op, "data").is_some_and(|d| patch(resource, d))
        } else {
            false
        };
        n += u32::from(destructive);
    }
    n
}
