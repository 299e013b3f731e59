//! The token store: which bearer tokens pass, read on every request without a lock.
//!
//! The request path does `sha256(presented) → HashMap lookup` on an immutable [`TokenSet`]
//! published through an `ArcSwap`. Writers (admin calls, file reloads, expiry) build a whole new
//! set and swap it in, serialised by a mutex the request path never touches. A swap is visible to
//! every worker thread as soon as `store()` returns, which is what lets an admin refresh kill the
//! old secret before the admin call answers.

pub mod file;
pub mod secret;
mod set;
pub mod tenant;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};

use crate::audit::{AuditEvent, AuditKind, AuditLog};
use crate::metrics;
pub use file::{AccessRecord, Idp, Status, TokenFileError, TokenRecord};
use secret::NewToken;
pub use set::{Lookup, TokenInfo, TokenSet};

/// Why an admin change was refused. Each maps to one HTTP status in the admin API.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("token {0} not found")]
    /// No token has this id.
    NotFound(String),
    #[error(
        "tenant {tenant:?} already holds {max} tokens for idp {idp}: delete or refresh one instead"
    )]
    /// The (tenant, idp) already holds `max_per_idp` tokens.
    TooMany {
        /// The tenant.
        tenant: String,
        /// The IdP.
        idp: String,
        /// The configured `tokens.max_per_idp`.
        max: usize,
    },
    #[error("{0}")]
    /// The change itself is invalid (a bad tenant, domain or expiry); the text says why.
    BadRequest(String),
    #[error("the token file has an invalid edit, fix it before changing tokens: {0}")]
    /// The token file on disk is invalid: changes wait until an operator fixes it.
    FileInvalid(TokenFileError),
    #[error("cannot persist the change: {0}")]
    /// The new state could not be written; memory and file still agree on the old one.
    Persist(String),
}

/// What the writer lock guards: the SHA-256 of the file as the gate last read or wrote it, so
/// a watcher event caused by the gate's own write is recognised and not applied twice. (A
/// digest, not the bytes: a million-token file is 230 MB.)
struct WriterState {
    last_digest: Option<Fingerprint>,
    /// The digest of the last invalid file, so one bad edit is logged and counted once, not on
    /// every poll or watcher event until it is fixed.
    last_failed: Option<Fingerprint>,
}

/// Length and a 64-bit word-wise multiply-xor hash of the file's bytes: enough to tell "the
/// same file" from "an edit" (each step is a bijection, so a change confined to one 8-byte word
/// always changes the hash; the file is the operator's, not an adversary's). SipHash or SHA-256
/// of a 25 MB file took a fifth of a 100 000-token reload; this runs at memory speed.
type Fingerprint = (usize, u64);

fn fingerprint(bytes: &[u8]) -> Fingerprint {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(b)).wrapping_mul(PRIME);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(PRIME);
    }
    (bytes.len(), h)
}

/// The live token set plus everything needed to change it safely.
pub struct TokenStore {
    current: ArcSwap<TokenSet>,
    file: PathBuf,
    /// False for an in-memory store (tests, embedding without a file).
    file_backed: bool,
    max_per_idp: usize,
    writer: Mutex<WriterState>,
    audit: Option<Arc<AuditLog>>,
}

/// An admin change, applied to a copy of the records under the writer lock.
pub enum Change {
    /// A new token for a (tenant, idp).
    Create {
        /// The tenant it provisions.
        tenant: String,
        /// The IdP that will hold it.
        idp: Idp,
        /// E-mail domains it may write (empty: any).
        domains: Vec<String>,
        /// Client networks (CIDR) it may be used from (empty: any).
        networks: Vec<String>,
        /// When it stops working, if ever.
        expires_at: Option<DateTime<Utc>>,
    },
    /// A new secret for this id; the previous one stops working at once.
    Refresh(String),
    /// Activate or deactivate this id.
    SetStatus(String, Status),
    /// Remove this id.
    Delete(String),
    /// A new OAuth access token for this id, valid for `ttl` (`docs/oauth.md`); expired ones are
    /// dropped and at most `keep` stay. Not audited (counted in a metric instead).
    IssueAccess {
        /// The parent token's id.
        id: String,
        /// How long the access token works.
        ttl: std::time::Duration,
        /// Unexpired access tokens kept per parent, at most.
        keep: usize,
    },
}

