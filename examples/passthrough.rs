//! A bare Pingora passthrough with no checks: the floor the load benchmark compares scim-gate
//! against (same stack, same upstream, nothing but forwarding).
//!
//!     passthrough --listen 127.0.0.1:8081 --upstream 127.0.0.1:18080 [--no-modules]
//!
//! `--no-modules` drops the disabled compression module Pingora installs by default, as the
//! gate does: the benchmarks' second floor, "the passthrough with the gate's knobs".

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
}

struct Passthrough {
    upstream: std::net::SocketAddr,
    no_modules: bool,
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
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
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
        },
    );
    proxy.add_tcp(&args.listen);
    server.add_service(proxy);
    server.run_forever();
}
