//! An admin change in cluster mode (docs/cluster.md#protocol, admin side):
//!
//! 1. the acknowledgement watch is open (it was created before any commit);
//! 2. ONE transaction: compare `P/meta/generation`'s `mod_revision` with the revision this
//!    replica's set is at (nobody changed anything since), put or delete the token key, put
//!    the generation and the audit event, and read `P/replicas/` — the membership at the
//!    commit revision C;
//! 3. wait until each listed replica acknowledged C or its key is gone;
//! 4. after `ack_timeout`, revoke the lease of each one still silent and wait its TTL (plus a
//!    margin): by then its own deadline has passed and it refuses every request.
//!
//! A lost race (the compare failed) waits for this replica's watch to bring the newer state
//! and runs the edit again on it.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};

use super::{call, decode_replica, encode_record, encode_time, EtcdBackend};
use crate::metrics;
use crate::tokens::backend::{Committed, EditFn, KeyChange, Propagation};
use crate::tokens::{file, StoreError, TokenStore};

/// Attempts before a change that keeps losing races gives up.
const ATTEMPTS: usize = 5;

pub(super) async fn commit(
    backend: &EtcdBackend,
    store: &TokenStore,
    edit: &mut EditFn<'_>,
) -> Result<Committed, StoreError> {
    if !backend.members.ready(Duration::from_secs(2)).await {
        return Err(StoreError::Unavailable(
            "etcd: the replicas' acknowledgement watch is not open (is etcd reachable?); nothing was changed".into(),
        ));
    }
    for _ in 0..ATTEMPTS {
        if !store.fence().following() {
            return Err(StoreError::Unavailable(
                "this replica is not following the token state in etcd (reconnecting or resynchronising); nothing was changed, retry shortly".into(),
            ));
        }
        let base_rev = store.revision();
        let base = store.snapshot();
        let done = edit(&base)?;
        file::validate(&done.records, backend.max_per_idp)
            .map_err(|e| StoreError::BadRequest(e.to_string()))?;
        let keys = &backend.keys;
        let mut ops = Vec::with_capacity(4);
        match &done.key {
            KeyChange::Put(r) => ops.push(TxnOp::put(keys.token(&r.id), encode_record(r)?, None)),
            KeyChange::Delete(id) => {
                ops.push(TxnOp::delete(keys.token(id), None));
                ops.push(TxnOp::delete(keys.used_by(id), None));
            }
        }
        ops.push(TxnOp::put(keys.generation(), base_rev.to_string(), None));
        if let Some(ev) = &done.event {
            let value = serde_json::to_vec(ev).map_err(|e| StoreError::Persist(e.to_string()))?;
            ops.push(TxnOp::put(
                keys.audit_event(ev.time, &backend.replica_id),
                value,
                None,
            ));
        }
        ops.push(TxnOp::get(
            keys.replicas(),
            Some(GetOptions::new().with_prefix()),
        ));
        let txn = Txn::new()
            .when([Compare::mod_revision(
                keys.generation(),
                CompareOp::Less,
                base_rev as i64 + 1,
            )])
            .and_then(ops)
            .or_else([TxnOp::get(keys.generation(), None)]);
        let mut client = backend.conn.client().await?;
        let resp = match call("commit the change", client.txn(txn)).await {
            Ok(r) => r,
            Err(e) => {
                // Whether a timed-out transaction was applied is unknown: say so.
                backend.conn.failed().await;
                return Err(e);
            }
        };
        let revision = resp.header().map_or(0, |h| h.revision()) as u64;
        if !resp.succeeded() {
            // Someone else committed first: wait for our watch to bring their change, then
            // edit again on top of it.
            let newer = resp
                .op_responses()
                .into_iter()
                .find_map(|op| match op {
                    TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.mod_revision() as u64),
                    _ => None,
                })
                .unwrap_or(revision);
            wait_applied(store, newer, Duration::from_secs(2)).await;
            continue;
        }
        let committed_at = Instant::now();
        let mut members = Vec::new();
        let mut leases = Vec::new();
        for op in resp.op_responses() {
            if let TxnOpResponse::Get(g) = op {
                for kv in g.kvs() {
                    if let Some(r) = decode_replica(kv) {
                        members.push(r.id);
                        leases.push(kv.lease());
                    }
                }
            }
        }
        let propagation = propagate(backend, revision, &members, &leases).await;
        let took = committed_at.elapsed();
        metrics::ADMIN_PROPAGATION.observe(took.as_secs_f64());
        if let Ok(p) = &propagation {
            // One line per admin change (they are rare): how long it took to be in force
            // everywhere, for operators and for benches/cluster.rs.
            log::info!(
                "cluster: revision {revision} in force on {} replica(s), {} fenced, {:.3} ms after its commit",
                p.confirmed.len(),
                p.fenced.len(),
                took.as_secs_f64() * 1000.0
            );
        }
        return propagation.map(|propagation| Committed {
            changed: done.changed,
            propagation,
        });
    }
    Err(StoreError::Unavailable(format!(
        "the token state changed under this change {ATTEMPTS} times in a row; nothing was changed, retry"
    )))
}

