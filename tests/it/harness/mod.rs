//! Test harness: starts the real `scim-gate` binary with a config in a temp folder, in front of
//! an upstream the test chooses (usually the in-process demo directory), and speaks raw
//! HTTP/1.1 to it so odd requests (two Authorization headers, non-ASCII bytes) can be sent as-is.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use scim_gate::config::raw::{
    RawAdmin, RawAudit, RawConfig, RawLimits, RawMetrics, RawServer, RawTokens, RawUpstream,
};
use scim_gate::tokens::secret;

#[cfg(feature = "etcd")]
pub mod etcd;
pub mod in_process;
pub mod proxy;

pub const BIN: &str = env!("CARGO_BIN_EXE_scim-gate");

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A token line for the token file: (plaintext, id, tenant, idp, domains).
pub struct TestToken {
    pub plaintext: String,
    pub id: String,
    pub tenant: String,
    pub idp: String,
    pub status: String,
    pub domains: Vec<String>,
    pub networks: Vec<String>,
    pub expires_at: Option<String>,
}

impl TestToken {
    pub fn new(id: &str) -> TestToken {
        TestToken {
            plaintext: secret::NewToken::generate().expose().to_string(),
            id: id.into(),
            tenant: "acme".into(),
            idp: "okta".into(),
            status: "active".into(),
            domains: vec![],
            networks: vec![],
            expires_at: None,
        }
    }

    pub fn yaml(&self) -> String {
        format!(
            "  - {{id: {}, tenant: {}, idp: {}, status: {}, sha256: {}, domains: [{}], networks: [{}], created_at: 2026-11-22T10:00:00Z, refreshed_at: null, expires_at: {}}}\n",
            self.id,
            self.tenant,
            self.idp,
            self.status,
            secret::to_hex(&secret::sha256(self.plaintext.as_bytes())),
            self.domains.join(", "),
            self.networks
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.expires_at.as_deref().unwrap_or("null"),
        )
    }
}

pub fn token_file(tokens: &[&TestToken]) -> String {
    let mut s = String::from("tokens:\n");
    if tokens.is_empty() {
        return "tokens: []\n".into();
    }
    for t in tokens {
        s.push_str(&t.yaml());
    }
    s
}

/// A running gate process. Killed on drop.
pub struct GateProc {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub metrics_port: u16,
    pub config: PathBuf,
    open_files: Option<u64>,
}

/// How to start a gate: its configuration as a typed value (the library's own serde form,
/// written out as YAML by `configure`) and extra environment variables. The listen ports are
/// chosen when the gate starts.
pub struct GateOpts {
    pub config: RawConfig,
    pub env: Vec<(String, String)>,
    /// The gate's open-file limit (soft and hard), when a test needs a small one.
    pub open_files: Option<u64>,
}

impl GateOpts {
    /// The harness's defaults: short timeouts, files in the gate's temp folder.
    pub fn new(upstream_url: &str) -> GateOpts {
        let config = RawConfig {
            server: Some(RawServer {
                threads: Some(2),
                shutdown_grace: Some(Duration::from_secs(3)),
                body_timeout: Some(Duration::from_secs(3)),
                ..RawServer::default()
            }),
            base_path: Some("/scim/v2".into()),
            upstream: RawUpstream {
                url: upstream_url.into(),
                connect_timeout: Some(Duration::from_secs(1)),
                read_timeout: Some(Duration::from_secs(2)),
                ..RawUpstream::default()
            },
            tokens: Some(RawTokens {
                file: Some("tokens.yaml".into()),
                ..RawTokens::default()
            }),
            admin: Some(RawAdmin {
                socket: Some("admin.sock".into()),
                ..RawAdmin::default()
            }),
            audit: Some(RawAudit {
                file: Some("audit.jsonl".into()),
            }),
            metrics: Some(RawMetrics::default()),
            policy: None,
            // Far above what any test sends, so only the guard tests (`guards.rs`), which set
            // their own, ever meet a limit.
            limits: Some(RawLimits {
                rate: Some(100_000.0),
                burst: Some(100_000),
                upstream_max_in_flight: Some(10_000),
                ..RawLimits::default()
            }),
            guards: None,
            oauth: None,
            etcd: None,
        };
        GateOpts {
            config,
            env: vec![],
            open_files: None,
        }
    }

    /// The `server:` section (always present in the harness's configs).
    pub fn server(&mut self) -> &mut RawServer {
        self.config.server.get_or_insert_with(RawServer::default)
    }
}

