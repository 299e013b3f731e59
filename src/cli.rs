//! The command line (docs/admin-api.md#cli, docs/operations.md#running). Exit status: 0 success, 1 refused by the gate (or a start
//! failure), 2 usage (clap's own code for usage errors).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

use crate::client::AdminClient;
use crate::config::raw::RawConfig;
use crate::config::{defaults, Config};
use crate::server::{self, RunOptions};
use crate::tokens::secret;

#[derive(Parser)]
#[command(
    name = "scim-gate",
    version,
    about = "A SCIM 2.0 token gate on Pingora"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the gate (a Pingora server).
    Run {
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
        #[arg(long)]
        daemon: bool,
        /// Take the listeners over from a running gate (send it SIGQUIT afterwards).
        #[arg(long)]
        upgrade: bool,
    },
    /// The gate in front of an in-memory demo directory, with a fresh token and curl lines.
    Demo {
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Serve only the in-memory demo directory on --port, with no gate (for demos that
        /// run their own gates in front of it, like scripts/cluster-demo.sh).
        #[arg(long)]
        directory_only: bool,
    },
    /// Validate a config file and print the effective configuration.
    CheckConfig {
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
    },
    /// Read a token on stdin and print its SHA-256 in hex (for editing the token file by hand).
    HashToken,
    /// Manage tokens over the admin socket.
    Token(TokenArgs),
    /// List or release tripped destructive-change guards over the admin socket.
    Guard(GuardArgs),
    /// Cluster mode: the replicas sharing the token state in etcd (docs/cluster.md).
    Cluster(ClusterArgs),
    /// Cluster mode: copy a token file's records into etcd (ids and hashes kept).
    Tokens(TokensArgs),
    /// The gate's recent refusals, newest last, with their reason codes (docs/troubleshooting.md).
    Decisions {
        #[command(flatten)]
        admin: AdminTarget,
        /// Only this token's refusals.
        #[arg(long = "token")]
        token: Option<String>,
        /// Keep printing new refusals as they happen (polls every second; Ctrl-C stops).
        #[arg(long)]
        follow: bool,
    },
    /// A web console for admins on loopback; prints a one-time sign-in link.
    Console {
        #[arg(long, conflicts_with = "config")]
        socket: Option<PathBuf>,
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
        /// Loopback address to listen on (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// The gate's public SCIM base URL, shown with a new token (default: from the config).
        #[arg(long)]
        scim_url: Option<String>,
    },
}

/// Where an admin command finds the admin socket, and how it prints (shared by `token`,
/// `guard` and `decisions`).
#[derive(Args)]
struct AdminTarget {
    /// The admin socket.
    #[arg(long, global = true, conflicts_with = "config")]
    socket: Option<PathBuf>,
    /// Find the admin socket from this config file.
    #[arg(short = 'c', long = "config", global = true)]
    config: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

impl AdminTarget {
    /// The client for the admin socket, or exit status 2 after saying why (no socket given).
    fn client(&self) -> Result<AdminClient, ExitCode> {
        match socket_path(&self.socket, &self.config) {
            Ok(socket) => Ok(AdminClient::new(&socket)),
            Err(e) => {
                eprintln!("scim-gate: {e}");
                Err(ExitCode::from(2))
            }
        }
    }
}

#[derive(Args)]
struct TokenArgs {
    #[command(flatten)]
    admin: AdminTarget,
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Args)]
struct GuardArgs {
    #[command(flatten)]
    admin: AdminTarget,
    #[command(subcommand)]
    command: GuardCommand,
}

#[derive(Args)]
struct ClusterArgs {
    #[command(flatten)]
    admin: AdminTarget,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// The state's revision and every registered replica: applied revision, serving or not.
    Status,
}

#[derive(Args)]
struct TokensArgs {
    #[command(subcommand)]
    command: TokensCommand,
}