/// The result of a change: the affected record and, for create/refresh, the one-time secret.
pub struct Changed {
    /// The record after the change (absent for none).
    pub record: Option<TokenRecord>,
    /// The new plaintext, for a create or a refresh: shown once, never stored.
    pub token: Option<NewToken>,
    /// OAuth access tokens the change revoked (a refresh, deactivation or deletion).
    pub revoked: usize,
}

impl TokenStore {
    /// Loads the token file (creating an empty one if it does not exist). An invalid file at
    /// start is an error: the gate must not start with a set the operator did not intend.
    pub fn open(
        file: &Path,
        max_per_idp: usize,
        audit: Option<Arc<AuditLog>>,
    ) -> Result<Arc<TokenStore>, TokenFileError> {
        let (records, bytes) = match std::fs::read(file) {
            Ok(bytes) => (file::parse(&bytes, max_per_idp)?, bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let bytes = file::render(&[]);
                file::write_atomic(file, &bytes)?;
                (Vec::new(), bytes)
            }
            Err(e) => return Err(TokenFileError::Io(file.display().to_string(), e)),
        };
        let set = TokenSet::build(&records);
        let digest = fingerprint(&bytes);
        let count = records.len();
        drop((records, bytes));
        release_freed_memory(count);
        let store = TokenStore {
            current: ArcSwap::from_pointee(set),
            file: file.to_path_buf(),
            file_backed: true,
            max_per_idp,
            writer: Mutex::new(WriterState {
                last_digest: Some(digest),
                last_failed: None,
            }),
            audit,
        };
        store.publish_metrics();
        Ok(Arc::new(store))
    }

    /// An in-memory store for tests and the embedded example: no file, no audit.
    pub fn from_records(
        records: Vec<TokenRecord>,
        max_per_idp: usize,
    ) -> Result<TokenStore, TokenFileError> {
        file::validate(&records, max_per_idp)?;
        Ok(TokenStore {
            current: ArcSwap::from_pointee(TokenSet::build(&records)),
            file: PathBuf::new(),
            file_backed: false,
            max_per_idp,
            writer: Mutex::new(WriterState {
                last_digest: None,
                last_failed: None,
            }),
            audit: None,
        })
    }

    /// The request path: one atomic load, one hash, one map lookup.
    pub fn lookup(&self, presented: &[u8]) -> Lookup {
        self.current
            .load()
            .lookup(presented, Utc::now().timestamp_millis())
    }

    /// OAuth client authentication against the current snapshot ([`TokenSet::client`]).
    pub fn client(&self, id: &str, secret: &[u8]) -> Option<TokenInfo> {
        self.current
            .load_full()
            .client(id, secret, Utc::now().timestamp_millis())
    }

    /// The current snapshot (for listing).
    pub fn snapshot(&self) -> Arc<TokenSet> {
        self.current.load_full()
    }

