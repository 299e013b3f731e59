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
use tokio::sync::mpsc;

use super::{call, decode_record, decode_time, EtcdBackend};
use crate::guards::now_ns;
use crate::tokens::backend::ReplicaInfo;
use crate::tokens::{file, TokenRecord, TokenSet, TokenStore};

/// Watch progress is requested this often; silence for [`STALL`] means the watch is stalled.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// No message (event or progress) within this: the watch is stalled, fence and resync.
const STALL: Duration = Duration::from_millis(3000);

/// Runs for the life of the process.
pub(super) async fn run(backend: Arc<EtcdBackend>, store: Arc<TokenStore>) {
    const FIRST_BACKOFF: Duration = Duration::from_millis(100);
    let mut backoff = FIRST_BACKOFF;
    loop {
        let attempt = std::time::Instant::now();
        let result = follow_once(&backend, &store).await;
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
    let granted = call("grant a lease", client.lease_grant(ttl, None))
        .await
        .map_err(|e| e.to_string())?;
    let lease = granted.id();
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
    let resp = call("register and read the tokens", client.txn(txn))
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
    publish(backend, store, &records, snapshot_rev)?;
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
    let mut stream = call("watch the tokens", client.watch(keys.tokens(), Some(opts)))
        .await
        .map_err(|e| e.to_string())?;
    let prefix = keys.tokens();
    let mut progress = tokio::time::interval(PROGRESS_EVERY);
    let mut last_heard = now_ns();
    loop {
        tokio::select! {
            msg = stream.message() => {
                let msg = match msg {
                    Ok(Some(m)) => m,
                    Ok(None) => return Err("the watch stream ended".into()),
                    Err(e) => return Err(format!("watch: {e}")),
                };
                last_heard = now_ns();
                if msg.canceled() {
                    return Err(match msg.compact_revision() {
                        0 => format!("the watch was cancelled: {}", msg.cancel_reason()),
                        c => format!("the watch start was compacted (compact revision {c})"),
                    });
                }
                if msg.events().is_empty() {
                    continue;
                }
                let mut highest = info.applied_revision;
                for ev in msg.events() {
                    let Some(kv) = ev.kv() else { continue };
                    highest = highest.max(kv.mod_revision() as u64);
                    let key = String::from_utf8_lossy(kv.key());
                    let Some(id) = key.strip_prefix(prefix.as_str()) else { continue };
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
                publish(backend, store, &records, highest)?;
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

/// Keeps the lease alive at a third of its TTL; after each answer with a live lease the fence
/// deadline becomes send time + TTL − margin. Reports why it stopped through `lost`.
async fn keep_alive(
    mut client: Client,
    lease: i64,
    ttl: Duration,
    store: Arc<TokenStore>,
    lost: mpsc::Sender<String>,
) {
    // A lease lives at least TTL after the keep-alive etcd processed, which is after we sent
    // it; the margin covers clock-rate differences between this host and etcd's leader.
    let margin = (ttl / 10).max(Duration::from_millis(100));
    let valid_for = ttl.saturating_sub(margin).as_nanos() as u64;
    let every = ttl / 3;
    let reason = async {
        // The grant itself counts as the first keep-alive: its send time is before now.
        let (mut keeper, mut answers) =
            match call("keep the lease alive", client.lease_keep_alive(lease)).await {
                Ok(k) => k,
                Err(e) => return e.to_string(),
            };
        loop {
            let sent = now_ns();
            if let Err(e) = keeper.keep_alive().await {
                return format!("lease keep-alive: {e}");
            }
            match tokio::time::timeout(every.max(Duration::from_millis(500)), answers.message())
                .await
            {
                Ok(Ok(Some(r))) if r.ttl() > 0 => store.fence().extend_until(sent + valid_for),
                Ok(Ok(Some(_))) => return "the lease expired or was revoked".into(),
                Ok(Ok(None)) => return "the lease keep-alive stream ended".into(),
                Ok(Err(e)) => return format!("lease keep-alive: {e}"),
                Err(_) => return "no keep-alive answer in time".into(),
            }
            tokio::time::sleep(every).await;
        }
    }
    .await;
    let _ = lost.send(reason).await;
}

/// Builds and publishes the set at `revision`; a record that breaks the file's rules (a hand
/// write into etcd) stops serving rather than serve a set nobody intended.
fn publish(
    backend: &EtcdBackend,
    store: &TokenStore,
    records: &HashMap<String, TokenRecord>,
    revision: u64,
) -> Result<(), String> {
    let mut list: Vec<TokenRecord> = records.values().cloned().collect();
    list.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    file::validate(&list, backend.max_per_idp)
        .map_err(|e| format!("the token state in etcd is invalid: {e}"))?;
    store.publish_at(TokenSet::build(&list), revision);
    Ok(())
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
