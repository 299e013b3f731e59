//! The console's HTTP server: loopback only, one task per connection, every answer carrying the
//! same security headers. It reuses the strict HTTP/1.1 reader of the demo directory (ambiguous
//! framing is a 400), so the console adds no server stack of its own.
//!
//! Checks, in order, on every request (docs/console.md):
//! 1. `Host` must name this listener (`127.0.0.1:PORT`, `localhost:PORT`, `[::1]:PORT`): a page
//!    on another site that rebinds its DNS name to 127.0.0.1 is refused (421).
//! 2. `/api/…` needs the session cookie (401 without it).
//! 3. Every change (any method but GET) needs the session's CSRF token in `X-CSRF-Token` and, when
//!    the browser sends `Origin`, this console's origin (403 otherwise). Nothing is forwarded to
//!    the admin socket before these pass.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};

use super::admin_proxy::{self, MAX_BODY};
use super::assets;
use super::session::Sessions;
use super::settings::Settings;
use scim_demo::http::Conn;
use scim_demo::{DemoRequest as Request, DemoResponse as Response};

/// The session cookie. Not `__Host-`: that prefix needs `Secure`, which plain-HTTP loopback
/// cannot have; `HttpOnly` and `SameSite=Strict` carry the protection.
pub const COOKIE: &str = "scim_console";

/// Only scripts, styles, images and fetches from this origin; no frames, no plugins, no
/// `<base>`, forms only to itself.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// A request head and body must arrive within this; a stalled client is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the console could not listen.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    addr: SocketAddr,
    source: std::io::Error,
}

/// The running console: listener, settings, session.
pub struct Console {
    listener: TcpListener,
    shared: Arc<Shared>,
    login_url: String,
}

struct Shared {
    settings: Settings,
    sessions: Sessions,
    /// The `Host` values this listener answers to, built once.
    hosts: Vec<String>,
    /// The origins a change may come from, built once.
    origins: Vec<String>,
}