#[derive(Subcommand)]
enum TokensCommand {
    /// Copy the records of a token file into etcd, keeping ids and hashes (IdPs change
    /// nothing); refuses ids that already exist there. Talks to etcd directly, so the gate
    /// need not run.
    Import {
        /// The token file to copy.
        #[arg(long = "from")]
        from: PathBuf,
        /// The gate's config (tokens.backend: etcd, and its etcd: section).
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum GuardCommand {
    /// The tokens whose destructive-change guard is tripped.
    List,
    /// Let a token's destructive requests through again (after reviewing them); restarts its
    /// window.
    Release { token_id: String },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token; the secret is printed once, alone on the first line.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        idp: String,
        #[arg(long = "domain")]
        domains: Vec<String>,
        /// A client network (CIDR) the token may be used from; repeatable. None: any.
        #[arg(long = "network")]
        networks: Vec<String>,
        #[arg(long)]
        expires_in: Option<String>,
    },
    List,
    /// New secret for the same id; the old secret is dead when this returns.
    Refresh {
        id: String,
    },
    Activate {
        id: String,
    },
    Deactivate {
        id: String,
    },
    Delete {
        id: String,
    },
}

/// Parses the arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init();
    if !matches!(
        cli.command,
        Command::Run { .. } | Command::Demo { .. } | Command::Console { .. }
    ) {
        // A command whose output is cut short (`token create … | head -1`) ends quietly as
        // Unix tools do, instead of panicking on the closed pipe: Rust ignores SIGPIPE by
        // default, so `println!` sees EPIPE. The servers keep ignoring it.
        // SAFETY: restoring a signal's default disposition has no preconditions.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let code = match cli.command {
        Command::Run {
            config,
            daemon,
            upgrade,
        } => run(&config, RunOptions { daemon, upgrade }),
        Command::Demo {
            port,
            directory_only,
        } => crate::demo_cmd::run(port, directory_only),
        Command::CheckConfig { config } => check_config(&config),
        Command::HashToken => hash_token(),
        Command::Token(args) => token(args),
        Command::Guard(args) => guard(args),
        Command::Cluster(args) => cluster(&args),
        Command::Tokens(args) => tokens(&args),
        Command::Decisions {
            admin,
            token,
            follow,
        } => decisions(&admin, token.as_deref(), follow),
        Command::Console {
            socket,
            config,
            listen,
            scim_url,
        } => crate::console::run(&crate::console::ConsoleOptions {
            config,
            socket,
            listen,
            scim_url,
        }),
    };
    crate::logging::flush();
    code
}

fn run(config: &Path, opts: RunOptions) -> ExitCode {
    let cfg = match Config::load(config) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    match server::build(&cfg, opts) {
        Ok(built) => {
            log::info!(
                "scim-gate listening on {:?} (base path {}), upstream {}",
                cfg.server.listen,
                cfg.base_path,
                cfg.upstream.url
            );
            built.server.run_forever()
        }
        Err(e) => fail(&e),
    }
}

