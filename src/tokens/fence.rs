//! Whether this process may answer SCIM requests from its token set at all (docs/cluster.md#fencing).
//!
//! A file-backed gate always may: its set is the file. A replica in cluster mode may only while
//! it can prove its set is current: its lease in etcd is certainly alive (the deadline below,
//! measured on the monotonic clock from the *send* time of the last keep-alive etcd answered)
//! and its watch is healthy. Otherwise it answers 503 — it fails closed.
//!
//! The request path reads two atomics and, in cluster mode, the monotonic clock; it never
//! waits for the task that moves them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Nanoseconds on `CLOCK_BOOTTIME`: monotonic, and — unlike `CLOCK_MONOTONIC`, which
/// `Instant` reads — still running while the host is suspended. A replica paused by `SIGSTOP`,
/// a frozen VM or a suspended laptop all find their deadline passed when they resume. A vDSO
/// read, like `Instant::now()`.
pub fn clock_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the struct we own; CLOCK_BOOTTIME exists on every
    // Linux the gate supports (2.6.39+).
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        // Unreachable in practice; "no time left" fails closed.
        return u64::MAX - 1;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// The deadline that means "no deadline" (the file backend).
const FOREVER: u64 = u64::MAX;

/// The serving state the token store checks before every lookup.
pub struct Fence {
    /// False while the backend cannot follow its source: not loaded yet, a watch stalled or
    /// cancelled, a resync in progress.
    following: AtomicBool,
    /// `clock_ns()` after which the lease may have lapsed; [`FOREVER`] without a lease.
    until_ns: AtomicU64,
}

impl Fence {
    /// Always serving: for a set that is its own source (the token file, an in-memory set).
    pub fn open() -> Fence {
        Fence {
            following: AtomicBool::new(true),
            until_ns: AtomicU64::new(FOREVER),
        }
    }

    /// Not serving until the backend has loaded a snapshot and proved its lease.
    pub fn closed() -> Fence {
        Fence {
            following: AtomicBool::new(false),
            until_ns: AtomicU64::new(0),
        }
    }

    /// The request path's check.
    #[inline]
    pub fn serving(&self) -> bool {
        if !self.following.load(Ordering::Acquire) {
            return false;
        }
        let until = self.until_ns.load(Ordering::Acquire);
        until == FOREVER || clock_ns() < until
    }

    /// The backend follows its source again (snapshot applied, watch open), or stopped doing so.
    pub fn set_following(&self, following: bool) {
        self.following.store(following, Ordering::Release);
    }

    /// The lease deadline (`clock_ns()`), 0 when there is none.
    pub fn until(&self) -> u64 {
        self.until_ns.load(Ordering::Acquire)
    }

    /// Whether the backend says it follows its source (the lease aside).
    pub fn following(&self) -> bool {
        self.following.load(Ordering::Acquire)
    }

    /// Moves the lease deadline; only ever forward, except by [`Fence::expire`].
    pub fn extend_until(&self, until_ns: u64) {
        self.until_ns.fetch_max(until_ns, Ordering::AcqRel);
    }

    /// The lease is gone (a new one will be granted): serve nothing until it is proved again.
    pub fn expire(&self) {
        self.until_ns.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_fence_opens_only_with_both_a_watch_and_a_live_lease() {
        let f = Fence::closed();
        assert!(!f.serving());
        f.set_following(true);
        assert!(!f.serving(), "no lease yet");
        f.extend_until(clock_ns() + 1_000_000_000);
        assert!(f.serving());
        f.set_following(false);
        assert!(!f.serving(), "watch stalled");
        f.set_following(true);
        f.expire();
        assert!(!f.serving(), "lease gone");
        f.extend_until(clock_ns().saturating_sub(1));
        assert!(!f.serving(), "a deadline in the past");
    }

    #[test]
    fn an_open_fence_always_serves() {
        assert!(Fence::open().serving());
    }
}
