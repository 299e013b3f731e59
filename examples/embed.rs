//! Embedding the gate in your own Pingora proxy.
//!
//! This is an operator's proxy, not the `scim-gate` binary: its own per-request state, its own
//! log lines, its own header on every response. It does not wire the gate's hooks itself: it
//! implements the small [`Embedder`] trait, and [`GatedProxy`] runs every gate step (token,
//! route, body checks on every body path, upstream credentials and identity headers, response
//! rewriting, SCIM errors) in every Pingora hook around it. There is no way to forget one.
//!
//! ```text
//! cargo run --example embed -- --config config/scim-gate.yaml
//! ```
//!
//! The config is an ordinary scim-gate config; this example uses its `server.listen`,
//! `base_path`, `upstream`, `tokens` and `policy` sections (no admin socket and no metrics
//! listener here: an embedding proxy has its own).
//!
//! Its own routing: with `EMBED_UPSTREAM=HOST:PORT` set, every admitted request goes to that
//! address instead of the configured upstream (an operator sending tenants to their own
//! directory would decide per `gate.tenant()`). The gate still checks everything first and
//! still writes the upstream request's path, `Host`, credential and identity headers last.

use std::path::PathBuf;
use std::sync::Arc;

use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::upstreams::peer::HttpPeer;
use scim_gate::{Embedder, Gate, GateCtx, GatedProxy, TokenFollower};

/// The operator's additions: a routing choice and a response header.
struct MyProxy {
    /// Where admitted requests go instead of the configured upstream, if set.
    route_to: Option<std::net::SocketAddr>,
}

/// The operator's per-request state (the gate keeps its own beside it).
#[derive(Default)]
struct MyCtx {
    /// Which tenant this request was for, for the operator's logs.
    tenant: Option<String>,
}

impl Embedder for MyProxy {
    type Ctx = MyCtx;

    fn new_ctx(&self) -> MyCtx {
        MyCtx::default()
    }

    /// Called only once the gate has admitted the request.
    async fn admitted(
        &self,
        _session: &mut Session,
        gate: &GateCtx,
        ctx: &mut MyCtx,
    ) -> pingora::Result<()> {
        ctx.tenant = gate.tenant().map(str::to_string);
        log::info!(
            "embed: forwarding for tenant {} (token {})",
            gate.tenant().unwrap_or("-"),
            gate.token_id().unwrap_or("-")
        );
        Ok(())
    }

    /// The operator's own routing: its peer replaces the gate's configured one.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _gate: &GateCtx,
        peer: Box<HttpPeer>,
        _ctx: &mut MyCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        Ok(match &self.route_to {
            Some(addr) => Box::new(HttpPeer::new(*addr, false, String::new())),
            None => peer,
        })
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        _ctx: &mut MyCtx,
    ) -> pingora::Result<()> {
        upstream_response.insert_header("X-Embedded-By", "example")?;
        Ok(())
    }

    async fn logging(
        &self,
        _session: &mut Session,
        _e: Option<&pingora::Error>,
        _gate: &GateCtx,
        ctx: &mut MyCtx,
    ) {
        if let Some(tenant) = &ctx.tenant {
            log::debug!("embed: done with a request for {tenant}");
        }
    }
}

fn config_path() -> Result<PathBuf, String> {
    let mut args = std::env::args().skip(1);
    let mut config = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" | "-c" => config = args.next().map(PathBuf::from),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    config.ok_or_else(|| "usage: embed --config FILE".to_string())
}

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let path = match config_path() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let cfg = match scim_gate::Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("embed: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    // The token file or etcd, as `tokens.backend` says.
    let tokens = match scim_gate::tokens::TokenStore::from_config(&cfg, None) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("embed: token file: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let gate = match Gate::new(&cfg, tokens.clone()) {
        Ok(g) => Arc::new(g),
        Err(e) => {
            eprintln!("embed: {e}");
            return std::process::ExitCode::from(1);
        }
    };

    // Checked once at start: a bad address is an error now, not a failure per request.
    let route_to = match std::env::var("EMBED_UPSTREAM").ok().map(|a| a.parse()) {
        None => None,
        Some(Ok(addr)) => Some(addr),
        Some(Err(e)) => {
            eprintln!("embed: EMBED_UPSTREAM: {e}");
            return std::process::ExitCode::from(2);
        }
    };

    let run_dir = path.parent().map(PathBuf::from).unwrap_or_default();
    let conf = ServerConf {
        threads: cfg.server.threads,
        grace_period_seconds: Some(cfg.server.shutdown_grace.as_secs().max(1)),
        graceful_shutdown_timeout_seconds: Some(1),
        pid_file: run_dir.join("embed.pid").display().to_string(),
        upgrade_sock: run_dir.join("embed-upgrade.sock").display().to_string(),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: false,
        daemon: false,
        nocapture: false,
        test: false,
        conf: None,
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        GatedProxy::new(gate, MyProxy { route_to }),
        "embed proxy",
    );
    for addr in &cfg.server.listen {
        proxy.add_tcp(&addr.to_string());
    }
    server.add_service(proxy);
    // Hot reload of the token file (or, in cluster mode, the replica's lease and watch), as in
    // the sidecar.
    server.add_service(pingora::services::background::background_service(
        "token state",
        TokenFollower::new(tokens),
    ));
    log::info!(
        "embed: listening on {:?}, SCIM root {}",
        cfg.server.listen,
        cfg.base_path
    );
    server.run_forever()
}
