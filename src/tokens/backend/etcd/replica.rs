//! A replica following the token state (docs/cluster.md#protocol):
//!
//! 1. grant a lease; keep it alive, and after each answer move the fence's deadline to
//!    *send time* + TTL − margin on the monotonic clock (it runs on through SIGSTOP, so a
//!    paused replica finds its deadline passed when it resumes);
//! 2. in ONE transaction, register (`P/replicas/<id>` under the lease) and read the tokens: an
//!    admin commit after it lists this replica and waits for it, one before it is in the
//!    snapshot (snapshot-then-register would leave a gap where neither holds);
//! 3. publish the set, acknowledge the snapshot's revision;
//! 4. watch `P/tokens/` from that revision + 1; for each response apply, publish, *then*
//!    acknowledge the highest revision seen;
//! 5. serve only while all of that holds: any watch error, cancellation (compaction), stall
//!    or lease failure closes the fence and the loop starts over from 1.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, EventType, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use futures_util::FutureExt;
use tokio::sync::mpsc;

use super::{call, decode_record, decode_time, EtcdBackend, PROGRESS_EVERY, STALL};
use crate::guards::now_ns;
use crate::tokens::backend::ReplicaInfo;
use crate::tokens::fence::clock_ns;
use crate::tokens::{file, TokenRecord, TokenSet, TokenStore};

/// The largest snapshot or watch message accepted from etcd.
const MAX_MESSAGE: usize = 1 << 30;

