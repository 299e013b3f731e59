//! The destructive-change breaker (`guards.destructive`): per token, the `max`+1-th destructive
//! change inside `window` trips it; from then on every destructive request of that token gets
//! 503 until an admin releases it (`POST /guards/{token_id}/release`); other requests pass.
//! What counts as destructive is decided by the SCIM checks (`scim::Checked::destructive`) and,
//! for DELETE, by the route.
//!
//! State per token that ever made a destructive change: the times of its last `max` changes in
//! a ring of atomics. Change number `k` overwrites the time of change `k - max`; if that was
//! inside the window, `max + 1` changes fell inside it. No lock: the ring, the counter and the
//! trip time are atomics, and the map from token id to state is copied on write (a token is
//! added once, at its first destructive change) and read without locking.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use chrono::{TimeZone, Utc};

use super::{now_ns, Limited};
use crate::audit::{AuditEvent, AuditKind, AuditLog};
use crate::config::DestructiveConfig;
use crate::error::ScimError;
use crate::tokens::TokenInfo;

/// One token's breaker.
#[derive(Debug)]
struct Breaker {
    /// When the last `max` destructive changes happened (`now_ns`, never 0); 0 = none.
    ring: Box<[AtomicU64]>,
    /// Destructive changes counted since the last release.
    next: AtomicU64,
    /// When it tripped (Unix milliseconds); 0 = not tripped.
    tripped_at: AtomicI64,
    tenant: String,
    idp: &'static str,
}

/// A tripped breaker as `GET /guards` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tripped {
    pub token_id: String,
    pub tenant: String,
    pub idp: &'static str,
    /// RFC 3339.
    pub tripped_at: String,
}

/// Every token's breaker.
pub(crate) struct Breakers {
    max: u32,
    window_ns: u64,
    window_s: u64,
    map: ArcSwap<HashMap<String, Arc<Breaker>>>,
    audit: OnceLock<Arc<AuditLog>>,
}

impl Breakers {
    pub(crate) fn new(cfg: &DestructiveConfig) -> Breakers {
        Breakers {
            max: cfg.max,
            window_ns: u64::try_from(cfg.window.as_nanos()).unwrap_or(u64::MAX),
            window_s: cfg.window.as_secs().max(1),
            map: ArcSwap::from_pointee(HashMap::new()),
            audit: OnceLock::new(),
        }
    }

    /// Where trips and releases are recorded (the binary's audit log; an embedder has none).
    pub(crate) fn set_audit(&self, audit: Arc<AuditLog>) {
        let _ = self.audit.set(audit);
    }

