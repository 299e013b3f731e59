//! Connections to etcd, one endpoint at a time, with our own failover.
//!
//! etcd-client's multi-endpoint balancer keeps sending calls to a dead member
//! (etcdv3/etcd-client#39): with one of three members down, a large share of calls failed. So
//! each client here talks to exactly one endpoint, and whoever sees a call fail asks for the
//! next one ([`Connections::failed`]). Clients require a leader (a member cut off from the
//! majority cancels streams instead of hanging), and send no HTTP/2 keep-alive pings: etcd
//! kills connections that ping more often than its `--grpc-keepalive-min-time` (5 s by
//! default), and the lease keep-alives and watch progress requests already notice a dead peer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};
use tokio::sync::Mutex;

use super::unavailable;
use crate::config::EtcdConfig;
use crate::tokens::StoreError;

/// How long connecting to one endpoint may take before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The shared admin-side client and the endpoint rotation.
#[derive(Clone)]
pub(crate) struct Connections {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: Vec<String>,
    options: ConnectOptions,
    /// The endpoint the next connection starts from.
    next: AtomicUsize,
    /// The admin side's current client (the replica loop keeps its own).
    shared: Mutex<Option<Client>>,
}

impl Connections {
    pub(crate) fn new(cfg: &EtcdConfig) -> Connections {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_require_leader(true);
        if let Some((user, pass)) = &cfg.credentials {
            // etcd's simple auth tokens expire (5 min by default) however busy the client is;
            // without the refresh every call after that fails.
            options = options
                .with_user(user.clone(), pass.expose().to_string())
                .with_auto_token_refresh(true);
        }
        if let Some(tls) = &cfg.tls {
            options = options.with_tls(tls_options(tls));
        }
        Connections {
            inner: Arc::new(Inner {
                endpoints: cfg.endpoints.clone(),
                options,
                // Replicas start on different members, so losing one member does not send
                // every replica into a resync at once.
                next: AtomicUsize::new(rand::random::<u32>() as usize % cfg.endpoints.len().max(1)),
                shared: Mutex::new(None),
            }),
        }
    }

    /// A new client on the first endpoint that answers, starting from the current one.
    pub(crate) async fn connect(&self) -> Result<Client, StoreError> {
        let n = self.inner.endpoints.len();
        let start = self.inner.next.load(Ordering::Relaxed);
        let mut last = String::new();
        for i in 0..n {
            let at = (start + i) % n;
            let endpoint = &self.inner.endpoints[at];
            // `Client::connect` is lazy (no I/O without credentials): a status call proves the
            // member answers and has a leader before anyone relies on this client.
            let probe = async {
                let mut client =
                    Client::connect([endpoint], Some(self.inner.options.clone())).await?;
                let status = client.status().await?;
                Ok::<_, etcd_client::Error>((client, status.leader()))
            };
            match tokio::time::timeout(CONNECT_TIMEOUT * 2, probe).await {
                Ok(Ok((client, leader))) if leader != 0 => {
                    self.inner.next.store(at, Ordering::Relaxed);
                    return Ok(client);
                }
                Ok(Ok(_)) => last = format!("{endpoint}: the member has no leader"),
                Ok(Err(e)) => last = format!("{endpoint}: {e}"),
                Err(_) => last = format!("{endpoint}: no answer"),
            }
        }
        Err(unavailable("no endpoint answers", last))
    }

    /// The shared client, connecting when there is none.
    pub(crate) async fn client(&self) -> Result<Client, StoreError> {
        let mut shared = self.inner.shared.lock().await;
        if let Some(c) = shared.as_ref() {
            return Ok(c.clone());
        }
        let c = self.connect().await?;
        *shared = Some(c.clone());
        Ok(c)
    }

    /// A call on the shared client failed: the next call connects afresh, from the next
    /// endpoint.
    pub(crate) async fn failed(&self) {
        let n = self.inner.endpoints.len().max(1);
        let _ = self
            .inner
            .next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |i| Some((i + 1) % n));
        *self.inner.shared.lock().await = None;
    }

    /// Moves the rotation on after a failure seen by a client of its own (the replica loop).
    pub(crate) fn rotate(&self) {
        let n = self.inner.endpoints.len().max(1);
        let _ = self
            .inner
            .next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |i| Some((i + 1) % n));
    }
}

fn tls_options(tls: &crate::config::EtcdTls) -> etcd_client::TlsOptions {
    let mut opts = etcd_client::TlsOptions::new();
    // Read once, when the backend is made; config resolution checked that the files exist,
    // so a read error here is a race with the operator and is logged, not fatal.
    match std::fs::read(&tls.ca) {
        Ok(pem) => opts = opts.ca_certificate(etcd_client::Certificate::from_pem(pem)),
        Err(e) => log::error!("etcd.tls.ca {}: {e}", tls.ca.display()),
    }
    if let Some((cert, key)) = &tls.identity {
        match (std::fs::read(cert), std::fs::read(key)) {
            (Ok(c), Ok(k)) => opts = opts.identity(etcd_client::Identity::from_pem(c, k)),
            (Err(e), _) | (_, Err(e)) => log::error!("etcd.tls cert/key: {e}"),
        }
    }
    opts
}
