//! Value rules: every attribute value has the type, plurality and sub-attributes its schema
//! gives it (RFC 7643 §2.3, §2.4).

use serde_json::{Map, Value};

use super::context::{type_name, Cx, Loc};
use crate::scim::dialect::{self, Deviation};
use crate::scim::error::Rejection;
use crate::scim::schema::{self, AttrDef, AttrType};

impl<'p> Cx<'p> {
    /// A whole attribute value: multi-valued attributes take an array (RFC 7643 §2.4).
    /// `in_resource`: a POST/PUT body, where readOnly sub-attributes are the deviation
    /// `read-only-in-resource` (inside PATCH values they are ignored and kept).
    pub(super) fn check_attr(
        &mut self,
        def: &'static AttrDef,
        v: &mut Value,
        loc: &Loc,
        in_resource: bool,
    ) -> Result<(), Rejection> {
        match v {
            Value::Null => Ok(()),
            Value::Array(items) if def.multi => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.check_item(def, item, &Loc::Index(loc, i), in_resource)?;
                }
                Ok(())
            }
            Value::Array(_) => Err(Rejection::value(format!(
                "'{loc}' is single-valued, not an array"
            ))),
            // Deviation `single-object-for-multi`: OneLogin's templates send `"emails": {…}`.
            // Checked as the one-element array it stands for.
            Value::Object(_) if def.multi && in_resource => {
                self.deviate(Deviation::SingleObjectForMulti, loc)?;
                let item = std::mem::take(v);
                *v = Value::Array(vec![item]);
                self.check_attr(def, v, loc, in_resource)
            }
            _ if def.multi => Err(Rejection::value(format!(
                "'{loc}' is multi-valued and must be an array"
            ))),
            _ => self.check_item(def, v, loc, in_resource),
        }
    }

    /// One value of `def`'s type (an element, for a multi-valued attribute).
    pub(super) fn check_item(
        &mut self,
        def: &'static AttrDef,
        v: &mut Value,
        loc: &Loc,
        in_resource: bool,
    ) -> Result<(), Rejection> {
        let ok = match def.ty {
            _ if v.is_null() => true,
            AttrType::String | AttrType::DateTime | AttrType::Binary | AttrType::Reference => {
                v.is_string()
            }
            AttrType::Integer => v.is_i64() || v.is_u64(),
            AttrType::Decimal => v.is_number(),
            AttrType::Boolean => self.check_boolean(v, loc)?,
            AttrType::Complex => {
                self.manager_string(def, v, loc)?
                    || match v {
                        Value::Object(obj) => {
                            self.check_object(def, obj, loc, in_resource)?;
                            true
                        }
                        _ => false,
                    }
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Rejection::value(format!(
                "'{loc}' must be {}",
                type_name(def.ty)
            )))
        }
    }

    /// Deviation `boolean-string`: Entra sends `"True"`/`"False"` where the schema says boolean.
    /// The string is a valid boolean whether or not it is rewritten.
    pub(super) fn check_boolean(&mut self, v: &mut Value, loc: &Loc) -> Result<bool, Rejection> {
        match v {
            Value::Bool(_) => Ok(true),
            Value::String(s) => match dialect::bool_from_string(s) {
                Some(b) => {
                    if self.deviate(Deviation::BooleanString, loc)? {
                        *v = Value::Bool(b);
                    }
                    Ok(true)
                }
                None => Ok(false),
            },
            _ => Ok(false),
        }
    }

    /// Deviation `manager-string`: the enterprise `manager` as a bare id string (Entra). Returns
    /// whether `v` was one: an id is a valid manager (`{"value": id}`), rewritten or not.
    pub(super) fn manager_string(
        &mut self,
        def: &'static AttrDef,
        v: &mut Value,
        loc: &Loc,
    ) -> Result<bool, Rejection> {
        if !schema::is_manager(def) {
            return Ok(false);
        }
        // Deviation `manager-id`: SCIM 1.1's `{"managerId": id}` (OneLogin), checked as
        // `{"value": id}`; the other keys stay and are checked as usual.
        if let Value::Object(obj) = v {
            let key = obj
                .keys()
                .find(|k| k.eq_ignore_ascii_case("managerId"))
                .cloned();
            if let Some(key) = key {
                self.deviate(Deviation::ManagerId, loc)?;
                if let Some(id) = obj.remove(&key) {
                    obj.entry("value").or_insert(id);
                }
            }
            return Ok(false);
        }
        let Value::String(id) = &*v else {
            return Ok(false);
        };
        if self.deviate(Deviation::ManagerString, loc)? {
            let mut obj = Map::new();
            obj.insert("value".into(), Value::String(id.clone()));
            *v = Value::Object(obj);
        }
        Ok(true)
    }

    /// The sub-attributes of a complex value. Unknown sub-attributes are refused for the same
    /// reason as unknown attributes: the policy cannot judge what it does not know.
    pub(super) fn check_object(
        &mut self,
        def: &'static AttrDef,
        obj: &mut Map<String, Value>,
        loc: &Loc,
        in_resource: bool,
    ) -> Result<(), Rejection> {
        let mut drop = Vec::new();
        for (k, sv) in obj.iter_mut() {
            let Some(sub) = def.sub(k) else {
                return Err(Rejection::value(format!(
                    "'{loc}.{k}': '{}' has no such sub-attribute",
                    def.name
                )));
            };
            if sub.read_only() {
                if in_resource && self.deviate(Deviation::ReadOnlyInResource, Loc::Key(loc, k))? {
                    drop.push(k.clone());
                }
                continue;
            }
            self.check_attr(sub, sv, &Loc::Key(loc, k), in_resource)?;
        }
        for k in drop {
            obj.remove(&k);
        }
        Ok(())
    }
}
