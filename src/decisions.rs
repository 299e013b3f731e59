//! The decision log: the most recent refusals the gate answered itself — authentication,
//! routes, body checks, guards, upstream failures — each with a stable `reason` code
//! (`docs/troubleshooting.md`), for `GET /decisions` and `scim-gate decisions`.
//!
//! Bounded: a ring of `admin.decisions_kept` entries; the oldest is overwritten. Lock-free: a
//! refusal takes a sequence number (one atomic add) and swaps its entry into its slot; a reader
//! loads every slot and sorts by sequence. It holds no value from a body, a query string or a
//! token: the detail is the gate's own text, with every quoted part that could be a value
//! (anything but an attribute name or path) masked ([`mask_values`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::ScimError;

/// One refusal.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Decision {
    /// Sequence number, increasing; the order of `GET /decisions`.
    #[serde(skip)]
    pub seq: u64,
    #[serde(serialize_with = "rfc3339")]
    pub time: DateTime<Utc>,
    pub token_id: Option<String>,
    pub tenant: Option<String>,
    pub idp: Option<&'static str>,
    pub method: &'static str,
    pub route: &'static str,
    pub status: u16,
    pub reason: &'static str,
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// Who was refused, and where: what the request path knows besides the error.
pub(crate) struct Context<'a> {
    pub token_id: Option<&'a str>,
    pub tenant: Option<&'a str>,
    pub idp: Option<&'static str>,
    pub method: &'static str,
    pub route: &'static str,
}

/// The ring.
pub(crate) struct DecisionLog {
    slots: Box<[ArcSwapOption<Decision>]>,
    next: AtomicU64,
}

impl DecisionLog {
    /// A log keeping the last `kept` refusals (at least one).
    pub(crate) fn new(kept: usize) -> DecisionLog {
        DecisionLog {
            slots: (0..kept.max(1)).map(|_| ArcSwapOption::empty()).collect(),
            next: AtomicU64::new(0),
        }
    }

    /// Records one refusal.
    pub(crate) fn record(&self, cx: &Context<'_>, e: &ScimError) {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let d = Decision {
            seq,
            time: Utc::now(),
            token_id: cx.token_id.map(str::to_string),
            tenant: cx.tenant.map(str::to_string),
            idp: cx.idp,
            method: cx.method,
            route: cx.route,
            status: e.status,
            reason: e.reason,
            scim_type: e.scim_type,
            detail: mask_values(&e.detail),
        };
        let slot = (seq % self.slots.len() as u64) as usize;
        self.slots[slot].store(Some(Arc::new(d)));
    }

    /// The kept refusals, newest first: only `token_id`'s when given, only after `since` when
    /// given, at most `limit`.
    pub(crate) fn recent(
        &self,
        token_id: Option<&str>,
        since: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Vec<Decision> {
        let mut all: Vec<Arc<Decision>> = self
            .slots
            .iter()
            .filter_map(|s| s.load_full())
            .filter(|d| token_id.is_none_or(|t| d.token_id.as_deref() == Some(t)))
            .filter(|d| since.is_none_or(|s| d.time > s))
            .collect();
        all.sort_by_key(|d| std::cmp::Reverse(d.seq));
        all.into_iter()
            .take(limit)
            .map(|d| Decision::clone(&d))
            .collect()
    }
}

/// The gate's detail with every quoted part that could hold a value masked as `'…'`: quoted
/// text survives only when it looks like an attribute name or a plain attribute path (letters,
/// digits, `.`, `:`, `_`, `-`, `$`; starting with a letter), and never in an e-mail-domain
/// refusal, whose quoted parts are the domains themselves.
pub(crate) fn mask_values(detail: &str) -> String {
    let domain = detail.contains("domain '") || detail.contains("e-mail address");
    let mut out = String::with_capacity(detail.len());
    let mut rest = detail;
    while let Some(open) = rest.find(['\'', '"']) {
        let quote = rest.as_bytes()[open] as char;
        let Some(len) = rest[open + 1..].find(quote) else {
            break;
        };
        let inner = &rest[open + 1..open + 1 + len];
        out.push_str(&rest[..open]);
        let plain = inner
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && inner
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".:_-$".contains(c));
        if plain && !domain {
            out.push(quote);
            out.push_str(inner);
            out.push(quote);
        } else {
            out.push(quote);
            out.push('…');
            out.push(quote);
        }
        rest = &rest[open + len + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_masked_and_attribute_names_kept() {
        assert_eq!(
            mask_values("'userName' is not updatable and this PUT changes it"),
            "'userName' is not updatable and this PUT changes it"
        );
        assert_eq!(
            mask_values(
                "Operations[0]: path 'emails[value eq \"ada@acme.com\"].value' is not valid"
            ),
            "Operations[0]: path '…' is not valid"
        );
        assert_eq!(
            mask_values("userName: domain 'evil.com' is not allowed for this token"),
            "userName: domain '…' is not allowed for this token"
        );
        assert_eq!(mask_values("invalid path '/Users/42'"), "invalid path '…'");
        assert_eq!(mask_values("unterminated 'quote"), "unterminated 'quote");
    }

    #[test]
    fn the_ring_keeps_the_newest_and_filters() {
        let log = DecisionLog::new(3);
        let e = ScimError::new(401, None, "x").reason("token_unknown");
        for i in 0..5 {
            let id = format!("tok_{i}");
            log.record(
                &Context {
                    token_id: Some(&id),
                    tenant: None,
                    idp: None,
                    method: "GET",
                    route: "Users",
                },
                &e,
            );
        }
        let all = log.recent(None, None, 100);
        let ids: Vec<&str> = all.iter().filter_map(|d| d.token_id.as_deref()).collect();
        assert_eq!(ids, ["tok_4", "tok_3", "tok_2"]);
        assert_eq!(log.recent(Some("tok_3"), None, 100).len(), 1);
        assert_eq!(log.recent(None, None, 1).len(), 1);
    }
}
