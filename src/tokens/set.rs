//! The immutable token snapshot the request path reads, laid out for a flat lookup cost and a
//! small footprint (1 000 000 tokens in well under 150 MB):
//!
//! * `slots`: one 40-byte record per token, strings referenced by index (ids live in one arena,
//!   tenants and domain lists are interned: a tenant's dozen tokens share one string);
//! * `digests`: the SHA-256 of each token, parallel to `slots`;
//! * `index`: an open-addressing table (load ≤ 0.75, linear probing) of `(slot, fingerprint)`
//!   pairs addressed by the digest's first 8 bytes. A SHA-256 digest is already uniformly
//!   distributed, so it needs no further hashing, and the 32-bit fingerprint lets a probe skip a
//!   non-matching slot without touching its digest (one cache miss for most lookups, whatever
//!   the number of tokens).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};

use super::file::{AccessRecord, Idp, Status, TokenRecord};
use super::{secret, FastMap, FastSet};
use crate::net::Cidr;

const EMPTY: u32 = u32::MAX;
const NONE_MS: i64 = i64::MIN;

#[derive(Debug, Clone, Copy)]
struct Slot {
    id_start: u32,
    id_len: u32,
    tenant: u32,
    domains: u32,
    networks: u32,
    created_ms: i64,
    refreshed_ms: i64,
    expires_ms: i64,
    idp: Idp,
    status: Status,
}

/// A token's `networks`, as written (for the records) and parsed (for the guard).
type NetworkList = (Arc<[String]>, Arc<[Cidr]>);

/// An immutable set of tokens. Built whole by a writer, then published; never mutated.
#[derive(Debug, Default)]
pub struct TokenSet {
    slots: Vec<Slot>,
    digests: Vec<[u8; 32]>,
    /// `(slot, fingerprint)`; `slot == EMPTY` marks a free entry. Length is a power of two.
    index: Vec<(u32, u32)>,
    ids: String,
    tenants: Vec<Arc<str>>,
    domain_lists: Vec<Arc<[String]>>,
    /// Interned like the domains: as written (for the records) and parsed (for the guard).
    network_lists: Vec<NetworkList>,
    /// Per token, parallel to `slots`: the rate limiter's cell (`guards::rate`). Mutable state
    /// in an immutable set: a cell is only ever touched atomically, and a new set takes the
    /// cells of the tokens it keeps ([`TokenSet::carry_from`]), so a reload does not hand
    /// every token a fresh burst.
    rate_cells: Vec<AtomicU64>,
    /// Per token, parallel to `slots`: when it last passed authentication (Unix ms; `NONE_MS`
    /// for never). Stored at most once a second per token (`lookup`), written back to the file
    /// by the store at most every `tokens.last_used_interval`.
    last_used: Vec<AtomicI64>,
    /// Set when a `last_used` value moved since the store last wrote them back.
    used_since_flush: AtomicBool,
    /// OAuth access tokens (`docs/oauth.md`): digest → (the parent's slot, expiry in Unix ms).
    /// Looked up only when a digest is not a gate token's, so it costs gate tokens nothing.
    access: FastMap<[u8; 32], (u32, i64)>,
}

/// The answer of a lookup. Inactive and expired tokens are told apart so the 401's detail can
/// say which (docs/operations.md#authentication) — naming the state, never the token.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// A known, active, unexpired token.
    Valid(TokenInfo),
    /// No token has this hash.
    Unknown,
    /// The token is deactivated.
    Inactive,
    /// The token's expiry has passed.
    Expired,
    /// This process cannot prove its set is current (cluster mode: its lease may have lapsed
    /// or its watch stalled; docs/cluster.md#fencing): no token is judged at all.
    NotServing,
}

/// A token that passed: a handle on the snapshot it was found in (an `Arc` clone, no copying).
#[derive(Debug, Clone)]
pub struct TokenInfo {
    set: Arc<TokenSet>,
    slot: u32,
}

impl TokenInfo {
    fn slot(&self) -> &Slot {
        &self.set.slots[self.slot as usize]
    }
    /// The token's public id.
    pub fn id(&self) -> &str {
        self.set.id(self.slot())
    }
    /// The tenant it provisions.
    pub fn tenant(&self) -> &str {
        &self.set.tenants[self.slot().tenant as usize]
    }
    /// The IdP that holds it.
    pub fn idp(&self) -> Idp {
        self.slot().idp
    }
    /// The email domains this token may write; empty means any.
    pub fn domains(&self) -> &[String] {
        &self.set.domain_lists[self.slot().domains as usize]
    }
    /// The client networks it may be used from; empty means any.
    pub fn networks(&self) -> &[Cidr] {
        &self.set.network_lists[self.slot().networks as usize].1
    }
    /// This token's rate-limiter cell (`guards::rate`).
    pub(crate) fn rate_cell(&self) -> &AtomicU64 {
        &self.set.rate_cells[self.slot as usize]
    }
}

