//! RFC 7644 §3.5.2 PATCH.
//!
//! Paths: `attr`, `attr.sub`, `attr[filter]`, `attr[filter].sub`, each optionally prefixed by a
//! schema URN (`urn:…:enterprise:2.0:User:department`), or a bare extension URN. Filters inside
//! brackets (and in list queries) are `attr eq value [and attr eq value]…` only: the demo refuses
//! what it does not understand rather than guessing.

use serde_json::{Map, Value};

use crate::attrs::{entry_ci, get_ci, get_ci_mut, remove_ci, set_ci, Obj};
use crate::error::ScimError;
use crate::filter::{filter_matches, parse_eq_filter, EqFilter};
use crate::urn::{ENTERPRISE_URN, IVANTI_URN, PATCH_URN};

/// A parsed PATCH path.
#[derive(Debug, PartialEq)]
pub(crate) struct Path {
    /// The extension object that holds the attribute; `None` for core attributes.
    pub ext: Option<String>,
    /// `None` when the path is a bare extension URN (the whole extension object).
    pub attr: Option<String>,
    pub filter: Option<EqFilter>,
    pub sub: Option<String>,
}

fn is_attr_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    s == "$ref"
        || bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `known` (plus `core_urn`) are the schema URNs that may prefix a path; the longest match wins because URNs
