//! PATCH targets: what one path (or one key of a no-path value) may write — the extension
//! allowed, the attribute known, not readOnly, updatable by the policy, the value typed.

use serde_json::Value;

use super::context::{is_read_only, Cx, Loc};
use crate::scim::dialect::{Deviation, OpKind};
use crate::scim::error::Rejection;
use crate::scim::filter::split_attr_sub;
use crate::scim::path::PatchPath;
use crate::scim::policy::{Extension, Resource};
use crate::scim::schema::{self, AttrDef, AttrType};

/// The schema scope of a path: the core schema or an allowed extension.
#[derive(Clone, Copy)]
pub(super) enum Scope<'p> {
    Core,
    Ext(&'p Extension),
}

impl<'p> Scope<'p> {
    pub(super) fn key(self) -> Option<&'p str> {
        match self {
            Scope::Core => None,
            Scope::Ext(e) => Some(&e.urn_lc),
        }
    }
}

impl<'p> Cx<'p> {
    pub(super) fn scope(
        &self,
        pp: &PatchPath,
        raw: &str,
        loc: &Loc,
    ) -> Result<Scope<'p>, Rejection> {
        match pp.urn.as_deref() {
            None => Ok(Scope::Core),
            Some(u) if u.eq_ignore_ascii_case(self.resource.core_urn()) => Ok(Scope::Core),
            Some(u)
                if u.eq_ignore_ascii_case(schema::USER_URN)
                    || u.eq_ignore_ascii_case(schema::GROUP_URN) =>
            {
                Err(Rejection::path(format!(
                    "{loc}: '{raw}' is not a path of {}",
                    self.resource.name()
                )))
            }
            Some(u) => self
                .extension(u)
                .map(Scope::Ext)
                .map_err(|e| e.prefixed(&format!("{loc}: "))),
        }
    }

    /// One PATCH target and its value: extension allowed, attribute known, not readOnly,
    /// updatable by policy, value typed, e-mail domains allowed.
    pub(super) fn check_target(
        &mut self,
        pp: &PatchPath,
        raw: &str,
        kind: OpKind,
        value: Option<&mut Value>,
        loc: &Loc,
    ) -> Result<(), Rejection> {
        let scope = self.scope(pp, raw, loc)?;
        let Some(attr) = pp.attr.as_deref() else {
            return self.check_whole_extension(scope, pp, raw, kind, value, loc);
        };
        let no_attr = || {
            Rejection::path(format!(
                "{loc}: '{raw}' names no attribute of {}",
                self.resource.name()
            ))
        };
        let def = match scope {
            Scope::Core => Some(schema::find(self.resource.attrs(), attr).ok_or_else(no_attr)?),
            Scope::Ext(ext) => {
                if !ext.allows(attr) {
                    return Err(Rejection::extension(format!(
                        "{loc}: '{raw}' is not an allowed extension attribute"
                    )));
                }
                match ext.schema {
                    Some(attrs) => Some(schema::find(attrs, attr).ok_or_else(no_attr)?),
                    None => None,
                }
            }
        };
        let sub_def = match (pp.sub.as_deref(), def) {
            (Some(s), Some(d)) => Some(d.sub(s).ok_or_else(no_attr)?),
            _ => None,
        };
        if pp.filter.is_some() && def.is_some_and(|d| !d.multi) {
            return Err(Rejection::path(format!(
                "{loc}: '{raw}': a value filter needs a multi-valued attribute"
            )));
        }
        if is_read_only(def) || is_read_only(sub_def) {
            return Err(Rejection::mutability(format!("{loc}: '{raw}' is readOnly")));
        }
        let value = value.filter(|_| kind != OpKind::Remove);
        if !self.updatable(scope, attr, pp, def, value.as_deref()) {
            return Err(Rejection::mutability(format!(
                "{loc}: '{raw}' is not updatable"
            )));
        }
        let Some(v) = value else { return Ok(()) };
        let at = Loc::Under(loc, raw);
        if let Some(d) = def {
            match (sub_def, &pp.filter) {
                (Some(sd), _) => self.check_attr(sd, v, &at, false)?,
                (None, Some(_)) => self.check_item(d, v, &at, false)?,
                // RFC 7644 §3.5.2.1 adds an array to a multi-valued attribute; a single
                // element is accepted too, as most servers do.
                (None, None) if d.multi && !v.is_array() => {
                    self.deviate(Deviation::SingleValueForMulti, at)?;
                    self.check_item(d, v, &at, false)?
                }
                (None, None) => self.check_attr(d, v, &at, false)?,
            }
        }
        if matches!(scope, Scope::Core)
            && self.resource == Resource::Users
            && attr.eq_ignore_ascii_case("emails")
        {
            if let Some(f) = &pp.filter {
                self.check_filter_emails(f, loc)?;
            }
            self.check_patch_emails(pp, v, &at)?;
        }
        // A rename (`userName` listed as updatable) writes a new address: the token's domains
        // hold for it as for a POST.
        if matches!(scope, Scope::Core)
            && self.resource == Resource::Users
            && attr.eq_ignore_ascii_case("userName")
            && pp.sub.is_none()
        {
            if let Value::String(u) = v {
                self.check_user_name_domain(u)?;
            }
        }
        Ok(())
    }

    /// Whether a target may change. Besides the listed entries, an object value for a
    /// single-valued complex attribute (`name`) or a filtered element (`emails[…]`) changes
    /// only the sub-attributes it names (RFC 7644 §3.5.2.3), so it passes when each is updatable.
    pub(super) fn updatable(
        &self,
        scope: Scope<'p>,
        attr: &str,
        pp: &PatchPath,
        def: Option<&'static AttrDef>,
        value: Option<&Value>,
    ) -> bool {
        let rules = self.rules();
        if rules.allows(scope.key(), attr, pp.sub.as_deref()) {
            return true;
        }
        let (Some(d), Some(Value::Object(obj)), None) = (def, value, &pp.sub) else {
            return false;
        };
        if d.ty != AttrType::Complex || (d.multi && pp.filter.is_none()) {
            return false;
        }
        let mut any = false;
        for k in obj.keys() {
            if is_read_only(d.sub(k)) {
                continue;
            }
            if !rules.allows(scope.key(), attr, Some(k)) {
                return false;
            }
            any = true;
        }
        any
    }

    /// A path that is exactly an extension URN: the value is an object of its attributes.
    pub(super) fn check_whole_extension(
        &mut self,
        scope: Scope<'p>,
        pp: &PatchPath,
        raw: &str,
        kind: OpKind,
        value: Option<&mut Value>,
        loc: &Loc,
    ) -> Result<(), Rejection> {
        let Scope::Ext(ext) = scope else {
            return Err(Rejection::path(format!(
                "{loc}: '{raw}' must name an attribute"
            )));
        };
        if kind == OpKind::Remove {
            if self.rules().allows_whole(&ext.urn_lc) {
                return Ok(());
            }
            return Err(Rejection::mutability(format!(
                "{loc}: '{raw}' is not updatable as a whole"
            )));
        }
        let Some(Value::Object(obj)) = value else {
            return Err(Rejection::value(format!(
                "{loc}: the value of '{raw}' must be an object"
            )));
        };
        for (k, sv) in obj.iter_mut() {
            if k.eq_ignore_ascii_case("schemas") {
                // scim2-client and others repeat the URN inside the extension object; it names
                // no attribute and changes nothing.
                self.deviate(Deviation::NestedSchemas, format_args!("{loc}: '{raw}.{k}'"))?;
                continue;
            }
            let name = format!("{raw}:{k}");
            let (attr, sub) = split_attr_sub(k).ok_or_else(|| {
                Rejection::path(format!("{loc}: '{name}' is not a valid attribute path"))
            })?;
            let inner = PatchPath {
                urn: pp.urn.clone(),
                attr: Some(attr),
                filter: None,
                sub,
            };
            self.check_target(&inner, &name, kind, Some(sv), loc)?;
        }
        Ok(())
    }
}
