//! The rate limit per token (`limits.rate`, `limits.burst`, `limits.per_idp`): a token bucket
//! kept as one atomic per token, with the generic cell rate algorithm (GCRA, as in ATM traffic
//! policing): the cell holds the *theoretical arrival time* of the next request; a request is
//! allowed while that time is at most `burst - 1` intervals ahead of now, and pushes it one
//! interval further. One compare-and-swap per request, no lock shared between tokens, no
//! allocation; the cell lives in the token snapshot (`tokens::TokenSet`), so a million tokens
//! cost 8 MB.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{now_ns, Limited};
use crate::config::{LimitsConfig, Rate};
use crate::error::ScimError;
use crate::gate::{GuardInput, RequestGuard};
use crate::tokens::{Idp, TokenInfo};

/// A [`Rate`] in the units the algorithm uses.
#[derive(Debug, Clone, Copy)]
struct Cell {
    /// Nanoseconds between two requests at the sustained rate.
    interval: u64,
    /// How far ahead of now the theoretical arrival time may be: `(burst - 1) * interval`.
    tolerance: u64,
}

impl Cell {
    fn new(r: Rate) -> Cell {
        let interval = (1e9 / r.per_second).max(1.0) as u64;
        Cell {
            interval,
            tolerance: interval.saturating_mul(u64::from(r.burst.saturating_sub(1))),
        }
    }

    /// Admits one request at `now` (ns) or says how long until one would be admitted.
    fn admit(&self, tat: &AtomicU64, now: u64) -> Result<(), Duration> {
        let mut seen = tat.load(Ordering::Relaxed);
        loop {
            let next = seen.max(now);
            let ahead = next - now;
            if ahead > self.tolerance {
                return Err(Duration::from_nanos(ahead - self.tolerance));
            }
            match tat.compare_exchange_weak(
                seen,
                next + self.interval,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(current) => seen = current,
            }
        }
    }
}

/// The rate guard: after authentication, one admission per request against the token's cell.
pub(crate) struct RateGuard {
    default: Cell,
    per_idp: Vec<(Idp, Cell)>,
}

impl RateGuard {
    pub(crate) fn new(cfg: &LimitsConfig) -> RateGuard {
        RateGuard {
            default: Cell::new(cfg.rate),
            per_idp: cfg
                .per_idp
                .iter()
                .map(|(idp, r)| (*idp, Cell::new(*r)))
                .collect(),
        }
    }

    fn cell_for(&self, idp: Idp) -> &Cell {
        self.per_idp
            .iter()
            .find(|(i, _)| *i == idp)
            .map_or(&self.default, |(_, c)| c)
    }
}

impl RequestGuard for RateGuard {
    fn after_auth(&self, _req: &GuardInput<'_>, token: &TokenInfo) -> Result<(), ScimError> {
        let cell = self.cell_for(token.idp());
        cell.admit(token.rate_cell(), now_ns()).map_err(|wait| {
            Limited::Rate.count();
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            ScimError::new(
                429,
                None,
                format!("this token is over its rate limit (limits.rate); retry after {seconds} s"),
            )
            .retry_after(seconds)
            .limited(Limited::Rate)
            .reason("rate_limited")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn a_bucket_allows_its_burst_then_the_rate() {
        let cell = Cell::new(Rate {
            per_second: 10.0,
            burst: 3,
        });
        let tat = AtomicU64::new(0);
        let t0 = 100 * SECOND;
        for _ in 0..3 {
            assert!(cell.admit(&tat, t0).is_ok());
        }
        let wait = cell.admit(&tat, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100), "one interval at 10/s");
        // A tenth of a second later, exactly one more.
        assert!(cell.admit(&tat, t0 + SECOND / 10).is_ok());
        assert!(cell.admit(&tat, t0 + SECOND / 10).is_err());
        // After a quiet second the whole burst is back, not more.
        let later = t0 + 2 * SECOND;
        for _ in 0..3 {
            assert!(cell.admit(&tat, later).is_ok());
        }
        assert!(cell.admit(&tat, later).is_err());
    }

    #[test]
    fn sustained_load_is_held_to_the_rate() {
        let cell = Cell::new(Rate {
            per_second: 50.0,
            burst: 100,
        });
        let tat = AtomicU64::new(0);
        // 1000 requests per second for 10 s, one every millisecond.
        let start = 1_000 * SECOND;
        let admitted = (0..10_000u64)
            .filter(|i| cell.admit(&tat, start + i * 1_000_000).is_ok())
            .count();
        // The burst, then 50 per second.
        assert!((599..=601).contains(&admitted), "{admitted}");
    }
}
