//! The named place for per-request guard steps: checks that run on every request, around
//! authentication, before any body is read or any upstream connection exists.
//!
//! The chain is empty by default. The steps this is for — a per-token rate limit, allowed
//! client networks, an upstream circuit breaker — each become one [`RequestGuard`], one file,
//! added with [`crate::gate::Gate::with_guard`]. A guard is synchronous on purpose: nothing on
//! the request path may wait on I/O or a lock an admin write holds, so a guard decides from
//! what it holds in memory (an atomic counter, a prebuilt network list, a breaker state).

use std::net::SocketAddr;

use pingora::http::RequestHeader;

use crate::error::ScimError;
use crate::routes::Route;
use crate::tokens::TokenInfo;

/// What a guard sees of a request. Borrowed: building it allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct GuardInput<'a> {
    /// The request head as the client sent it.
    pub head: &'a RequestHeader,
    /// The client's TCP address (`None` on a Unix socket).
    pub client: Option<SocketAddr>,
    /// The SCIM route, when the path is one (`None` for a path the gate will refuse).
    pub route: Option<&'a Route>,
}

/// One per-request guard step. Both methods default to "pass"; an `Err` is answered as it is
/// (with outcome `rejected`) and the request goes no further.
pub trait RequestGuard: Send + Sync {
    /// Runs before the bearer token is checked: for decisions that need no identity (the
    /// client's network). Keep what it tells an unauthenticated caller to a minimum.
    fn before_auth(&self, _req: &GuardInput<'_>) -> Result<(), ScimError> {
        Ok(())
    }

    /// Runs once the token passed: for decisions per token or tenant (a rate limit).
    fn after_auth(&self, _req: &GuardInput<'_>, _token: &TokenInfo) -> Result<(), ScimError> {
        Ok(())
    }
}

/// The guards of one gate, in the order they were added.
#[derive(Default)]
pub(crate) struct GuardChain {
    guards: Vec<Box<dyn RequestGuard>>,
}

impl GuardChain {
    /// Appends a guard; it runs after those already there.
    pub(crate) fn push(&mut self, guard: Box<dyn RequestGuard>) {
        self.guards.push(guard);
    }

    /// Whether there is anything to run (the default chain is empty, and then the request path
    /// does not even build a [`GuardInput`]).
    pub(crate) fn is_empty(&self) -> bool {
        self.guards.is_empty()
    }

    /// The first refusal of a `before_auth` step, if any.
    pub(crate) fn before_auth(&self, req: &GuardInput<'_>) -> Result<(), ScimError> {
        self.guards.iter().try_for_each(|g| g.before_auth(req))
    }

    /// The first refusal of an `after_auth` step, if any.
    pub(crate) fn after_auth(
        &self,
        req: &GuardInput<'_>,
        token: &TokenInfo,
    ) -> Result<(), ScimError> {
        self.guards
            .iter()
            .try_for_each(|g| g.after_auth(req, token))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    /// Passes, counting the requests it saw; or refuses every one with a 403.
    struct Step {
        seen: Arc<AtomicUsize>,
        refuse: bool,
    }

    impl RequestGuard for Step {
        fn before_auth(&self, _req: &GuardInput<'_>) -> Result<(), ScimError> {
            self.seen.fetch_add(1, Ordering::Relaxed);
            match self.refuse {
                true => Err(ScimError::new(403, None, "closed")),
                false => Ok(()),
            }
        }
    }

    #[test]
    fn the_chain_runs_in_order_and_stops_at_the_first_refusal() {
        let head = RequestHeader::build("GET", b"/scim/v2/Users", None).expect("head");
        let input = GuardInput {
            head: &head,
            client: None,
            route: None,
        };
        let mut chain = GuardChain::default();
        assert!(chain.is_empty());
        assert_eq!(chain.before_auth(&input), Ok(()));
        let seen = Arc::new(AtomicUsize::new(0));
        for refuse in [false, true, false] {
            chain.push(Box::new(Step {
                seen: seen.clone(),
                refuse,
            }));
        }
        let e = chain.before_auth(&input).unwrap_err();
        assert_eq!((e.status, e.detail.as_str()), (403, "closed"));
        assert_eq!(seen.load(Ordering::Relaxed), 2, "the third step never ran");
    }
}