/// One admin call; the answer's JSON body on a 2xx, else the exit status after saying why on
/// stderr (1: refused by the gate or unreachable).
fn admin_call(
    client: &AdminClient,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, ExitCode> {
    let reply = client.call(method, path, body).map_err(|e| fail(&e))?;
    if !(200..300).contains(&reply.status) {
        let msg = reply.body["error"].as_str().unwrap_or("refused");
        eprintln!("scim-gate: {} ({})", msg, reply.status);
        return Err(ExitCode::from(1));
    }
    Ok(reply.body)
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    crate::logging::flush();
    eprintln!("scim-gate: {e}");
    ExitCode::from(1)
}

fn check_config(config: &Path) -> ExitCode {
    match Config::load(config) {
        Ok(cfg) => {
            print!("{}", cfg.to_yaml());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn cluster(args: &ClusterArgs) -> ExitCode {
    let client = match args.admin.client() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let ClusterCommand::Status = args.command;
    let body = match admin_call(&client, "GET", "/cluster", None) {
        Ok(body) => body,
        Err(code) => return code,
    };
    if args.admin.json {
        println!("{body}");
        return ExitCode::SUCCESS;
    }
    println!("revision {}", body["revision"]);
    println!(
        "{:<24} {:<8} {:>10} {:<20} STARTED",
        "REPLICA", "STATE", "APPLIED", "HOST"
    );
    for r in body["replicas"].as_array().into_iter().flatten() {
        println!(
            "{:<24} {:<8} {:>10} {:<20} {}",
            r["id"].as_str().unwrap_or(""),
            if r["serving"] == true {
                "serving"
            } else {
                "fenced"
            },
            r["applied_revision"].as_u64().unwrap_or(0),
            r["host"].as_str().unwrap_or(""),
            r["started_at"].as_str().unwrap_or(""),
        );
    }
    ExitCode::SUCCESS
}

fn tokens(args: &TokensArgs) -> ExitCode {
    let TokensCommand::Import { from, config } = &args.command;
    let cfg = match Config::load(config) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let bytes = match std::fs::read(from) {
        Ok(b) => b,
        Err(e) => return fail(&format!("{}: {e}", from.display())),
    };
    let records = match crate::tokens::file::parse(&bytes, cfg.tokens.max_per_idp) {
        Ok(r) => r,
        Err(e) => return fail(&format!("{}: {e}", from.display())),
    };
    import(&cfg, &records)
}

#[cfg(feature = "etcd")]
fn import(cfg: &Config, records: &[crate::tokens::TokenRecord]) -> ExitCode {
    let Some(etcd) = &cfg.etcd else {
        return fail(
            &"tokens import needs tokens.backend: etcd and an etcd: section in the config",
        );
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let done = runtime.block_on(crate::tokens::backend::etcd::import(
        etcd,
        cfg.tokens.max_per_idp,
        records,
    ));
    match done {
        Ok(i) => {
            println!(
                "imported {} token(s) into {} at revision {}",
                i.count, etcd.prefix, i.revision
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

#[cfg(not(feature = "etcd"))]
fn import(_cfg: &Config, _records: &[crate::tokens::TokenRecord]) -> ExitCode {
    fail(&"this build of scim-gate has no etcd support (cargo feature etcd)")
}

fn hash_token() -> ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        return fail(&format!("cannot read stdin: {e}"));
    }
    // A trailing newline from `echo` is not part of the token.
    let token = input.trim_end_matches(['\r', '\n']);
    if token.is_empty() {
        return fail(&"no token on stdin");
    }
    println!("{}", secret::to_hex(&secret::sha256(token.as_bytes())));
    ExitCode::SUCCESS
}

fn socket_path(socket: &Option<PathBuf>, config: &Option<PathBuf>) -> Result<PathBuf, String> {
    match (socket, config) {
        (Some(s), _) => Ok(s.clone()),
        (None, Some(c)) => socket_from_config(c),
        (None, None) => Err("admin commands need --socket PATH or -c CONFIG".into()),
    }
}

/// The admin socket named by a config file. Only the YAML is read, not the whole config
/// validated: an admin's shell usually lacks the gate's environment (`upstream.authorization_env`)
/// and may not be able to read its TLS key, and neither matters for finding the socket.
fn socket_from_config(path: &Path) -> Result<PathBuf, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let cfg: RawConfig =
        serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let socket = cfg
        .admin
        .and_then(|a| a.socket)
        .unwrap_or_else(|| PathBuf::from(defaults::ADMIN_SOCKET));
    if socket.is_absolute() {
        return Ok(socket);
    }
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok(base.join(socket))
}

fn token(args: TokenArgs) -> ExitCode {
    let client = match args.admin.client() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (method, path, body) = match &args.command {
        TokenCommand::Create {
            tenant,
            idp,
            domains,
            networks,
            expires_in,
        } => {
            let mut b = json!({ "tenant": tenant, "idp": idp, "domains": domains });
            if let (false, Some(obj)) = (networks.is_empty(), b.as_object_mut()) {
                obj.insert("networks".into(), json!(networks));
            }
            if let (Some(e), Some(obj)) = (expires_in, b.as_object_mut()) {
                obj.insert("expires_in".into(), Value::String(e.clone()));
            }
            ("POST", "/tokens".to_string(), Some(b))
        }
        TokenCommand::List => ("GET", "/tokens".to_string(), None),
        TokenCommand::Refresh { id } => ("POST", format!("/tokens/{}/refresh", enc(id)), None),
        TokenCommand::Activate { id } => ("POST", format!("/tokens/{}/activate", enc(id)), None),
        TokenCommand::Deactivate { id } => {
            ("POST", format!("/tokens/{}/deactivate", enc(id)), None)
        }
        TokenCommand::Delete { id } => ("DELETE", format!("/tokens/{}", enc(id)), None),
    };
    let reply = match admin_call(&client, method, &path, body.as_ref()) {
        Ok(body) => body,
        Err(code) => return code,
    };
    print_reply(&args, &reply);
    ExitCode::SUCCESS
}

fn decisions(admin: &AdminTarget, token: Option<&str>, follow: bool) -> ExitCode {
    let as_json = admin.json;
    let client = match admin.client() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut since: Option<String> = None;
    loop {
        let mut path = "/decisions?limit=1000".to_string();
        if let Some(t) = token {
            path.push_str(&format!("&token_id={}", enc(t)));
        }
        if let Some(s) = &since {
            path.push_str(&format!("&since={}", enc(s)));
        }
        let reply = match admin_call(&client, "GET", &path, None) {
            Ok(body) => body,
            Err(code) => return code,
        };
        let list = reply["decisions"].as_array().cloned().unwrap_or_default();
        // Oldest first, so a followed log reads top to bottom.
        for d in list.iter().rev() {
            if as_json {
                println!("{d}");
            } else {
                println!(
                    "{} {} {:<22} {:<14} {:<6} {:<12} {}",
                    d["time"].as_str().unwrap_or(""),
                    d["status"],
                    d["reason"].as_str().unwrap_or(""),
                    d["token_id"].as_str().unwrap_or("-"),
                    d["method"].as_str().unwrap_or(""),
                    d["route"].as_str().unwrap_or(""),
                    d["detail"].as_str().unwrap_or(""),
                );
            }
        }
        if let Some(newest) = list.first().and_then(|d| d["time"].as_str()) {
            since = Some(newest.to_string());
        }
        if !follow {
            return ExitCode::SUCCESS;
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

fn guard(args: GuardArgs) -> ExitCode {
    let client = match args.admin.client() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (method, path) = match &args.command {
        GuardCommand::List => ("GET", "/guards".to_string()),
        GuardCommand::Release { token_id } => {
            ("POST", format!("/guards/{}/release", enc(token_id)))
        }
    };
    let reply = match admin_call(&client, method, &path, None) {
        Ok(body) => body,
        Err(code) => return code,
    };
    if args.admin.json {
        println!("{reply}");
        return ExitCode::SUCCESS;
    }
    match &args.command {
        GuardCommand::List => {
            let guards = reply["guards"].as_array().cloned().unwrap_or_default();
            if guards.is_empty() {
                println!("no guard is tripped");
            } else {
                println!(
                    "{:<14} {:<12} {:<10} {:<12} TRIPPED_AT",
                    "TOKEN", "TENANT", "IDP", "GUARD"
                );
                for g in guards {
                    println!(
                        "{:<14} {:<12} {:<10} {:<12} {}",
                        g["token_id"].as_str().unwrap_or(""),
                        g["tenant"].as_str().unwrap_or(""),
                        g["idp"].as_str().unwrap_or(""),
                        g["guard"].as_str().unwrap_or(""),
                        g["tripped_at"].as_str().unwrap_or(""),
                    );
                }
            }
        }
        GuardCommand::Release { token_id } => {
            println!("released the destructive-change guard of {token_id}");
        }
    }
    ExitCode::SUCCESS
}

/// Percent-encodes an id for a path segment, leaving RFC 3986 unreserved characters (ids are
/// `tok_…`) as they are.
fn enc(id: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'_')
        .remove(b'-')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(id, SEGMENT).to_string()
}

/// The secret alone on the first line (so `TOKEN=$(… | head -1)` works), then details.
fn print_reply(args: &TokenArgs, body: &Value) {
    if let Some(t) = body["token"].as_str() {
        println!("{t}");
    }
    if args.admin.json {
        match &args.command {
            // 204 has no body; a script reading --json still gets one object.
            TokenCommand::Delete { id } => println!("{}", json!({ "id": id, "deleted": true })),
            _ => println!("{body}"),
        }
        return;
    }
    match &args.command {
        TokenCommand::List => {
            let tokens = body["tokens"].as_array().cloned().unwrap_or_default();
            let now = chrono::Utc::now();
            println!(
                "{:<14} {:<12} {:<10} {:<9} {:<21} {:<38} DOMAINS",
                "ID", "TENANT", "IDP", "STATUS", "EXPIRES", "LAST USED"
            );
            for t in &tokens {
                println!(
                    "{:<14} {:<12} {:<10} {:<9} {:<21} {:<38} {}",
                    t["id"].as_str().unwrap_or(""),
                    t["tenant"].as_str().unwrap_or(""),
                    t["idp"].as_str().unwrap_or(""),
                    t["status"].as_str().unwrap_or(""),
                    t["expires_at"].as_str().unwrap_or("never"),
                    last_used(&t["last_used_at"], now),
                    join(&t["domains"]),
                );
            }
            for warning in half_done_rotations(&tokens) {
                eprintln!("warning: {warning}");
            }
        }
        TokenCommand::Delete { id } => println!("deleted {id}"),
        _ => {
            println!(
                "id: {}\ntenant: {}\nidp: {}\nstatus: {}\ndomains: {}\nnetworks: {}\nexpires_at: {}",
                body["id"].as_str().unwrap_or(""),
                body["tenant"].as_str().unwrap_or(""),
                body["idp"].as_str().unwrap_or(""),
                body["status"].as_str().unwrap_or(""),
                join(&body["domains"]),
                join(&body["networks"]),
                body["expires_at"].as_str().unwrap_or("never"),
            );
            if body["token"].is_string() {
                println!("(the token above is shown once; the gate keeps only its SHA-256)");
            }
            if let Some(rev) = body["revision"].as_u64() {
                println!(
                    "revision: {rev}\nconfirmed by: {}",
                    join(&body["confirmed"])
                );
            }
            if body["fenced"].as_array().is_some_and(|a| !a.is_empty()) {
                let fenced = join(&body["fenced"]);
                eprintln!(
                    "warning: replicas {fenced} did not confirm in time and were fenced: they refuse every request until they have caught up"
                );
            }
        }
    }
}

/// "never", or how long ago with the time: `3 min ago (2026-12-07T00:40:12Z)`.
fn last_used(v: &Value, now: chrono::DateTime<chrono::Utc>) -> String {
    let Some(text) = v.as_str() else {
        return "never".into();
    };
    let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) else {
        return text.to_string();
    };
    let secs = (now - at.with_timezone(&chrono::Utc)).num_seconds().max(0);
    let ago = match secs {
        0..=59 => "just now".to_string(),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    };
    format!("{ago} ({})", at.format("%Y-%m-%dT%H:%M:%SZ"))
}

/// A (tenant, idp) with two active tokens whose newer one has never been used: a rotation
/// half done — the IdP still sends the older token, and deleting it now would stop provisioning.
fn half_done_rotations(tokens: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    let active: Vec<&Value> = tokens.iter().filter(|t| t["status"] == "active").collect();
    for (i, a) in active.iter().enumerate() {
        for b in &active[i + 1..] {
            if a["tenant"] != b["tenant"] || a["idp"] != b["idp"] {
                continue;
            }
            let made = |t: &Value| {
                t["refreshed_at"]
                    .as_str()
                    .or(t["created_at"].as_str())
                    .unwrap_or("")
                    .to_string()
            };
            let (older, newer) = if made(a) <= made(b) { (a, b) } else { (b, a) };
            if newer["last_used_at"].is_null() {
                out.push(format!(
                    "{}/{} has two active tokens and the newer one, {}, has never been used: the \
                     IdP still sends {}. Paste {} into the IdP and wait for it to be used before \
                     deleting {}.",
                    newer["tenant"].as_str().unwrap_or(""),
                    newer["idp"].as_str().unwrap_or(""),
                    newer["id"].as_str().unwrap_or(""),
                    older["id"].as_str().unwrap_or(""),
                    newer["id"].as_str().unwrap_or(""),
                    older["id"].as_str().unwrap_or(""),
                ));
            }
        }
    }
    out
}

fn join(v: &Value) -> String {
    let items: Vec<&str> = v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if items.is_empty() {
        "(any)".into()
    } else {
        items.join(",")
    }
}
