//! The guard rails that protect the directory from what is well-formed but harmful
//! (`docs/guards.md`): a rate limit per token, a bound on requests in flight to the directory,
//! allowed client networks, and a breaker on destructive changes. Each is one file; the ones
//! that decide from the request head alone are [`RequestGuard`]s, installed by
//! [`crate::Gate::new`] from the configuration, so an embedding proxy gets them too.
//!
//! Nothing here waits or locks on the request path: a guard decides from atomics and lists
//! built once.

mod breaker;
mod networks;
mod rate;
mod saturation;

use std::sync::OnceLock;
use std::time::Instant;

pub(crate) use breaker::{Breakers, Tripped};
pub(crate) use networks::NetworkGuard;
pub(crate) use rate::RateGuard;
pub(crate) use saturation::{InFlight, Slot as UpstreamSlot};

use crate::metrics;

/// Why a guard refused a request: the `reason` label of `scim_gate_limited_total` and the
/// `limited=` field of the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// The token is over its rate (429).
    Rate,
    /// `limits.upstream_max_in_flight` requests are in flight to the directory (503).
    UpstreamBusy,
    /// The token's destructive-change breaker is tripped (503).
    Destructive,
    /// The client is outside the allowed networks (403).
    Network,
}

impl Limited {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Limited::Rate => "rate",
            Limited::UpstreamBusy => "upstream_busy",
            Limited::Destructive => "destructive",
            Limited::Network => "network",
        }
    }

    /// Every reason, for exporting the metric's series from the start.
    pub const ALL: [Limited; 4] = [
        Limited::Rate,
        Limited::UpstreamBusy,
        Limited::Destructive,
        Limited::Network,
    ];

    /// Counts one refusal (the guard that refuses calls it).
    pub(crate) fn count(self) {
        metrics::LIMITED.with_label_values(&[self.label()]).inc();
    }
}

/// Nanoseconds on the monotonic clock since the first call: the guards' time, immune to
/// wall-clock steps.
pub(crate) fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}