    /// The token file this store reads and writes.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Re-reads the file after a change on disk. Unchanged bytes (including the gate's own last
    /// write) are a no-op; an invalid file keeps the previous set, logs why and counts an error.
    pub fn reload_from_disk(&self) -> Result<bool, TokenFileError> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.reload_locked(&mut w)
    }

    fn reload_locked(&self, w: &mut WriterState) -> Result<bool, TokenFileError> {
        let bytes = match std::fs::read(&self.file) {
            Ok(b) => b,
            Err(e) => {
                let err = TokenFileError::Io(self.file.display().to_string(), e);
                return Err(self.reload_failed(w, None, err));
            }
        };
        let digest = fingerprint(&bytes);
        if w.last_digest == Some(digest) {
            return Ok(false);
        }
        let old = self.current.load_full();
        // An editor that truncates and rewrites in place can be caught between the two; an
        // empty file never removes every token (`tokens: []` says so explicitly).
        if !old.is_empty() && bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(self.reload_failed(w, Some(digest), TokenFileError::Empty));
        }
        let records = match file::parse(&bytes, self.max_per_idp) {
            Ok(r) => r,
            Err(e) => return Err(self.reload_failed(w, Some(digest), e)),
        };
        drop(bytes);
        w.last_failed = None;
        let changes = diff(&old, &records);
        let set = TokenSet::build(&records);
        set.carry_from(&self.current.load());
        self.current.store(Arc::new(set));
        w.last_digest = Some(digest);
        drop(old);
        release_freed_memory(records.len());
        metrics::TOKEN_RELOADS.with_label_values(&["ok"]).inc();
        self.publish_metrics();
        log::info!("token file {} reloaded: {}", self.file.display(), changes);
        if let Some(audit) = &self.audit {
            let mut ev = AuditEvent::new(AuditKind::TokensReloaded);
            ev.changes = Some(changes);
            if let Err(e) = audit.append(&ev) {
                log::error!("{e}");
            }
        }
        Ok(true)
    }

    /// Logs and counts a failed reload once per distinct bad file content.
    fn reload_failed(
        &self,
        w: &mut WriterState,
        digest: Option<Fingerprint>,
        e: TokenFileError,
    ) -> TokenFileError {
        if digest.is_none() || w.last_failed != digest {
            metrics::TOKEN_RELOADS.with_label_values(&["error"]).inc();
            log::error!(
                "token file {} not reloaded, previous tokens stay in force: {e}",
                self.file.display()
            );
        }
        if digest.is_some() {
            w.last_failed = digest;
        }
        e
    }

    /// Writes `last_used_at` back to the token file if a token was used since the last call;
    /// `Ok(true)` when it wrote. No audit event (no admin changed anything) and no new snapshot
    /// (the live one holds the times). A pending hand edit is taken in first, as for a change.
    pub fn flush_last_used(&self) -> Result<bool, TokenFileError> {
        if !self.file_backed {
            return Ok(false);
        }
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.reload_locked(&mut w)?;
        let set = self.current.load_full();
        if !set.take_used_mark() {
            return Ok(false);
        }
        let bytes = file::render(&set.records());
        if let Err(e) = file::write_atomic(&self.file, &bytes) {
            set.mark_used(); // try again next time
            return Err(e);
        }
        w.last_digest = Some(fingerprint(&bytes));
        Ok(true)
    }

    /// Applies an admin change. When this returns Ok, the change is (1) persisted atomically to
    /// the token file, (2) in the audit log, and (3) in force for every worker — in that order,
    /// so a failure of (1) or (2) leaves the live set untouched.
    pub fn apply(&self, change: Change, uid: Option<u32>) -> Result<Changed, StoreError> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        // An operator's hand edit that the watcher has not picked up yet must not be
        // overwritten: take it in first (or refuse while the file is broken).
        if self.file_backed {
            self.reload_locked(&mut w)
                .map_err(StoreError::FileInvalid)?;
        }
        let old = self.current.load_full();
        let mut records = old.records();
        let (changed, event) = self.edit(&mut records, change)?;
        file::validate(&records, self.max_per_idp)
            .map_err(|e| StoreError::BadRequest(e.to_string()))?;
        let bytes = file::render(&records);
        if self.file_backed {
            file::write_atomic(&self.file, &bytes)
                .map_err(|e| StoreError::Persist(e.to_string()))?;
            if let (Some(audit), Some(event)) = (&self.audit, event) {
                let mut ev = AuditEvent::new(event);
                if let Some(r) = &changed.record {
                    ev.token_id = Some(r.id.clone());
                    ev.tenant = Some(r.tenant.clone());
                    ev.idp = Some(r.idp.as_str().to_string());
                }
                ev.uid = uid;
                ev.revoked_access_tokens = (changed.revoked > 0).then_some(changed.revoked);
                if let Err(e) = audit.append(&ev) {
                    // Keep file and memory in agreement: put the previous state back (the file
                    // matched it: it was taken in just above).
                    let previous = file::render(&old.records());
                    match file::write_atomic(&self.file, &previous) {
                        Ok(()) => w.last_digest = Some(fingerprint(&previous)),
                        Err(e2) => {
                            log::error!("cannot restore token file after audit failure: {e2}")
                        }
                    }
                    return Err(StoreError::Persist(e.to_string()));
                }
            }
            w.last_digest = Some(fingerprint(&bytes));
        }
        let set = TokenSet::build(&records);
        set.carry_from(&self.current.load());
        self.current.store(Arc::new(set));
        self.publish_metrics();
        Ok(changed)
    }

    /// The pure part of a change: edits `records` and names the audit event.
    fn edit(
        &self,
        records: &mut Vec<TokenRecord>,
        change: Change,
    ) -> Result<(Changed, Option<AuditKind>), StoreError> {
        let now = Utc::now();
        let find = |records: &Vec<TokenRecord>, id: &str| {
            records
                .iter()
                .position(|r| r.id == id)
                .ok_or_else(|| StoreError::NotFound(id.to_string()))
        };
        match change {
            Change::Create {
                tenant,
                idp,
                domains,
                networks,
                expires_at,
            } => {
                let held = records
                    .iter()
                    .filter(|r| r.tenant == tenant && r.idp == idp)
                    .count();
                if held >= self.max_per_idp {
                    return Err(StoreError::TooMany {
                        tenant,
                        idp: idp.as_str().to_string(),
                        max: self.max_per_idp,
                    });
                }
                let token = NewToken::generate();
                let record = TokenRecord {
                    id: new_id(records),
                    tenant,
                    idp,
                    status: Status::Active,
                    sha256: secret::to_hex(&token.sha256()),
                    domains,
                    networks,
                    created_at: now,
                    refreshed_at: None,
                    expires_at,
                    last_used_at: None,
                    access: Vec::new(),
                };
                records.push(record.clone());
                Ok((
                    Changed {
                        record: Some(record),
                        token: Some(token),
                        revoked: 0,
                    },
                    Some(AuditKind::TokenCreated),
                ))
            }
            Change::Refresh(id) => {
                let i = find(records, &id)?;
                let token = NewToken::generate();
                records[i].sha256 = secret::to_hex(&token.sha256());
                records[i].refreshed_at = Some(now);
                // Access tokens die with the secret they were issued on.
                let revoked = std::mem::take(&mut records[i].access).len();
                Ok((
                    Changed {
                        record: Some(records[i].clone()),
                        token: Some(token),
                        revoked,
                    },
                    Some(AuditKind::TokenRefreshed),
                ))
            }
            Change::SetStatus(id, status) => {
                let i = find(records, &id)?;
                records[i].status = status;
                let event = match status {
                    Status::Active => AuditKind::TokenActivated,
                    Status::Inactive => AuditKind::TokenDeactivated,
                };
                let revoked = match status {
                    Status::Inactive => std::mem::take(&mut records[i].access).len(),
                    Status::Active => 0,
                };
                Ok((
                    Changed {
                        record: Some(records[i].clone()),
                        token: None,
                        revoked,
                    },
                    Some(event),
                ))
            }
            Change::Delete(id) => {
                let i = find(records, &id)?;
                let record = records.remove(i);
                let revoked = record.access.len();
                Ok((
                    Changed {
                        record: Some(record),
                        token: None,
                        revoked,
                    },
                    Some(AuditKind::TokenDeleted),
                ))
            }
            Change::IssueAccess { id, ttl, keep } => {
                let i = find(records, &id)?;
                let r = &mut records[i];
                if r.status != Status::Active || r.expires_at.is_some_and(|t| t <= now) {
                    return Err(StoreError::BadRequest(format!("token {id} is not active")));
                }
                let ttl = chrono::Duration::from_std(ttl)
                    .map_err(|e| StoreError::BadRequest(e.to_string()))?;
                let token = NewToken::generate();
                r.access.retain(|a| a.expires_at > now);
                r.access.push(AccessRecord {
                    sha256: secret::to_hex(&token.sha256()),
                    expires_at: now + ttl,
                });
                r.access.sort_by_key(|a| a.expires_at);
                let excess = r.access.len().saturating_sub(keep.max(1));
                r.access.drain(..excess);
                Ok((
                    Changed {
                        record: Some(r.clone()),
                        token: Some(token),
                        revoked: 0,
                    },
                    None,
                ))
            }
        }
    }

    /// Emits `token.expired` for tokens whose expiry passed in `(since, now]`, and refreshes the
    /// gauges. Called twice a second by the watcher; lookups do not depend on it.
    pub fn announce_expired(&self, since: DateTime<Utc>, now: DateTime<Utc>) {
        let set = self.current.load();
        let mut any = false;
        for (id, tenant, idp, _, expires) in set.summaries() {
            if expires.is_some_and(|t| t > since && t <= now) {
                any = true;
                log::info!("token {id} ({tenant} / {}) expired", idp.as_str());
                if let Some(audit) = &self.audit {
                    let mut ev = AuditEvent::new(AuditKind::TokenExpired);
                    ev.token_id = Some(id.to_string());
                    ev.tenant = Some(tenant.to_string());
                    ev.idp = Some(idp.as_str().to_string());
                    if let Err(e) = audit.append(&ev) {
                        log::error!("{e}");
                    }
                }
            }
        }
        if any {
            self.publish_metrics();
        }
    }

    /// Sets `scim_gate_tokens{status}` and the per-token expiry gauges from the live set.
    fn publish_metrics(&self) {
        let set = self.current.load();
        let now = Utc::now();
        let (mut active, mut inactive, mut expired) = (0i64, 0i64, 0i64);
        metrics::TOKEN_EXPIRY.reset();
        for (id, _, _, status, expires) in set.summaries() {
            match (status, expires) {
                (Status::Inactive, _) => inactive += 1,
                (_, Some(t)) if t <= now => expired += 1,
                _ => active += 1,
            }
            if let Some(t) = expires {
                metrics::TOKEN_EXPIRY
                    .with_label_values(&[id])
                    .set(t.timestamp() as f64);
            }
        }
        metrics::TOKENS.with_label_values(&["active"]).set(active);
        metrics::TOKENS
            .with_label_values(&["inactive"])
            .set(inactive);
        metrics::TOKENS.with_label_values(&["expired"]).set(expired);
    }
}

