//! The replicas' acknowledgements, as the admin side waits for them: the fast path of
//! `commit::propagate`.
//!
//! One watch on `P/replicas/` stays open for the life of the process. It must exist *before*
//! a commit: a watch created afterwards starts in the past, joins etcd's "unsynced" group and
//! sees the acknowledgements up to 100 ms late (measured: p50 90 ms against 2.4 ms;
//! docs/cluster.md#measurements).
//!
//! The table only ever *confirms*: an acknowledgement of revision ≥ C means that replica
//! applied C, however late the watch is. Whether a silent replica is gone or still serving is
//! decided from a fresh read of `P/replicas/` by the caller, never from this table, which may
//! lag behind the commit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use etcd_client::{EventType, GetOptions, WatchOptions};
use tokio::sync::watch;
use tokio::time::Instant;

use super::conn::Connections;
use super::{call, decode_replica, Keys, PROGRESS_EVERY, STALL};
use crate::guards::now_ns;

/// The acknowledgement table and a version bumped on every change to it.
pub(crate) struct Members {
    keys: Keys,
    /// Replica id → the highest revision it acknowledged.
    table: Mutex<HashMap<String, u64>>,
    /// Bumped on every change; the flag is false while the watch is down.
    changed: watch::Sender<(u64, bool)>,
}

impl Members {
    pub(crate) fn new(keys: Keys) -> Members {
        Members {
            keys,
            table: Mutex::new(HashMap::new()),
            changed: watch::channel((0, false)).0,
        }
    }

    /// Whether the watch is open, waiting for it at most `within` (a commit gives up rather
    /// than commit a change nobody could confirm).
    pub(crate) async fn ready(&self, within: Duration) -> bool {
        let mut rx = self.changed.subscribe();
        let deadline = Instant::now() + within;
        loop {
            if rx.borrow_and_update().1 {
                return true;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return false;
            }
        }
    }

    /// Waits until each of `ids` acknowledged `revision`, at most `within`; returns those that
    /// did.
    pub(crate) async fn confirmed(
        &self,
        ids: &[String],
        revision: u64,
        within: Duration,
    ) -> Vec<String> {
        let mut rx = self.changed.subscribe();
        let deadline = Instant::now() + within;
        loop {
            rx.borrow_and_update();
            let done = self.acked(ids, revision);
            if done.len() == ids.len() {
                return done;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return self.acked(ids, revision);
            }
        }
    }

    fn acked(&self, ids: &[String], revision: u64) -> Vec<String> {
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        ids.iter()
            .filter(|id| table.get(*id).is_some_and(|r| *r >= revision))
            .cloned()
            .collect()
    }

    fn bump(&self, open: bool) {
        self.changed.send_modify(|(v, o)| {
            *v += 1;
            *o = open;
        });
    }

    /// Keeps the watch open for the life of the process, reopening it after any failure.
    pub(crate) async fn run(&self, conn: Connections) {
        loop {
            if let Err(e) = self.watch_once(&conn).await {
                log::warn!("cluster: the replicas' acknowledgement watch failed, reopening: {e}");
            }
            self.bump(false);
            conn.rotate();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn watch_once(&self, conn: &Connections) -> Result<(), String> {
        let mut client = conn.connect().await.map_err(|e| e.to_string())?;
        let got = call(
            "read the replicas",
            client.get(self.keys.replicas(), Some(GetOptions::new().with_prefix())),
        )
        .await
        .map_err(|e| e.to_string())?;
        let start = got.header().map_or(0, |h| h.revision());
        {
            // Rebuilt from the read: after a reconnect (or an etcd restored from a backup, whose
            // revisions start lower) nothing from before counts.
            let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
            table.clear();
            for kv in got.kvs() {
                if let Some(r) = decode_replica(kv) {
                    table.insert(r.id, r.applied_revision);
                }
            }
        }
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(start + 1)
            .with_progress_notify();
        let mut stream = call(
            "watch the replicas",
            client.watch(self.keys.replicas(), Some(opts)),
        )
        .await
        .map_err(|e| e.to_string())?;
        let prefix = self.keys.replicas();
        self.bump(true);
        // Between admin calls this stream can be idle for days: progress requests keep it
        // proven alive (a connection silently dropped by a middlebox would otherwise leave
        // every later commit waiting for acknowledgements that never come).
        let mut progress = tokio::time::interval(PROGRESS_EVERY);
        let mut last_heard = now_ns();
        loop {
            let msg = tokio::select! {
                biased;
                msg = stream.message() => msg,
                _ = progress.tick() => {
                    if now_ns().saturating_sub(last_heard) > STALL.as_nanos() as u64 {
                        return Err(format!("stalled (nothing for {} ms)", STALL.as_millis()));
                    }
                    stream.request_progress().await.map_err(|e| format!("progress: {e}"))?;
                    continue;
                }
            };
            let msg = match msg {
                Ok(Some(m)) => m,
                Ok(None) => return Err("the watch stream ended".into()),
                Err(e) => return Err(e.to_string()),
            };
            last_heard = now_ns();
            if msg.canceled() {
                return Err(format!("the watch was cancelled: {}", msg.cancel_reason()));
            }
            if msg.events().is_empty() {
                continue;
            }
            {
                let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
                for ev in msg.events() {
                    let Some(kv) = ev.kv() else { continue };
                    let key = String::from_utf8_lossy(kv.key());
                    let Some(id) = key.strip_prefix(prefix.as_str()) else {
                        continue;
                    };
                    match ev.event_type() {
                        EventType::Put => {
                            if let Some(r) = decode_replica(kv) {
                                table.insert(r.id, r.applied_revision);
                            }
                        }
                        EventType::Delete => {
                            table.remove(id);
                        }
                    }
                }
            }
            self.bump(true);
        }
    }
}
