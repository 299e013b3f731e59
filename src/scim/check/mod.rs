//! The rules of `docs/scim-checks.md` applied to one request: schema (RFC 7643), the operator's
//! policy, e-mail domains and the IdP dialect.
//!
//! # The two-phase API
//!
//! 1. **Prepare** ([`Policy::prepare`], [`Policy::prepare_bulk`]): parse the body once
//!    (`super::json`), check everything that does not need the upstream, and rewrite deviations
//!    to RFC form where the dialect says so. The result, [`Prepared`], lists in
//!    [`Prepared::needs`] the resources a PUT replaces.
//! 2. **Finish** ([`Prepared::finish`]): the proxy reads those resources from the upstream and
//!    hands them over; each PUT is compared with what it replaces (RFC 7644 §3.5.1: a PUT
//!    replaces the whole resource, so it may change only what the policy lets change).
//!
//! A SearchRequest writes nothing and needs one phase ([`Policy::check_search`]).
//!
//! The original bytes are forwarded untouched unless something was rewritten ([`Checked::body`]).
//! The checks always read the normalized form, so `"False"` is `false` for the type check and
//! the PUT comparison whatever the dialect.
//!
//! # Layout
//!
//! One file per rule family, each adding methods to the per-request checking context
//! ([`context::Cx`]): `values` (RFC 7643 §2.3 types), `resource` (POST/PUT bodies), `patch`
//! (PATCH operations), `target` (what one PATCH path may write), `domains` (e-mail domains),
//! `bulk` (RFC 7644 §3.7), `search` (SearchRequest members) and `put` (the phase-two PUT
//! comparison). The dialect decision is made in one place, `super::dialect`.

mod bulk;
mod context;
mod destructive;
mod domains;
mod patch;
mod put;
mod resource;
mod search;
mod target;
mod values;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use self::context::{require_schema, Cx};
use super::error::Rejection;
use super::json::parse_object;
use super::policy::{Policy, Resource};
use super::schema::SEARCH_REQUEST_URN;

/// The write methods the gate checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMethod {
    /// Create (RFC 7644 §3.3).
    Post,
    /// Replace (RFC 7644 §3.5.1); compared with the current resource in phase two.
    Put,
    /// Modify (RFC 7644 §3.5.2).
    Patch,
}

/// One SCIM write as the proxy sees it.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The resource type the route names.
    pub resource: Resource,
    /// The HTTP method.
    pub method: WriteMethod,
    /// The `{id}` of `/Users/{id}` for PUT and PATCH.
    pub id: Option<&'a str>,
    /// The whole request body, as received.
    pub body: &'a [u8],
    /// The token's e-mail domains; empty = any.
    pub domains: &'a [String],
}

/// A request that passed every check that does not need the upstream.
#[derive(Debug)]
pub struct Prepared {
    inner: Arc<super::policy::Inner>,
    needs: Vec<(Resource, String)>,
    puts: Vec<PendingPut>,
    body: Option<Vec<u8>>,
    /// Destructive operations found in phase one (PATCH, Bulk DELETE and PATCH).
    destructive: u32,
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
    /// How many destructive changes the request makes (a User set inactive, a Group emptied,
    /// a DELETE inside Bulk), for the destructive-change breaker. A single request counts at
    /// most 1; a Bulk request counts each operation.
    pub destructive: u32,
}

impl Policy {
    /// Phase one of a POST, PUT or PATCH on `/Users` or `/Groups`.
    pub fn prepare(&self, req: &Request<'_>) -> Result<Prepared, Rejection> {
        let mut root = parse_object(req.body)?;
        let mut cx = Cx::new(&self.inner, req.resource, req.domains);
        let mut puts = Vec::new();
        let mut destructive = 0;
        match req.method {
            WriteMethod::Post => cx.check_resource(&mut root, WriteMethod::Post)?,
            WriteMethod::Patch => {
                cx.check_patch(&mut root)?;
                destructive = u32::from(destructive::patch(req.resource, &root));
            }
            WriteMethod::Put => {
                let id = req
                    .id
                    .filter(|id| !id.is_empty())
                    .ok_or_else(|| Rejection::path("a PUT needs a resource id in its URL"))?;
                cx.check_resource(&mut root, WriteMethod::Put)?;
                puts.push((req.resource, id.to_string(), String::new()));
            }
        }
        self.prepared(cx.changed, root, puts, destructive, |root, _| root.clone())
    }

    /// Phase one of a `/Bulk` request (RFC 7644 §3.7): every operation is checked like the
    /// single request it stands for; details start with `Operations[i]: `.
    pub fn prepare_bulk(&self, body: &[u8], domains: &[String]) -> Result<Prepared, Rejection> {
        let mut root = parse_object(body)?;
        let (puts, changed) = bulk::check_bulk(&self.inner, &mut root, domains)?;
        let destructive = destructive::bulk(&root);
        self.prepared(changed, root, puts, destructive, |root, prefix| {
            bulk::bulk_data(root, prefix)
                .cloned()
                .unwrap_or(Value::Null)
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
            search::check_search_member(&self.inner, k, v)?;
        }
        Ok(())
    }

    /// Serialize the body if a deviation's verdict rewrote it, and record the PUTs.
    fn prepared(
        &self,
        changed: bool,
        root: Value,
        puts: Vec<(Resource, String, String)>,
        destructive: u32,
        value_of: impl Fn(&Value, &str) -> Value,
    ) -> Result<Prepared, Rejection> {
        let body = if changed {
            Some(serde_json::to_vec(&root).map_err(|e| {
                Rejection::invalid_json(format!("the body could not be re-encoded: {e}"))
            })?)
        } else {
            None
        };
        // One read per resource, however many operations of a Bulk request replace it.
        let mut seen = std::collections::HashSet::with_capacity(puts.len());
        let needs = puts
            .iter()
            .filter(|(r, id, _)| seen.insert((*r, id.as_str())))
            .map(|(r, id, _)| (*r, id.clone()))
            .collect();
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
            destructive,
        })
    }
}

impl Prepared {
    /// Resources whose current representation the proxy must read before [`Prepared::finish`]
    /// (the targets of PUTs, including PUTs inside a Bulk request), each named once.
    pub fn needs(&self) -> &[(Resource, String)] {
        &self.needs
    }

    /// Phase two: compare each PUT with the current resource. Every attribute that is neither
    /// updatable nor readOnly must be unchanged (`docs/scim-checks.md`): a PUT replaces the whole resource
    /// (RFC 7644 §3.5.1), so leaving an attribute out drops it, and that is a change too.
    pub fn finish(
        self,
        current: &HashMap<(Resource, String), Value>,
    ) -> Result<Checked, Rejection> {
        let mut destructive = self.destructive;
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
            put::compare_put(&self.inner, put.resource, body, cur)
                .map_err(|e| e.prefixed(&put.prefix))?;
            destructive += u32::from(destructive::put(put.resource, body, cur));
        }
        Ok(Checked {
            body: self.body,
            destructive,
        })
    }
}
