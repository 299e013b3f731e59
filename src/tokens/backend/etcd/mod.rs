//! The token state on etcd: cluster mode (docs/cluster.md).
//!
//! Keys under the configured prefix `P`:
//! - `P/tokens/<id>`: a token record as JSON (hash and public fields; no last-use time);
//! - `P/meta/generation`: rewritten by every change, so one compare on its `mod_revision`
//!   makes a change a compare-and-swap against *every* other change (and `max_per_idp`
//!   holds under concurrent creates);
//! - `P/replicas/<replica>`: each replica's registration and acknowledged revision, bound to
//!   its lease;
//! - `P/audit/<time>-<replica>`: the audit events of token changes, written in the change's
//!   own transaction;
//! - `P/fenced/<replica>`: a replica an admin cut off, present until its deadline has passed;
//! - `P/used/<id>`: the latest last-use time any replica recorded.
//!
//! `replica` follows the state (lease, registration with the snapshot in one transaction,
//! watch, apply, acknowledge, fence); `commit` makes a change and waits for every replica's
//! acknowledgement; `members` watches the replicas' acknowledgements for it.

mod commit;
mod conn;
mod import;
mod members;
mod replica;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use etcd_client::{GetOptions, KeyValue};

use super::{Backend, ClusterStatus, Committed, EditFn, ReplicaInfo};
use crate::audit::AuditEvent;
use crate::config::EtcdConfig;
use crate::tokens::{StoreError, TokenRecord, TokenStore};
pub use import::import;

/// Watch progress is requested this often; silence for [`STALL`] means the watch is stalled.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// No message (event or progress) within this: the watch is stalled.
const STALL: Duration = Duration::from_millis(3000);

/// Every unary call to etcd gives up after this (the crate has no per-call deadline of its
/// own that does not also cut watch streams).
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// The key layout under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.trim_end_matches('/').to_string(),
        }
    }
    fn tokens(&self) -> String {
        format!("{}/tokens/", self.prefix)
    }
    fn token(&self, id: &str) -> String {
        format!("{}/tokens/{id}", self.prefix)
    }
    fn generation(&self) -> String {
        format!("{}/meta/generation", self.prefix)
    }
    fn replicas(&self) -> String {
        format!("{}/replicas/", self.prefix)
    }
    fn replica(&self, id: &str) -> String {
        format!("{}/replicas/{id}", self.prefix)
    }
    fn audit(&self) -> String {
        format!("{}/audit/", self.prefix)
    }
    /// Sorted by time: a fixed-width nanosecond stamp, then the writer (two replicas in the
    /// same nanosecond still get two keys).
    fn audit_event(&self, time: DateTime<Utc>, replica: &str) -> String {
        let ns = time.timestamp_nanos_opt().unwrap_or_default().max(0);
        format!("{}/audit/{ns:020}-{replica}", self.prefix)
    }
    /// `P/fenced/<replica>`: written (under a lease of its own that nobody renews) before a
    /// silent replica's lease is revoked, so that every admin — not only the one that fenced
    /// it — waits until that replica's own deadline has passed.
    fn fenced(&self) -> String {
        format!("{}/fenced/", self.prefix)
    }
    fn fenced_replica(&self, id: &str) -> String {
        format!("{}/fenced/{id}", self.prefix)
    }
    fn used(&self) -> String {
        format!("{}/used/", self.prefix)
    }
    fn used_by(&self, id: &str) -> String {
        format!("{}/used/{id}", self.prefix)
    }
}

/// A token record as stored: the file's record without the last-use time, which lives in
/// `P/used/` (a use must not rewrite the record every replica watches).
fn encode_record(r: &TokenRecord) -> Result<Vec<u8>, StoreError> {
    let mut r = r.clone();
    r.last_used_at = None;
    serde_json::to_vec(&r).map_err(|e| StoreError::Persist(e.to_string()))
}

fn decode_record(kv: &KeyValue) -> Result<TokenRecord, String> {
    serde_json::from_slice(kv.value()).map_err(|e| {
        format!(
            "{}: not a token record: {e}",
            String::from_utf8_lossy(kv.key())
        )
    })
}

/// A last-use time as stored: fixed width, so etcd's byte-wise value compare orders times.
fn encode_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn decode_time(v: &[u8]) -> Option<DateTime<Utc>> {
    let s = std::str::from_utf8(v).ok()?;
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn decode_replica(kv: &KeyValue) -> Option<ReplicaInfo> {
    serde_json::from_slice(kv.value()).ok()
}

/// An etcd error as the admin API shows it.
fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("etcd: {what}: {e}"))
}

/// Runs one etcd call with [`CALL_TIMEOUT`].
async fn call<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(unavailable(what, e)),
        Err(_) => Err(unavailable(what, "no answer within 2 s")),
    }
}

/// The etcd backend of one replica.
pub struct EtcdBackend {
    cfg: EtcdConfig,
    keys: Keys,
    max_per_idp: usize,
    /// This replica's id in `P/replicas/`.
    replica_id: String,
    host: String,
    started_at: DateTime<Utc>,
    conn: conn::Connections,
    members: Arc<members::Members>,
    /// The lease of the current registration (0: none), revoked when the process leaves.
    lease: std::sync::atomic::AtomicI64,
    /// Set at shutdown: the replica loop does not register again.
    leaving: std::sync::atomic::AtomicBool,
    /// Last-use times this replica last wrote, so a flush writes only what moved.
    flushed: std::sync::Mutex<crate::tokens::FastMap<String, DateTime<Utc>>>,
}

