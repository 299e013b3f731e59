//! The rules of SPEC §5 applied to one request: schema (RFC 7643), the operator's policy,
//! e-mail domains and the IdP dialect.
//!
//! Each request body is parsed once ([`super::json`]) into a `serde_json::Value`, checked and,
//! where a deviation must be rewritten, changed in place; the original bytes are forwarded
//! untouched unless the dialect is `normalize` and something was rewritten. The checks always
//! read the normalized form, so `"False"` is `false` for the type check and the PUT comparison
//! whatever the dialect.
//!
//! A PUT is checked in two phases ([`Prepared`]) because it must be compared with the current
//! resource, which the proxy reads from the upstream between them.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::dialect::{self, Deviation, OpKind};
use super::error::Rejection;
use super::filter::{parse_filter_limited, split_attr_sub, starts_with_ci};
use super::json::{get_ci, key_ci, parse_object, unassigned};
use super::path::{parse_path_in, PatchPath, PathError};
use super::policy::{Dialect, Extension, Inner, Policy, Resource, Rules};
use super::schema::{
    self, AttrDef, AttrType, Mutability, BULK_REQUEST_URN, PATCH_OP_URN, SEARCH_REQUEST_URN,
};

/// The write methods the gate checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMethod {
    Post,
    Put,
    Patch,
}

/// One SCIM write as the proxy sees it.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub resource: Resource,
    pub method: WriteMethod,
    /// The `{id}` of `/Users/{id}` for PUT and PATCH.
    pub id: Option<&'a str>,
    pub body: &'a [u8],
    /// The token's e-mail domains; empty = any.
    pub domains: &'a [String],
}

/// A request that passed every check that does not need the upstream.
#[derive(Debug)]
pub struct Prepared {
    inner: Arc<Inner>,
    needs: Vec<(Resource, String)>,
    puts: Vec<PendingPut>,
    body: Option<Vec<u8>>,
}

/// A PUT waiting for its comparison with the current resource.
#[derive(Debug)]
struct PendingPut {
    resource: Resource,
    id: String,
    /// `Operations[i]: ` inside a Bulk request.
    prefix: String,
    value: Value,
}

/// A request that may be forwarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// `Some` only when `normalize` rewrote the body; `None`: forward the original bytes.
    pub body: Option<Vec<u8>>,
}

impl Policy {
    /// Phase one of a POST, PUT or PATCH on `/Users` or `/Groups`.
    pub fn prepare(&self, req: &Request<'_>) -> Result<Prepared, Rejection> {
        let mut root = parse_object(req.body)?;
        let mut cx = Cx::new(&self.inner, req.resource, req.domains);
        let mut puts = Vec::new();
        match req.method {
            WriteMethod::Post => cx.check_resource(&mut root, WriteMethod::Post)?,
            WriteMethod::Patch => cx.check_patch(&mut root)?,
            WriteMethod::Put => {
                let id = req
                    .id
                    .filter(|id| !id.is_empty())
                    .ok_or_else(|| Rejection::path("a PUT needs a resource id in its URL"))?;
                cx.check_resource(&mut root, WriteMethod::Put)?;
                puts.push((req.resource, id.to_string(), String::new()));
            }
        }
        self.prepared(cx.changed, root, puts, |root, _| root.clone())
    }

    /// Phase one of a `/Bulk` request (RFC 7644 §3.7): every operation is checked like the
    /// single request it stands for; details start with `Operations[i]: `.
    pub fn prepare_bulk(&self, body: &[u8], domains: &[String]) -> Result<Prepared, Rejection> {
        let mut root = parse_object(body)?;
        let mut cx = Cx::new(&self.inner, Resource::Users, domains);
        let puts = cx.check_bulk(&mut root)?;
        self.prepared(cx.changed, root, puts, |root, prefix| {
            bulk_data(root, prefix).cloned().unwrap_or(Value::Null)
        })
    }

