//! A bare Pingora passthrough with no checks: the floor the load benchmark compares scim-gate
//! against (same stack, same upstream, nothing but forwarding).
//!
//!     passthrough --listen 127.0.0.1:8081 --upstream 127.0.0.1:18080 [--no-modules] [--timeouts]
//!
//! `--no-modules` drops the disabled compression module Pingora installs by default, as the
//! gate does: the benchmarks' second floor, "the passthrough with the gate's knobs".
//! `--timeouts` gives the upstream peer the timeouts the gate's peer always has (connect, read,
//! write, idle: `upstream.connect_timeout` and `upstream.read_timeout`), so the benchmarks can
//! show what Pingora's per-read timers cost apart from what the gate adds.

use async_trait::async_trait;
use clap::Parser;
use pingora::prelude::*;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    listen: String,
    #[arg(long)]
    upstream: String,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// No downstream modules (Pingora's default is a disabled compression module).
    #[arg(long)]
    no_modules: bool,
    /// The gate's upstream timeouts on the peer (Pingora then times every upstream read/write).
    #[arg(long)]
    timeouts: bool,
}

struct Passthrough {
    upstream: std::net::SocketAddr,
    no_modules: bool,
    timeouts: bool,
}

#[async_trait]
impl ProxyHttp for Passthrough {
    type CTX = ();
    fn new_ctx(&self) {}

    fn init_downstream_modules(&self, modules: &mut pingora::modules::http::HttpModules) {
        if !self.no_modules {
            modules.add_module(
                pingora::modules::http::compression::ResponseCompressionBuilder::enable(0),
            );
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream, false, String::new());
        if self.timeouts {
            // The gate's defaults (docs/configuration.md): connect 2 s, read 30 s.
            let o = &mut peer.options;
            o.connection_timeout = Some(std::time::Duration::from_secs(2));
            o.total_connection_timeout = Some(std::time::Duration::from_secs(2));
            o.read_timeout = Some(std::time::Duration::from_secs(30));
            o.write_timeout = Some(std::time::Duration::from_secs(30));
            o.idle_timeout = Some(std::time::Duration::from_secs(60));
        }
        Ok(Box::new(peer))
    }
}

pub fn main() {
    let args = Args::parse();
    let upstream = match args.upstream.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("passthrough: --upstream must be HOST:PORT with an IP: {e}");
            std::process::exit(2);
        }
    };
    let conf = pingora::server::configuration::ServerConf {
        threads: args.threads,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(
        &server.configuration,
        Passthrough {
            upstream,
            no_modules: args.no_modules,
            timeouts: args.timeouts,
        },
    );
    proxy.add_tcp(&args.listen);
    server.add_service(proxy);
    server.run_forever();
}