impl GateProc {
    /// Writes config + token file into a fresh temp folder and starts the gate; waits until the
    /// proxy port accepts connections.
    pub fn start(opts: GateOpts, tokens: &[&TestToken]) -> GateProc {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("tokens.yaml"), token_file(tokens)).expect("token file");
        GateProc::start_in(dir, opts)
    }

    /// Starts the gate; when a port "free a moment ago" was taken meanwhile (by another test's
    /// client socket: both come from the ephemeral range), picks new ports and tries again.
    pub fn start_in(dir: tempfile::TempDir, opts: GateOpts) -> GateProc {
        let mut proc = GateProc::configure(dir, &opts);
        for attempt in 0.. {
            match proc.try_spawn(&opts.env) {
                Ok(()) => break,
                Err(log) if attempt < 3 && log.contains("cannot listen") => {
                    proc.write_config(&opts)
                }
                Err(log) => panic!("gate exited early: {log}"),
            }
        }
        proc
    }

    /// Writes `gate.yaml` (ports chosen here) and returns the not-yet-started process.
    pub fn configure(dir: tempfile::TempDir, opts: &GateOpts) -> GateProc {
        let config = dir.path().join("gate.yaml");
        let mut proc = GateProc {
            child: None,
            dir,
            port: 0,
            metrics_port: 0,
            config,
            open_files: opts.open_files,
        };
        proc.write_config(opts);
        proc
    }

    /// Chooses the ports and writes `gate.yaml`.
    fn write_config(&mut self, opts: &GateOpts) {
        self.port = free_port();
        self.metrics_port = free_port();
        let mut raw = opts.config.clone();
        raw.server.get_or_insert_with(RawServer::default).listen =
            Some(vec![format!("127.0.0.1:{}", self.port)]);
        let max_tenants = raw.metrics.as_ref().and_then(|m| m.max_tenants);
        raw.metrics = Some(RawMetrics {
            listen: Some(format!("127.0.0.1:{}", self.metrics_port)),
            max_tenants,
        });
        let yaml = serde_yaml::to_string(&raw).expect("a typed config serializes");
        std::fs::write(&self.config, yaml).expect("config");
    }

    /// Starts another program (e.g. the `embed` example) as `program --config gate.yaml` with the
    /// same config a gate would get, and waits until the proxy port accepts connections. It is
    /// not expected to open the admin socket or the metrics port. Killed on drop; `restart`
    /// would start the real gate binary instead.
    pub fn start_program(program: &Path, dir: tempfile::TempDir, opts: GateOpts) -> GateProc {
        let mut proc = GateProc::configure(dir, &opts);
        let log = std::fs::File::create(proc.dir.path().join("gate.log")).expect("log");
        let mut cmd = Command::new(program);
        cmd.arg("--config")
            .arg(&proc.config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        proc.child = Some(cmd.spawn().expect("spawn program"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", proc.port)).is_err() {
            if let Some(Ok(Some(status))) = proc.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "{} exited early ({status}): {}",
                    program.display(),
                    proc.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not start: {}",
                program.display(),
                proc.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        proc
    }

    /// Starts the gate binary; `Err(its log)` when it exited before it was ready.
    fn try_spawn(&mut self, env: &[(String, String)]) -> Result<(), String> {
        let log = std::fs::File::create(self.dir.path().join("gate.log")).expect("log");
        let mut cmd = Command::new(BIN);
        cmd.arg("run")
            .arg("-c")
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Some(n) = self.open_files {
            use std::os::unix::process::CommandExt;
            // SAFETY: between fork and exec only setrlimit runs, which is async-signal-safe.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        self.child = Some(cmd.spawn().expect("spawn gate"));
        self.wait_ready()
    }

    fn spawn(&mut self, env: &[(String, String)]) {
        if let Err(log) = self.try_spawn(env) {
            panic!("gate exited early: {log}");
        }
    }

    /// Restarts a killed gate with the same config (same ports).
    pub fn restart(&mut self, env: &[(String, String)]) {
        self.kill();
        self.spawn(env);
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // Connect, not just `exists()`: after a SIGKILL the stale socket file is still there
            // until the new process has bound its own.
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && std::os::unix::net::UnixStream::connect(self.admin_socket()).is_ok()
            {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                return Err(format!("({status}) {}", self.log()));
            }
            assert!(
                Instant::now() < deadline,
                "gate did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn admin_socket(&self) -> PathBuf {
        self.path("admin.sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("gate.log")).unwrap_or_default()
    }

    pub fn metrics(&self) -> String {
        let r = send(
            SocketAddr::from(([127, 0, 0, 1], self.metrics_port)),
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        String::from_utf8_lossy(&r.body).into_owned()
    }

    /// A request with a bearer token (or none) and an optional JSON body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Response {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
            self.port
        );
        if let Some(t) = token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            ));
        } else {
            req.push_str("\r\n");
        }
        send(self.addr(), req.as_bytes())
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// One admin call over the Unix socket (panics if the socket cannot be reached).
    pub fn admin(&self, method: &str, path: &str, body: Option<&str>) -> Response {
        admin_request(&self.admin_socket(), method, path, body).expect("admin socket")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("running")
    }
}

impl Drop for GateProc {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends raw bytes (which should ask for `Connection: close`) and parses the one response.
pub fn send(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    s.write_all(raw).expect("write");
    read_response(&mut s)
}

/// Reads one response: head, then a Content-Length or chunked body (or until close).
pub fn read_response<S: Read>(s: &mut S) -> Response {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => panic!(
                "connection ended before a response head: {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let find = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if status == 100 {
        return read_response(s);
    }
    if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        s.read_exact(&mut body).expect("body");
    } else if find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        loop {
            let mut line = Vec::new();
            while !line.ends_with(b"\r\n") {
                s.read_exact(&mut byte).expect("chunk size");
                line.push(byte[0]);
            }
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&line)
                    .trim()
                    .split(';')
                    .next()
                    .unwrap_or("0"),
                16,
            )
            .expect("chunk size");
            let mut chunk = vec![0u8; size + 2];
            s.read_exact(&mut chunk).expect("chunk");
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if status != 204 && status != 304 {
        let _ = s.read_to_end(&mut body);
    }
    Response {
        status,
        headers,
        body,
    }
}

/// One HTTP/1.1 request over the admin Unix socket; `Err` if the socket cannot be reached or
/// the connection breaks (a killed gate), so callers that expect that can handle it.
pub fn admin_request(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<Response> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    match body {
        Some(b) => req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => req.push_str("Content-Length: 0\r\n\r\n"),
    }
    admin_raw(socket, req.as_bytes())
}

/// Raw bytes over the admin socket, one response back.
pub fn admin_raw(socket: &Path, raw: &[u8]) -> std::io::Result<Response> {
    let mut s = std::os::unix::net::UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    s.write_all(raw)?;
    // `read_response` panics on a broken stream; turn that into an error here.
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    if buf.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "no response",
        ));
    }
    let mut cursor = std::io::Cursor::new(buf);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_response(&mut cursor)))
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "torn response"))
}