    /// A SearchRequest (`POST /.search`, `/Users/.search`, RFC 7644 §3.4.3): it writes nothing,
    /// but its filter must parse, or the upstream might answer an unfiltered list.
    pub fn check_search(&self, body: &[u8]) -> Result<(), Rejection> {
        let root = parse_object(body)?;
        let Value::Object(obj) = &root else {
            return Err(Rejection::invalid_json("the body must be a JSON object"));
        };
        require_schema(obj, SEARCH_REQUEST_URN)?;
        for (k, v) in obj {
            check_search_member(&self.inner, k, v)?;
        }
        Ok(())
    }

    /// Serialize the rewritten body if `normalize` changed something, and record the PUTs.
    fn prepared(
        &self,
        changed: bool,
        root: Value,
        puts: Vec<(Resource, String, String)>,
        value_of: impl Fn(&Value, &str) -> Value,
    ) -> Result<Prepared, Rejection> {
        let body = if changed && self.inner.dialect == Dialect::Normalize {
            Some(serde_json::to_vec(&root).map_err(|e| {
                Rejection::invalid_json(format!("the body could not be re-encoded: {e}"))
            })?)
        } else {
            None
        };
        let needs = puts.iter().map(|(r, id, _)| (*r, id.clone())).collect();
        let puts = puts
            .into_iter()
            .map(|(resource, id, prefix)| PendingPut {
                value: value_of(&root, &prefix),
                resource,
                id,
                prefix,
            })
            .collect();
        Ok(Prepared {
            inner: Arc::clone(&self.inner),
            needs,
            puts,
            body,
        })
    }
}

/// The `data` of the Bulk operation whose prefix is `Operations[i]: `.
fn bulk_data<'v>(root: &'v Value, prefix: &str) -> Option<&'v Value> {
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

impl Prepared {
    /// Resources whose current representation the proxy must read before [`Prepared::finish`]
    /// (the targets of PUTs, including PUTs inside a Bulk request).
    pub fn needs(&self) -> &[(Resource, String)] {
        &self.needs
    }

    /// Phase two: compare each PUT with the current resource. Every attribute that is neither
    /// updatable nor readOnly must be unchanged (SPEC §5): a PUT replaces the whole resource
    /// (RFC 7644 §3.5.1), so leaving an attribute out drops it, and that is a change too.
    pub fn finish(
        self,
        current: &HashMap<(Resource, String), Value>,
    ) -> Result<Checked, Rejection> {
        for put in &self.puts {
            let cur = current
                .get(&(put.resource, put.id.clone()))
                .and_then(Value::as_object)
                .ok_or_else(|| {
                    Rejection::not_found(format!(
                        "{}{}/{}: the current resource could not be read",
                        put.prefix,
                        put.resource.name(),
                        put.id
                    ))
                })?;
            let body = put.value.as_object().ok_or_else(|| {
                Rejection::invalid_json(format!("{}the PUT body is not an object", put.prefix))
            })?;
            compare_put(&self.inner, put.resource, body, cur)
                .map_err(|e| e.prefixed(&put.prefix))?;
        }
        Ok(Checked { body: self.body })
    }
}

/// Where in the body a message points, built only when a message is written.
#[derive(Clone, Copy)]
enum Loc<'a> {
    Name(&'a str),
    /// `Operations[0]: path`
    Under(&'a Loc<'a>, &'a str),
    Key(&'a Loc<'a>, &'a str),
    Index(&'a Loc<'a>, usize),
}

impl fmt::Display for Loc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loc::Name(n) => f.write_str(n),
            Loc::Under(p, s) => write!(f, "{p}: {s}"),
            Loc::Key(p, k) => write!(f, "{p}.{k}"),
            Loc::Index(p, i) => write!(f, "{p}[{i}]"),
        }
    }
}

/// What a PATCH operation becomes after normalization.
enum OpOutcome {
    Keep,
    KeepThen(Vec<Value>),
    ReplaceWith(Vec<Value>),
}

/// The schema scope of a path: the core schema or an allowed extension.
#[derive(Clone, Copy)]
enum Scope<'p> {
    Core,
    Ext(&'p Extension),
}

impl<'p> Scope<'p> {
    fn key(self) -> Option<&'p str> {
        match self {
            Scope::Core => None,
            Scope::Ext(e) => Some(&e.urn_lc),
        }
    }
}

