//! Directory saturation (`limits.upstream_max_in_flight`): at most that many requests in flight
//! to the directory, all tokens together. One more is answered 503 with `Retry-After` at once —
//! never queued, so a slow directory cannot make the gate's memory grow with the backlog.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::Limited;
use crate::error::ScimError;

/// The counter of requests in flight to the directory.
#[derive(Debug)]
pub(crate) struct InFlight {
    max: usize,
    now: Arc<AtomicUsize>,
}

/// One request's place in flight; given back when dropped (the request's context is dropped
/// when the request ends, however it ends).
#[derive(Debug)]
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl InFlight {
    pub(crate) fn new(max: usize) -> InFlight {
        InFlight {
            max,
            now: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A place for one more request, or the 503 to answer.
    pub(crate) fn enter(&self) -> Result<Slot, ScimError> {
        let max = self.max;
        self.now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map(|_| Slot(Arc::clone(&self.now)))
            .map_err(|_| {
                Limited::UpstreamBusy.count();
                ScimError::new(
                    503,
                    None,
                    format!(
                        "the directory is busy ({max} requests in flight, \
                         limits.upstream_max_in_flight); retry shortly"
                    ),
                )
                .retry_after(1)
                .limited(Limited::UpstreamBusy)
                .reason("upstream_busy")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_bounded_and_given_back() {
        let f = InFlight::new(2);
        let a = f.enter().expect("first");
        let _b = f.enter().expect("second");
        let e = f.enter().unwrap_err();
        assert_eq!((e.status, e.retry_after), (503, Some(1)));
        drop(a);
        assert!(f.enter().is_ok());
    }
}
