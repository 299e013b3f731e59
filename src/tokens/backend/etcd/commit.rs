//! An admin change in cluster mode (docs/cluster.md#protocol, admin side):
//!
//! 1. the acknowledgement watch is open (it was created before any commit);
//! 2. ONE transaction: compare `P/meta/generation`'s `mod_revision` with the revision this
//!    replica's set is at (nobody changed anything since), put or delete the token key, put
//!    the generation and the audit event, and read `P/replicas/` — the membership at the
//!    commit revision C — and `P/fenced/`;
//! 3. wait until each listed replica acknowledged C (the watch: the fast path);
//! 4. after `ack_timeout`, read `P/replicas/` afresh: a replica that acknowledged meanwhile is
//!    confirmed, one whose key is gone no longer holds a lease; each one still registered and
//!    silent gets a `P/fenced/<id>` marker (under a lease of its own, `lease_ttl` + 1 s, never
//!    renewed) and then its lease revoked;
//! 5. wait until every marker seen — at C, or in that fresh read — has expired: a fenced
//!    replica may still serve until its own deadline (its last keep-alive's send time +
//!    `lease_ttl`), and the marker outlives that deadline. This includes replicas fenced by
//!    *another* admin call: their keys are gone, yet they may serve a little longer.
//!
//! A lost race (the compare failed) waits for this replica's watch to bring the newer state
//! and runs the edit again on it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};

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
        // Unique, so that a transaction whose answer was lost can be recognised (below).
        let stamp = format!("{}:{:016x}", backend.replica_id, rand::random::<u64>());
        let mut ops = Vec::with_capacity(6);
        match &done.key {
            KeyChange::Put(r) => ops.push(TxnOp::put(keys.token(&r.id), encode_record(r)?, None)),
            KeyChange::Delete(id) => {
                ops.push(TxnOp::delete(keys.token(id), None));
                ops.push(TxnOp::delete(keys.used_by(id), None));
            }
        }
        ops.push(TxnOp::put(keys.generation(), stamp.clone(), None));
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
        ops.push(TxnOp::get(
            keys.fenced(),
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
                backend.conn.failed().await;
                return Err(lost_answer(backend, &stamp, e).await);
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
        let mut markers = Vec::new();
        for op in resp.op_responses() {
            if let TxnOpResponse::Get(g) = op {
                for kv in g.kvs() {
                    let key = String::from_utf8_lossy(kv.key()).into_owned();
                    if key.starts_with(&keys.fenced()) {
                        markers.push(key);
                    } else if let Some(r) = decode_replica(kv) {
                        members.push(r.id);
                    }
                }
            }
        }
        let propagation = propagate(backend, revision, &members, markers).await;
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

/// The commit's answer was lost (a timeout, a broken connection): it may have been applied.
/// The generation's value says whether it was; the answer must not claim "nothing changed"
/// when something did.
async fn lost_answer(backend: &EtcdBackend, stamp: &str, e: StoreError) -> StoreError {
    let read = async {
        let mut client = backend.conn.client().await?;
        call(
            "check the commit",
            client.get(backend.keys.generation(), None),
        )
        .await
    };
    match read.await {
        Ok(got) => match got.kvs().first() {
            Some(kv) if kv.value() == stamp.as_bytes() => StoreError::Unconfirmed {
                revision: kv.mod_revision() as u64,
                reason: format!(
                    "{e}; its answer was lost, so no replica was waited for: replicas that have not applied it stop serving within etcd.lease_ttl unless they catch up"
                ),
            },
            _ => e,
        },
        Err(e2) => StoreError::Unconfirmed {
            revision: 0,
            reason: format!("{e}; whether it was committed is unknown ({e2}): check GET /tokens"),
        },
    }
}

/// Steps 3 to 5: acknowledgements, fencing of the silent, the wait for every fenced replica.
async fn propagate(
    backend: &EtcdBackend,
    revision: u64,
    members: &[String],
    mut markers: Vec<String>,
) -> Result<Propagation, StoreError> {
    let mut confirmed = backend
        .members
        .confirmed(members, revision, backend.cfg.ack_timeout)
        .await;
    let mut fenced = Vec::new();
    // The replicas this call fenced itself (their markers), and when the first was revoked.
    let mut revoked: Vec<String> = Vec::new();
    let mut revoked_at: Option<Instant> = None;
    let silent: Vec<&String> = members.iter().filter(|m| !confirmed.contains(m)).collect();
    if !silent.is_empty() {
        let mut client = backend
            .conn
            .client()
            .await
            .map_err(|e| unconfirmed(revision, &silent, e))?;
        let fresh = match read_fencing_state(&mut client, backend).await {
            Ok(f) => f,
            Err(e) => {
                backend.conn.failed().await;
                return Err(unconfirmed(revision, &silent, e));
            }
        };
        markers.extend(fresh.markers);
        for id in silent {
            match fresh.replicas.get(id) {
                Some((applied, _)) if *applied >= revision => confirmed.push(id.clone()),
                // Its lease ended (expired, revoked by another admin, or it left): a marker
                // covers the revoked case; an expired or departed one serves nothing.
                None => fenced.push(id.clone()),
                Some((_, lease)) => {
                    if let Err(e) = fence(&mut client, backend, id, *lease).await {
                        backend.conn.failed().await;
                        return Err(unconfirmed(revision, &[id], e));
                    }
                    revoked_at.get_or_insert_with(Instant::now);
                    revoked.push(backend.keys.fenced_replica(id));
                    fenced.push(id.clone());
                }
            }
        }
    }
    if let Some(at) = revoked_at {
        // Our own revokes: a keep-alive the replica sent just before one gives it at most
        // `lease_ttl` (minus its margin) from that send; waiting here is a second shorter than
        // waiting for our markers, whose leases count whole seconds.
        tokio::time::sleep_until((at + backend.cfg.lease_ttl + Duration::from_millis(100)).into())
            .await;
        markers.retain(|m| !revoked.contains(m));
    }
    if !markers.is_empty() {
        wait_markers_gone(backend, &markers)
            .await
            .map_err(|e| unconfirmed(revision, &[], e))?;
    }
    Ok(Propagation {
        revision,
        confirmed,
        fenced,
    })
}

/// What a fresh (linearizable) read says: replica id → (acknowledged revision, lease), and
/// the fence markers present.
struct FencingState {
    replicas: HashMap<String, (u64, i64)>,
    markers: Vec<String>,
}

async fn read_fencing_state(
    client: &mut Client,
    backend: &EtcdBackend,
) -> Result<FencingState, StoreError> {
    let keys = &backend.keys;
    let txn = Txn::new().and_then([
        TxnOp::get(keys.replicas(), Some(GetOptions::new().with_prefix())),
        TxnOp::get(keys.fenced(), Some(GetOptions::new().with_prefix())),
    ]);
    let resp = call("read the replicas", client.txn(txn)).await?;
    let mut state = FencingState {
        replicas: HashMap::new(),
        markers: Vec::new(),
    };
    for op in resp.op_responses() {
        if let TxnOpResponse::Get(g) = op {
            for kv in g.kvs() {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                if key.starts_with(&keys.fenced()) {
                    state.markers.push(key);
                } else if let Some(r) = decode_replica(kv) {
                    state
                        .replicas
                        .insert(r.id, (r.applied_revision, kv.lease()));
                }
            }
        }
    }
    Ok(state)
}

/// Cuts a silent replica off: first its marker (so every admin knows to wait), then its lease.
async fn fence(
    client: &mut Client,
    backend: &EtcdBackend,
    id: &str,
    lease: i64,
) -> Result<(), StoreError> {
    // The marker outlives the replica's deadline: that deadline is at most `lease_ttl` after
    // the send time of its last keep-alive, which precedes the revoke below, which follows
    // this grant. Leases only ever live longer than their TTL (a leader change extends them).
    let ttl = backend.cfg.lease_ttl.as_secs() as i64 + 1;
    let marker_lease = call(
        "grant a fence marker's lease",
        client.lease_grant(ttl, None),
    )
    .await?
    .id();
    call(
        "mark a replica fenced",
        client.put(
            backend.keys.fenced_replica(id),
            "fenced",
            Some(PutOptions::new().with_lease(marker_lease)),
        ),
    )
    .await?;
    match call(
        "revoke a silent replica's lease",
        client.lease_revoke(lease),
    )
    .await
    {
        Ok(_) => {}
        // Already gone (expired meanwhile): as good as revoked.
        Err(e) if e.to_string().contains("not found") => {}
        Err(e) => return Err(e),
    }
    log::warn!(
        "cluster: replica {id} did not acknowledge within {} ms: its lease is revoked, it stops serving",
        backend.cfg.ack_timeout.as_millis()
    );
    Ok(())
}

/// Polls until none of `markers` exists any more (their leases expired), bounded: leases can
/// outlive their TTL by an election or two, not by minutes.
async fn wait_markers_gone(backend: &EtcdBackend, markers: &[String]) -> Result<(), StoreError> {
    let limit = (backend.cfg.lease_ttl + Duration::from_secs(1)) * 3 + Duration::from_secs(2);
    let deadline = Instant::now() + limit;
    let mut client = backend.conn.client().await?;
    loop {
        let mut left = 0;
        for key in markers {
            let got = call("wait for a fenced replica", client.get(key.as_str(), None)).await?;
            left += got.kvs().len();
        }
        if left == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(StoreError::Unavailable(format!(
                "{left} fence marker(s) still present after {} s",
                limit.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn unconfirmed(revision: u64, silent: &[&String], e: impl std::fmt::Display) -> StoreError {
    let who = silent
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    StoreError::Unconfirmed {
        revision,
        reason: if who.is_empty() {
            format!("{e}")
        } else {
            format!("{e}; replicas {who} did not confirm and could not be fenced: they may serve the previous state until they catch up")
        },
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
