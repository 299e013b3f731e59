//! Assembles the Pingora server from a validated [`Config`]: the proxy, the admin socket, the
//! metrics listener, the token watcher and the shutdown drain.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::apps::http_app::HttpServer;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;

use crate::admin::AdminApp;
use crate::audit::AuditLog;
use crate::config::Config;
use crate::connections::{fd, ConnectionLimits, LimitedApp};
use crate::gate::Gate;
use crate::metrics::{self, MetricsApp};
use crate::proxy::{DefaultEmbedder, GateProxy};
use crate::tokens::TokenStore;

/// Why the gate could not start. Each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The token file cannot be read or is invalid.
    #[error("token file: {0}")]
    Tokens(#[from] crate::tokens::TokenFileError),
    /// The audit log cannot be opened.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// The upstream URL cannot be resolved into a peer.
    #[error(transparent)]
    Upstream(#[from] crate::upstream::UpstreamError),
    /// A listener cannot be opened (address in use, bad TLS files).
    #[error("cannot listen on {0}")]
    Listen(String),
}

/// Process-level switches of `scim-gate run`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    pub daemon: bool,
    pub upgrade: bool,
}

/// Everything a running gate holds, for callers (the `demo` command) that need the store.
pub struct Built {
    pub server: Server,
    pub tokens: Arc<TokenStore>,
}

