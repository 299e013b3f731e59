//! An in-memory SCIM 2.0 directory. **A demo, not a product.**
//!
//! It exists for two reasons: `scim-gate demo` puts the gate in front of it so an operator can try
//! the gate with nothing else installed, and the integration tests run it in-process as the
//! upstream behind the real gate binary, then look at what it received ([`DemoDirectory::received`]).
//!
//! Because of that second job it is deliberately plain: everything lives in one mutex, nothing is
//! persisted, passwords are dropped on arrival, filters are `attr eq "value"` only, and the HTTP/1.1
//! server in `http.rs` is the smallest one that still speaks the protocol properly (chunked bodies,
//! keep-alive, limits, `400` on garbage), so the gate's proxying is tested against a strict peer.
//! Do not point an identity provider at it for anything you want to keep.
//!
//! Modules depend in one direction only: `urn`, `attrs` and `message` are leaves; `error` and
//! `filter` build on them; `patch` on those; `store` (routing) on `patch`; this file on `store` and
//! `http`. The crate does not depend on scim-gate, whose own SCIM parsing it deliberately does not
//! share: a gate bug must not be mirrored by the peer it is tested against.

mod attrs;
mod error;
mod filter;
pub mod http;
mod message;
mod patch;
mod store;
#[cfg(test)]
mod tests;
mod urn;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use error::ScimError;
pub use message::{DemoRequest, DemoResponse};
use store::Store;

/// How many requests [`DemoDirectory::received`] remembers.
pub const MAX_RECEIVED: usize = 10_000;

/// The directory: Users and Groups in memory plus the knobs tests need.
///
/// Plain mutexes are fine here: this is a test peer, not the gate's request path.
pub struct DemoDirectory {
    base_path: String,
    store: Mutex<Store>,
    received: Mutex<Vec<DemoRequest>>,
    delay: Mutex<Duration>,
    bearer: Mutex<Option<String>>,
    scheme: Mutex<String>,
}

