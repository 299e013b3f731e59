//! The gate's proxy app driven in-process: raw request bytes in, raw answer bytes out, through
//! the same `HttpProxy<GateProxy>` the binary serves, over an in-memory stream instead of a
//! socket. Whole requests — head and body, however malformed — go through Pingora's parser and
//! every gate step (admission, checks, forwarding, failure answers).
//!
//! Shared, by `#[path]`, between the request fuzz target (`fuzz/fuzz_targets/request.rs`) and its
//! stable twin in the test suite (`tests/it/fuzz_requests.rs`); it uses only the library's public
//! API, pingora, tokio and tempfile.

use std::sync::Arc;
use std::time::Duration;

use pingora::apps::ServerApp;
use pingora::proxy::HttpProxy;
use pingora::server::configuration::ServerConf;
use scim_gate::tokens::{secret, TokenStore};
use scim_gate::{Config, DefaultEmbedder, Gate, GateProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the in-process gate answers from, and the one token it accepts.
pub struct InProcess {
    app: Arc<HttpProxy<GateProxy>>,
    runtime: tokio::runtime::Runtime,
    /// The plaintext of the one loaded token (tenant `acme`, domains `acme.com`).
    pub token: String,
    _dir: tempfile::TempDir,
}

/// Where a request's token goes: every occurrence of this in the input is replaced by the
/// loaded token, so mutated inputs keep reaching the authenticated steps.
pub const TOKEN_MARK: &[u8] = b"$TOKEN";

impl InProcess {
    /// A gate with the default policy in front of `upstream_url` (a port where nothing
    /// listens is fine: forwarded requests then get 502).
    pub fn new(upstream_url: &str) -> InProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let token = secret::NewToken::generate().expose().to_string();
        let hash = secret::to_hex(&secret::sha256(token.as_bytes()));
        std::fs::write(
            dir.path().join("tokens.yaml"),
            format!(
                "tokens:\n  - {{id: tok_fuzz, tenant: acme, idp: entra, status: active, sha256: {hash}, domains: [acme.com], created_at: 2026-11-22T10:00:00Z, refreshed_at: null, expires_at: null}}\n"
            ),
        )
        .expect("token file");
        let yaml = format!(
            "upstream: {{url: \"{upstream_url}\", connect_timeout: 1s, read_timeout: 2s}}\nserver: {{body_timeout: 2s}}\nlimits: {{rate: 1000000, burst: 1000000, upstream_max_in_flight: 100000}}\n"
        );
        let cfg = Config::from_yaml(&yaml, "fuzz.yaml", dir.path()).expect("config");
        let tokens =
            TokenStore::open(&cfg.tokens.file, cfg.tokens.max_per_idp, None).expect("tokens");
        let gate = Arc::new(Gate::new(&cfg, tokens).expect("gate"));
        let conf = Arc::new(ServerConf::default());
        let app = Arc::new(pingora::proxy::http_proxy(
            &conf,
            GateProxy::new(gate, DefaultEmbedder),
        ));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        InProcess {
            app,
            runtime,
            token,
            _dir: dir,
        }
    }

    /// Sends `raw` (with [`TOKEN_MARK`] replaced by the token) as one client connection that
    /// then closes its sending side, and returns every byte the gate wrote back.
    pub fn answer(&self, raw: &[u8]) -> Vec<u8> {
        let input = replace_mark(raw, self.token.as_bytes());
        self.runtime.block_on(async {
            let (mut client, server) = tokio::io::duplex(input.len() + (1 << 20));
            client.write_all(&input).await.expect("in-memory write");
            client.shutdown().await.expect("in-memory shutdown");
            let (_tx, shutdown) = tokio::sync::watch::channel(false);
            let serve = self.app.process_new(Box::new(server), &shutdown);
            // A request the gate keeps waiting on would be a hang worth finding.
            tokio::time::timeout(Duration::from_secs(10), serve)
                .await
                .expect("the gate answered within 10 s");
            let mut out = Vec::new();
            let _ = client.read_to_end(&mut out).await;
            out
        })
    }
}

fn replace_mark(raw: &[u8], token: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + token.len());
    let mut rest = raw;
    while let Some(at) = rest.windows(TOKEN_MARK.len()).position(|w| w == TOKEN_MARK) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(token);
        rest = &rest[at + TOKEN_MARK.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// The properties every answer must have, whatever the request: the first bytes are a status
/// line (or nothing, when Pingora drops what is not HTTP), and the token is never echoed.
pub fn check_answer(token: &str, request: &[u8], answer: &[u8]) {
    if !answer.is_empty() {
        assert!(
            answer.starts_with(b"HTTP/1.1 ")
                && answer.len() >= 12
                && answer[9..12].iter().all(u8::is_ascii_digit),
            "not an HTTP answer to {:?}: {:?}",
            String::from_utf8_lossy(request),
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        );
    }
    assert!(
        !answer.windows(token.len()).any(|w| w == token.as_bytes()),
        "the token was echoed in the answer to {:?}",
        String::from_utf8_lossy(request)
    );
}