/// Per-request state.
struct Cx<'p> {
    p: &'p Inner,
    resource: Resource,
    domains: &'p [String],
    /// Something was rewritten to RFC form.
    changed: bool,
}

fn is_read_only(def: Option<&AttrDef>) -> bool {
    def.is_some_and(AttrDef::read_only)
}

fn require_schema(obj: &Map<String, Value>, urn: &str) -> Result<Vec<String>, Rejection> {
    let schemas = schemas_of(obj)?;
    if !schemas.iter().any(|s| s.eq_ignore_ascii_case(urn)) {
        return Err(Rejection::value(format!("'schemas' must list {urn}")));
    }
    Ok(schemas)
}

/// `schemas` (RFC 7643 §3): required, an array of strings.
fn schemas_of(obj: &Map<String, Value>) -> Result<Vec<String>, Rejection> {
    match get_ci(obj, "schemas") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| Rejection::syntax("'schemas' must be an array of strings"))
            })
            .collect(),
        None | Some(Value::Null) => Err(Rejection::syntax("'schemas' is required")),
        Some(_) => Err(Rejection::syntax("'schemas' must be an array of strings")),
    }
}

impl<'p> Cx<'p> {
    fn new(p: &'p Inner, resource: Resource, domains: &'p [String]) -> Self {
        Cx {
            p,
            resource,
            domains,
            changed: false,
        }
    }

    fn normalize(&self) -> bool {
        self.p.dialect == Dialect::Normalize
    }

    /// A known deviation: refused under `strict`, accepted otherwise.
    fn deviate(&self, dev: Deviation, at: impl fmt::Display) -> Result<(), Rejection> {
        if self.p.dialect == Dialect::Strict {
            return Err(Rejection::dialect(
                dev.scim_type(),
                format!("{at}: {} (dialect strict)", dev.describe()),
            ));
        }
        Ok(())
    }

