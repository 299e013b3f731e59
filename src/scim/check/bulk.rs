//! Bulk requests (RFC 7644 §3.7): each operation is checked like the single request it stands
//! for; details start with `Operations[i]: `.

use serde_json::Value;

use super::context::{require_schema, Cx};
use super::WriteMethod;
use crate::scim::error::Rejection;
use crate::scim::json::{get_ci, key_ci};
use crate::scim::policy::Resource;
use crate::scim::schema::BULK_REQUEST_URN;

impl<'p> Cx<'p> {
    /// RFC 7644 §3.7. Returns the PUTs as (resource, id, detail prefix).
    pub(super) fn check_bulk(
        &mut self,
        root: &mut Value,
    ) -> Result<Vec<(Resource, String, String)>, Rejection> {
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
        let key = key_ci(obj, "Operations")
            .ok_or_else(|| Rejection::syntax("'Operations' is required"))?;
        let Some(Value::Array(ops)) = obj.get_mut(&key) else {
            return Err(Rejection::syntax("'Operations' must be an array"));
        };
        let mut puts = Vec::new();
        for (i, op) in ops.iter_mut().enumerate() {
            let prefix = format!("Operations[{i}]: ");
            if let Some((resource, id)) = self.check_bulk_op(op).map_err(|e| e.prefixed(&prefix))? {
                puts.push((resource, id, prefix));
            }
        }
        Ok(puts)
    }

    /// One Bulk operation; returns the target of a PUT.
    pub(super) fn check_bulk_op(
        &mut self,
        op: &mut Value,
    ) -> Result<Option<(Resource, String)>, Rejection> {
        let Value::Object(o) = op else {
            return Err(Rejection::syntax("an operation must be an object"));
        };
        let method = match get_ci(o, "method").and_then(Value::as_str) {
            Some(m) if m.eq_ignore_ascii_case("POST") => Some(WriteMethod::Post),
            Some(m) if m.eq_ignore_ascii_case("PUT") => Some(WriteMethod::Put),
            Some(m) if m.eq_ignore_ascii_case("PATCH") => Some(WriteMethod::Patch),
            Some(m) if m.eq_ignore_ascii_case("DELETE") => None,
            _ => {
                return Err(Rejection::value(
                    "'method' must be POST, PUT, PATCH or DELETE",
                ))
            }
        };
        let path = get_ci(o, "path")
            .and_then(Value::as_str)
            .ok_or_else(|| Rejection::path("'path' is required"))?;
        let (resource, id) = parse_bulk_path(path)
            .ok_or_else(|| Rejection::path(format!("invalid path '{path}'")))?;
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
        let Some(method) = method else {
            return Ok(None);
        };
        let data = key_ci(o, "data")
            .and_then(|k| o.get_mut(&k))
            .filter(|d| !d.is_null())
            .ok_or_else(|| Rejection::value("'data' is required"))?;
        self.resource = resource;
        match method {
            WriteMethod::Patch => self.check_patch(data)?,
            m => self.check_resource(data, m)?,
        }
        Ok(match method {
            WriteMethod::Put => id.map(|id| (resource, id)),
            _ => None,
        })
    }
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