/// Runs for the life of the process (until the process leaves the cluster at shutdown).
pub(super) async fn run(backend: Arc<EtcdBackend>, store: Arc<TokenStore>) {
    const FIRST_BACKOFF: Duration = Duration::from_millis(100);
    let mut backoff = FIRST_BACKOFF;
    loop {
        if backend.leaving.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let attempt = std::time::Instant::now();
        let result = follow_once(&backend, &store).await;
        if backend.leaving.load(std::sync::atomic::Ordering::Acquire) {
            store.fence().set_following(false);
            return;
        }
        if attempt.elapsed() > Duration::from_secs(10) {
            // It served for a while: this failure is a new one, retry at once.
            backoff = FIRST_BACKOFF;
        }
        store.fence().set_following(false);
        store.fence().expire();
        match result {
            Ok(()) => {}
            Err(e) => log::warn!(
                "cluster: replica {} stopped serving, resynchronising: {e}",
                backend.replica_id
            ),
        }
        backend.conn.rotate();
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// Aborts a spawned task when dropped: the keep-alive task dies with the attempt it serves.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One pass of steps 1–5; returns when the replica must resynchronise.
async fn follow_once(backend: &EtcdBackend, store: &Arc<TokenStore>) -> Result<(), String> {
    let cfg = &backend.cfg;
    let keys = &backend.keys;
    let mut client = backend.conn.connect().await.map_err(|e| e.to_string())?;

    // 1. The lease, and its keep-alive task.
    let ttl = cfg.lease_ttl.as_secs() as i64;
    let sent = clock_ns();
    let granted = call("grant a lease", client.lease_grant(ttl, None))
        .await
        .map_err(|e| e.to_string())?;
    let lease = granted.id();
    // The grant is the lease's first proof of life.
    store.fence().extend_until(sent + valid_for(cfg.lease_ttl));
    backend
        .lease
        .store(lease, std::sync::atomic::Ordering::Release);
    let (lost_tx, mut lost_rx) = mpsc::channel::<String>(1);
    let _keeper = AbortOnDrop(tokio::spawn(keep_alive(
        client.clone(),
        lease,
        cfg.lease_ttl,
        store.clone(),
        lost_tx,
    )));

    // 2. Registration and snapshot in one transaction.
    let mut info = ReplicaInfo {
        id: backend.replica_id.clone(),
        applied_revision: 0,
        serving: false,
        started_at: backend.started_at,
        host: backend.host.clone(),
    };
    let txn = Txn::new().and_then([
        TxnOp::put(
            keys.replica(&info.id),
            json(&info)?,
            Some(PutOptions::new().with_lease(lease)),
        ),
        TxnOp::get(keys.tokens(), Some(GetOptions::new().with_prefix())),
        TxnOp::get(keys.used(), Some(GetOptions::new().with_prefix())),
    ]);
    // The snapshot is one gRPC message: a million records are ~350 MB, far above tonic's
    // 4 MiB default.
    let mut kv = client.kv_client().max_decoding_message_size(MAX_MESSAGE);
    let resp = call("register and read the tokens", kv.txn(txn))
        .await
        .map_err(|e| e.to_string())?;
    let snapshot_rev = resp.header().map_or(0, |h| h.revision()) as u64;
    let mut records: HashMap<String, TokenRecord> = HashMap::new();
    let mut used = HashMap::new();
    for (i, op) in resp.op_responses().into_iter().enumerate() {
        let TxnOpResponse::Get(got) = op else {
            continue;
        };
        for kv in got.kvs() {
            match i {
                1 => {
                    let r = decode_record(kv)?;
                    records.insert(r.id.clone(), r);
                }
                _ => {
                    let key = String::from_utf8_lossy(kv.key());
                    if let (Some(id), Some(t)) =
                        (key.strip_prefix(&keys.used()), decode_time(kv.value()))
                    {
                        used.insert(id.to_string(), t);
                    }
                }
            }
        }
    }
    for (id, t) in used {
        if let Some(r) = records.get_mut(&id) {
            r.last_used_at = Some(t);
        }
    }

    // 3. Publish, acknowledge.
    store.publish_snapshot(build(&records)?, snapshot_rev);
    store.fence().set_following(true);
    info.applied_revision = snapshot_rev;
    info.serving = true;
    ack(&mut client, backend, &info, lease).await?;
    log::info!(
        "cluster: replica {} serving {} tokens at revision {snapshot_rev}",
        info.id,
        records.len()
    );

    // 4. Watch from the snapshot on.
    let opts = WatchOptions::new()
        .with_prefix()
        .with_start_revision(snapshot_rev as i64 + 1)
        .with_progress_notify();
    let mut watcher = client.watch_client().max_decoding_message_size(MAX_MESSAGE);
    let mut stream = call("watch the tokens", watcher.watch(keys.tokens(), Some(opts)))
        .await
        .map_err(|e| e.to_string())?;
    let prefix = keys.tokens();
    let mut progress = tokio::time::interval(PROGRESS_EVERY);
    let mut last_heard = now_ns();
    loop {
        // Biased: messages already received are handled before a timer may call the watch
        // stalled (after a pause, the buffered ones prove it was not).
        tokio::select! {
            biased;
            msg = stream.message() => {
                last_heard = now_ns();
                let mut highest = info.applied_revision;
                let mut changed = apply(msg, &prefix, &mut records, &mut highest)?;
                // Everything already buffered (a catch-up after a pause) is applied before the
                // set is rebuilt once, not once per message.
                for _ in 0..MAX_BATCH {
                    match stream.message().now_or_never() {
                        Some(msg) => changed |= apply(msg, &prefix, &mut records, &mut highest)?,
                        None => break,
                    }
                }
                if !changed {
                    continue;
                }
                if !store.publish_at(build(&records)?, highest) {
                    return Err(format!("etcd's revision went backwards (to {highest}): resynchronising from a snapshot"));
                }
                info.applied_revision = highest;
                ack(&mut client, backend, &info, lease).await?;
            }
            lost = lost_rx.recv() => {
                return Err(lost.unwrap_or_else(|| "the lease keep-alive stopped".into()));
            }
            _ = progress.tick() => {
                if now_ns().saturating_sub(last_heard) > STALL.as_nanos() as u64 {
                    return Err(format!("the watch is stalled (nothing for {} ms)", STALL.as_millis()));
                }
                stream.request_progress().await.map_err(|e| format!("watch progress: {e}"))?;
            }
        }
    }
}

/// Watch responses applied before one rebuild, at most.
const MAX_BATCH: usize = 10_000;

/// Applies one watch response to `records`; `Ok(true)` when it held events. A cancelled watch
/// (a compaction removed its start revision, or etcd dropped it) ends the attempt.
fn apply(
    msg: Result<Option<etcd_client::WatchResponse>, etcd_client::Error>,
    prefix: &str,
    records: &mut HashMap<String, TokenRecord>,
    highest: &mut u64,
) -> Result<bool, String> {
    let msg = match msg {
        Ok(Some(m)) => m,
        Ok(None) => return Err("the watch stream ended".into()),
        Err(e) => return Err(format!("watch: {e}")),
    };
    if msg.canceled() {
        return Err(match msg.compact_revision() {
            0 => format!("the watch was cancelled: {}", msg.cancel_reason()),
            c => format!("the watch start was compacted (compact revision {c})"),
        });
    }
    for ev in msg.events() {
        let Some(kv) = ev.kv() else { continue };
        // Events are atomic per revision and ordered (no fragmenting asked for): the highest
        // revision seen is applied whole.
        *highest = (*highest).max(kv.mod_revision() as u64);
        let key = String::from_utf8_lossy(kv.key());
        let Some(id) = key.strip_prefix(prefix) else {
            continue;
        };
        match ev.event_type() {
            EventType::Put => {
                let mut r = decode_record(kv)?;
                r.last_used_at = records.get(id).and_then(|old| old.last_used_at);
                records.insert(id.to_string(), r);
            }
            EventType::Delete => {
                records.remove(id);
            }
        }
    }
    Ok(!msg.events().is_empty())
}

/// Keeps the lease alive at a third of its TTL; after each answer with a live lease the fence
/// deadline becomes send time + TTL − margin. An answer may take as long as the current
/// deadline allows (a slow answer is not a failure while the lease is provably alive). Reports
/// why it stopped through `lost`.
///
/// Invariant the fence relies on: every deadline this task sets comes from a keep-alive sent
/// before any later revoke of this lease, so even an extension that lands after the replica
/// loop moved on (an aborted task finishing its last step) is a true bound.
async fn keep_alive(
    mut client: Client,
    lease: i64,
    ttl: Duration,
    store: Arc<TokenStore>,
    lost: mpsc::Sender<String>,
) {
    let valid_for = valid_for(ttl);
    let every = ttl / 3;
    let reason = async {
        let (mut keeper, mut answers) =
            match call("keep the lease alive", client.lease_keep_alive(lease)).await {
                Ok(k) => k,
                Err(e) => return e.to_string(),
            };
        loop {
            let sent = clock_ns();
            if let Err(e) = keeper.keep_alive().await {
                return format!("lease keep-alive: {e}");
            }
            let left = store.fence().until().saturating_sub(clock_ns());
            let wait = Duration::from_nanos(left).max(Duration::from_millis(200));
            match tokio::time::timeout(wait, answers.message()).await {
                Ok(Ok(Some(r))) if r.ttl() > 0 => store.fence().extend_until(sent + valid_for),
                Ok(Ok(Some(_))) => return "the lease expired or was revoked".into(),
                Ok(Ok(None)) => return "the lease keep-alive stream ended".into(),
                Ok(Err(e)) => return format!("lease keep-alive: {e}"),
                Err(_) => return "no keep-alive answer before the lease deadline".into(),
            }
            tokio::time::sleep(every).await;
        }
    }
    .await;
    let _ = lost.send(reason).await;
}

/// How long after a keep-alive's send time the lease is certainly alive: a lease lives at
/// least TTL after the keep-alive etcd processed, which is after we sent it; the margin covers
/// clock-rate differences between this host and etcd's leader.
fn valid_for(ttl: Duration) -> u64 {
    let margin = (ttl / 10).max(Duration::from_millis(100));
    ttl.saturating_sub(margin).as_nanos() as u64
}

/// Builds the set. A record that breaks the token file's rules (a hand write into etcd)
/// stops serving rather than serve a set nobody intended. `max_per_idp` is checked when a
/// change is written, not here: replicas configured with different limits must still agree
/// on what etcd holds.
fn build(records: &HashMap<String, TokenRecord>) -> Result<TokenSet, String> {
    let mut list: Vec<TokenRecord> = records.values().cloned().collect();
    list.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    file::validate(&list, usize::MAX)
        .map_err(|e| format!("the token state in etcd is invalid: {e}"))?;
    Ok(TokenSet::build(&list))
}

/// Acknowledges `info.applied_revision` under the lease (a revoked lease fails the put, and
/// the replica resynchronises).
async fn ack(
    client: &mut Client,
    backend: &EtcdBackend,
    info: &ReplicaInfo,
    lease: i64,
) -> Result<(), String> {
    call(
        "acknowledge",
        client.put(
            backend.keys.replica(&info.id),
            json(info)?,
            Some(PutOptions::new().with_lease(lease)),
        ),
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

fn json(info: &ReplicaInfo) -> Result<Vec<u8>, String> {
    serde_json::to_vec(info).map_err(|e| e.to_string())
}