/// Gives the memory a large load or reload freed back to the OS. Parsing a big token file
/// (serde_yaml holds the whole event stream) peaks at several times the final set; glibc keeps
/// freed heap mapped, so without this the resident size would stay at that peak.
fn release_freed_memory(records: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if records >= 10_000 {
        // SAFETY: malloc_trim only returns unused heap pages to the OS; it has no preconditions.
        unsafe {
            libc::malloc_trim(0);
        }
    }
    let _ = records;
}

/// The hasher of the maps that validate, index and diff a token file: FxHash's
/// multiply-rotate. The keys come from the operator's own file, not from a client, so SipHash's
/// flooding resistance buys nothing here, and it was the largest cost of a 100 000-token reload.
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.add(u64::from_le_bytes(b));
        }
        for &b in words.remainder() {
            self.add(u64::from(b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

pub(crate) type FastMap<K, V> =
    std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;
pub(crate) type FastSet<K> =
    std::collections::HashSet<K, std::hash::BuildHasherDefault<FastHasher>>;

/// `tok_` + 8 random hex digits, unique within the file.
fn new_id(records: &[TokenRecord]) -> String {
    loop {
        let id = format!("tok_{:08x}", rand::random::<u32>());
        if !records.iter().any(|r| r.id == id) {
            return id;
        }
    }
}

/// What an external edit changed, by token id (for the `tokens.reloaded` audit event).
fn diff(old: &TokenSet, new: &[TokenRecord]) -> serde_json::Value {
    let (mut added, mut removed, mut changed) = old.diff(new);
    added.sort_unstable();
    removed.sort_unstable();
    changed.sort_unstable();
    // Ids are listed up to a bound, counts always: swapping a 100 000-token file must not
    // write a multi-megabyte log and audit line.
    const LIST: usize = 100;
    let counts = serde_json::json!({"added": added.len(), "removed": removed.len(), "changed": changed.len()});
    let truncated = added.len().max(removed.len()).max(changed.len()) > LIST;
    added.truncate(LIST);
    removed.truncate(LIST);
    changed.truncate(LIST);
    let mut v = serde_json::json!({"added": added, "removed": removed, "changed": changed, "counts": counts});
    if truncated {
        v["truncated"] = true.into();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, tenant: &str, idp: Idp, token: &str) -> TokenRecord {
        TokenRecord {
            id: id.into(),
            tenant: tenant.into(),
            idp,
            status: Status::Active,
            sha256: secret::to_hex(&secret::sha256(token.as_bytes())),
            domains: vec![],
            networks: vec![],
            created_at: Utc::now(),
            refreshed_at: None,
            expires_at: None,
            last_used_at: None,
            access: Vec::new(),
        }
    }

    #[test]
    fn the_file_fingerprint_sees_every_one_byte_edit() {
        let base = file::render(&[record("tok_a", "acme", Idp::Okta, "a")]);
        let f = fingerprint(&base);
        for i in 0..base.len() {
            let mut edited = base.clone();
            edited[i] ^= 0x20;
            assert_ne!(fingerprint(&edited), f, "byte {i}");
        }
        assert_eq!(fingerprint(&base), f);
    }

    #[test]
    fn lookup_tells_valid_unknown_inactive_and_expired_apart() {
        let mut inactive = record("tok_b", "acme", Idp::Entra, "b");
        inactive.status = Status::Inactive;
        let mut expired = record("tok_c", "acme", Idp::Google, "c");
        expired.expires_at = Some(Utc::now() - chrono::Duration::seconds(1));
        let store = TokenStore::from_records(
            vec![record("tok_a", "acme", Idp::Okta, "a"), inactive, expired],
            2,
        )
        .expect("valid");
        assert!(
            matches!(store.lookup(b"a"), Lookup::Valid(i) if i.id() == "tok_a" && i.tenant() == "acme")
        );
        assert!(matches!(store.lookup(b"zzz"), Lookup::Unknown));
        assert!(matches!(store.lookup(b"b"), Lookup::Inactive));
        assert!(matches!(store.lookup(b"c"), Lookup::Expired));
    }

    #[test]
    fn admin_changes_persist_audit_and_apply_in_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let audit = Arc::new(AuditLog::open(&dir.path().join("audit.jsonl")).expect("audit"));
        let path = dir.path().join("tokens.yaml");
        let store = TokenStore::open(&path, 2, Some(audit.clone())).expect("open");
        let create = || Change::Create {
            tenant: "acme".into(),
            idp: Idp::Okta,
            domains: vec!["acme.com".into()],
            networks: vec![],
            expires_at: None,
        };
        let a = store.apply(create(), Some(0)).expect("first");
        let first = a.token.expect("secret");
        assert!(matches!(
            store.lookup(first.expose().as_bytes()),
            Lookup::Valid(_)
        ));
        store.apply(create(), Some(0)).expect("second");
        assert!(matches!(
            store.apply(create(), Some(0)),
            Err(StoreError::TooMany { .. })
        ));
        let id = a.record.expect("record").id;
        let r = store
            .apply(Change::Refresh(id.clone()), Some(0))
            .expect("refresh");
        let second = r.token.expect("secret");
        assert!(matches!(
            store.lookup(first.expose().as_bytes()),
            Lookup::Unknown
        ));
        assert!(matches!(
            store.lookup(second.expose().as_bytes()),
            Lookup::Valid(_)
        ));
        store
            .apply(Change::SetStatus(id.clone(), Status::Inactive), Some(0))
            .expect("deactivate");
        assert!(matches!(
            store.lookup(second.expose().as_bytes()),
            Lookup::Inactive
        ));
        store
            .apply(Change::Delete(id.clone()), Some(0))
            .expect("delete");
        assert!(matches!(
            store.lookup(second.expose().as_bytes()),
            Lookup::Unknown
        ));
        assert!(matches!(
            store.apply(Change::Delete(id), Some(0)),
            Err(StoreError::NotFound(_))
        ));

        let text = std::fs::read_to_string(&path).expect("file");
        let on_disk = file::parse(text.as_bytes(), 2).expect("parses");
        assert_eq!(on_disk.len(), 1);
        assert!(!text.contains(first.expose()) && !text.contains(second.expose()));
        let events: Vec<String> = audit
            .read_since(None)
            .expect("audit")
            .into_iter()
            .map(|e| e.event)
            .collect();
        assert_eq!(
            events,
            [
                "token.created",
                "token.created",
                "token.refreshed",
                "token.deactivated",
                "token.deleted"
            ]
        );
        // The store's own write is not re-applied by a reload.
        assert!(!store.reload_from_disk().expect("reload"));
    }

    #[test]
    fn an_invalid_edit_keeps_the_previous_set_and_blocks_admin_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens.yaml");
        let store = TokenStore::open(&path, 2, None).expect("open");
        let t = store
            .apply(
                Change::Create {
                    tenant: "acme".into(),
                    idp: Idp::Entra,
                    domains: vec![],
                    networks: vec![],
                    expires_at: None,
                },
                None,
            )
            .expect("create")
            .token
            .expect("secret");
        std::fs::write(&path, "tokens: [ {id: broken").expect("write");
        assert!(store.reload_from_disk().is_err());
        assert!(matches!(
            store.lookup(t.expose().as_bytes()),
            Lookup::Valid(_)
        ));
        assert!(matches!(
            store.apply(Change::Delete("x".into()), None),
            Err(StoreError::FileInvalid(_))
        ));
    }

    #[test]
    fn a_hand_edit_is_taken_in_before_an_admin_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens.yaml");
        let store = TokenStore::open(&path, 2, None).expect("open");
        let hand = record("tok_hand", "acme", Idp::Other, "hand-made");
        std::fs::write(&path, file::render(&[hand])).expect("write");
        store
            .apply(
                Change::Create {
                    tenant: "beta".into(),
                    idp: Idp::Okta,
                    domains: vec![],
                    networks: vec![],
                    expires_at: None,
                },
                None,
            )
            .expect("create");
        let on_disk = file::parse(&std::fs::read(&path).expect("read"), 2).expect("parse");
        assert!(on_disk.iter().any(|r| r.id == "tok_hand"));
        assert_eq!(on_disk.len(), 2);
        assert!(matches!(store.lookup(b"hand-made"), Lookup::Valid(_)));
    }
}
