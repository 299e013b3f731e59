//! Test harness: starts the real `scim-gate` binary with a config in a temp folder, in front of
//! an upstream the test chooses (usually the in-process demo directory), and speaks raw
//! HTTP/1.1 to it so odd requests (two Authorization headers, non-ASCII bytes) can be sent as-is.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use scim_gate::tokens::secret;

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
            expires_at: None,
        }
    }

    pub fn yaml(&self) -> String {
        format!(
            "  - {{id: {}, tenant: {}, idp: {}, status: {}, sha256: {}, domains: [{}], created_at: 2026-11-22T10:00:00Z, refreshed_at: null, expires_at: {}}}\n",
            self.id,
            self.tenant,
            self.idp,
            self.status,
            secret::to_hex(&secret::sha256(self.plaintext.as_bytes())),
            self.domains.join(", "),
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
}

pub struct GateOpts {
    pub upstream_url: String,
    /// Extra top-level YAML appended to the config (e.g. a `policy:` block).
    pub extra: String,
    /// Extra keys for the `server:` map, e.g. `tls: {cert: c.pem, key: k.pem}`.
    pub server_extra: String,
    /// Extra keys for the `upstream:` map.
    pub upstream_extra: String,
    pub env: Vec<(String, String)>,
}

impl GateOpts {
    pub fn new(upstream_url: &str) -> GateOpts {
        GateOpts {
            upstream_url: upstream_url.into(),
            extra: String::new(),
            server_extra: String::new(),
            upstream_extra: String::new(),
            env: vec![],
        }
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

    pub fn start_in(dir: tempfile::TempDir, opts: GateOpts) -> GateProc {
        let port = free_port();
        let metrics_port = free_port();
        let config = dir.path().join("gate.yaml");
        let server_extra = if opts.server_extra.is_empty() {
            String::new()
        } else {
            format!(", {}", opts.server_extra)
        };
        let upstream_extra = if opts.upstream_extra.is_empty() {
            String::new()
        } else {
            format!(", {}", opts.upstream_extra)
        };
        let yaml = format!(
            "server: {{ listen: 127.0.0.1:{port}, threads: 2, shutdown_grace: 3s{server_extra} }}\n\
             base_path: /scim/v2\n\
             upstream: {{ url: \"{}\", connect_timeout: 1s, read_timeout: 2s{upstream_extra} }}\n\
             tokens: {{ file: tokens.yaml }}\n\
             admin: {{ socket: admin.sock }}\n\
             audit: {{ file: audit.jsonl }}\n\
             metrics: {{ listen: 127.0.0.1:{metrics_port} }}\n{}",
            opts.upstream_url, opts.extra
        );
        std::fs::write(&config, yaml).expect("config");
        let mut proc = GateProc {
            child: None,
            dir,
            port,
            metrics_port,
            config,
        };
        proc.spawn(&opts.env);
        proc
    }

    fn spawn(&mut self, env: &[(String, String)]) {
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
        self.child = Some(cmd.spawn().expect("spawn gate"));
        self.wait_ready();
    }

    /// Restarts a killed gate with the same config (same ports).
    pub fn restart(&mut self, env: &[(String, String)]) {
        self.kill();
        self.spawn(env);
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() && self.admin_socket().exists() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("gate exited early ({status}): {}", self.log());
            }
            assert!(Instant::now() < deadline, "gate did not start: {}", self.log());
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
    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Response {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n", self.port);
        if let Some(t) = token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if let Some(b) = body {
            req.push_str(&format!("Content-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n{b}", b.len()));
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
    s.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
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
            _ => panic!("connection ended before a response head: {:?}", String::from_utf8_lossy(&buf)),
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
    let find = |n: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if status == 100 {
        return read_response(s);
    }
    if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        s.read_exact(&mut body).expect("body");
    } else if find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        loop {
            let mut line = Vec::new();
            while !line.ends_with(b"\r\n") {
                s.read_exact(&mut byte).expect("chunk size");
                line.push(byte[0]);
            }
            let size = usize::from_str_radix(String::from_utf8_lossy(&line).trim().split(';').next().unwrap_or("0"), 16)
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
    Response { status, headers, body }
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
