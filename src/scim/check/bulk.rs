//! Bulk requests (RFC 7644 §3.7): each operation is checked like the single request it stands
//! for, in a checking context of its own; details start with `Operations[i]: `.

use serde_json::Value;

use super::context::{require_schema, Cx};
use super::WriteMethod;
use crate::scim::dialect::Deviation;
use crate::scim::error::Rejection;
use crate::scim::json::{get_ci, key_ci};
use crate::scim::policy::{Inner, Resource};
use crate::scim::schema::BULK_REQUEST_URN;

/// A PUT inside a Bulk request: its target and the `Operations[i]: ` prefix of its details.
pub(super) type BulkPut = (Resource, String, String);

/// RFC 7644 §3.7. Returns the PUTs and whether any operation's body was rewritten. Each
/// operation gets a checking context of its own, so nothing one operation sets (its resource
/// type, a rewrite) can leak into how the next is checked.
pub(super) fn check_bulk(
    p: &Inner,
    root: &mut Value,
    domains: &[String],
) -> Result<(Vec<BulkPut>, bool), Rejection> {
    let Value::Object(obj) = root else {
        return Err(Rejection::invalid_json("the body must be a JSON object"));
    };
    require_schema(obj, BULK_REQUEST_URN)?;
    match get_ci(obj, "failOnErrors") {
        None | Some(Value::Null) => {}
        Some(v) if v.is_u64() => {}
        Some(_) => {
            return Err(Rejection::value(
                "'failOnErrors' must be a non-negative integer",
            ))
        }
    }
    let key =
        key_ci(obj, "Operations").ok_or_else(|| Rejection::syntax("'Operations' is required"))?;
    let Some(Value::Array(ops)) = obj.get_mut(&key) else {
        return Err(Rejection::syntax("'Operations' must be an array"));
    };
    // RFC 7644 §3.7.4: more operations than maxOperations is 413, before any is looked at.
    if ops.len() > p.bulk_max_operations {
        return Err(Rejection::too_many_operations(
            ops.len(),
            p.bulk_max_operations,
        ));
    }
    let mut puts = Vec::new();
    let mut changed = false;
    for (i, op) in ops.iter_mut().enumerate() {
        let prefix = format!("Operations[{i}]: ");
        let (put, rewritten) = check_bulk_op(p, op, domains).map_err(|e| e.prefixed(&prefix))?;
        changed |= rewritten;
        if let Some((resource, id)) = put {
            puts.push((resource, id, prefix));
        }
    }
    Ok((puts, changed))
}

/// One Bulk operation, in a fresh checking context; returns the target of a PUT and whether
/// the operation's body was rewritten.
fn check_bulk_op(
    p: &Inner,
    op: &mut Value,
    domains: &[String],
) -> Result<(Option<(Resource, String)>, bool), Rejection> {
    let Value::Object(o) = op else {
        return Err(Rejection::syntax("an operation must be an object"));
    };
    let sent = get_ci(o, "method").and_then(Value::as_str).unwrap_or("");
    let method = [
        ("POST", Some(WriteMethod::Post)),
        ("PUT", Some(WriteMethod::Put)),
        ("PATCH", Some(WriteMethod::Patch)),
        ("DELETE", None),
    ]
    .into_iter()
    .find(|(name, _)| sent.eq_ignore_ascii_case(name));
    let Some((name, method)) = method else {
        return Err(Rejection::value(
            "'method' must be POST, PUT, PATCH or DELETE",
        ));
    };
    let path = get_ci(o, "path")
        .and_then(Value::as_str)
        .ok_or_else(|| Rejection::path("'path' is required"))?;
    let (resource, id) =
        parse_bulk_path(path).ok_or_else(|| Rejection::path(format!("invalid path '{path}'")))?;
    let id_ok = match method {
        Some(WriteMethod::Post) => id.is_none(),
        _ => id.is_some(),
    };
    if !id_ok {
        return Err(Rejection::path(format!(
            "path '{path}' does not fit the method"
        )));
    }
    if get_ci(o, "bulkId").is_some_and(|b| !b.is_string()) {
        return Err(Rejection::value("'bulkId' must be a string"));
    }
    let mut cx = Cx::new(p, resource, domains);
    if sent != name {
        cx.deviate(Deviation::BulkMethodCase, "method")?;
    }
    let Some(method) = method else {
        return Ok((None, cx.changed));
    };
    let data = key_ci(o, "data")
        .and_then(|k| o.get_mut(&k))
        .filter(|d| !d.is_null())
        .ok_or_else(|| Rejection::value("'data' is required"))?;
    match method {
        WriteMethod::Patch => cx.check_patch(data)?,
        m => cx.check_resource(data, m)?,
    }
    let put = match method {
        WriteMethod::Put => id.map(|id| (resource, id)),
        _ => None,
    };
    Ok((put, cx.changed))
}

/// `/Users`, `/Users/{id}`, `/Groups`, `/Groups/{id}`, case-insensitively (RFC 7644 §3.7).
pub(super) fn parse_bulk_path(path: &str) -> Option<(Resource, Option<String>)> {
    let rest = path.strip_prefix('/')?;
    let (head, id) = match rest.split_once('/') {
        Some((h, id)) => (h, Some(id)),
        None => (rest, None),
    };
    let resource = if head.eq_ignore_ascii_case("Users") {
        Resource::Users
    } else if head.eq_ignore_ascii_case("Groups") {
        Resource::Groups
    } else {
        return None;
    };
    match id {
        None => Some((resource, None)),
        Some(id)
            if id.is_empty()
                || id == "."
                || id == ".."
                || id.contains(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace()) =>
        {
            None
        }
        Some(id) => Some((resource, Some(id.to_string()))),
    }
}

/// The `data` of the Bulk operation whose prefix is `Operations[i]: `.
pub(super) fn bulk_data<'v>(root: &'v Value, prefix: &str) -> Option<&'v Value> {
    let i: usize = prefix
        .strip_prefix("Operations[")?
        .split(']')
        .next()?
        .parse()
        .ok()?;
    let obj = root.as_object()?;
    let op = get_ci(obj, "Operations")?.as_array()?.get(i)?.as_object()?;
    get_ci(op, "data")
}