    fn rules(&self) -> &'p Rules {
        self.p.rules(self.resource)
    }

    /// Entra adds a non-URN schema id to groups
    /// (`http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group`). It names no
    /// attribute, the gate tolerates it in every dialect, and `normalize` removes it because
    /// strict directories (scim2-server among them) refuse unknown schema ids.
    fn drop_foreign_schema_ids(&mut self, obj: &mut Map<String, Value>) {
        let Some((_, Value::Array(items))) = obj
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case("schemas"))
        else {
            return;
        };
        let before = items.len();
        items.retain(|s| s.as_str().is_none_or(|s| starts_with_ci(s, "urn:")));
        if items.len() != before {
            self.changed = true;
        }
    }

    // ---------------------------------------------------------------- types (RFC 7643 §2.3)

    /// A whole attribute value: multi-valued attributes take an array (RFC 7643 §2.4).
    /// `strip`: drop readOnly sub-attributes (POST/PUT under normalize).
    fn check_attr(
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
    fn check_item(
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
    fn check_boolean(&mut self, v: &mut Value, loc: &Loc) -> Result<bool, Rejection> {
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
    fn check_manager(
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
    fn check_object(
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

    // ------------------------------------------------------------------- POST / PUT bodies

    /// A full resource (POST, PUT; RFC 7644 §3.3, §3.5.1).
    fn check_resource(&mut self, root: &mut Value, method: WriteMethod) -> Result<(), Rejection> {
        let Value::Object(obj) = root else {
            return Err(Rejection::invalid_json("the body must be a JSON object"));
        };
        let schemas = require_schema(obj, self.resource.core_urn())?;
        let strip = self.normalize();
        if strip {
            self.drop_foreign_schema_ids(obj);
        }
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
                self.check_extension_object(k, v, &schemas, strip)?;
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
                if strip {
                    drop.push(k.clone());
                }
                continue;
            }
            if def.mutability == Mutability::WriteOnly {
                self.check_password(method, v)?;
            }
            self.check_attr(def, v, &Loc::Name(k), strip)?;
        }
        if !drop.is_empty() {
            for k in drop {
                obj.remove(&k);
            }
            self.changed = true;
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
    fn check_password(&self, method: WriteMethod, v: &Value) -> Result<(), Rejection> {
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
    fn check_extension_object(
        &mut self,
        urn: &str,
        v: &mut Value,
        schemas: &[String],
        strip: bool,
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
                if strip {
                    drop.push(k.clone());
                }
                continue;
            }
            self.check_attr(def, av, &Loc::Name(&name), strip)?;
        }
        if !drop.is_empty() {
            for k in drop {
                obj.remove(&k);
            }
            self.changed = true;
        }
        Ok(())
    }

    /// An extension the policy allows for this resource, else reason `extension`.
    fn extension(&self, urn: &str) -> Result<&'p Extension, Rejection> {
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

    // -------------------------------------------------------------------------- domains

    fn check_user_domains(&self, obj: &Map<String, Value>) -> Result<(), Rejection> {
        if self.domains.is_empty() {
            return Ok(());
        }
        if let Some(Value::String(u)) = get_ci(obj, "userName") {
            if u.contains('@') {
                self.check_domain(u, "userName")?;
            }
        }
        if let Some(Value::Array(emails)) = get_ci(obj, "emails") {
            for (i, e) in emails.iter().enumerate() {
                self.check_email_item(e, &Loc::Index(&Loc::Name("emails"), i))?;
            }
        }
        Ok(())
    }

    fn check_email_item(&self, item: &Value, loc: &Loc) -> Result<(), Rejection> {
        if let Some(Value::String(addr)) = item.as_object().and_then(|o| get_ci(o, "value")) {
            self.check_domain(addr, Loc::Key(loc, "value"))?;
        }
        Ok(())
    }

    /// The part after the last '@' must be one of the token's domains. The message names the
    /// attribute and the domain, never the address (user data).
    fn check_domain(&self, addr: &str, what: impl fmt::Display) -> Result<(), Rejection> {
        if self.domains.is_empty() {
            return Ok(());
        }
        let domain = addr.rsplit_once('@').map(|(_, d)| d.trim()).unwrap_or("");
        let allowed = !domain.is_empty()
            && self
                .domains
                .iter()
                .any(|d| d.trim_start_matches('@').eq_ignore_ascii_case(domain));
        if allowed {
            return Ok(());
        }
        Err(Rejection::domain(if domain.is_empty() {
            format!("{what}: not an e-mail address, so its domain cannot be allowed")
        } else {
            format!("{what}: domain '{domain}' is not allowed for this token")
        }))
    }

    // ---------------------------------------------------------------------------- PATCH

    /// RFC 7644 §3.5.2: `{"schemas":[PatchOp],"Operations":[…]}`.
    fn check_patch(&mut self, root: &mut Value) -> Result<(), Rejection> {
        let Value::Object(obj) = root else {
            return Err(Rejection::invalid_json("the body must be a JSON object"));
        };
        require_schema(obj, PATCH_OP_URN)?;
        let key = key_ci(obj, "Operations")
            .ok_or_else(|| Rejection::syntax("'Operations' is required"))?;
        let Some(Value::Array(ops)) = obj.get_mut(&key) else {
            return Err(Rejection::syntax("'Operations' must be an array"));
        };
        if ops.is_empty() {
            return Err(Rejection::value("'Operations' must not be empty"));
        }
        let taken = std::mem::take(ops);
        let mut out = Vec::with_capacity(taken.len());
        let base = Loc::Name("Operations");
        for (i, mut op) in taken.into_iter().enumerate() {
            match self.check_op(&mut op, &Loc::Index(&base, i))? {
                OpOutcome::Keep => out.push(op),
                OpOutcome::KeepThen(extra) => {
                    out.push(op);
                    out.extend(extra);
                }
                OpOutcome::ReplaceWith(ops) => out.extend(ops),
            }
        }
        *ops = out;
        Ok(())
    }

    fn check_op(&mut self, op: &mut Value, loc: &Loc) -> Result<OpOutcome, Rejection> {
        let Value::Object(o) = op else {
            return Err(Rejection::syntax(format!(
                "{loc}: an operation must be an object"
            )));
        };
        let op_key =
            key_ci(o, "op").ok_or_else(|| Rejection::syntax(format!("{loc}: 'op' is required")))?;
        let (kind, lower) = o
            .get(&op_key)
            .and_then(Value::as_str)
            .and_then(OpKind::parse)
            .ok_or_else(|| {
                Rejection::syntax(format!(
                    "{loc}: 'op' must be \"add\", \"replace\" or \"remove\""
                ))
            })?;
        if !lower {
            self.deviate(Deviation::CapitalisedOp, loc)?;
            if self.normalize() {
                o.insert(op_key, Value::String(kind.as_str().into()));
                self.changed = true;
            }
        }
        let path = match get_ci(o, "path") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(Rejection::syntax(format!("{loc}: 'path' must be a string"))),
        };
        let value_key = key_ci(o, "value");
        if kind == OpKind::Remove {
            let value = value_key.and_then(|k| o.get(&k)).filter(|v| !v.is_null());
            return self.check_remove(path, value, loc);
        }
        let value = value_key.and_then(|k| o.get_mut(&k)).ok_or_else(|| {
            Rejection::value(format!("{loc}: '{}' needs a 'value'", kind.as_str()))
        })?;
        match path {
            Some(p) => {
                let pp = self.parse(&p, loc)?;
                if kind == OpKind::Add && pp.filter.is_some() {
                    self.deviate(Deviation::AddOnValueFilter, format_args!("{loc}: '{p}'"))?;
                }
                self.check_target(&pp, &p, kind, Some(value), loc)?;
                Ok(OpOutcome::Keep)
            }
            None => self.check_no_path(kind, value, loc),
        }
    }

    fn parse(&self, p: &str, loc: &Loc) -> Result<PatchPath, Rejection> {
        parse_path_in(p, &self.p.known_urns, self.p.max_filter_terms)
            .map_err(|e| path_rejection(format!("{loc}: invalid path '{p}'"), &e))
    }

    /// `remove` needs a path (RFC 7644 §3.5.2.2, else `noTarget`) and takes no value, except
    /// the Entra/JumpCloud member removal `{"path":"members","value":[{"value":"id"}]}`.
    fn check_remove(
        &mut self,
        path: Option<String>,
        value: Option<&Value>,
        loc: &Loc,
    ) -> Result<OpOutcome, Rejection> {
        let p =
            path.ok_or_else(|| Rejection::no_target(format!("{loc}: 'remove' needs a 'path'")))?;
        let pp = self.parse(&p, loc)?;
        let Some(value) = value else {
            self.check_target(&pp, &p, OpKind::Remove, None, loc)?;
            return Ok(OpOutcome::Keep);
        };
        let ids = self
            .removal_target(&pp)
            .then(|| dialect::removal_ids(value))
            .flatten()
            .ok_or_else(|| {
                Rejection::value(format!(
                    "{loc}: 'remove' takes no 'value' (use a filter in the path)"
                ))
            })?;
        self.deviate(Deviation::MemberRemovalValue, loc)?;
        self.check_target(&pp, &p, OpKind::Remove, None, loc)?;
        if !self.normalize() {
            return Ok(OpOutcome::Keep);
        }
        self.changed = true;
        let attr = p.trim();
        Ok(OpOutcome::ReplaceWith(
            ids.into_iter()
                .map(|id| dialect::removal_op(attr, id))
                .collect(),
        ))
    }

    /// A plain path to a core multi-valued complex attribute with a `value` sub-attribute
    /// (members, emails, …): the only place a value list on `remove` makes sense.
    fn removal_target(&self, pp: &PatchPath) -> bool {
        let core = pp
            .urn
            .as_deref()
            .is_none_or(|u| u.eq_ignore_ascii_case(self.resource.core_urn()));
        let def = pp
            .attr
            .as_deref()
            .and_then(|a| schema::find(self.resource.attrs(), a));
        core && pp.filter.is_none()
            && pp.sub.is_none()
            && def.is_some_and(|d| d.multi && d.ty == AttrType::Complex && d.sub("value").is_some())
    }

    /// A no-path `add`/`replace` (RFC 7644 §3.5.2.1, §3.5.2.3): the value's keys are attribute
    /// names or extension URNs. Keys that are paths (Entra) and readOnly keys (Okta's group
    /// rename carries the group's `id`) are deviations.
    fn check_no_path(
        &mut self,
        kind: OpKind,
        v: &mut Value,
        loc: &Loc,
    ) -> Result<OpOutcome, Rejection> {
        let Value::Object(map) = v else {
            return Err(Rejection::value(format!(
                "{loc}: without a 'path', 'value' must be an object"
            )));
        };
        let taken = std::mem::take(map);
        let mut keep = Map::new();
        let mut extra = Vec::new();
        for (k, mut sv) in taken {
            if k.eq_ignore_ascii_case("schemas") {
                keep.insert(k, sv);
                continue;
            }
            let pp =
                parse_path_in(&k, &self.p.known_urns, self.p.max_filter_terms).map_err(|e| {
                    path_rejection(format!("{loc}: value key '{k}' is not a valid path"), &e)
                })?;
            let plain =
                pp.attr.is_none() || (pp.urn.is_none() && pp.filter.is_none() && pp.sub.is_none());
            if plain {
                let def = pp
                    .attr
                    .as_deref()
                    .filter(|_| pp.urn.is_none())
                    .and_then(|a| schema::find(self.resource.attrs(), a));
                if is_read_only(def) {
                    self.deviate(Deviation::ReadOnlyInValue, format_args!("{loc}: '{k}'"))?;
                    if self.normalize() {
                        self.changed = true;
                    } else {
                        keep.insert(k, sv);
                    }
                    continue;
                }
                self.check_target(&pp, &k, kind, Some(&mut sv), loc)?;
                keep.insert(k, sv);
                continue;
            }
            self.deviate(Deviation::PathKeyInValue, format_args!("{loc}: '{k}'"))?;
            self.check_target(&pp, &k, kind, Some(&mut sv), loc)?;
            if self.normalize() {
                extra.push(dialect::path_op(kind, k.trim(), sv));
                self.changed = true;
            } else {
                keep.insert(k, sv);
            }
        }
        let kept_any = !keep.is_empty();
        *map = keep;
        Ok(match (extra.is_empty(), kept_any) {
            (true, _) => OpOutcome::Keep,
            (false, true) => OpOutcome::KeepThen(extra),
            (false, false) => OpOutcome::ReplaceWith(extra),
        })
    }

    fn scope(&self, pp: &PatchPath, raw: &str, loc: &Loc) -> Result<Scope<'p>, Rejection> {
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
    fn check_target(
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
                (None, None) if d.multi && !v.is_array() => self.check_item(d, v, &at, false)?,
                (None, None) => self.check_attr(d, v, &at, false)?,
            }
        }
        if matches!(scope, Scope::Core)
            && self.resource == Resource::Users
            && attr.eq_ignore_ascii_case("emails")
        {
            self.check_patch_emails(pp, v, &at)?;
        }
        Ok(())
    }

    /// Whether a target may change. Besides the listed entries, an object value for a
    /// single-valued complex attribute (`name`) or a filtered element (`emails[…]`) changes
    /// only the sub-attributes it names (RFC 7644 §3.5.2.3), so it passes when each is updatable.
    fn updatable(
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
    fn check_whole_extension(
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

    /// E-mail addresses written by a PATCH at `emails`, `emails[…]`, `emails[…].value`.
    fn check_patch_emails(&self, pp: &PatchPath, v: &Value, at: &Loc) -> Result<(), Rejection> {
        match (pp.sub.as_deref(), &pp.filter, v) {
            (Some(s), _, Value::String(addr)) if s.eq_ignore_ascii_case("value") => {
                self.check_domain(addr, at)
            }
            (Some(_), _, _) => Ok(()),
            (None, _, Value::Array(items)) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, item)| self.check_email_item(item, &Loc::Index(at, i))),
            (None, _, item) => self.check_email_item(item, at),
        }
    }

    // ----------------------------------------------------------------------------- Bulk

    /// RFC 7644 §3.7. Returns the PUTs as (resource, id, detail prefix).
    fn check_bulk(
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
    fn check_bulk_op(&mut self, op: &mut Value) -> Result<Option<(Resource, String)>, Rejection> {
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
fn parse_bulk_path(path: &str) -> Option<(Resource, Option<String>)> {
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

/// One member of a SearchRequest (RFC 7644 §3.4.3). Unknown members are refused: the gate
/// cannot vouch for a search parameter it does not understand.
fn check_search_member(p: &Inner, k: &str, v: &Value) -> Result<(), Rejection> {
    let lk = k.to_ascii_lowercase();
    match lk.as_str() {
        "schemas" => Ok(()),
        "filter" => {
            let s = v
                .as_str()
                .ok_or_else(|| Rejection::filter("'filter' must be a string"))?;
            parse_filter_limited(s, p.max_filter_terms)
                .map(|_| ())
                .map_err(|e| Rejection::filter(format!("invalid filter: {e}")))
        }
        "attributes" | "excludedattributes" => {
            let items = v
                .as_array()
                .ok_or_else(|| Rejection::value(format!("'{k}' must be an array of strings")))?;
            for item in items {
                let s = item.as_str().ok_or_else(|| {
                    Rejection::value(format!("'{k}' must be an array of strings"))
                })?;
                parse_path_in(s, &p.known_urns, p.max_filter_terms)
                    .map_err(|e| path_rejection(format!("'{k}': invalid path '{s}'"), &e))?;
            }
            Ok(())
        }
        "sortby" if v.is_string() => Ok(()),
        "sortorder"
            if v.as_str().is_some_and(|s| {
                s.eq_ignore_ascii_case("ascending") || s.eq_ignore_ascii_case("descending")
            }) =>
        {
            Ok(())
        }
        "startindex" | "count" if v.is_i64() || v.is_u64() => Ok(()),
        "sortby" | "sortorder" | "startindex" | "count" => {
            Err(Rejection::value(format!("'{k}' has the wrong type")))
        }
        _ => Err(Rejection::value(format!(
            "unknown SearchRequest attribute '{k}'"
        ))),
    }
}

/// A path that did not parse is `invalidPath`, except a value filter over the term limit,
/// which is `invalidFilter` like an over-long search filter (the limit is on filters).
fn path_rejection(what: String, e: &PathError) -> Rejection {
    match e {
        PathError::Filter(f) if f.too_many_terms => Rejection::filter(format!("{what}: {e}")),
        _ => Rejection::path(format!("{what}: {e}")),
    }
}

fn type_name(t: AttrType) -> &'static str {
    match t {
        AttrType::String => "a string",
        AttrType::Boolean => "a boolean",
        AttrType::Decimal => "a number",
        AttrType::Integer => "an integer",
        AttrType::DateTime => "a dateTime string",
        AttrType::Binary => "a base64 string",
        AttrType::Reference => "a reference string",
        AttrType::Complex => "an object",
    }
}

// -------------------------------------------------------------------- PUT comparison

/// Compare a PUT body with the current resource (SPEC §5). Compared: the core attributes of
/// the schema and every attribute of the policy's extensions. Not compared: readOnly
/// attributes (ignored on input, RFC 7643 §2.2), `password` (writeOnly, never returned; checked
/// in phase one), updatable attributes, and attributes of the current resource the gate does
/// not know (it could never have written them, so it does not police them).
fn compare_put(
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

fn compare_one(
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

/// A canonical form for semantic equality: names lower-cased, strings folded unless caseExact
/// (RFC 7643 §2.2; the default is caseExact false), `null`/`[]`/`""`/`{}` all unassigned
/// (OneLogin sends `""` for unset fields), multi-valued attributes unordered (RFC 7643 §2.4),
/// readOnly sub-attributes and server-derived `$ref` ignored, booleans sent as strings read as
/// booleans.
fn canon(def: Option<&'static AttrDef>, v: Option<&Value>, excl: &[&str]) -> Value {
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

fn canon_item(def: Option<&'static AttrDef>, v: &Value, excl: &[&str]) -> Value {
    match v {
        Value::String(s) if s.is_empty() => Value::Null,
        Value::String(s) => {
            if def.is_some_and(|d| d.ty == AttrType::Boolean) {
                if let Some(b) = dialect::bool_from_string(s) {
                    return Value::Bool(b);
                }
            }
            if def.is_some_and(|d| d.case_exact) {
                Value::String(s.clone())
            } else {
                Value::String(s.to_lowercase())
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
