//! `scim-gate demo`: the real gate in front of the in-memory demo directory, with a fresh token
//! printed once and three curl lines that work as printed.

use std::process::ExitCode;

use scim_demo::DemoServer;

use crate::config::Config;
use crate::server::{self, RunOptions};
use crate::tokens::{Change, Idp};

pub fn run(port: u16, directory_only: bool) -> ExitCode {
    let started = match directory_only {
        true => directory(port),
        false => start(port),
    };
    match started {
        Ok(code) => code,
        Err(e) => {
            eprintln!("scim-gate demo: {e}");
            ExitCode::from(1)
        }
    }
}

/// `--directory-only`: just the in-memory demo directory on `port`, for demos that run their
/// own gates in front of it (scripts/cluster-demo.sh).
fn directory(port: u16) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let directory = DemoServer::start("/v2", &format!("127.0.0.1:{port}"))?;
    println!(
        "DEMO directory (in memory, not a product): {}",
        directory.base_url()
    );
    loop {
        std::thread::park();
    }
}

fn start(port: u16) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let directory = DemoServer::start("/v2", "127.0.0.1:0")?;
    let dir = std::env::temp_dir().join(format!("scim-gate-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let metrics_port = port.checked_add(1).ok_or("--port must be below 65535")?;
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:{port} }}\nbase_path: /scim/v2\nupstream: {{ url: {} }}\nmetrics: {{ listen: 127.0.0.1:{metrics_port} }}\n",
        directory.base_url()
    );
    let cfg = Config::from_yaml(&yaml, "<demo>", &dir)?;
    let built = server::build(&cfg, RunOptions::default())?;
    let create = built.tokens.apply(
        Change::Create {
            tenant: "demo".into(),
            idp: Idp::Other,
            domains: vec![],
            networks: vec![],
            expires_at: None,
        },
        None,
    );
    let created = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(create)?;
    let token = created.changed.token.ok_or("no token was created")?;
    let base = format!("http://127.0.0.1:{port}/scim/v2");
    println!("scim-gate demo — the gate in front of an in-memory DEMO directory (not a product; data is lost on exit)");
    println!();
    println!("token (shown once): {}", token.expose());
    println!();
    println!("Try:");
    println!(
        "  curl -s -H 'Authorization: Bearer {}' {base}/Users",
        token.expose()
    );
    println!(
        "  curl -s -H 'Authorization: Bearer {}' -H 'Content-Type: application/scim+json' -d '{{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"ada@example.com\",\"name\":{{\"givenName\":\"Ada\",\"familyName\":\"Lovelace\"}}}}' {base}/Users",
        token.expose()
    );
    println!(
        "  curl -s -H 'Authorization: Bearer {}' '{base}/Users?filter=userName%20eq%20%22ada@example.com%22'",
        token.expose()
    );
    println!();
    println!(
        "admin socket: {}   metrics: http://127.0.0.1:{metrics_port}/metrics   token file: {}",
        cfg.admin.socket.display(),
        cfg.tokens.file.display()
    );
    drop(token);
    // The directory lives as long as the process; run_forever never returns.
    let _directory = directory;
    built.server.run_forever()
}