/// themselves contain `:` and `.` (RFC 7644 §3.10: fully qualified names). An unknown URN is split at its last `:`.
pub(crate) fn parse_path(path: &str, core_urn: &str, known: &[String]) -> Result<Path, ScimError> {
    let bad = |why: &str| ScimError::new(400, Some("invalidPath"), format!("{path:?}: {why}"));
    let p = path.trim();
    let (mut ext, rest) = if p.get(..4).is_some_and(|h| h.eq_ignore_ascii_case("urn:")) {
        let core = core_urn.to_string();
        let mut known: Vec<&String> = known.iter().chain([&core]).collect();
        known.sort_by_key(|u| std::cmp::Reverse(u.len()));
        let lower = p.to_ascii_lowercase();
        let hit = known.into_iter().find(|u| {
            let u = u.to_ascii_lowercase();
            lower == u || lower.starts_with(&format!("{u}:"))
        });
        match hit {
            Some(u) if u.len() == p.len() => (Some(u.clone()), ""),
            Some(u) => (Some(u.clone()), &p[u.len() + 1..]),
            None => {
                let end = p.find('[').unwrap_or(p.len());
                let colon = p[..end].rfind(':').ok_or_else(|| bad("bad URN"))?;
                (Some(p[..colon].to_string()), &p[colon + 1..])
            }
        }
    } else {
        (None, p)
    };
    if ext
        .as_deref()
        .is_some_and(|u| u.eq_ignore_ascii_case(core_urn))
    {
        if rest.is_empty() {
            return Err(bad("the core schema is not an attribute"));
        }
        ext = None;
    }
    if rest.is_empty() {
        if ext.is_none() {
            return Err(bad("empty path"));
        }
        return Ok(Path {
            ext,
            attr: None,
            filter: None,
            sub: None,
        });
    }
    let name_end = rest.find(['.', '[']).unwrap_or(rest.len());
    let attr = &rest[..name_end];
    let mut tail = &rest[name_end..];
    let mut filter = None;
    if tail.starts_with('[') {
        let close = tail.rfind(']').ok_or_else(|| bad("unclosed ["))?;
        let parsed = parse_eq_filter(&tail[1..close])
            .map_err(|e| ScimError::new(400, Some("invalidFilter"), format!("{path:?}: {e}")))?;
        if parsed.iter().any(|(a, _)| !is_attr_name(a)) {
            return Err(bad("a value filter compares sub-attributes"));
        }
        filter = Some(parsed);
        tail = &tail[close + 1..];
    }
    let sub = match tail.strip_prefix('.') {
        Some(s) if is_attr_name(s) => Some(s.to_string()),
        None if tail.is_empty() => None,
        _ => return Err(bad("expected .subAttribute")),
    };
    if !is_attr_name(attr) {
        return Err(bad("not an attribute name"));
    }
    Ok(Path {
        ext,
        attr: Some(attr.to_string()),
        filter,
        sub,
    })
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Op {
    Add,
    Replace,
    Remove,
}

/// Applies a PatchOp body to `res` (a stored resource). All or nothing: the caller applies it
/// to a copy and keeps the copy only on success (RFC 7644 §3.5.2: a PATCH is atomic).
pub(crate) fn apply(res: &mut Obj, body: &Value, core_urn: &str) -> Result<(), ScimError> {
    let syntax = |d: &str| ScimError::new(400, Some("invalidSyntax"), d.to_string());
    let body = body
        .as_object()
        .ok_or_else(|| syntax("PATCH body must be an object"))?;
    let is_patch_op = |s: &Value| {
        s.as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case(PATCH_URN))
    };
    match get_ci(body, "schemas").and_then(Value::as_array) {
        Some(schemas) if schemas.iter().any(is_patch_op) => {}
        _ => return Err(syntax("schemas must contain the PatchOp URN")),
    }
    let ops = get_ci(body, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| syntax("Operations must be an array"))?;
    let mut known = vec![
        core_urn.to_string(),
        ENTERPRISE_URN.into(),
        IVANTI_URN.into(),
    ];
    if let Some(Value::Array(schemas)) = get_ci(res, "schemas") {
        known.extend(schemas.iter().filter_map(Value::as_str).map(String::from));
    }
    for op in ops {
        let op = op
            .as_object()
            .ok_or_else(|| syntax("an operation must be an object"))?;
        let kind = match get_ci(op, "op")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
        {
            Some(o) if o == "add" => Op::Add,
            Some(o) if o == "replace" => Op::Replace,
            Some(o) if o == "remove" => Op::Remove,
            _ => return Err(syntax("op must be add, replace or remove")),
        };
        let value = get_ci(op, "value");
        let path = get_ci(op, "path").and_then(Value::as_str);
        match (kind, path, value) {
            (_, Some(path), value) => {
                let path = parse_path(path, core_urn, &known)?;
                if kind != Op::Remove && value.is_none() {
                    return Err(ScimError::new(
                        400,
                        Some("invalidValue"),
                        "add/replace need a value",
                    ));
                }
                apply_path(res, &path, kind, value)?;
            }
            (Op::Remove, None, _) => {
                return Err(ScimError::new(400, Some("noTarget"), "remove needs a path"))
            }
            (_, None, Some(Value::Object(values))) => {
                // No path: each key is itself a path (Entra sends `name.givenName` here) or an
                // extension URN whose object holds that extension's attributes.
                for (key, v) in values {
                    if ["id", "meta", "schemas"]
                        .iter()
                        .any(|r| key.eq_ignore_ascii_case(r))
                    {
                        continue; // readOnly; Okta echoes the group's own id here
                    }
                    let path = parse_path(key, core_urn, &known)?;
                    match (&path.attr, v) {
                        (None, Value::Object(ext_values)) => {
                            for (k, v) in ext_values {
                                let p = Path {
                                    attr: Some(k.clone()),
                                    ..path_ext(&path)
                                };
                                apply_path(res, &p, kind, Some(v))?;
                            }
                        }
                        _ => apply_path(res, &path, kind, Some(v))?,
                    }
                }
            }
            (_, None, _) => {
                return Err(ScimError::new(
                    400,
                    Some("invalidValue"),
                    "a no-path value must be an object",
                ))
            }
        }
    }
    Ok(())
}

fn path_ext(p: &Path) -> Path {
    Path {
        ext: p.ext.clone(),
        attr: None,
        filter: None,
        sub: None,
    }
}

fn items(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    }
}

