//! Whole resources: the body of a POST or a PUT (RFC 7644 §3.3, §3.5.1) and the extension
//! objects inside it (RFC 7643 §3.3).

use serde_json::{Map, Value};

use super::context::{require_schema, Cx, Loc};
use super::WriteMethod;
use crate::scim::dialect::Deviation;
use crate::scim::error::Rejection;
use crate::scim::filter::starts_with_ci;
use crate::scim::json::{get_ci, unassigned};
use crate::scim::policy::{Extension, Inner, Resource};
use crate::scim::schema::{self, Mutability};

impl<'p> Cx<'p> {
    /// Deviation `foreign-schema-id`: Entra adds a non-URN schema id to groups
    /// (`http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group`). It names no
    /// attribute; strict directories (scim2-server among them) refuse unknown schema ids, so
    /// where the verdict says rewrite it is removed.
    pub(super) fn foreign_schema_ids(
        &mut self,
        obj: &mut Map<String, Value>,
    ) -> Result<(), Rejection> {
        let is_urn = |s: &Value| s.as_str().is_none_or(|s| starts_with_ci(s, "urn:"));
        let Some((_, Value::Array(items))) = obj
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case("schemas"))
        else {
            return Ok(());
        };
        if items.iter().all(is_urn) {
            return Ok(());
        }
        if self.deviate(Deviation::ForeignSchemaId, "schemas")? {
            items.retain(is_urn);
        }
        Ok(())
    }

    /// Deviation `legacy-urn`: OneLogin's User templates use the SCIM 1.x URNs
    /// (`urn:scim:schemas:core:1.0` in `schemas`, the enterprise extension under
    /// `urn:scim:schemas:extension:enterprise:1.0`). The body is checked in its RFC 7643 form
    /// whatever the verdict (`tolerate` then forwards the bytes as sent).
    pub(super) fn legacy_urns(&mut self, obj: &mut Map<String, Value>) -> Result<(), Rejection> {
        const CORE_1: &str = "urn:scim:schemas:core:1.0";
        const ENT_1: &str = "urn:scim:schemas:extension:enterprise:1.0";
        if self.resource != Resource::Users {
            return Ok(());
        }
        let legacy_schema = get_ci(obj, "schemas")
            .and_then(Value::as_array)
            .is_some_and(|s| {
                s.iter()
                    .filter_map(Value::as_str)
                    .any(|u| u.eq_ignore_ascii_case(CORE_1) || u.eq_ignore_ascii_case(ENT_1))
            });
        let legacy_key = obj.keys().find(|k| k.eq_ignore_ascii_case(ENT_1)).cloned();
        if !legacy_schema && legacy_key.is_none() {
            return Ok(());
        }
        self.deviate(Deviation::LegacyUrn, "schemas")?;
        if let Some(Value::Array(items)) = obj
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case("schemas"))
            .map(|(_, v)| v)
        {
            for item in items.iter_mut() {
                let new = match item.as_str() {
                    Some(u) if u.eq_ignore_ascii_case(CORE_1) => self.resource.core_urn(),
                    Some(u) if u.eq_ignore_ascii_case(ENT_1) => schema::ENTERPRISE_URN,
                    _ => continue,
                };
                *item = Value::String(new.to_string());
            }
        }
        if let Some(key) = legacy_key {
            if let Some(ext) = obj.remove(&key) {
                obj.insert(schema::ENTERPRISE_URN.to_string(), ext);
            }
        }
        Ok(())
    }

    /// A full resource (POST, PUT; RFC 7644 §3.3, §3.5.1).
    pub(super) fn check_resource(
        &mut self,
        root: &mut Value,
        method: WriteMethod,
    ) -> Result<(), Rejection> {
        let Value::Object(obj) = root else {
            return Err(Rejection::invalid_json("the body must be a JSON object"));
        };
        self.legacy_urns(obj)?;
        let schemas = require_schema(obj, self.resource.core_urn())?;
        self.foreign_schema_ids(obj)?;
        let mut drop = Vec::new();
        // Extension objects first, then core attributes, each by name: the first error reported
        // does not depend on the map's iteration order.
        let mut keys: Vec<String> = obj.keys().cloned().collect();
        keys.sort_by_cached_key(|k| (!starts_with_ci(k, "urn:"), k.to_ascii_lowercase()));
        for k in &keys {
            let Some(v) = obj.get_mut(k) else { continue };
            if k.eq_ignore_ascii_case("schemas") {
                continue;
            }
            if starts_with_ci(k, "urn:") {
                self.check_extension_object(k, v, &schemas)?;
                continue;
            }
            let def = schema::find(self.resource.attrs(), k).ok_or_else(|| {
                Rejection::value(format!(
                    "unknown attribute '{k}' for {}",
                    self.resource.name()
                ))
            })?;
            // RFC 7643 §2.2: readOnly values sent by a client are ignored.
            if def.read_only() {
                if self.deviate(Deviation::ReadOnlyInResource, k)? {
                    drop.push(k.clone());
                }
                continue;
            }
            if def.mutability == Mutability::WriteOnly {
                self.check_password(method, v)?;
            }
            self.check_attr(def, v, &Loc::Name(k), true)?;
        }
        for k in drop {
            obj.remove(&k);
        }
        for def in self.resource.attrs().iter().filter(|d| d.required) {
            match get_ci(obj, def.name) {
                Some(Value::String(s)) if !s.is_empty() => {}
                _ => return Err(Rejection::value(format!("'{}' is required", def.name))),
            }
        }
        if self.resource == Resource::Users {
            self.check_user_domains(obj)?;
        }
        Ok(())
    }

    /// `password` on a PUT is refused unless updatable, never silently dropped: dropping it
    /// would tell the IdP a password was set when it was not. A POST may set it.
    pub(super) fn check_password(&self, method: WriteMethod, v: &Value) -> Result<(), Rejection> {
        if method == WriteMethod::Put
            && !unassigned(Some(v))
            && !self.rules().allows(None, "password", None)
        {
            return Err(Rejection::mutability("'password' is not updatable"));
        }
        Ok(())
    }

    /// An extension object keyed by its URN (RFC 7643 §3.3): allowed by the policy, listed in
    /// `schemas`, each attribute allowed and typed.
    pub(super) fn check_extension_object(
        &mut self,
        urn: &str,
        v: &mut Value,
        schemas: &[String],
    ) -> Result<(), Rejection> {
        if urn.eq_ignore_ascii_case(schema::USER_URN) || urn.eq_ignore_ascii_case(schema::GROUP_URN)
        {
            return Err(Rejection::value(format!(
                "core attributes belong at the top level, not under '{urn}'"
            )));
        }
        let ext = self.extension(urn)?;
        if !schemas.iter().any(|s| s.eq_ignore_ascii_case(urn)) {
            return Err(Rejection::value(format!(
                "'{urn}' is present but not listed in 'schemas'"
            )));
        }
        let obj = match v {
            Value::Null => return Ok(()),
            Value::Object(obj) => obj,
            _ => return Err(Rejection::value(format!("'{urn}' must be an object"))),
        };
        let mut drop = Vec::new();
        for (k, av) in obj.iter_mut() {
            if k.eq_ignore_ascii_case("schemas") {
                // A repeated `schemas` inside the extension object (scim2-client sends one)
                // names no attribute; upstreams ignore it.
                self.deviate(Deviation::NestedSchemas, format_args!("{urn}.{k}"))?;
                continue;
            }
            let name = format!("{urn}:{k}");
            if !ext.allows(k) {
                return Err(Rejection::extension(format!(
                    "'{name}' is not an allowed extension attribute"
                )));
            }
            let Some(attrs) = ext.schema else { continue };
            let def = schema::find(attrs, k)
                .ok_or_else(|| Rejection::value(format!("unknown attribute '{name}'")))?;
            if def.read_only() {
                if self.deviate(Deviation::ReadOnlyInResource, &name)? {
                    drop.push(k.clone());
                }
                continue;
            }
            self.check_attr(def, av, &Loc::Name(&name), true)?;
        }
        for k in drop {
            obj.remove(&k);
        }
        Ok(())
    }

    /// An extension the policy allows for this resource, else reason `extension`.
    pub(super) fn extension(&self, urn: &str) -> Result<&'p Extension, Rejection> {
        let p: &'p Inner = self.p;
        p.extension(urn)
            .filter(|e| e.applies_to(self.resource))
            .ok_or_else(|| {
                Rejection::extension(format!(
                    "extension '{urn}' is not allowed for {}",
                    self.resource.name()
                ))
            })
    }
}
