//! The seam through which a PUT's comparison reads the resource it replaces.
//!
//! A PUT replaces the whole resource (RFC 7644 §3.5.1), so the gate must see the current one
//! to know what the PUT changes. In production the upstream client reads it
//! ([`crate::upstream::Upstream::get_json`]); a unit test passes a stub instead, so the
//! comparison can be tested without a directory. Dispatch is static (a generic parameter, not
//! a boxed trait object), so the seam costs the request path nothing.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::scim::Resource;
use crate::upstream::{ReadBudget, Upstream, UpstreamError};

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
    /// `Ok(None)` when the resource does not exist (the PUT is then refused with 404). The
    /// bytes read are taken from `budget`, shared by every read of one request.
    fn current(
        &self,
        resource: Resource,
        id: &str,
        caller: &Caller<'_>,
        budget: &ReadBudget,
    ) -> impl Future<Output = Result<Option<serde_json::Value>, UpstreamError>> + Send;
}

impl CurrentResources for Upstream {
    async fn current(
        &self,
        resource: Resource,
        id: &str,
        caller: &Caller<'_>,
        budget: &ReadBudget,
    ) -> Result<Option<serde_json::Value>, UpstreamError> {
        let suffix = crate::routes::Route::Item(resource, id.to_string()).upstream_suffix();
        self.get_json(&suffix, caller.tenant, caller.token_id, budget)
            .await
    }
}

/// How one request's reads of current resources are bounded (reliability finding 2,
/// `docs/threat-model.md`): a Bulk request may name up to `policy.bulk_max_operations` PUT
/// targets, so neither their number, their time nor their size may be left to the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadLimits {
    /// Bytes all reads of one request may hold together ([`ReadBudget`]).
    pub budget: usize,
    /// All reads of one request finish within this (`upstream.read_timeout`), or 504.
    pub deadline: Duration,
    /// Reads in flight at once for one request.
    pub concurrency: usize,
}

/// Reads every resource in `needs` (each named once), at most `limits.concurrency` at a time,
/// within `limits.deadline` and `limits.budget`. The first failure ends all reads.
pub(crate) async fn read_all<C: CurrentResources>(
    current: &C,
    needs: &[(Resource, String)],
    caller: &Caller<'_>,
    limits: ReadLimits,
) -> Result<HashMap<(Resource, String), serde_json::Value>, UpstreamError> {
    let budget = ReadBudget::new(limits.budget);
    let reads = read_bounded(current, needs, caller, &budget, limits.concurrency.max(1));
    match tokio::time::timeout(limits.deadline, reads).await {
        Ok(result) => result,
        Err(_) => Err(UpstreamError::Timeout(format!(
            "reading the {} resource(s) this request replaces took longer than {:?}",
            needs.len(),
            limits.deadline
        ))),
    }
}

/// The reads of [`read_all`], `concurrency` in flight at once. A hand-written loop over
/// `FuturesUnordered` rather than `buffer_unordered` with a closure: the closure's borrowed
/// argument makes the hook's future fail rustc's `Send` check ("implementation of `FnOnce` is
/// not general enough", a known limitation with higher-ranked lifetimes in async code).
async fn read_bounded<C: CurrentResources>(
    current: &C,
    needs: &[(Resource, String)],
    caller: &Caller<'_>,
    budget: &ReadBudget,
    concurrency: usize,
) -> Result<HashMap<(Resource, String), serde_json::Value>, UpstreamError> {
    let mut found = HashMap::with_capacity(needs.len());
    let mut waiting = needs.iter();
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < concurrency {
            let Some((resource, id)) = waiting.next() else {
                break;
            };
            running.push(read_one(current, *resource, id, caller, budget));
        }
        let Some(done) = running.next().await else {
            return Ok(found);
        };
        if let Some((key, value)) = done? {
            found.insert(key, value);
        }
    }
}

/// One read, keyed for [`crate::scim::Prepared::finish`].
async fn read_one<C: CurrentResources>(
    current: &C,
    resource: Resource,
    id: &str,
    caller: &Caller<'_>,
    budget: &ReadBudget,
) -> Result<Option<((Resource, String), serde_json::Value)>, UpstreamError> {
    let value = current.current(resource, id, caller, budget).await?;
    Ok(value.map(|v| ((resource, id.to_string()), v)))
}
