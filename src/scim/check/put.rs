//! Phase two of a PUT: the comparison with the current resource (`docs/scim-checks.md`,
//! "PUT comparison").

use serde_json::{Map, Value};

use super::context::is_read_only;
use crate::scim::dialect;
use crate::scim::error::Rejection;
use crate::scim::json::get_ci;
use crate::scim::policy::{Inner, Resource};
use crate::scim::schema::{self, AttrDef, AttrType, Mutability};

/// Compare a PUT body with the current resource (`docs/scim-checks.md`, "PUT comparison"). Compared: the core attributes of
/// the schema and every attribute of the policy's extensions. Not compared: readOnly
/// attributes (ignored on input, RFC 7643 §2.2), `password` (writeOnly, never returned; checked
/// in phase one), updatable attributes, and attributes of the current resource the gate does
/// not know (it could never have written them, so it does not police them).
pub(super) fn compare_put(
    p: &Inner,
    resource: Resource,
    body: &Map<String, Value>,
    cur: &Map<String, Value>,
) -> Result<(), Rejection> {
    let rules = p.rules(resource);
    for def in resource.attrs() {
        if def.read_only() || def.mutability == Mutability::WriteOnly {
            continue;
        }
        if rules.allows(None, def.name, None) {
            continue;
        }
        let excl = rules.updatable_subs(None, def.name);
        compare_one(
            Some(def),
            get_ci(body, def.name),
            get_ci(cur, def.name),
            &excl,
            def.name,
        )?;
    }
    for ext in p.extensions.iter().filter(|e| e.applies_to(resource)) {
        if rules.allows_whole(&ext.urn_lc) {
            continue;
        }
        let b = get_ci(body, &ext.urn_lc).and_then(Value::as_object);
        let c = get_ci(cur, &ext.urn_lc).and_then(Value::as_object);
        let mut names: Vec<String> = b
            .into_iter()
            .chain(c)
            .flat_map(|o| o.keys().map(|k| k.to_ascii_lowercase()))
            .collect();
        names.sort();
        names.dedup();
        for n in names {
            if rules.allows(Some(&ext.urn_lc), &n, None) {
                continue;
            }
            let def = ext.schema.and_then(|s| schema::find(s, &n));
            if is_read_only(def) {
                continue;
            }
            let excl = rules.updatable_subs(Some(&ext.urn_lc), &n);
            let name = format!("{}:{}", ext.urn, def.map_or(n.as_str(), |d| d.name));
            compare_one(
                def,
                b.and_then(|o| get_ci(o, &n)),
                c.and_then(|o| get_ci(o, &n)),
                &excl,
                &name,
            )?;
        }
    }
    Ok(())
}

pub(super) fn compare_one(
    def: Option<&'static AttrDef>,
    b: Option<&Value>,
    c: Option<&Value>,
    excl: &[&str],
    name: &str,
) -> Result<(), Rejection> {
    let nb = canon(def, b, excl);
    if nb == canon(def, c, excl) {
        return Ok(());
    }
    // A single-valued complex attribute (`name`) whose updatable sub-attributes were excluded:
    // name the sub-attribute that changed (`name.middleName`), not the whole attribute, whose
    // other sub-attributes (`name.givenName`) may well be updatable.
    if let Some(d) = def.filter(|d| !d.multi && !d.subs.is_empty()) {
        fn sub_of<'v>(v: Option<&'v Value>, s: &AttrDef) -> Option<&'v Value> {
            v.and_then(Value::as_object).and_then(|o| get_ci(o, s.name))
        }
        for s in d.subs {
            if s.read_only() || excl.iter().any(|e| e.eq_ignore_ascii_case(s.name)) {
                continue;
            }
            let path = format!("{name}.{}", s.name);
            compare_one(Some(s), sub_of(b, s), sub_of(c, s), &[], &path)?;
        }
    }
    let verb = if nb.is_null() { "drops" } else { "changes" };
    Err(Rejection::mutability(format!(
        "'{name}' is not updatable and this PUT {verb} it"
    )))
}

/// A canonical form for semantic equality: names lower-cased, strings ASCII-folded unless caseExact
/// (RFC 7643 §2.2; the default is caseExact false), `null`/`[]`/`""`/`{}` all unassigned
/// (OneLogin sends `""` for unset fields), multi-valued attributes unordered (RFC 7643 §2.4),
/// readOnly sub-attributes and server-derived `$ref` ignored, booleans sent as strings read as
/// booleans.
pub(super) fn canon(def: Option<&'static AttrDef>, v: Option<&Value>, excl: &[&str]) -> Value {
    match v {
        None => Value::Null,
        Some(Value::Array(items)) => {
            let mut out: Vec<(String, Value)> = items
                .iter()
                .map(|i| canon_item(def, i, excl))
                .filter(|c| !c.is_null())
                .map(|c| (c.to_string(), c))
                .collect();
            if out.is_empty() {
                return Value::Null;
            }
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Array(out.into_iter().map(|(_, c)| c).collect())
        }
        Some(item) => {
            let c = canon_item(def, item, excl);
            if def.is_some_and(|d| d.multi) && !c.is_null() {
                Value::Array(vec![c])
            } else {
                c
            }
        }
    }
}

pub(super) fn canon_item(def: Option<&'static AttrDef>, v: &Value, excl: &[&str]) -> Value {
    match v {
        Value::String(s) if s.is_empty() => Value::Null,
        // `manager-string`: a bare manager id means `{"value": id}` (`docs/scim-checks.md`).
        Value::String(s) if def.is_some_and(schema::is_manager) => {
            let mut m = Map::new();
            m.insert("value".into(), Value::String(s.clone()));
            canon_item(def, &Value::Object(m), excl)
        }
        Value::String(s) => {
            if def.is_some_and(|d| d.ty == AttrType::Boolean) {
                if let Some(b) = dialect::bool_from_string(s) {
                    return Value::Bool(b);
                }
            }
            // caseExact per attribute (RFC 7643 §2.2). Case-insensitive values fold ASCII
            // letters only: Unicode lower-casing maps distinct characters together (U+212A
            // KELVIN SIGN becomes 'k'), which would let a PUT rename an immutable userName.
            if def.is_some_and(|d| d.case_exact) {
                Value::String(s.clone())
            } else {
                Value::String(s.to_ascii_lowercase())
            }
        }
        Value::Object(o) => {
            let mut m = Map::new();
            for (k, sv) in o {
                let sub = def.and_then(|d| d.sub(k));
                let lk = k.to_ascii_lowercase();
                if is_read_only(sub)
                    || lk == "$ref"
                    || excl.iter().any(|e| e.eq_ignore_ascii_case(&lk))
                {
                    continue;
                }
                let c = canon(sub, Some(sv), &[]);
                if !c.is_null() {
                    m.insert(lk, c);
                }
            }
            if m.is_empty() {
                Value::Null
            } else {
                Value::Object(m)
            }
        }
        Value::Array(_) => canon(def, Some(v), excl),
        other => other.clone(),
    }
}