/// Polls `f` until it is true or `limit` passes; returns whether it became true.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A kernel-reported memory figure of a process, in KiB (`VmRSS`, `VmHWM`, … of
/// `/proc/PID/status`).
pub fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("field in /proc status")
}

/// Every file below `dir` as lossy text (for secret greps).
pub fn all_files_text(dir: &Path) -> String {
    let mut out = String::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.push_str(&all_files_text(&p));
            } else if let Ok(b) = std::fs::read(&p) {
                out.push_str(&String::from_utf8_lossy(&b));
            }
        }
    }
    out
}

impl GateProc {
    /// A request whose header lines (without CRLF) are given as raw bytes, so tests can send
    /// duplicates, odd spacing and non-ASCII bytes exactly. `Host` and `Connection: close` are added.
    pub fn raw_request(&self, method: &str, path: &str, header_lines: &[&[u8]]) -> Response {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
            self.port
        )
        .into_bytes();
        for line in header_lines {
            req.extend_from_slice(line);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"\r\n");
        send(self.addr(), &req)
    }

    /// The value of one sample line of /metrics (`name{labels}`), 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics(), series)
    }

    /// Whether the gate's log shows `needle` within 5 s. The gate writes its log in batches
    /// every few milliseconds (`logging.rs`), so a line logged just now may not be in the file
    /// yet: every positive check of the log goes through here.
    pub fn log_shows(&self, needle: &str) -> bool {
        eventually(Duration::from_secs(5), || self.log().contains(needle))
    }

    /// The log once every request counted in `scim_gate_requests_total` has its access line
    /// in the file (at most 5 s), so that a check that something is *absent* from the log
    /// looks at every line the requests so far produced.
    pub fn flushed_log(&self) -> String {
        let counted = metric_sum(&self.metrics(), "scim_gate_requests_total", &[]);
        let access_lines = |log: &str| log.lines().filter(|l| l.contains(" access]")).count();
        eventually(Duration::from_secs(5), || {
            access_lines(&self.log()) as f64 >= counted
        });
        self.log()
    }
}

/// The value of the sample whose name-and-labels part equals `series` exactly
/// (e.g. `scim_gate_token_reloads_total{result="error"}`); 0 when absent.
pub fn metric_value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(k, _)| *k == series)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The sum of every sample of metric `name` whose labels contain all of `labels`
/// (each like `kind="timeout"`).
pub fn metric_sum(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(k, _)| {
            k.split('{').next() == Some(name) && labels.iter().all(|lab| k.contains(lab))
        })
        .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
        .sum()
}

/// Asserts a gate-made SCIM error (RFC 7644 §3.12) with this status and, when given, scimType.
pub fn assert_scim_error(r: &Response, status: u16, scim_type: Option<&str>) {
    assert_eq!(r.status, status, "status; body: {}", r.text());
    let ct = r.header("content-type").unwrap_or("");
    assert!(
        ct.starts_with("application/scim+json"),
        "Content-Type {ct:?} for a {status}"
    );
    let v = r.json();
    assert_eq!(
        v["schemas"],
        serde_json::json!(["urn:ietf:params:scim:api:messages:2.0:Error"]),
        "SCIM error body: {}",
        r.text()
    );
    assert_eq!(
        v["status"],
        serde_json::json!(status.to_string()),
        "status member: {}",
        r.text()
    );
    if let Some(t) = scim_type {
        assert_eq!(
            v["scimType"],
            serde_json::json!(t),
            "scimType: {}",
            r.text()
        );
    }
}