/// Steps 3 and 4: acknowledgements, then fencing of the silent.
async fn propagate(
    backend: &EtcdBackend,
    revision: u64,
    members: &[String],
    leases: &[i64],
) -> Result<Propagation, StoreError> {
    let acks = backend
        .members
        .wait(members, revision, backend.cfg.ack_timeout)
        .await;
    let mut fenced = acks.gone;
    if !acks.pending.is_empty() {
        let mut client = match backend.conn.client().await {
            Ok(c) => c,
            Err(e) => return Err(unconfirmed(revision, e)),
        };
        for id in &acks.pending {
            let Some(i) = members.iter().position(|m| m == id) else {
                continue;
            };
            if let Err(e) = call(
                "revoke a silent replica's lease",
                client.lease_revoke(leases[i]),
            )
            .await
            {
                // "lease not found" means it already expired: as good as revoked.
                if !e.to_string().contains("not found") {
                    backend.conn.failed().await;
                    return Err(unconfirmed(revision, e));
                }
            }
            log::warn!(
                "cluster: replica {id} did not acknowledge revision {revision} within {} ms: its lease is revoked, it stops serving",
                backend.cfg.ack_timeout.as_millis()
            );
        }
        // It may have sent a keep-alive just before the revoke: that one's deadline ends
        // within TTL (minus its margin) of its send time.
        tokio::time::sleep(backend.cfg.lease_ttl + Duration::from_millis(100)).await;
        fenced.extend(acks.pending);
    }
    Ok(Propagation {
        revision,
        confirmed: acks.confirmed,
        fenced,
    })
}

fn unconfirmed(revision: u64, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unconfirmed {
        revision,
        reason: e.to_string(),
    }
}

/// Waits (bounded) until this replica has applied `revision`.
async fn wait_applied(store: &TokenStore, revision: u64, within: Duration) {
    let deadline = Instant::now() + within;
    while store.revision() < revision && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Writes the last-use times that moved since the last flush to `P/used/<id>`, each only if
/// it is later than what another replica wrote (etcd compares the fixed-width strings).
pub(super) async fn flush_last_used(
    backend: &EtcdBackend,
    store: &TokenStore,
) -> Result<bool, StoreError> {
    let set = store.snapshot();
    if !set.take_used_mark() {
        return Ok(false);
    }
    let moved: Vec<(String, DateTime<Utc>)> = {
        let flushed = backend.flushed.lock().unwrap_or_else(|p| p.into_inner());
        set.records()
            .into_iter()
            .filter_map(|r| Some((r.id, r.last_used_at?)))
            .filter(|(id, t)| flushed.get(id).is_none_or(|f| f < t))
            .collect()
    };
    let mut client = backend.conn.client().await?;
    // etcd allows 128 operations per transaction by default.
    for chunk in moved.chunks(100) {
        let ops: Vec<TxnOp> = chunk
            .iter()
            .map(|(id, t)| {
                let key = backend.keys.used_by(id);
                let value = encode_time(*t);
                let newer = Txn::new()
                    .when([Compare::value(key.clone(), CompareOp::Less, value.clone())])
                    .and_then([TxnOp::put(key.clone(), value.clone(), None)]);
                // Absent: create. Present: only move forward.
                TxnOp::txn(
                    Txn::new()
                        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                        .and_then([TxnOp::put(key, value, Some(PutOptions::new()))])
                        .or_else([TxnOp::txn(newer)]),
                )
            })
            .collect();
        if let Err(e) = call("write last-use times", client.txn(Txn::new().and_then(ops))).await {
            set.mark_used(); // try again next time
            backend.conn.failed().await;
            return Err(e);
        }
    }
    let mut flushed = backend.flushed.lock().unwrap_or_else(|p| p.into_inner());
    flushed.extend(moved);
    Ok(true)
}