fn bucket(d: &[u8; 32]) -> u64 {
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

fn fingerprint(d: &[u8; 32]) -> u32 {
    u32::from_le_bytes([d[8], d[9], d[10], d[11]])
}

fn ms(t: Option<DateTime<Utc>>) -> i64 {
    t.map_or(NONE_MS, |t| t.timestamp_millis())
}

fn time(ms: i64) -> Option<DateTime<Utc>> {
    if ms == NONE_MS {
        None
    } else {
        Utc.timestamp_millis_opt(ms).single()
    }
}

impl TokenSet {
    /// Builds the set from validated records (see `file::validate`); a record whose hash does
    /// not parse is skipped, which validation already rules out.
    pub fn build(records: &[TokenRecord]) -> TokenSet {
        let mut set = TokenSet {
            slots: Vec::with_capacity(records.len()),
            digests: Vec::with_capacity(records.len()),
            last_used: Vec::with_capacity(records.len()),
            ..TokenSet::default()
        };
        let mut tenant_ids: FastMap<&str, u32> = FastMap::default();
        let mut domain_ids: FastMap<&[String], u32> = FastMap::default();
        let mut network_ids: FastMap<&[String], u32> = FastMap::default();
        for r in records {
            let Some(digest) = secret::from_hex(&r.sha256) else {
                continue;
            };
            let tenant = *tenant_ids.entry(r.tenant.as_str()).or_insert_with(|| {
                set.tenants.push(Arc::from(r.tenant.as_str()));
                (set.tenants.len() - 1) as u32
            });
            let domains = *domain_ids.entry(r.domains.as_slice()).or_insert_with(|| {
                set.domain_lists.push(Arc::from(r.domains.clone()));
                (set.domain_lists.len() - 1) as u32
            });
            let networks = *network_ids.entry(r.networks.as_slice()).or_insert_with(|| {
                // Validated at load (`file::validate`); an entry that does not parse is
                // dropped rather than widening the list.
                let parsed: Vec<Cidr> = r
                    .networks
                    .iter()
                    .filter_map(|n| Cidr::parse(n).ok())
                    .collect();
                set.network_lists
                    .push((Arc::from(r.networks.clone()), Arc::from(parsed)));
                (set.network_lists.len() - 1) as u32
            });
            let id_start = set.ids.len() as u32;
            set.ids.push_str(&r.id);
            set.slots.push(Slot {
                id_start,
                id_len: r.id.len() as u32,
                tenant,
                domains,
                networks,
                created_ms: r.created_at.timestamp_millis(),
                refreshed_ms: ms(r.refreshed_at),
                expires_ms: ms(r.expires_at),
                idp: r.idp,
                status: r.status,
            });
            for a in &r.access {
                if let Some(d) = secret::from_hex(&a.sha256) {
                    let slot = set.slots.len() as u32 - 1;
                    set.access
                        .insert(d, (slot, a.expires_at.timestamp_millis()));
                }
            }
            set.digests.push(digest);
            set.last_used.push(AtomicI64::new(ms(r.last_used_at)));
        }
        set.ids.shrink_to_fit();
        set.rate_cells = (0..set.slots.len()).map(|_| AtomicU64::new(0)).collect();
        set.build_index();
        set
    }

    /// The access tokens by the slot of their parent, soonest expiry first.
    fn access_by_slot(&self) -> FastMap<u32, Vec<AccessRecord>> {
        let mut by_slot: FastMap<u32, Vec<(i64, AccessRecord)>> = FastMap::default();
        for (d, (slot, exp)) in &self.access {
            if let Some(expires_at) = time(*exp) {
                let record = AccessRecord {
                    sha256: secret::to_hex(d),
                    expires_at,
                };
                by_slot.entry(*slot).or_default().push((*exp, record));
            }
        }
        by_slot
            .into_iter()
            .map(|(slot, mut list)| {
                list.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.sha256.cmp(&b.1.sha256)));
                (slot, list.into_iter().map(|(_, a)| a).collect())
            })
            .collect()
    }

    /// Takes over the rate-limiter cells of the tokens `previous` also holds (same hash), so a
    /// reload or an admin change keeps every other token's accounting. Requests counted in
    /// `previous` between this copy and the swap are lost: a few milliseconds, once per change.
    pub(crate) fn carry_from(&self, previous: &TokenSet) {
        for (i, digest) in self.digests.iter().enumerate() {
            if let Some(j) = previous.find(digest) {
                let j = j as usize;
                let tat = previous.rate_cells[j].load(Ordering::Relaxed);
                self.rate_cells[i].store(tat, Ordering::Relaxed);
                // The later of the two: a hand edit may carry an older time than memory holds.
                let used = previous.last_used[j].load(Ordering::Relaxed);
                self.last_used[i].fetch_max(used, Ordering::Relaxed);
            }
        }
        if previous.used_since_flush.load(Ordering::Relaxed) {
            self.used_since_flush.store(true, Ordering::Relaxed);
        }
    }

    /// Whether any token was used since the last call (and clears the mark): the store writes
    /// `last_used_at` back only then.
    pub(crate) fn take_used_mark(&self) -> bool {
        self.used_since_flush.swap(false, Ordering::AcqRel)
    }

    /// Puts the mark back (a write-back failed).
    pub(crate) fn mark_used(&self) {
        self.used_since_flush.store(true, Ordering::Release);
    }

    fn build_index(&mut self) {
        let size = (self.slots.len() * 4 / 3 + 1).next_power_of_two().max(8);
        self.index = vec![(EMPTY, 0); size];
        let mask = size as u64 - 1;
        for (i, d) in self.digests.iter().enumerate() {
            let mut pos = bucket(d) & mask;
            while self.index[pos as usize].0 != EMPTY {
                pos = (pos + 1) & mask;
            }
            self.index[pos as usize] = (i as u32, fingerprint(d));
        }
    }

    fn id(&self, s: &Slot) -> &str {
        self.ids
            .get(s.id_start as usize..(s.id_start + s.id_len) as usize)
            .unwrap_or("")
    }

    fn find(&self, digest: &[u8; 32]) -> Option<u32> {
        let mask = self.index.len() as u64 - 1;
        let fp = fingerprint(digest);
        let mut pos = bucket(digest) & mask;
        loop {
            let (slot, f) = self.index[pos as usize];
            if slot == EMPTY {
                return None;
            }
            if f == fp && self.digests[slot as usize] == *digest {
                return Some(slot);
            }
            pos = (pos + 1) & mask;
        }
    }

    /// Hash-then-lookup. The table compares digests, not secrets, so how long a lookup takes
    /// tells an attacker only about a SHA-256 value they cannot choose a preimage for.
    /// `now_ms` is the current Unix time in milliseconds.
    pub fn lookup(self: &Arc<Self>, presented: &[u8], now_ms: i64) -> Lookup {
        let digest = secret::sha256(presented);
        let slot = match self.find(&digest) {
            Some(slot) => slot,
            None => match self.access.get(&digest) {
                // An access token stands for its parent (same checks below), until it expires.
                Some(&(_, expires_ms)) if expires_ms <= now_ms => return Lookup::Expired,
                Some(&(slot, _)) => slot,
                None => return Lookup::Unknown,
            },
        };
        let s = &self.slots[slot as usize];
        if s.status != Status::Active {
            Lookup::Inactive
        } else if s.expires_ms != NONE_MS && s.expires_ms <= now_ms {
            Lookup::Expired
        } else {
            // One load per request; a store at most once a second per token, so tokens used by
            // many workers at once do not fight over the cache line.
            let used = &self.last_used[slot as usize];
            if now_ms.saturating_sub(used.load(Ordering::Relaxed)) >= 1000 {
                used.store(now_ms, Ordering::Relaxed);
                self.used_since_flush.store(true, Ordering::Relaxed);
            }
            Lookup::Valid(TokenInfo {
                set: self.clone(),
                slot,
            })
        }
    }

    /// OAuth client authentication (`docs/oauth.md`): the active, unexpired gate token whose id is
    /// `id` and whose secret is `secret`. An access token is not a client secret: only gate
    /// tokens' own hashes are searched.
    pub fn client(self: &Arc<Self>, id: &str, secret: &[u8], now_ms: i64) -> Option<TokenInfo> {
        let slot = self.find(&secret::sha256(secret))?;
        let s = &self.slots[slot as usize];
        let live = s.status == Status::Active && (s.expires_ms == NONE_MS || s.expires_ms > now_ms);
        (live && self.id(s) == id).then(|| TokenInfo {
            set: self.clone(),
            slot,
        })
    }

    /// The records, in file order, rebuilt from the compact form (admin calls, reloads).
    pub fn records(&self) -> Vec<TokenRecord> {
        let mut access = self.access_by_slot();
        (0..self.slots.len())
            .map(|i| self.record(i, access.remove(&(i as u32)).unwrap_or_default()))
            .collect()
    }

    fn record(&self, i: usize, access: Vec<AccessRecord>) -> TokenRecord {
        let s = &self.slots[i];
        TokenRecord {
            id: self.id(s).to_string(),
            tenant: self.tenants[s.tenant as usize].to_string(),
            idp: s.idp,
            status: s.status,
            sha256: secret::to_hex(&self.digests[i]),
            domains: self.domain_lists[s.domains as usize].to_vec(),
            networks: self.network_lists[s.networks as usize].0.to_vec(),
            created_at: time(s.created_ms).unwrap_or_default(),
            refreshed_at: time(s.refreshed_ms),
            expires_at: time(s.expires_ms),
            last_used_at: time(self.last_used[i].load(Ordering::Relaxed)),
            access,
        }
    }

    /// `(id, tenant, idp, status, expires_at)` of every token, without building records
    /// (metrics and the expiry tick walk this twice a second).
    pub fn summaries(
        &self,
    ) -> impl Iterator<Item = (&str, &str, Idp, Status, Option<DateTime<Utc>>)> {
        self.slots.iter().map(|s| {
            (
                self.id(s),
                &*self.tenants[s.tenant as usize],
                s.idp,
                s.status,
                time(s.expires_ms),
            )
        })
    }

    /// Ids added, removed and changed by going from this set to `new` (for the reload audit
    /// event), without rebuilding this set's records: a 100 000-token reload must stay cheap.
    pub fn diff<'a>(
        &'a self,
        new: &'a [TokenRecord],
    ) -> (Vec<&'a str>, Vec<&'a str>, Vec<&'a str>) {
        let old: FastMap<&str, usize> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| (self.id(s), i))
            .collect();
        let (mut added, mut changed) = (Vec::new(), Vec::new());
        let mut seen: FastSet<&str> = FastSet::default();
        seen.reserve(new.len());
        for r in new {
            seen.insert(r.id.as_str());
            match old.get(r.id.as_str()) {
                None => added.push(r.id.as_str()),
                Some(&i) if !self.same(i, r) => changed.push(r.id.as_str()),
                Some(_) => {}
            }
        }
        let removed = old
            .keys()
            .filter(|id| !seen.contains(*id))
            .copied()
            .collect();
        (added, removed, changed)
    }

    fn same(&self, i: usize, r: &TokenRecord) -> bool {
        let s = &self.slots[i];
        *self.tenants[s.tenant as usize] == *r.tenant
            && s.idp == r.idp
            && s.status == r.status
            && secret::from_hex(&r.sha256) == Some(self.digests[i])
            && *self.domain_lists[s.domains as usize] == *r.domains
            && *self.network_lists[s.networks as usize].0 == *r.networks
            && s.created_ms == r.created_at.timestamp_millis()
            && s.refreshed_ms == ms(r.refreshed_at)
            && s.expires_ms == ms(r.expires_at)
    }

    /// How many tokens the set holds.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: usize) -> TokenRecord {
        TokenRecord {
            id: format!("tok_{i}"),
            tenant: format!("t{}", i / 4),
            idp: if i.is_multiple_of(2) {
                Idp::Okta
            } else {
                Idp::Entra
            },
            status: Status::Active,
            sha256: secret::to_hex(&secret::sha256(format!("secret-{i}").as_bytes())),
            domains: if i.is_multiple_of(3) {
                vec!["acme.com".into()]
            } else {
                vec![]
            },
            networks: if i.is_multiple_of(5) {
                vec!["10.0.0.0/8".into()]
            } else {
                vec![]
            },
            created_at: Utc
                .timestamp_millis_opt(1_700_000_000_123)
                .single()
                .unwrap_or_default(),
            refreshed_at: None,
            expires_at: i.is_multiple_of(5).then(|| {
                Utc.timestamp_millis_opt(1_800_000_000_000)
                    .single()
                    .unwrap_or_default()
            }),
            last_used_at: None,
            access: Vec::new(),
        }
    }

    #[test]
    fn every_token_is_found_and_records_round_trip() {
        let records: Vec<TokenRecord> = (0..1000).map(record).collect();
        let set = Arc::new(TokenSet::build(&records));
        assert_eq!(set.records(), records);
        for i in 0..1000 {
            match set.lookup(format!("secret-{i}").as_bytes(), 0) {
                Lookup::Valid(info) => {
                    assert_eq!(info.id(), format!("tok_{i}"));
                    assert_eq!(info.tenant(), format!("t{}", i / 4));
                    assert_eq!(info.domains().is_empty(), i % 3 != 0);
                }
                other => panic!("secret-{i}: {other:?}"),
            }
        }
        assert!(matches!(set.lookup(b"secret-1000", 0), Lookup::Unknown));
        assert!(TokenSet::build(&[]).find(&[0; 32]).is_none());
    }

    #[test]
    fn expiry_is_per_millisecond() {
        let r = record(0);
        let at = r
            .expires_at
            .map(|t| t.timestamp_millis())
            .unwrap_or_default();
        let set = Arc::new(TokenSet::build(&[r]));
        assert!(matches!(set.lookup(b"secret-0", at - 1), Lookup::Valid(_)));
        assert!(matches!(set.lookup(b"secret-0", at), Lookup::Expired));
    }
}
