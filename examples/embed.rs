//! Embedding the gate in your own Pingora proxy.
//!
//! This is an operator's proxy, not the `scim-gate` binary: its own `ProxyHttp`, its own
//! per-request context, its own header on every response. The SCIM gate is one call in
//! `request_filter`; the other hooks hand the gate what it needs to forward (upstream peer,
//! rewritten request head, checked body, rewritten locations) exactly as `src/proxy.rs` does.
//!
//! ```text
//! cargo run --example embed -- --config config/scim-gate.yaml
//! ```
//!
//! The config is an ordinary scim-gate config; this example uses its `server.listen`,
//! `base_path`, `upstream`, `tokens` and `policy` sections (no admin socket and no metrics
//! listener here: an embedding proxy has its own).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::upstreams::peer::HttpPeer;
use pingora::Error;
use scim_gate::{Decision, Gate, GateCtx};

/// The operator's proxy.
struct MyProxy {
    gate: Arc<Gate>,
}

/// The operator's per-request state; the gate's lives inside it.
#[derive(Default)]
struct MyCtx {
    gate: GateCtx,
    /// Something of the operator's own: which tenant this request was for, for their logs.
    tenant: Option<String>,
}

#[async_trait]
impl ProxyHttp for MyProxy {
    type CTX = MyCtx;

    fn new_ctx(&self) -> MyCtx {
        MyCtx::default()
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut MyCtx,
    ) -> pingora::Result<bool> {
        // The one call: route, authenticate, check the body.
        match self.gate.request_filter(session, &mut ctx.gate).await? {
            Decision::Forward => {
                ctx.tenant = ctx.gate.tenant().map(str::to_string);
                log::info!(
                    "embed: forwarding for tenant {} (token {})",
                    ctx.gate.tenant().unwrap_or("-"),
                    ctx.gate.token_id().unwrap_or("-")
                );
                Ok(false)
            }
            // The gate already wrote its SCIM error response.
            Decision::Responded => Ok(true),
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut MyCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        Ok(self.gate.upstream_peer(&ctx.gate))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut MyCtx,
    ) -> pingora::Result<()> {
        self.gate
            .upstream_request_filter(upstream_request, &ctx.gate)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut MyCtx,
    ) -> pingora::Result<()> {
        self.gate
            .request_body_filter(body, end_of_stream, &mut ctx.gate)
            .await
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut MyCtx,
    ) -> pingora::Result<()> {
        self.gate
            .response_filter(upstream_response, &mut ctx.gate)?;
        // The operator's own addition.
        upstream_response.insert_header("X-Embedded-By", "example")?;
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut MyCtx,
    ) -> pingora::Result<Option<Duration>> {
        self.gate
            .response_body_filter(body, end_of_stream, &mut ctx.gate);
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut MyCtx,
    ) -> FailToProxy {
        self.gate.fail_to_proxy(session, e, &mut ctx.gate).await
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut MyCtx) {
        self.gate.logging(session, &mut ctx.gate);
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
    let tokens =
        match scim_gate::tokens::TokenStore::open(&cfg.tokens.file, cfg.tokens.max_per_idp, None) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("embed: token file: {e}");
                return std::process::ExitCode::from(1);
            }
        };
    // Hot reload of the token file, as in the sidecar.
    if let Err(e) = scim_gate::tokens::watch::spawn(tokens.clone()) {
        eprintln!("embed: token file not watched: {e}");
    }
    let gate = match Gate::new(&cfg, tokens) {
        Ok(g) => Arc::new(g),
        Err(e) => {
            eprintln!("embed: {e}");
            return std::process::ExitCode::from(1);
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
        MyProxy { gate },
        "embed proxy",
    );
    for addr in &cfg.server.listen {
        proxy.add_tcp(&addr.to_string());
    }
    server.add_service(proxy);
    log::info!(
        "embed: listening on {:?}, SCIM root {}",
        cfg.server.listen,
        cfg.base_path
    );
    server.run_forever()
}