/// Opens the audit log and token file, builds every service, and fails with a clear error for
/// everything Pingora would otherwise panic on later (busy ports, missing certificates).
pub fn build(cfg: &Config, opts: RunOptions) -> Result<Built, StartError> {
    metrics::init();
    let audit = Arc::new(AuditLog::open(&cfg.audit.file)?);
    let tokens = TokenStore::from_config(cfg, Some(audit.clone()))?;
    let gate = Arc::new(Gate::new(cfg, tokens.clone())?);
    gate.breakers().set_audit(audit.clone());

    if !opts.upgrade {
        // Pingora panics inside the listening service when a bind fails; check first so the
        // operator gets the address and the reason instead of a backtrace. (With --upgrade the
        // sockets come from the old process and are busy by design.)
        for addr in cfg
            .server
            .listen
            .iter()
            .chain(std::iter::once(&cfg.metrics.listen))
        {
            std::net::TcpListener::bind(addr)
                .map_err(|e| StartError::Listen(format!("{addr}: {e}")))?;
        }
    }

    let run_dir = cfg.admin.socket.parent().unwrap_or(Path::new("."));
    let conf = ServerConf {
        threads: cfg.server.threads,
        daemon: opts.daemon,
        // Pingora sleeps the whole grace period on SIGTERM even when nothing is in flight
        // (pingora-core server/mod.rs, `thread::sleep(exit_timeout)`); the Drain service below
        // exits as soon as the last request is done, this is only the ceiling.
        grace_period_seconds: Some(cfg.server.shutdown_grace.as_secs().max(1)),
        graceful_shutdown_timeout_seconds: Some(1),
        pid_file: run_dir.join("scim-gate.pid").display().to_string(),
        upgrade_sock: run_dir.join("scim-gate-upgrade.sock").display().to_string(),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: opts.upgrade,
        daemon: opts.daemon,
        nocapture: false,
        test: false,
        conf: None,
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let proxy_app = pingora::proxy::http_proxy(
        &server.configuration,
        GateProxy::new(gate.clone(), DefaultEmbedder),
    );
    let mut proxy = Service::new(
        "scim-gate proxy".to_string(),
        LimitedApp::new(proxy_app, connection_limits(cfg)),
    );
    for addr in &cfg.server.listen {
        match &cfg.server.tls {
            None => proxy.add_tcp(&addr.to_string()),
            Some(tls) => proxy
                .add_tls(
                    &addr.to_string(),
                    &tls.cert.display().to_string(),
                    &tls.key.display().to_string(),
                )
                .map_err(|e| StartError::Listen(format!("{addr}: TLS: {e}")))?,
        }
    }
    server.add_service(proxy);

    let mut admin = Service::new(
        "scim-gate admin".to_string(),
        HttpServer::new_app(AdminApp::new(
            tokens.clone(),
            audit,
            cfg.admin.allowed_uids.clone(),
            gate.breakers().clone(),
            gate.decisions().clone(),
        )),
    );
    // Pingora's add_uds defaults to mode 0666; the admin socket must be 0600 (docs/admin-api.md#socket-and-permissions).
    admin.add_uds(
        &cfg.admin.socket.display().to_string(),
        Some(std::fs::Permissions::from_mode(0o600)),
    );
    server.add_service(admin);

    let mut metrics_service = Service::new(
        "scim-gate metrics".to_string(),
        HttpServer::new_app(MetricsApp::new(tokens.clone())),
    );
    metrics_service.add_tcp(&cfg.metrics.listen.to_string());
    server.add_service(metrics_service);

    // Started by Pingora after it daemonised, so the watcher thread survives the fork.
    server.add_service(background_service(
        "token watch",
        TokenFollower(tokens.clone()),
    ));
    server.add_service(background_service(
        "last used",
        LastUsedFlush {
            tokens: tokens.clone(),
            interval: cfg.tokens.last_used_interval,
        },
    ));
    server.add_service(background_service(
        "drain",
        Drain {
            gate: gate.clone(),
            grace: cfg.server.shutdown_grace,
        },
    ));
    Ok(Built { server, tokens })
}

/// The public listener's connection limits. Raises the open-file limit first, and lowers
/// `server.max_connections` (with a warning) when the descriptors it leaves cannot hold that
/// many connections and the reserve (`connections::fd`).
fn connection_limits(cfg: &Config) -> ConnectionLimits {
    let configured = cfg.server.max_connections;
    let max_connections = match fd::raise_open_file_limit() {
        Ok(open_files) => {
            let fit = fd::connections_that_fit(configured, open_files);
            if fit < configured {
                log::warn!(
                    "server.max_connections {configured} lowered to {fit}: the open-file limit \
                     is {open_files} (ulimit -n), a connection may hold two descriptors, and {} \
                     are kept for the admin socket, the token watcher and the metrics",
                    fd::RESERVED
                );
            }
            fit
        }
        Err(e) => {
            log::warn!("cannot read or raise the open-file limit ({e}); keeping server.max_connections {configured}");
            configured
        }
    };
    ConnectionLimits {
        max_connections,
        header_timeout: cfg.server.header_timeout,
        idle_timeout: cfg.server.idle_timeout,
    }
}

/// Writes `last_used_at` back to the token file every `tokens.last_used_interval` when a token
/// was used (docs/token-file.md#last-use); `Drain` writes the rest at shutdown.
struct LastUsedFlush {
    tokens: Arc<TokenStore>,
    interval: Duration,
}

impl LastUsedFlush {
    async fn flush(tokens: &Arc<TokenStore>) {
        if let Err(e) = tokens.flush_last_used().await {
            log::warn!("last use of tokens not written back (will retry): {e}");
        }
    }
}

#[async_trait]
impl BackgroundService for LastUsedFlush {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => Self::flush(&self.tokens).await,
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// A Pingora background service that follows the token state's source (the file watcher, or
/// the cluster replica loop: [`TokenStore::follow`]) and announces expiries twice a second,
/// until shutdown. The sidecar adds it; an embedder adds it too — in cluster mode a store
/// nobody follows never serves (every SCIM request gets 503), so forgetting it fails closed.
pub struct TokenFollower(Arc<TokenStore>);

impl TokenFollower {
    /// The service for `tokens`.
    pub fn new(tokens: Arc<TokenStore>) -> TokenFollower {
        TokenFollower(tokens)
    }
}

/// How often expiries are looked for (lookups never depend on it).
const EXPIRY_TICK: Duration = Duration::from_millis(500);

#[async_trait]
impl BackgroundService for TokenFollower {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let follow = self.0.clone().follow();
        tokio::pin!(follow);
        let mut follow_done = false;
        let mut tick = tokio::time::interval(EXPIRY_TICK);
        let mut last = chrono::Utc::now();
        loop {
            tokio::select! {
                _ = &mut follow, if !follow_done => follow_done = true,
                _ = tick.tick() => {
                    let now = chrono::Utc::now();
                    self.0.announce_expired(last, now);
                    last = now;
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// On graceful shutdown (SIGTERM, or the old process after an upgrade), exits as soon as no
/// request is in flight, and at the latest when `server.shutdown_grace` has passed.
struct Drain {
    gate: Arc<Gate>,
    grace: Duration,
}

#[async_trait]
impl BackgroundService for Drain {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if shutdown.changed().await.is_err() {
            return;
        }
        let deadline = Instant::now() + self.grace;
        // Let the listeners see the shutdown before counting, so no new request sneaks in.
        tokio::time::sleep(Duration::from_millis(50)).await;
        while self.gate.in_flight() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = self.gate.in_flight();
        if left > 0 {
            log::warn!("shutdown grace over with {left} request(s) in flight; exiting");
        } else {
            log::info!("drained; exiting");
        }
        // The last uses since the last write-back, so a restart loses none of them.
        if let Err(e) = self.gate.tokens().flush_last_used().await {
            log::warn!("last use of tokens not written back at shutdown: {e}");
        }
        // In cluster mode: leave at once, so admin calls stop waiting for this replica.
        self.gate.tokens().leave().await;
        crate::logging::flush();
        std::process::exit(0);
    }
}