impl Console {
    /// Binds the loopback listener and makes the one-time key.
    pub async fn bind(settings: Settings) -> Result<Console, BindError> {
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|source| BindError {
                addr: settings.listen,
                source,
            })?;
        let local = listener.local_addr().map_err(|source| BindError {
            addr: settings.listen,
            source,
        })?;
        let hosts = vec![local.to_string(), format!("localhost:{}", local.port())];
        let origins = hosts.iter().map(|h| format!("http://{h}")).collect();
        let (sessions, key) = Sessions::new();
        let login_url = format!("http://{local}/login#{key}");
        Ok(Console {
            listener,
            shared: Arc::new(Shared {
                settings,
                sessions,
                hosts,
                origins,
            }),
            login_url,
        })
    }

    /// The sign-in link, printed once.
    pub fn login_url(&self) -> &str {
        &self.login_url
    }

    /// Serves until SIGINT or SIGTERM.
    pub async fn serve_until_signal(self) {
        let stop = async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{signal, SignalKind};
                match signal(SignalKind::terminate()) {
                    Ok(mut term) => {
                        tokio::select! {
                            _ = tokio::signal::ctrl_c() => {}
                            _ = term.recv() => {}
                        }
                    }
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            }
        };
        tokio::select! {
            _ = stop => {}
            _ = self.accept_loop() => {}
        }
    }

    async fn accept_loop(&self) {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    let shared = self.shared.clone();
                    tokio::spawn(async move { serve_connection(shared, stream).await });
                }
                Err(e) => {
                    log::warn!("console: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Requests on one connection until the peer closes or sends something unparsable.
async fn serve_connection(shared: Arc<Shared>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut conn = Conn::new(stream);
    loop {
        let read = tokio::time::timeout(REQUEST_TIMEOUT, conn.read_request()).await;
        let (req, keep_alive) = match read {
            Ok(Ok(Some(r))) => r,
            Ok(Err(e)) => {
                if let Some(status) = e.status() {
                    let resp = with_headers(reply(status, &json!({ "error": e.to_string() })));
                    let _ = conn.write_response(&resp, true).await;
                }
                conn.shutdown().await;
                return;
            }
            Ok(Ok(None)) | Err(_) => {
                conn.shutdown().await;
                return;
            }
        };
        let resp = with_headers(handle(&shared, &req).await);
        if conn.write_response(&resp, !keep_alive).await.is_err() || !keep_alive {
            conn.shutdown().await;
            return;
        }
    }
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.header(name)
}

/// A JSON answer.
fn reply(status: u16, body: &Value) -> Response {
    Response {
        status,
        headers: vec![(
            "Content-Type".into(),
            "application/json; charset=utf-8".into(),
        )],
        body: if status == 204 {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        },
    }
}

fn refuse(status: u16, msg: &str) -> Response {
    reply(status, &json!({ "error": msg }))
}

/// The headers every answer carries. `no-store` on everything, not only on the answers that
/// hold a secret: one rule cannot be forgotten on a new route.
fn with_headers(mut resp: Response) -> Response {
    for (k, v) in [
        ("Content-Security-Policy", CSP),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Cross-Origin-Resource-Policy", "same-origin"),
    ] {
        resp.headers.push((k.into(), v.into()));
    }
    resp
}

/// The session cookie's value, if the request carries one.
fn session_cookie(req: &Request) -> Option<&str> {
    req.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
        .flat_map(|(_, v)| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// Routes one request after the `Host` check.
async fn handle(shared: &Shared, req: &Request) -> Response {
    let host_ok = header(req, "host").is_some_and(|h| shared.hosts.iter().any(|a| a == h));
    if !host_ok {
        return refuse(421, "this console answers only to its own loopback address");
    }
    let (path, query) = match req.path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (req.path.as_str(), None),
    };
    let method = req.method.as_str();
    if !path.starts_with("/api/") {
        return match (method, assets::asset(path)) {
            ("GET", Some(a)) => Response {
                status: 200,
                headers: vec![("Content-Type".into(), a.content_type.into())],
                body: a.body.to_vec(),
            },
            (_, Some(_)) => refuse(405, "only GET here"),
            (_, None) => refuse(404, "no such page"),
        };
    }
    if method != "GET" {
        if let Some(origin) = header(req, "origin") {
            if !shared.origins.iter().any(|o| o == origin) {
                return refuse(403, "a change must come from the console's own page");
            }
        }
    }
    if (method, path) == ("POST", "/api/login") {
        return sign_in(shared, req);
    }
    let signed_in = session_cookie(req).is_some_and(|c| shared.sessions.check(c));
    if !signed_in {
        return refuse(
            401,
            "not signed in: open the link `scim-gate console` printed",
        );
    }
    if method != "GET" {
        let csrf = header(req, "x-csrf-token").unwrap_or("");
        if !shared.sessions.csrf_ok(csrf) {
            return refuse(
                403,
                "missing or stale CSRF token: reload the page and try again",
            );
        }
    }
    match (method, path) {
        ("GET", "/api/session") => session_info(shared),
        ("POST", "/api/logout") => {
            shared.sessions.close();
            let mut r = reply(204, &Value::Null);
            r.headers.push(("Set-Cookie".into(), expired_cookie()));
            r
        }
        (_, p) if p.starts_with("/api/admin/") => admin(shared, req, method, p, query).await,
        _ => refuse(404, "no such console API"),
    }
}

/// `POST /api/login {"key": …}`: spends the key, sets the cookie, returns the CSRF token.
fn sign_in(shared: &Shared, req: &Request) -> Response {
    if req.body.len() > 1024 {
        return refuse(413, "sign-in body too large");
    }
    let key = serde_json::from_slice::<Value>(&req.body)
        .ok()
        .and_then(|v| v["key"].as_str().map(str::to_string))
        .unwrap_or_default();
    match shared.sessions.sign_in(&key) {
        Ok(opened) => {
            let mut r = reply(
                200,
                &json!({ "csrf": opened.csrf, "scim_url": shared.settings.scim_url }),
            );
            r.headers.push((
                "Set-Cookie".into(),
                format!(
                    "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
                    opened.session_id
                ),
            ));
            r
        }
        Err(e) => refuse(403, &e.to_string()),
    }
}

fn expired_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// A reloaded page's CSRF token (a fresh one; the old one stops working) and the SCIM URL.
fn session_info(shared: &Shared) -> Response {
    match shared.sessions.rotate_csrf() {
        Some(csrf) => reply(
            200,
            &json!({ "csrf": csrf, "scim_url": shared.settings.scim_url }),
        ),
        None => refuse(401, "not signed in"),
    }
}

/// `/api/admin/…`: one of the admin routes of [`admin_proxy`], forwarded to the socket.
async fn admin(
    shared: &Shared,
    req: &Request,
    method: &str,
    path: &str,
    query: Option<&str>,
) -> Response {
    if req.body.len() > MAX_BODY {
        return refuse(413, "request body too large");
    }
    if method == "POST" && !req.body.is_empty() {
        let json_type = header(req, "content-type")
            .is_some_and(|t| t.trim_start().starts_with("application/json"));
        if !json_type {
            return refuse(415, "send JSON (Content-Type: application/json)");
        }
    }
    let sub = &path["/api/admin".len()..];
    let call = match admin_proxy::admin_call(method, sub, query, &req.body) {
        Ok(c) => c,
        Err(r) => return reply(r.status, &r.body),
    };
    let r = admin_proxy::forward(shared.settings.socket.clone(), call).await;
    reply(r.status, &r.body)
}
