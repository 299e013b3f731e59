//! Where the token state lives: the seam under [`TokenStore`].
//!
//! The store keeps what the request path reads — one immutable [`TokenSet`]
//! behind an atomic pointer — and a backend keeps the source of that set: the token file
//! ([`file::FileBackend`]) or etcd (`etcd::EtcdBackend`, docs/cluster.md). A backend
//! - commits a change with compare-and-swap: it calls the store's pure edit on the state it
//!   knows to be current, persists the result together with its audit event, and retries the
//!   edit when someone else changed the state first;
//! - follows changes made elsewhere (a hand edit of the file, another replica's admin call)
//!   and publishes each new state into the store with its revision;
//! - keeps what belongs with the state: last-use times, the audit trail of token changes.
//!
//! The request path never calls a backend.

pub mod file;

#[cfg(feature = "etcd")]
pub mod etcd;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Changed, StoreError, TokenRecord, TokenSet, TokenStore};
use crate::audit::AuditEvent;

/// One change, as the store's pure edit computed it from a base state.
pub struct Edit {
    /// Every record after the change (the file backend writes them all).
    pub records: Vec<TokenRecord>,
    /// The one record the change touched (etcd writes only its key).
    pub key: KeyChange,
    /// The audit event committed with it (none for an OAuth access token).
    pub event: Option<AuditEvent>,
    /// What the admin call answers.
    pub changed: Changed,
}

/// The record a change touched.
pub enum KeyChange {
    /// Created or replaced.
    Put(TokenRecord),
    /// Removed, by id.
    Delete(String),
}

/// The edit a backend runs on the state it holds for current (and again after a lost race).
pub type EditFn<'a> = dyn FnMut(&TokenSet) -> Result<Edit, StoreError> + Send + 'a;

/// What became of a committed change across the processes that serve the state.
#[derive(Debug, Clone, Default)]
pub struct Propagation {
    /// The revision the change was committed at.
    pub revision: u64,
    /// Replicas that acknowledged having applied it (cluster mode).
    pub confirmed: Vec<String>,
    /// Replicas that did not in time and were fenced: they refuse every request until they
    /// have resynchronised (cluster mode).
    pub fenced: Vec<String>,
}

/// A change committed by a backend: the admin call's answer and its propagation.
pub struct Committed {
    /// The change's record and one-time secret.
    pub changed: Changed,
    /// Where it is in force.
    pub propagation: Propagation,
}

/// One replica as `GET /cluster` lists it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ReplicaInfo {
    /// The replica's id (`<host>-<pid>-<random>`).
    pub id: String,
    /// The highest revision it has applied and acknowledged.
    pub applied_revision: u64,
    /// Whether it serves (it says so when it registers and acknowledges).
    pub serving: bool,
    /// When the process started.
    pub started_at: DateTime<Utc>,
    /// Its host name.
    pub host: String,
}

/// `GET /cluster`: the state's revision and the replicas registered at it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterStatus {
    /// The revision this replica has applied.
    pub revision: u64,
    /// Every registered replica (with a live lease).
    pub replicas: Vec<ReplicaInfo>,
}

/// The source of the token state (see the module documentation).
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// `file` or `etcd`, for logs and errors.
    fn name(&self) -> &'static str;

    /// Commits the change `edit` computes, with compare-and-swap against concurrent writers,
    /// and publishes it into `store` before returning (in cluster mode: on every replica).
    async fn commit(
        &self,
        store: &TokenStore,
        edit: &mut EditFn<'_>,
    ) -> Result<Committed, StoreError>;

    /// Follows changes made elsewhere for the life of the process, publishing each into
    /// `store`. Returns only when there is nothing to follow (or at shutdown).
    async fn follow(self: Arc<Self>, store: Arc<TokenStore>);

    /// Writes the set's last-use times back when a token was used since the last call;
    /// `Ok(true)` when it wrote.
    async fn flush_last_used(&self, store: &TokenStore) -> Result<bool, StoreError>;

    /// The latest last-use time per token id that other processes recorded (cluster mode),
    /// to merge into listings; empty for a backend that only this process writes.
    async fn last_used_elsewhere(&self) -> Vec<(String, DateTime<Utc>)> {
        Vec::new()
    }

    /// The token-change events at or after `since` that the backend holds (cluster mode keeps
    /// them with the state); `None` when they are in the process's own audit file.
    async fn audit_since(
        &self,
        _since: Option<DateTime<Utc>>,
    ) -> Option<Result<Vec<AuditEvent>, StoreError>> {
        None
    }

    /// Leaves at shutdown (cluster mode: revokes the lease); nothing by default.
    async fn leave(&self) {}

    /// The cluster's replicas; `None` outside cluster mode.
    async fn cluster(&self, _store: &TokenStore) -> Option<Result<ClusterStatus, StoreError>> {
        None
    }
}