impl EtcdBackend {
    /// A backend for `cfg`; nothing connects until [`Backend::follow`] runs.
    pub fn new(cfg: EtcdConfig, max_per_idp: usize) -> EtcdBackend {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        // Unique per process, also where every container's pid is 1: one replica's
        // acknowledgement must never count as another's.
        let replica_id = format!(
            "{host}-{}-{:012x}",
            std::process::id(),
            rand::random::<u64>() & 0xffff_ffff_ffff
        );
        let keys = Keys::new(&cfg.prefix);
        let conn = conn::Connections::new(&cfg);
        let members = Arc::new(members::Members::new(keys.clone()));
        EtcdBackend {
            cfg,
            keys,
            max_per_idp,
            replica_id,
            host,
            started_at: Utc::now(),
            conn,
            members,
            lease: std::sync::atomic::AtomicI64::new(0),
            leaving: std::sync::atomic::AtomicBool::new(false),
            flushed: std::sync::Mutex::new(Default::default()),
        }
    }

    /// This replica's id.
    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }
}

#[async_trait]
impl Backend for EtcdBackend {
    fn name(&self) -> &'static str {
        "etcd"
    }

    async fn commit(
        &self,
        store: &TokenStore,
        edit: &mut EditFn<'_>,
    ) -> Result<Committed, StoreError> {
        commit::commit(self, store, edit).await
    }

    async fn follow(self: Arc<Self>, store: Arc<TokenStore>) {
        // The acknowledgements' watch runs beside the replica loop for the life of the
        // process, so it exists before any admin commit (docs/cluster.md#protocol).
        let members = self.members.clone();
        let conn = self.conn.clone();
        tokio::spawn(async move { members.run(conn).await });
        replica::run(self, store).await;
    }

    async fn flush_last_used(&self, store: &TokenStore) -> Result<bool, StoreError> {
        commit::flush_last_used(self, store).await
    }

    async fn last_used_elsewhere(&self) -> Vec<(String, DateTime<Utc>)> {
        let Ok(mut client) = self.conn.client().await else {
            return Vec::new();
        };
        let got = call(
            "read last-use times",
            client.get(self.keys.used(), Some(GetOptions::new().with_prefix())),
        )
        .await;
        let Ok(got) = self.on_failure_move_on(got).await else {
            return Vec::new();
        };
        let prefix = self.keys.used();
        got.kvs()
            .iter()
            .filter_map(|kv| {
                let id = String::from_utf8_lossy(kv.key())
                    .strip_prefix(prefix.as_str())?
                    .to_string();
                Some((id, decode_time(kv.value())?))
            })
            .collect()
    }

    async fn leave(&self) {
        self.leaving
            .store(true, std::sync::atomic::Ordering::Release);
        let lease = self.lease.swap(0, std::sync::atomic::Ordering::AcqRel);
        if lease == 0 {
            return;
        }
        if let Ok(mut client) = self.conn.client().await {
            match call("revoke the lease", client.lease_revoke(lease)).await {
                Ok(_) => log::info!("cluster: replica {} left the cluster", self.replica_id),
                Err(e) => log::warn!(
                    "cluster: could not leave the cluster cleanly ({e}); the lease ends on its own"
                ),
            }
        }
    }

    async fn audit_since(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Option<Result<Vec<AuditEvent>, StoreError>> {
        Some(self.on_failure_move_on(self.read_audit(since).await).await)
    }

    async fn cluster(&self, store: &TokenStore) -> Option<Result<ClusterStatus, StoreError>> {
        Some(
            self.on_failure_move_on(self.read_cluster(store).await)
                .await,
        )
    }
}

impl EtcdBackend {
    /// A failed call on the shared client moves it to the next endpoint.
    async fn on_failure_move_on<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        if r.is_err() {
            self.conn.failed().await;
        }
        r
    }

    async fn read_audit(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let client = self.conn.client().await?;
        let mut kv = client.kv_client().max_decoding_message_size(1 << 30);
        // Keys sort by time: with `since`, the range starts there instead of at the beginning.
        let from = match since {
            Some(t) => self.keys.audit_event(t, ""),
            None => self.keys.audit(),
        };
        let end = format!("{}0", self.keys.audit().trim_end_matches('/'));
        let got = call(
            "read the audit trail",
            kv.get(from, Some(GetOptions::new().with_range(end))),
        )
        .await?;
        Ok(events_of(got.kvs(), since))
    }

    async fn read_cluster(&self, store: &TokenStore) -> Result<ClusterStatus, StoreError> {
        let mut client = self.conn.client().await?;
        let got = call(
            "read the replicas",
            client.get(self.keys.replicas(), Some(GetOptions::new().with_prefix())),
        )
        .await?;
        let mut replicas: Vec<ReplicaInfo> = got.kvs().iter().filter_map(decode_replica).collect();
        replicas.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(ClusterStatus {
            revision: store.revision(),
            replicas,
        })
    }
}

fn events_of(kvs: &[KeyValue], since: Option<DateTime<Utc>>) -> Vec<AuditEvent> {
    kvs.iter()
        .filter_map(|kv| serde_json::from_slice::<AuditEvent>(kv.value()).ok())
        .filter(|e| since.is_none_or(|s| e.time >= s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_as_the_protocol_needs() {
        let k = Keys::new("/scim-gate/test/");
        assert_eq!(k.token("tok_1"), "/scim-gate/test/tokens/tok_1");
        assert!(k.token("tok_1").starts_with(&k.tokens()));
        assert!(k.replica("r1").starts_with(&k.replicas()));
        let t1 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let t2 = t1 + chrono::Duration::milliseconds(1);
        assert!(k.audit_event(t1, "b") < k.audit_event(t2, "a"));
        assert!(encode_time(t1) < encode_time(t2));
        assert_eq!(decode_time(encode_time(t2).as_bytes()), Some(t2));
    }
}
