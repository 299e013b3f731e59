//! The token store: which bearer tokens pass, read on every request without a lock.
//!
//! The request path does `fence check → sha256(presented) → map probe` on an immutable
//! [`TokenSet`] published through an `ArcSwap`. Where the set comes from is a [`Backend`]'s
//! business (the token file, or etcd in cluster mode: docs/cluster.md): a backend commits admin
//! changes and follows changes made elsewhere, and publishes each new set here with its
//! revision. Publishing is serialised by a mutex the request path never touches. A swap is
//! visible to every worker thread as soon as `store()` returns, which is what lets an admin
//! refresh kill the old secret before the admin call answers.

pub mod backend;
pub mod fence;
pub mod file;
pub mod secret;
mod set;
pub mod tenant;
pub mod watch;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};

use crate::audit::{AuditEvent, AuditKind, AuditLog};
use crate::metrics;
use backend::{file::FileBackend, Edit, KeyChange};
pub use backend::{Backend, ClusterStatus, Committed, Propagation, ReplicaInfo};
use fence::Fence;
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
    #[error("{0}")]
    /// The token state's store (etcd) cannot be reached or refused the change; nothing changed.
    Unavailable(String),
    #[error("committed at revision {revision}, but not confirmed: {reason}")]
    /// The change is (or may be) committed, but etcd failed before its propagation could be
    /// confirmed; the reason names what is unknown (revision 0: whether it was committed).
    Unconfirmed {
        /// The commit's revision.
        revision: u64,
        /// What failed.
        reason: String,
    },
}

/// The live token set plus everything needed to change it safely.
pub struct TokenStore {
    current: ArcSwap<TokenSet>,
    /// The revision `current` is at (the backend's numbering).
    revision: AtomicU64,
    /// Serialises publishing, so a revision never goes backwards.
    publishing: Mutex<()>,
    fence: Fence,
    max_per_idp: usize,
    backend: Arc<dyn Backend>,
    /// This process's own audit file: expiry events (each replica sees its clock pass).
    audit: Option<Arc<AuditLog>>,
}