    fn breaker(&self, token: &TokenInfo) -> Arc<Breaker> {
        if let Some(b) = self.map.load().get(token.id()) {
            return Arc::clone(b);
        }
        let fresh = Arc::new(Breaker {
            ring: (0..self.max).map(|_| AtomicU64::new(0)).collect(),
            next: AtomicU64::new(0),
            tripped_at: AtomicI64::new(0),
            tenant: token.tenant().to_string(),
            idp: token.idp().as_str(),
        });
        // Copy on write; if another request added it meanwhile, theirs is kept.
        self.map.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.entry(token.id().to_string())
                .or_insert_with(|| Arc::clone(&fresh));
            m
        });
        self.map.load().get(token.id()).map_or(fresh, Arc::clone)
    }

    /// Counts `n` destructive changes of `token`; the 503 when its breaker is (or now becomes)
    /// tripped.
    pub(crate) fn admit(&self, token: &TokenInfo, n: u32) -> Result<(), ScimError> {
        if n == 0 {
            return Ok(());
        }
        let b = self.breaker(token);
        if b.tripped_at.load(Ordering::Acquire) != 0 {
            return Err(self.refusal(token.id()));
        }
        let now = now_ns().max(1);
        for _ in 0..n {
            let k = b.next.fetch_add(1, Ordering::AcqRel);
            let slot = (k % u64::from(self.max)) as usize;
            let before = b.ring[slot].swap(now, Ordering::AcqRel);
            if before != 0 && now.saturating_sub(before) < self.window_ns {
                self.trip(token, &b);
                return Err(self.refusal(token.id()));
            }
        }
        Ok(())
    }

    fn trip(&self, token: &TokenInfo, b: &Breaker) {
        let at = Utc::now().timestamp_millis().max(1);
        if b.tripped_at
            .compare_exchange(0, at, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return; // tripped by a concurrent request, which records it
        }
        log::warn!(
            "destructive-change breaker tripped for token {} (tenant {}): more than {} destructive changes within {} s; destructive requests refused until an admin releases it",
            token.id(),
            token.tenant(),
            self.max,
            self.window_s
        );
        if let Some(audit) = self.audit.get() {
            let mut ev = AuditEvent::new(AuditKind::GuardTripped);
            ev.token_id = Some(token.id().to_string());
            ev.tenant = Some(token.tenant().to_string());
            ev.idp = Some(token.idp().as_str().to_string());
            let audit = Arc::clone(audit);
            // The audit file takes a lock admin writes hold: append off the request path.
            std::thread::spawn(move || {
                if let Err(e) = audit.append(&ev) {
                    log::error!("cannot record guard.tripped: {e}");
                }
            });
        }
    }

    fn refusal(&self, token_id: &str) -> ScimError {
        Limited::Destructive.count();
        ScimError::new(
            503,
            None,
            format!(
                "destructive changes by token {token_id} are paused: more than {} within {} s \
                 tripped the guard (guards.destructive); an admin must review them and release \
                 it (scim-gate guard release {token_id})",
                self.max, self.window_s
            ),
        )
        .retry_after(self.window_s)
        .limited(Limited::Destructive)
        .reason("destructive_guard")
    }

    /// The tripped breakers, oldest trip first.
    pub(crate) fn tripped(&self) -> Vec<Tripped> {
        let map = self.map.load();
        let mut out: Vec<(i64, Tripped)> = map
            .iter()
            .filter_map(|(id, b)| {
                let at = b.tripped_at.load(Ordering::Acquire);
                (at != 0).then(|| {
                    let when = Utc
                        .timestamp_millis_opt(at)
                        .single()
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                        .unwrap_or_default();
                    (
                        at,
                        Tripped {
                            token_id: id.clone(),
                            tenant: b.tenant.clone(),
                            idp: b.idp,
                            tripped_at: when,
                        },
                    )
                })
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.token_id.cmp(&b.1.token_id)));
        out.into_iter().map(|(_, t)| t).collect()
    }

    /// Releases `token_id`'s breaker and restarts its window; `None` when it is not tripped.
    /// Records `guard.released` with the admin's uid.
    pub(crate) fn release(&self, token_id: &str, uid: Option<u32>) -> Option<Tripped> {
        let map = self.map.load();
        let b = map.get(token_id)?;
        let found = self
            .tripped()
            .into_iter()
            .find(|t| t.token_id == token_id)?;
        for slot in b.ring.iter() {
            slot.store(0, Ordering::Release);
        }
        b.next.store(0, Ordering::Release);
        b.tripped_at.store(0, Ordering::Release);
        log::info!("destructive-change breaker released for token {token_id}");
        if let Some(audit) = self.audit.get() {
            let mut ev = AuditEvent::new(AuditKind::GuardReleased);
            ev.token_id = Some(token_id.to_string());
            ev.tenant = Some(b.tenant.clone());
            ev.idp = Some(b.idp.to_string());
            ev.uid = uid;
            if let Err(e) = audit.append(&ev) {
                log::error!("cannot record guard.released: {e}");
            }
        }
        Some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::TokenSet;
    use std::time::Duration;

    fn token() -> TokenInfo {
        let r = crate::tokens::test_record("tok_b", "acme", crate::tokens::Idp::Entra, "s");
        let set = Arc::new(TokenSet::build(&[r]));
        match set.lookup(b"s", 0) {
            crate::tokens::Lookup::Valid(t) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_max_plus_first_change_trips_and_a_release_restarts_the_window() {
        let b = Breakers::new(&DestructiveConfig {
            max: 3,
            window: Duration::from_secs(600),
        });
        let t = token();
        for _ in 0..3 {
            assert!(b.admit(&t, 1).is_ok());
        }
        let e = b.admit(&t, 1).unwrap_err();
        assert_eq!((e.status, e.retry_after), (503, Some(600)));
        assert!(e.detail.contains("guard release tok_b"), "{}", e.detail);
        assert!(b.admit(&t, 1).is_err(), "stays tripped");
        assert!(b.admit(&t, 0).is_ok(), "a non-destructive request passes");
        assert_eq!(b.tripped().len(), 1);
        assert!(b.release("tok_b", Some(0)).is_some());
        assert!(
            b.release("tok_b", Some(0)).is_none(),
            "not tripped any more"
        );
        for _ in 0..3 {
            assert!(b.admit(&t, 1).is_ok(), "the window restarted");
        }
        assert!(b.admit(&t, 1).is_err());
    }

    #[test]
    fn a_bulk_of_many_changes_counts_each() {
        let b = Breakers::new(&DestructiveConfig {
            max: 5,
            window: Duration::from_secs(600),
        });
        let t = token();
        assert!(b.admit(&t, 5).is_ok());
        assert!(b.admit(&t, 1).is_err());
        let b = Breakers::new(&DestructiveConfig {
            max: 5,
            window: Duration::from_secs(600),
        });
        assert!(b.admit(&t, 6).is_err(), "one Bulk request of six");
    }

    #[test]
    fn changes_outside_the_window_do_not_add_up() {
        let b = Breakers::new(&DestructiveConfig {
            max: 2,
            window: Duration::from_millis(30),
        });
        let t = token();
        for _ in 0..5 {
            assert!(b.admit(&t, 1).is_ok());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
