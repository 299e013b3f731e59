//! Value rules: every attribute value has the type, plurality and sub-attributes its schema
//! gives it (RFC 7643 §2.3, §2.4).

use serde_json::{Map, Value};

use super::context::{type_name, Cx, Loc};
use crate::scim::dialect::{self, Deviation};
use crate::scim::error::Rejection;
use crate::scim::schema::{self, AttrDef, AttrType};

impl<'p> Cx<'p> {
    /// A whole attribute value: multi-valued attributes take an array (RFC 7643 §2.4).
    /// `strip`: drop readOnly sub-attributes (POST/PUT under normalize).
    pub(super) fn check_attr(
        &mut self,
        def: &'static AttrDef,
        v: &mut Value,
        loc: &Loc,
        strip: bool,
    ) -> Result<(), Rejection> {
        match v {
            Value::Null => Ok(()),
            Value::Array(items) if def.multi => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.check_item(def, item, &Loc::Index(loc, i), strip)?;
                }
                Ok(())
            }
            Value::Array(_) => Err(Rejection::value(format!(
                "'{loc}' is single-valued, not an array"
            ))),
            _ if def.multi => Err(Rejection::value(format!(
                "'{loc}' is multi-valued and must be an array"
            ))),
            _ => self.check_item(def, v, loc, strip),
        }
    }

    /// One value of `def`'s type (an element, for a multi-valued attribute).
    pub(super) fn check_item(
        &mut self,
        def: &'static AttrDef,
        v: &mut Value,
        loc: &Loc,
        strip: bool,
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
                self.check_manager(def, v, loc)?;
                match v {
                    Value::Object(obj) => {
                        self.check_object(def, obj, loc, strip)?;
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

    /// Deviation: Entra sends `"True"`/`"False"` where the schema says boolean.
    pub(super) fn check_boolean(&mut self, v: &mut Value, loc: &Loc) -> Result<bool, Rejection> {
        match v {
            Value::Bool(_) => Ok(true),
            Value::String(s) => match dialect::bool_from_string(s) {
                Some(b) => {
                    self.deviate(Deviation::BooleanString, loc)?;
                    *v = Value::Bool(b);
                    self.changed = true;
                    Ok(true)
                }
                None => Ok(false),
            },
            _ => Ok(false),
        }
    }

    /// Deviation: the enterprise `manager` as a bare id string (Entra).
    pub(super) fn check_manager(
        &mut self,
        def: &'static AttrDef,
        v: &mut Value,
        loc: &Loc,
    ) -> Result<(), Rejection> {
        let is_manager =
            schema::find(schema::ENTERPRISE_ATTRS, "manager").is_some_and(|m| std::ptr::eq(m, def));
        if let (true, Value::String(id)) = (is_manager, &*v) {
            self.deviate(Deviation::ManagerString, loc)?;
            let mut obj = Map::new();
            obj.insert("value".into(), Value::String(id.clone()));
            *v = Value::Object(obj);
            self.changed = true;
        }
        Ok(())
    }

    /// The sub-attributes of a complex value. Unknown sub-attributes are refused for the same
    /// reason as unknown attributes: the policy cannot judge what it does not know.
    pub(super) fn check_object(
        &mut self,
        def: &'static AttrDef,
        obj: &mut Map<String, Value>,
        loc: &Loc,
        strip: bool,
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
                if strip {
                    drop.push(k.clone());
                }
                continue;
            }
            self.check_attr(sub, sv, &Loc::Key(loc, k), strip)?;
        }
        if !drop.is_empty() {
            for k in drop {
                obj.remove(&k);
            }
            self.changed = true;
        }
        Ok(())
    }
}