/// An admin change, applied to a copy of the records by the backend.
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
    /// Opens the token file as the store's backend (creating an empty file if there is none).
    /// An invalid file at start is an error: the gate must not start with a set the operator
    /// did not intend.
    pub fn open(
        file: &Path,
        max_per_idp: usize,
        audit: Option<Arc<AuditLog>>,
    ) -> Result<Arc<TokenStore>, TokenFileError> {
        let (backend, records) = FileBackend::open(file, max_per_idp, audit.clone())?;
        let set = TokenSet::build(&records);
        let count = records.len();
        drop(records);
        release_freed_memory(count);
        let store =
            TokenStore::with_backend(Arc::new(backend), set, Fence::open(), max_per_idp, audit);
        Ok(Arc::new(store))
    }

    /// An in-memory store for tests and the embedded example: no file, no audit.
    pub fn from_records(
        records: Vec<TokenRecord>,
        max_per_idp: usize,
    ) -> Result<TokenStore, TokenFileError> {
        file::validate(&records, max_per_idp)?;
        Ok(TokenStore::with_backend(
            Arc::new(FileBackend::in_memory(max_per_idp)),
            TokenSet::build(&records),
            Fence::open(),
            max_per_idp,
            None,
        ))
    }

    /// The store the configuration asks for: the token file, or etcd (`tokens.backend`).
    pub fn from_config(
        cfg: &crate::config::Config,
        audit: Option<Arc<AuditLog>>,
    ) -> Result<Arc<TokenStore>, TokenFileError> {
        match (cfg.tokens.backend, &cfg.etcd) {
            #[cfg(feature = "etcd")]
            (crate::config::TokenBackend::Etcd, Some(etcd)) => {
                Ok(TokenStore::open_etcd(etcd, cfg.tokens.max_per_idp, audit))
            }
            _ => TokenStore::open(&cfg.tokens.file, cfg.tokens.max_per_idp, audit),
        }
    }

    /// A store on etcd (docs/cluster.md). It serves nothing until [`TokenStore::follow`] has
    /// registered this replica and loaded the state: an embedder who never starts it gets
    /// 503s, never a stale or empty set.
    #[cfg(feature = "etcd")]
    pub fn open_etcd(
        cfg: &crate::config::EtcdConfig,
        max_per_idp: usize,
        audit: Option<Arc<AuditLog>>,
    ) -> Arc<TokenStore> {
        let backend = backend::etcd::EtcdBackend::new(cfg.clone(), max_per_idp);
        Arc::new(TokenStore::with_backend(
            Arc::new(backend),
            TokenSet::build(&[]),
            Fence::closed(),
            max_per_idp,
            audit,
        ))
    }

    fn with_backend(
        backend: Arc<dyn Backend>,
        set: TokenSet,
        fence: Fence,
        max_per_idp: usize,
        audit: Option<Arc<AuditLog>>,
    ) -> TokenStore {
        let store = TokenStore {
            current: ArcSwap::from_pointee(set),
            revision: AtomicU64::new(0),
            publishing: Mutex::new(()),
            fence,
            max_per_idp,
            backend,
            audit,
        };
        store.publish_metrics();
        store
    }

    /// The request path: the fence, one atomic load, one hash, one map lookup.
    pub fn lookup(&self, presented: &[u8]) -> Lookup {
        if !self.fence.serving() {
            return Lookup::NotServing;
        }
        self.current
            .load()
            .lookup(presented, Utc::now().timestamp_millis())
    }

    /// OAuth client authentication against the current snapshot ([`TokenSet::client`]);
    /// `None` while the fence is closed, as for an unknown client.
    pub fn client(&self, id: &str, secret: &[u8]) -> Option<TokenInfo> {
        if !self.fence.serving() {
            return None;
        }
        self.current
            .load_full()
            .client(id, secret, Utc::now().timestamp_millis())
    }

    /// Whether this process may answer from its set now (docs/cluster.md#fencing).
    pub fn serving(&self) -> bool {
        self.fence.serving()
    }

    /// The fence the backend moves.
    pub(crate) fn fence(&self) -> &Fence {
        &self.fence
    }

    /// The current snapshot (for listing).
    pub fn snapshot(&self) -> Arc<TokenSet> {
        self.current.load_full()
    }

    /// The revision of the current snapshot.
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    /// The backend holding the state.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Follows the backend's source for the life of the process (the token file watcher, or
    /// the cluster replica's lease and watch). The server starts it as a background service;
    /// an embedder must start it too — in cluster mode nothing is served before it runs.
    pub async fn follow(self: Arc<Self>) {
        let backend = self.backend.clone();
        backend.follow(self).await;
    }

    /// Leaves the cluster at shutdown (cluster mode: the lease is revoked, so admin calls stop
    /// waiting for this replica at once); nothing for the file.
    pub async fn leave(&self) {
        self.fence.set_following(false);
        self.backend.leave().await;
    }

    /// Publishes the next state of a backend that numbers states itself (the file): returns
    /// the new revision.
    pub(crate) fn publish_next(&self, set: TokenSet) -> u64 {
        let _g = self.publishing.lock().unwrap_or_else(|p| p.into_inner());
        let revision = self.revision.load(Ordering::Acquire) + 1;
        self.swap(set, revision);
        revision
    }

    /// Publishes a whole snapshot read at `revision`, whatever was in force: after a resync the
    /// source is authoritative, even when its revisions went backwards (an etcd restored from
    /// a backup starts lower).
    pub(crate) fn publish_snapshot(&self, set: TokenSet, revision: u64) {
        let _g = self.publishing.lock().unwrap_or_else(|p| p.into_inner());
        self.swap(set, revision);
    }

    /// Publishes the state at `revision` unless a later one is already in force; `false`
    /// means the caller's source went backwards and it must resynchronise.
    pub(crate) fn publish_at(&self, set: TokenSet, revision: u64) -> bool {
        let _g = self.publishing.lock().unwrap_or_else(|p| p.into_inner());
        if revision < self.revision.load(Ordering::Acquire) {
            return false;
        }
        self.swap(set, revision);
        true
    }

    fn swap(&self, set: TokenSet, revision: u64) {
        set.carry_from(&self.current.load());
        self.current.store(Arc::new(set));
        self.revision.store(revision, Ordering::Release);
        metrics::CLUSTER_APPLIED_REVISION.set(i64::try_from(revision).unwrap_or(i64::MAX));
        self.publish_metrics();
    }

    /// Writes `last_used_at` back through the backend if a token was used since the last call;
    /// `Ok(true)` when it wrote.
    pub async fn flush_last_used(&self) -> Result<bool, StoreError> {
        self.backend.flush_last_used(self).await
    }

    /// Applies an admin change. When this returns Ok, the change is persisted with its audit
    /// event and in force for every worker — in cluster mode on every live replica (or the
    /// replicas that could not confirm are fenced, as the propagation says). A failure leaves
    /// the live set untouched.
    pub async fn apply(&self, change: Change, uid: Option<u32>) -> Result<Committed, StoreError> {
        let mut change = Some(change);
        let mut edit = |base: &TokenSet| -> Result<Edit, StoreError> {
            let change = change
                .as_ref()
                .ok_or_else(|| StoreError::Persist("change applied twice".into()))?;
            self.edit(base, change, uid)
        };
        let committed = self.backend.commit(self, &mut edit).await;
        change.take();
        committed
    }

    /// The pure part of a change on a base state: the records after it, the record it
    /// touched, its audit event and the answer. Runs again when a backend lost a race.
    fn edit(&self, base: &TokenSet, change: &Change, uid: Option<u32>) -> Result<Edit, StoreError> {
        let mut records = base.records();
        let (changed, kind) = self.edit_records(&mut records, change)?;
        let key = match (change, &changed.record) {
            (Change::Delete(id), _) => KeyChange::Delete(id.clone()),
            (_, Some(r)) => KeyChange::Put(r.clone()),
            (_, None) => return Err(StoreError::Persist("a change without a record".into())),
        };
        let event = kind.map(|kind| {
            let mut ev = AuditEvent::new(kind);
            if let Some(r) = &changed.record {
                ev.token_id = Some(r.id.clone());
                ev.tenant = Some(r.tenant.clone());
                ev.idp = Some(r.idp.as_str().to_string());
            }
            ev.uid = uid;
            ev.revoked_access_tokens = (changed.revoked > 0).then_some(changed.revoked);
            ev
        });
        Ok(Edit {
            records,
            key,
            event,
            changed,
        })
    }

    /// Edits `records` and names the audit event.
    fn edit_records(
        &self,
        records: &mut Vec<TokenRecord>,
        change: &Change,
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
                    .filter(|r| r.tenant == *tenant && r.idp == *idp)
                    .count();
                if held >= self.max_per_idp {
                    return Err(StoreError::TooMany {
                        tenant: tenant.clone(),
                        idp: idp.as_str().to_string(),
                        max: self.max_per_idp,
                    });
                }
                let token = NewToken::generate();
                let record = TokenRecord {
                    id: new_id(records),
                    tenant: tenant.clone(),
                    idp: *idp,
                    status: Status::Active,
                    sha256: secret::to_hex(&token.sha256()),
                    domains: domains.clone(),
                    networks: networks.clone(),
                    created_at: now,
                    refreshed_at: None,
                    expires_at: *expires_at,
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
                let i = find(records, id)?;
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
                let status = *status;
                let i = find(records, id)?;
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
                let i = find(records, id)?;
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
                let (ttl, keep) = (*ttl, *keep);
                let i = find(records, id)?;
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
/// (serde_yaml holds the whole event stream) peaks at several times the final set; allocators
/// keep freed heap mapped (glibc until `malloc_trim`, mimalloc until the freeing thread
/// allocates again or collects), so without this the resident size would stay at that peak.
fn release_freed_memory(records: usize) {
    if records < 10_000 {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns unused heap pages to the OS; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
    if let Some(release) = MEMORY_RELEASE.get() {
        release();
    }
}

/// How the binary's global allocator gives freed memory back, if it is not glibc's malloc.
static MEMORY_RELEASE: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Tells the library how the program's global allocator returns freed memory to the OS
/// (`mi_collect(true)` for mimalloc), for after a large token file was loaded. A binary that
/// installs its own allocator calls this once at start; the first call wins.
pub fn set_memory_release(release: fn()) {
    let _ = MEMORY_RELEASE.set(release);
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

/// An active record for `token` (tests across the crate).
#[cfg(test)]
pub(crate) fn test_record(id: &str, tenant: &str, idp: Idp, token: &str) -> TokenRecord {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs an admin change to completion (the store's API is async).
    fn block<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    /// An admin change, synchronously; the answer without its propagation.
    fn apply(store: &TokenStore, change: Change, uid: Option<u32>) -> Result<Changed, StoreError> {
        block(store.apply(change, uid)).map(|c| c.changed)
    }

    /// A file-backed store and its backend, for tests that reload by hand.
    fn open_file(path: &Path, audit: Option<Arc<AuditLog>>) -> (Arc<TokenStore>, Arc<FileBackend>) {
        let (backend, records) = FileBackend::open(path, 2, audit.clone()).expect("open");
        let backend = Arc::new(backend);
        let store = TokenStore::with_backend(
            backend.clone(),
            TokenSet::build(&records),
            Fence::open(),
            2,
            audit,
        );
        (Arc::new(store), backend)
    }

    use super::test_record as record;

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
        let (store, backend) = open_file(&path, Some(audit.clone()));
        let create = || Change::Create {
            tenant: "acme".into(),
            idp: Idp::Okta,
            domains: vec!["acme.com".into()],
            networks: vec![],
            expires_at: None,
        };
        let a = apply(&store, create(), Some(0)).expect("first");
        let first = a.token.expect("secret");
        assert!(matches!(
            store.lookup(first.expose().as_bytes()),
            Lookup::Valid(_)
        ));
        apply(&store, create(), Some(0)).expect("second");
        assert!(matches!(
            apply(&store, create(), Some(0)),
            Err(StoreError::TooMany { .. })
        ));
        let id = a.record.expect("record").id;
        let r = apply(&store, Change::Refresh(id.clone()), Some(0)).expect("refresh");
        let second = r.token.expect("secret");
        assert!(matches!(
            store.lookup(first.expose().as_bytes()),
            Lookup::Unknown
        ));
        assert!(matches!(
            store.lookup(second.expose().as_bytes()),
            Lookup::Valid(_)
        ));
        apply(
            &store,
            Change::SetStatus(id.clone(), Status::Inactive),
            Some(0),
        )
        .expect("deactivate");
        assert!(matches!(
            store.lookup(second.expose().as_bytes()),
            Lookup::Inactive
        ));
        apply(&store, Change::Delete(id.clone()), Some(0)).expect("delete");
        assert!(matches!(
            store.lookup(second.expose().as_bytes()),
            Lookup::Unknown
        ));
        assert!(matches!(
            apply(&store, Change::Delete(id), Some(0)),
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
        assert!(!backend.reload(&store).expect("reload"));
    }

    #[test]
    fn an_invalid_edit_keeps_the_previous_set_and_blocks_admin_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens.yaml");
        let (store, backend) = open_file(&path, None);
        let t = apply(
            &store,
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
        assert!(backend.reload(&store).is_err());
        assert!(matches!(
            store.lookup(t.expose().as_bytes()),
            Lookup::Valid(_)
        ));
        assert!(matches!(
            apply(&store, Change::Delete("x".into()), None),
            Err(StoreError::FileInvalid(_))
        ));
    }

    #[test]
    fn a_hand_edit_is_taken_in_before_an_admin_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens.yaml");
        let (store, _backend) = open_file(&path, None);
        let hand = record("tok_hand", "acme", Idp::Other, "hand-made");
        std::fs::write(&path, file::render(&[hand])).expect("write");
        apply(
            &store,
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
