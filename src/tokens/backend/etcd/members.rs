//! The replicas' acknowledgements, as the admin side waits for them.
//!
//! One watch on `P/replicas/` stays open for the life of the process. It must exist *before*
//! a commit: a watch created afterwards starts in the past, joins etcd's "unsynced" group and
//! sees the acknowledgements up to 100 ms late (measured: p50 90 ms against 2.4 ms;
//! docs/cluster.md#measurements).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use etcd_client::{EventType, GetOptions, WatchOptions};
use tokio::sync::watch;
use tokio::time::Instant;

use super::conn::Connections;
use super::{call, decode_replica, Keys};

/// What the watch knows of one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    /// Registered; the revision it acknowledged last.
    Applied(u64),
    /// Its key was deleted: its lease expired or was revoked, so it no longer serves.
    Gone,
}

/// The acknowledgement table and a version bumped on every change to it.
pub(crate) struct Members {
    keys: Keys,
    table: Mutex<HashMap<String, Member>>,
    /// Bumped on every change; false while the watch is down.
    changed: watch::Sender<(u64, bool)>,
}

/// Where each listed replica stands after waiting.
pub(crate) struct Acks {
    /// Applied the revision.
    pub confirmed: Vec<String>,
    /// Gone (its lease ended): it serves nothing.
    pub gone: Vec<String>,
    /// Neither within the time.
    pub pending: Vec<String>,
}

impl Members {
    pub(crate) fn new(keys: Keys) -> Members {
        Members {
            keys,
            table: Mutex::new(HashMap::new()),
            changed: watch::channel((0, false)).0,
        }
    }

    /// Whether the watch is open (a commit waits for it a little before giving up).
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

    /// Waits until each of `ids` acknowledged `revision` or is gone, at most `within`.
    pub(crate) async fn wait(&self, ids: &[String], revision: u64, within: Duration) -> Acks {
        let mut rx = self.changed.subscribe();
        let deadline = Instant::now() + within;
        loop {
            rx.borrow_and_update();
            let acks = self.classify(ids, revision);
            if acks.pending.is_empty() {
                return acks;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return self.classify(ids, revision);
            }
        }
    }

    fn classify(&self, ids: &[String], revision: u64) -> Acks {
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let mut acks = Acks {
            confirmed: Vec::new(),
            gone: Vec::new(),
            pending: Vec::new(),
        };
        for id in ids {
            match table.get(id) {
                Some(Member::Applied(r)) if *r >= revision => acks.confirmed.push(id.clone()),
                Some(Member::Gone) => acks.gone.push(id.clone()),
                _ => acks.pending.push(id.clone()),
            }
        }
        acks
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
            let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
            // Keep tombstones: a replica known gone stays gone.
            table.retain(|_, m| *m == Member::Gone);
            for kv in got.kvs() {
                if let Some(r) = decode_replica(kv) {
                    table.insert(r.id, Member::Applied(r.applied_revision));
                }
            }
        }
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(start + 1);
        let mut stream = call(
            "watch the replicas",
            client.watch(self.keys.replicas(), Some(opts)),
        )
        .await
        .map_err(|e| e.to_string())?;
        let prefix = self.keys.replicas();
        self.bump(true);
        loop {
            let msg = match stream.message().await {
                Ok(Some(m)) => m,
                Ok(None) => return Err("the watch stream ended".into()),
                Err(e) => return Err(e.to_string()),
            };
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
                                table.insert(r.id, Member::Applied(r.applied_revision));
                            }
                        }
                        EventType::Delete => {
                            table.insert(id.to_string(), Member::Gone);
                        }
                    }
                }
            }
            self.bump(true);
        }
    }
}