/// Members are compared by their `value` (the id), other multi-valued items as wholes.
fn same_item(a: &Value, b: &Value) -> bool {
    match (a.get("value"), b.get("value")) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn apply_path(res: &mut Obj, path: &Path, op: Op, value: Option<&Value>) -> Result<(), ScimError> {
    let invalid = |d: String| ScimError::new(400, Some("invalidValue"), d);
    let container: &mut Obj = match &path.ext {
        None => res,
        Some(urn) => {
            if op == Op::Remove && get_ci(res, urn).is_none() {
                return Ok(());
            }
            if path.attr.is_none() {
                return match (op, value) {
                    (Op::Remove, _) => {
                        remove_ci(res, urn);
                        Ok(())
                    }
                    (_, Some(Value::Object(values))) => {
                        let ext = entry_ci(res, urn, || Value::Object(Map::new()));
                        let ext = ext
                            .as_object_mut()
                            .ok_or_else(|| invalid(format!("{urn} is not an object")))?;
                        values.iter().for_each(|(k, v)| set_ci(ext, k, v.clone()));
                        Ok(())
                    }
                    _ => Err(invalid(format!("{urn} takes an object"))),
                };
            }
            entry_ci(res, urn, || Value::Object(Map::new()))
                .as_object_mut()
                .ok_or_else(|| invalid(format!("{urn} is not an object")))?
        }
    };
    let attr = path.attr.as_deref().unwrap_or_default();
    if path.ext.is_none() && ["id", "meta"].iter().any(|r| attr.eq_ignore_ascii_case(r)) {
        return Err(ScimError::new(
            400,
            Some("mutability"),
            format!("{attr} is readOnly"),
        ));
    }
    let null = Value::Null;
    let value = value.unwrap_or(&null);
    match (op, &path.filter, &path.sub) {
        // `null` means unassigned (RFC 7643 §2.5).
        (Op::Add | Op::Replace, None, None) if value.is_null() => {
            remove_ci(container, attr);
        }
        (Op::Add | Op::Replace, None, None) => match (get_ci_mut(container, attr), value) {
            (Some(Value::Array(existing)), v) if op == Op::Add => {
                for item in items(v) {
                    if !existing.iter().any(|e| same_item(e, &item)) {
                        existing.push(item);
                    }
                }
            }
            // Replacing a complex attribute replaces only the sub-attributes given.
            (Some(Value::Object(existing)), Value::Object(new)) => {
                new.iter().for_each(|(k, v)| set_ci(existing, k, v.clone()));
            }
            _ => set_ci(container, attr, value.clone()),
        },
        (Op::Add | Op::Replace, None, Some(sub)) => {
            match entry_ci(container, attr, || Value::Object(Map::new())) {
                Value::Object(o) => set_ci(o, sub, value.clone()),
                Value::Array(_) => {
                    return Err(ScimError::new(
                        400,
                        Some("invalidPath"),
                        format!("{attr} is multi-valued: use {attr}[filter].{sub}"),
                    ))
                }
                other => *other = Value::Object(Map::from_iter([(sub.clone(), value.clone())])),
            }
        }
        (Op::Add | Op::Replace, Some(filter), sub) => {
            let slot = entry_ci(container, attr, || Value::Array(Vec::new()));
            if slot.is_null() {
                *slot = Value::Array(Vec::new());
            }
            let arr = slot.as_array_mut().ok_or_else(|| {
                ScimError::new(
                    400,
                    Some("invalidPath"),
                    format!("{attr} is not multi-valued"),
                )
            })?;
            let mut hits: Vec<usize> = (0..arr.len())
                .filter(|&i| filter_matches(&arr[i], filter))
                .collect();
            if hits.is_empty() {
                if op == Op::Replace {
                    return Err(ScimError::new(
                        400,
                        Some("noTarget"),
                        format!("no {attr} value matches the filter"),
                    ));
                }
                // Entra adds through a filter that matches nothing yet and expects the value created.
                arr.push(Value::Object(filter.iter().cloned().collect()));
                hits.push(arr.len() - 1);
            }
            for i in hits {
                match (&mut arr[i], sub, value) {
                    (Value::Object(o), Some(sub), v) => set_ci(o, sub, v.clone()),
                    (Value::Object(o), None, Value::Object(new)) => {
                        new.iter().for_each(|(k, v)| set_ci(o, k, v.clone()))
                    }
                    _ => {
                        return Err(invalid(format!(
                            "{attr}[…] takes an object or a .subAttribute path"
                        )))
                    }
                }
            }
        }
        (Op::Remove, None, None) => match (get_ci_mut(container, attr), value) {
            // Entra/JumpCloud remove members as path "members" with a value list of whom.
            (Some(Value::Array(existing)), v) if !v.is_null() => {
                let doomed = items(v);
                existing.retain(|e| !doomed.iter().any(|d| same_item(e, d)));
                if existing.is_empty() {
                    remove_ci(container, attr);
                }
            }
            _ => {
                remove_ci(container, attr);
            }
        },
        (Op::Remove, None, Some(sub)) => {
            if let Some(Value::Object(o)) = get_ci_mut(container, attr) {
                remove_ci(o, sub);
            }
        }
        (Op::Remove, Some(filter), sub) => {
            let mut now_empty = false;
            if let Some(Value::Array(arr)) = get_ci_mut(container, attr) {
                match sub {
                    None => arr.retain(|e| !filter_matches(e, filter)),
                    Some(sub) => arr
                        .iter_mut()
                        .filter(|e| filter_matches(e, filter))
                        .filter_map(Value::as_object_mut)
                        .for_each(|o| {
                            remove_ci(o, sub);
                        }),
                }
                now_empty = arr.is_empty();
            }
            if now_empty {
                remove_ci(container, attr);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CORE: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

    fn parse(p: &str) -> Result<Path, ScimError> {
        parse_path(p, CORE, &[ENTERPRISE_URN.to_string()])
    }

    #[test]
    fn paths() {
        let p = parse("name.givenName").unwrap();
        assert_eq!(
            (p.ext, p.attr.as_deref(), p.sub.as_deref()),
            (None, Some("name"), Some("givenName"))
        );
        let p = parse(r#"emails[type eq "work" and primary eq true].value"#).unwrap();
        assert_eq!(
            p.filter,
            Some(vec![
                ("type".into(), json!("work")),
                ("primary".into(), json!(true))
            ])
        );
        assert_eq!(p.sub.as_deref(), Some("value"));
        let p = parse(r#"members[value eq "a b]c"]"#).unwrap();
        assert_eq!(p.filter, Some(vec![("value".into(), json!("a b]c"))]));
        // Longest known URN wins even though the URN holds `.` and `:`; any case.
        let p = parse("URN:IETF:params:scim:schemas:extension:enterprise:2.0:User:manager.value")
            .unwrap();
        assert_eq!(
            (p.ext.as_deref(), p.attr.as_deref(), p.sub.as_deref()),
            (Some(ENTERPRISE_URN), Some("manager"), Some("value"))
        );
        assert_eq!(parse(ENTERPRISE_URN).unwrap().attr, None);
        assert_eq!(
            parse(&format!("{CORE}:userName")).unwrap(),
            Path {
                ext: None,
                attr: Some("userName".into()),
                filter: None,
                sub: None
            }
        );
        let p = parse("urn:example:custom:2.0:User:badge").unwrap();
        assert_eq!(
            (p.ext.as_deref(), p.attr.as_deref()),
            (Some("urn:example:custom:2.0:User"), Some("badge"))
        );
        for bad in [
            "",
            "1abc",
            "abcé",
            "é[x eq 1]",
            "name.",
            "name..x",
            "emails[type eq \"w\"",
            "a.b.c",
            "emails[type eq \"w\"]x",
            CORE,
        ] {
            assert_eq!(
                parse(bad).map_err(|e| e.scim_type),
                Err(Some("invalidPath")),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse("emails[type sw \"w\"]").map_err(|e| e.scim_type),
            Err(Some("invalidFilter"))
        );
    }
}
