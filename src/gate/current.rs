//! The seam through which a PUT's comparison reads the resource it replaces.
//!
//! A PUT replaces the whole resource (RFC 7644 §3.5.1), so the gate must see the current one
//! to know what the PUT changes. In production the upstream client reads it
//! ([`crate::upstream::Upstream::get_json`]); a unit test passes a stub instead, so the
//! comparison can be tested without a directory. Dispatch is static (a generic parameter, not
//! a boxed trait object), so the seam costs the request path nothing.

use std::future::Future;

use crate::scim::Resource;
use crate::upstream::{Upstream, UpstreamError};

/// Who is asking: the upstream sees the same identity headers on the gate's own reads as on
/// the request it forwards.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The token's tenant (`X-Scim-Tenant`).
    pub tenant: &'a str,
    /// The token's id (`X-Scim-Token-Id`).
    pub token_id: &'a str,
    /// The e-mail domains the token may write; empty means any.
    pub domains: &'a [String],
}

/// Reads a resource's current representation.
pub trait CurrentResources: Sync {
    /// `Ok(None)` when the resource does not exist (the PUT is then refused with 404).
    fn current(
        &self,
        resource: Resource,
        id: &str,
        caller: &Caller<'_>,
    ) -> impl Future<Output = Result<Option<serde_json::Value>, UpstreamError>> + Send;
}

impl CurrentResources for Upstream {
    async fn current(
        &self,
        resource: Resource,
        id: &str,
        caller: &Caller<'_>,
    ) -> Result<Option<serde_json::Value>, UpstreamError> {
        let suffix = crate::routes::Route::Item(resource, id.to_string()).upstream_suffix();
        self.get_json(&suffix, caller.tenant, caller.token_id).await
    }
}