/// A poisoned lock only means another test thread panicked; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl DemoDirectory {
    /// `base_path` is the SCIM root the routes live under, e.g. `/v2` (`""` or `/` for the root).
    pub fn new(base_path: &str) -> Arc<DemoDirectory> {
        let trimmed = base_path.trim_end_matches('/');
        let base_path = if trimmed.is_empty() || trimmed.starts_with('/') {
            trimmed.to_string()
        } else {
            format!("/{trimmed}")
        };
        Arc::new(DemoDirectory {
            base_path,
            store: Mutex::new(Store::default()),
            received: Mutex::new(Vec::new()),
            delay: Mutex::new(Duration::ZERO),
            bearer: Mutex::new(None),
            scheme: Mutex::new("http".into()),
        })
    }

    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// Records the request, then routes it. Synchronous and socket-free so routing and store
    /// logic are unit-testable; the [`set_delay`](Self::set_delay) pause happens only in
    /// [`serve_connection`](Self::serve_connection), which has an async context to sleep in.
    pub fn handle(&self, req: &DemoRequest) -> DemoResponse {
        self.record(req);
        self.respond(req)
    }

    /// Keeps the last [`MAX_RECEIVED`] requests, so a long-running `scim-gate demo` does not
    /// grow without bound; tests never get near it.
    fn record(&self, req: &DemoRequest) {
        let mut received = lock(&self.received);
        if received.len() >= MAX_RECEIVED {
            received.drain(..MAX_RECEIVED / 10);
        }
        received.push(req.clone());
    }

    fn respond(&self, req: &DemoRequest) -> DemoResponse {
        if let Some(expected) = lock(&self.bearer).clone() {
            let presented = req.header("authorization").and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
            if presented != Some(expected.as_str()) {
                // RFC 6750 §3: a 401 names the scheme in WWW-Authenticate.
                let mut resp =
                    ScimError::new(401, None, "missing or wrong bearer token").response();
                resp.headers.push((
                    "WWW-Authenticate".into(),
                    "Bearer realm=\"scim-demo\"".into(),
                ));
                return resp;
            }
        }
        let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
        let rest = match strip_prefix_ci(path, &self.base_path) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
            _ => return ScimError::not_found(path).response(),
        };
        let mut segments = Vec::new();
        for raw in rest.split('/').filter(|s| !s.is_empty()) {
            match percent_encoding::percent_decode_str(raw).decode_utf8() {
                Ok(s) => segments.push(s.into_owned()),
                Err(_) => {
                    return ScimError::new(400, Some("invalidSyntax"), "path is not UTF-8")
                        .response()
                }
            }
        }
        // meta.location is built from the Host we were reached by: behind the gate that is the
        // upstream address, which the gate must rewrite to its public URL (docs/operations.md#responses).
        let host = req.header("host").unwrap_or("localhost");
        let base_url = format!("{}://{host}{}", lock(&self.scheme), self.base_path);
        let result = lock(&self.store).route(&req.method, &segments, query, &req.body, &base_url);
        result.unwrap_or_else(|e| e.response())
    }

    /// Accepts connections forever, one task per connection. Accept errors (e.g. out of file
    /// descriptors) are logged and retried rather than ending the demo.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let dir = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = dir.serve_connection(stream).await {
                            log::debug!("demo directory: connection from {peer}: {e}");
                        }
                    });
                }
                Err(e) => {
                    log::warn!("demo directory: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Serves HTTP/1.1 requests on one stream until the peer closes, asks to close, or sends
    /// something unparsable (answered with a SCIM error, then closed). Generic so TLS can wrap it.
    pub async fn serve_connection<S>(self: Arc<Self>, stream: S) -> std::io::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut conn = http::Conn::new(stream);
        loop {
            let (req, keep_alive) = match conn.read_request().await {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(()),
                Err(e) => {
                    if let Some(status) = e.status() {
                        let resp = ScimError::new(status, None, e.to_string()).response();
                        let _ = conn.write_response(&resp, true).await;
                        conn.shutdown().await;
                    }
                    return match e {
                        http::HttpError::Io(io) => Err(io),
                        _ => Ok(()),
                    };
                }
            };
            // Recorded before the delay, so a test that provokes a 504 can still see that the
            // request arrived.
            self.record(&req);
            let delay = *lock(&self.delay);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let resp = self.respond(&req);
            conn.write_response(&resp, !keep_alive).await?;
            if !keep_alive {
                conn.shutdown().await;
                return Ok(());
            }
        }
    }

    /// Every request received so far, in order.
    pub fn received(&self) -> Vec<DemoRequest> {
        lock(&self.received).clone()
    }

    pub fn clear_received(&self) {
        lock(&self.received).clear();
    }

    /// Every response served over a connection waits this long first (for upstream-timeout tests).
    pub fn set_delay(&self, d: Duration) {
        *lock(&self.delay) = d;
    }

    /// When `Some`, every request must carry `Authorization: Bearer <token>`, else 401.
    /// The scheme used in `meta.location` and `Location` (default `http`); set `https` when the
    /// directory is served through TLS, since a connection does not tell `handle` that.
    pub fn set_scheme(&self, scheme: &str) {
        *lock(&self.scheme) = scheme.to_string();
    }

    pub fn set_bearer(&self, token: Option<String>) {
        *lock(&self.bearer) = token;
    }

    pub fn user_count(&self) -> usize {
        lock(&self.store).count(store::Kind::User)
    }

    pub fn group_count(&self) -> usize {
        lock(&self.store).count(store::Kind::Group)
    }

    /// The stored user (without `meta.location`, which depends on the requester's Host).
    pub fn get_user(&self, id: &str) -> Option<serde_json::Value> {
        lock(&self.store).get(store::Kind::User, id).cloned()
    }

    pub fn get_group(&self, id: &str) -> Option<serde_json::Value> {
        lock(&self.store).get(store::Kind::Group, id).cloned()
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// A directory on its own thread with a current-thread tokio runtime, for the `demo` command and
/// for tests that are not async. Dropping it stops the server (the runtime and its connection
/// tasks are dropped with the thread); keep it alive for as long as it should answer.
pub struct DemoServer {
    pub addr: SocketAddr,
    pub dir: Arc<DemoDirectory>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DemoServer {
    /// Binds synchronously so a bad address or a busy port is reported here, not on the thread.
    pub fn start(base_path: &str, bind: &str) -> std::io::Result<DemoServer> {
        let listener = std::net::TcpListener::bind(bind)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let dir = DemoDirectory::new(base_path);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = dir.clone();
        let thread = std::thread::Builder::new()
            .name("scim-demo".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => return log::error!("demo directory: {e}"),
                    };
                    tokio::select! {
                        r = served.serve(listener) => {
                            if let Err(e) = r { log::error!("demo directory: {e}") }
                        }
                        _ = stopped => {}
                    }
                })
            })?;
        Ok(DemoServer {
            addr,
            dir,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://addr/base_path`: what to put in the gate's `upstream.url`.
    pub fn base_url(&self) -> String {
        format!("http://{}{}", self.addr, self.dir.base_path())
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
