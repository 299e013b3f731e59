//! The gate itself, as a library: what an operator's own Pingora proxy calls from its hooks, and
//! what the sidecar's [`crate::proxy::GateProxy`] calls from the very same hooks.
//!
//! One request goes: route → authenticate → (for writes) read and check the whole body → forward.
//!
//! ## Bodies, and Pingora's 64 KiB replay buffer
//! Pingora consumes a request body read in `request_filter`; it replays it to the upstream only
//! from its retry buffer, which holds 64 KiB (`BODY_BUF_LIMIT`; cloudflare/pingora#349, #575,
//! PR #816 proposes early body buffering). So the gate has two paths:
//! * **Replay** (`Content-Length` ≤ 64 KiB — every IdP request we have seen): the body is read in
//!   `request_filter` with retry buffering on, checked *before any upstream connection exists*,
//!   and `request_body_filter` swaps the replayed bytes for the checked (possibly normalised)
//!   ones, with the upstream `Content-Length` set to their exact length.
//! * **Stream** (larger or chunked bodies, up to `max_body_bytes`): Pingora streams the body and
//!   `request_body_filter` withholds every chunk, checks the whole body at its end, and only then
//!   releases it. A rejected body makes the filter fail, so the upstream connection is dropped
//!   with the body incomplete: the upstream never receives a complete invalid request. The
//!   client's framing is kept (so the bytes arrive byte-exact); a normalisation that changes
//!   the length is padded with JSON whitespace when shorter, and not applied when longer (the
//!   request is then forwarded as sent, as `tolerate` would; logged).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};

use crate::auth;
use crate::config::Config;
use crate::error::ScimError;
use crate::metrics;
use crate::routes::{match_route, Route};
use crate::scim::{Policy, Request, WriteMethod};
use crate::tokens::{TokenInfo, TokenStore};
use crate::upstream::{Upstream, UpstreamError};

/// Pingora's retry-buffer size (`pingora-core` `BODY_BUF_LIMIT`, not exported).
const REPLAY_LIMIT: usize = 64 * 1024;

/// What `request_filter` decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Forward to the upstream; the token's tenant and id are in the ctx.
    Forward,
    /// The gate already wrote the response (an error); stop.
    Responded,
}

/// The SPEC §7 outcome label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outcome {
    #[default]
    Forwarded,
    Unauthorized,
    Rejected,
    UpstreamError,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Forwarded => "forwarded",
            Outcome::Unauthorized => "unauthorized",
            Outcome::Rejected => "rejected",
            Outcome::UpstreamError => "upstream_error",
        }
    }
}

#[derive(Debug, Default)]
enum BodyMode {
    #[default]
    None,
    /// Checked bytes to send in place of Pingora's replay.
    Replay(Bytes),
    /// Withheld chunks so far.
    Stream(BytesMut),
}

/// Per-request state. An embedding proxy keeps one inside its own CTX.
#[derive(Debug, Default)]
pub struct GateCtx {
    start: Option<Instant>,
    /// The token that passed; `None` until authentication succeeded.
    pub token: Option<TokenInfo>,
    pub route: Option<Route>,
    outcome: Outcome,
    body: BodyMode,
    /// The gate's own error for `fail_to_proxy` to write (a body rejected mid-stream).
    pending_error: Option<ScimError>,
    /// `scheme://host/base_path` as the IdP sees the gate, for rewriting upstream URLs.
    public_prefix: String,
    rewrite_response: bool,
    response_buf: BytesMut,
    /// The upstream's Content-Length, kept for a rewritten body that can only shrink.
    pad_to: Option<usize>,
    upstream_status: Option<u16>,
    counted: bool,
    /// PUT and PATCH share a route; the checks need to know which one this is.
    body_method: Option<WriteMethod>,
}

impl GateCtx {
    pub fn tenant(&self) -> Option<&str> {
        self.token.as_ref().map(|t| t.tenant())
    }
    pub fn token_id(&self) -> Option<&str> {
        self.token.as_ref().map(|t| t.id())
    }
}

/// The gate: tokens, policy, upstream. Cheap to share (`Arc`).
pub struct Gate {
    base_path: String,
    max_body: usize,
    /// `server.body_timeout`: the whole body must arrive within it (408 otherwise).
    body_timeout: Duration,
    read_timeout: Duration,
    tls_listener: bool,
    tokens: Arc<TokenStore>,
    policy: Policy,
    upstream: Upstream,
    in_flight: AtomicUsize,
}

impl Gate {
    pub fn new(cfg: &Config, tokens: Arc<TokenStore>) -> Result<Gate, crate::StartError> {
        Ok(Gate {
            base_path: cfg.base_path.clone(),
            max_body: cfg.policy.max_body_bytes,
            body_timeout: cfg.server.body_timeout,
            read_timeout: cfg.upstream.read_timeout,
            tls_listener: cfg.server.tls.is_some(),
            tokens,
            policy: cfg.policy.compiled.clone(),
            upstream: Upstream::new(cfg)?,
            in_flight: AtomicUsize::new(0),
        })
    }

    pub fn tokens(&self) -> &Arc<TokenStore> {
        &self.tokens
    }

    /// Requests between `request_filter` and `logging`, for the drain on shutdown.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The one call an embedding proxy makes in its `request_filter`: routes, authenticates and
    /// checks the request. On `Responded` the error response is already written.
    pub async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut GateCtx,
    ) -> pingora::Result<Decision> {
        ctx.start = Some(Instant::now());
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        ctx.counted = true;
        match self.admit(session, ctx).await {
            Ok(()) => Ok(Decision::Forward),
            Err(e) => {
                if ctx.outcome == Outcome::Forwarded {
                    ctx.outcome = Outcome::Rejected;
                }
                respond(session, &e).await?;
                Ok(Decision::Responded)
            }
        }
    }

    async fn admit(&self, session: &mut Session, ctx: &mut GateCtx) -> Result<(), ScimError> {
        let req = session.req_header();
        // The token is checked before the route is judged, so a caller without a valid token
        // learns nothing about which paths exist (401 everywhere, never 404 or 400).
        let route = match_route(req.uri.path(), &self.base_path);
        ctx.route = route.as_ref().ok().cloned();
        let token = auth::authenticate(&req.headers, &self.tokens)
            .inspect_err(|_| ctx.outcome = Outcome::Unauthorized)?;
        ctx.token = Some(token);
        let route = route?;
        let method = req.method.clone();
        if !route.allows(&method) {
            return Err(ScimError::new(
                405,
                None,
                format!("{method} is not allowed on {}", route.label()),
            ));
        }
        ctx.public_prefix = self.public_prefix(req);
        if has_body(&method) {
            self.admit_body(session, ctx, &route).await?;
        }
        Ok(())
    }

    /// Checks media type and size, answers `Expect: 100-continue`, and either reads and checks the
    /// body now (replay path) or arranges for the stream path.
    async fn admit_body(
        &self,
        session: &mut Session,
        ctx: &mut GateCtx,
        route: &Route,
    ) -> Result<(), ScimError> {
        let req = session.req_header();
        ctx.body_method = Some(match req.method {
            http::Method::PUT => WriteMethod::Put,
            http::Method::PATCH => WriteMethod::Patch,
            _ => WriteMethod::Post,
        });
        check_content_type(req)?;
        let length = content_length(req)?;
        if length.is_some_and(|n| n > self.max_body) {
            session.set_keepalive(None);
            return Err(too_large(self.max_body));
        }
        let expects_continue = req
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if expects_continue {
            session
                .req_header_mut()
                .remove_header(&http::header::EXPECT);
            session
                .as_downstream_mut()
                .write_continue_response()
                .await
                .map_err(|_| ScimError::new(400, None, "could not answer Expect: 100-continue"))?;
        }
        match length {
            Some(n) if n <= REPLAY_LIMIT => {
                let body = self.read_body(session, n).await?;
                let checked = self.check(route, body, ctx).await?;
                ctx.body = BodyMode::Replay(checked);
            }
            _ => {
                // Pingora reads this body while the upstream waits for it. A client that stops
                // sending must get 408 from this read timeout, before the upstream read timeout
                // (stretched by the same amount in `upstream_peer`) turns it into a 504.
                session
                    .as_downstream_mut()
                    .set_read_timeout(Some(self.body_timeout));
                ctx.body = BodyMode::Stream(BytesMut::new());
            }
        }
        Ok(())
    }

    /// Reads the whole (small) body with retry buffering on, so Pingora replays it and calls
    /// `request_body_filter` once more, where the checked bytes are substituted.
    async fn read_body(&self, session: &mut Session, expected: usize) -> Result<Bytes, ScimError> {
        session.as_downstream_mut().enable_retry_buffering();
        let read = async {
            let mut buf = BytesMut::with_capacity(expected);
            while let Some(chunk) = session.read_request_body().await? {
                buf.extend_from_slice(&chunk);
            }
            Ok::<_, Box<Error>>(buf.freeze())
        };
        match tokio::time::timeout(self.body_timeout, read).await {
            Ok(Ok(b)) => Ok(b),
            Ok(Err(e)) if e.etype() == &ErrorType::ReadTimedout => Err(timeout_408()),
            Ok(Err(_)) => Err(ScimError::new(
                400,
                Some("invalidSyntax"),
                "the request body could not be read",
            )),
            Err(_) => Err(timeout_408()),
        }
    }

    /// Runs the SCIM checks of SPEC §5 on a whole body; returns the bytes to forward.
    async fn check(&self, route: &Route, body: Bytes, ctx: &GateCtx) -> Result<Bytes, ScimError> {
        let Some(token) = ctx.token.clone() else {
            return Err(ScimError::new(401, None, "not authenticated"));
        };
        let (tenant, token_id, domains) = (token.tenant(), token.id(), token.domains());
        let prepared = match route {
            Route::Search(_) => {
                self.policy.check_search(&body).map_err(reject)?;
                return Ok(body);
            }
            Route::Bulk => self.policy.prepare_bulk(&body, domains),
            Route::Collection(resource) | Route::Item(resource, _) => {
                let (method, id) = match route {
                    Route::Item(_, id) => (
                        ctx.body_method.unwrap_or(WriteMethod::Patch),
                        Some(id.as_str()),
                    ),
                    _ => (WriteMethod::Post, None),
                };
                self.policy.prepare(&Request {
                    resource: *resource,
                    method,
                    id,
                    body: &body,
                    domains,
                })
            }
            _ => return Ok(body),
        }
        .map_err(reject)?;
        let mut current = std::collections::HashMap::new();
        for (resource, id) in prepared.needs() {
            let suffix = Route::Item(*resource, id.clone()).upstream_suffix();
            match self.upstream.get_json(&suffix, tenant, token_id).await {
                Ok(Some(v)) => {
                    current.insert((*resource, id.clone()), v);
                }
                Ok(None) => {}
                Err(e) => return Err(upstream_error(&e)),
            }
        }
        let checked = prepared.finish(&current).map_err(reject)?;
        Ok(checked.body.map(Bytes::from).unwrap_or(body))
    }

    /// `scheme://Host{base_path}`: the URL prefix the IdP used, so rewritten locations point
    /// back at the gate. A Host with odd characters falls back to the listener's address.
    fn public_prefix(&self, req: &RequestHeader) -> String {
        let scheme = if self.tls_listener { "https" } else { "http" };
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
            })
            .unwrap_or("localhost");
        format!("{scheme}://{host}{}", self.base_path)
    }

    /// The upstream peer. On the stream path the upstream's read timeout starts while the IdP
    /// is still sending, so it gets `body_timeout` of extra room.
    pub fn upstream_peer(&self, ctx: &GateCtx) -> Box<HttpPeer> {
        let mut peer = self.upstream.peer();
        if matches!(ctx.body, BodyMode::Stream(_)) {
            peer.options.read_timeout = Some(self.read_timeout + self.body_timeout);
        }
        peer
    }

    /// Maps the path onto the upstream, replaces credentials and identity headers, and sets
    /// the exact `Content-Length` of a checked body.
    pub fn upstream_request_filter(
        &self,
        req: &mut RequestHeader,
        ctx: &GateCtx,
    ) -> pingora::Result<()> {
        let (Some(route), Some(token)) = (&ctx.route, &ctx.token) else {
            return Error::e_explain(
                ErrorType::InternalError,
                "upstream_request_filter before request_filter",
            );
        };
        let mut path = format!("{}{}", self.upstream.target.path, route.upstream_suffix());
        if let Some(q) = req.uri.query() {
            path.push('?');
            path.push_str(q);
        }
        let uri = path
            .parse::<http::Uri>()
            .map_err(|e| Error::because(ErrorType::InternalError, "building upstream uri", e))?;
        req.set_uri(uri);
        self.upstream.set_headers(req, token.tenant(), token.id())?;
        req.remove_header(&http::header::EXPECT);
        if let BodyMode::Replay(body) = &ctx.body {
            req.remove_header(&http::header::TRANSFER_ENCODING);
            req.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
        }
        // Upstream bodies are rewritten (URLs); ask for them uncompressed.
        req.remove_header(&http::header::ACCEPT_ENCODING);
        Ok(())
    }

    /// Substitutes the checked body (replay path) or withholds and then checks it (stream path).
    pub async fn request_body_filter(
        &self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut GateCtx,
    ) -> pingora::Result<()> {
        match &mut ctx.body {
            BodyMode::None => Ok(()),
            BodyMode::Replay(checked) => {
                if end_of_stream {
                    *body = Some(checked.clone());
                } else {
                    *body = Some(Bytes::new());
                }
                Ok(())
            }
            BodyMode::Stream(buf) => {
                if let Some(chunk) = body.take() {
                    buf.extend_from_slice(&chunk);
                }
                if buf.len() > self.max_body {
                    return self.fail_mid_stream(ctx, too_large(self.max_body));
                }
                // A client trickling bytes never trips the per-read timeout; this bounds the whole.
                if !end_of_stream && ctx.start.is_some_and(|t| t.elapsed() > self.body_timeout) {
                    return self.fail_mid_stream(ctx, timeout_408());
                }
                if !end_of_stream {
                    // An empty chunk is not written upstream (an absent one would end the body).
                    *body = Some(Bytes::new());
                    return Ok(());
                }
                let whole = std::mem::take(buf).freeze();
                let route = ctx.route.clone();
                let Some(route) = route else {
                    return Error::e_explain(ErrorType::InternalError, "no route");
                };
                match self.check(&route, whole.clone(), ctx).await {
                    Ok(checked) => {
                        *body = Some(fit_length(whole, checked));
                        Ok(())
                    }
                    Err(e) => self.fail_mid_stream(ctx, e),
                }
            }
        }
    }

    fn fail_mid_stream(&self, ctx: &mut GateCtx, e: ScimError) -> pingora::Result<()> {
        ctx.outcome = Outcome::Rejected;
        let status = e.status;
        ctx.pending_error = Some(e);
        // Failing here drops the upstream connection with the body incomplete.
        Error::e_explain(
            ErrorType::HTTPStatus(status),
            "SCIM check failed on a streamed body",
        )
    }

    /// Rewrites `Location` and prepares the JSON body rewrite of upstream URLs.
    pub fn response_filter(
        &self,
        resp: &mut ResponseHeader,
        ctx: &mut GateCtx,
    ) -> pingora::Result<()> {
        ctx.upstream_status = Some(resp.status.as_u16());
        if resp.status.is_server_error() {
            metrics::UPSTREAM_ERRORS
                .with_label_values(&["status_5xx"])
                .inc();
        }
        if let Some(loc) = resp
            .headers
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
        {
            if let Some(rest) = loc.strip_prefix(self.upstream.prefix.as_str()) {
                let public = format!("{}{rest}", ctx.public_prefix);
                resp.insert_header(http::header::LOCATION, public)?;
            }
        }
        let json = resp
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
        let encoded = resp.headers.get(http::header::CONTENT_ENCODING).is_some();
        let has_body = !matches!(resp.status.as_u16(), 204 | 304);
        let spc = ctx.route == Some(Route::ServiceProviderConfig);
        if json && has_body && !encoded && (spc || self.upstream.prefix != ctx.public_prefix) {
            ctx.rewrite_response = true;
            // The header leaves before the body is read, so a body whose length may change goes
            // out chunked — unless the public prefix is no longer than the upstream's: then the
            // rewrite can only shorten it, and padding it with JSON whitespace keeps the
            // upstream's Content-Length (no re-framing; the common case of a long internal URL).
            let length = resp
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<usize>().ok());
            match length {
                Some(n) if !spc && ctx.public_prefix.len() <= self.upstream.prefix.len() => {
                    ctx.pad_to = Some(n);
                }
                _ => {
                    resp.remove_header(&http::header::CONTENT_LENGTH);
                    resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
                }
            }
        }
        Ok(())
    }

    /// Buffers a JSON response and replaces upstream URLs (`meta.location`, `$ref`) with public ones.
    pub fn response_body_filter(
        &self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut GateCtx,
    ) {
        if !ctx.rewrite_response {
            return;
        }
        if let Some(chunk) = body.take() {
            ctx.response_buf.extend_from_slice(&chunk);
        }
        if end_of_stream {
            let whole = std::mem::take(&mut ctx.response_buf);
            let rewritten = replace_all(
                &whole,
                self.upstream.prefix.as_bytes(),
                ctx.public_prefix.as_bytes(),
            );
            *body = Some(if ctx.route == Some(Route::ServiceProviderConfig) {
                advertise_limits(rewritten, self.max_body)
            } else if let Some(n) = ctx.pad_to {
                pad_to(whole.freeze(), rewritten, n)
            } else {
                rewritten
            });
        }
    }

    /// Writes the SCIM error for a failure after `request_filter`: 502/504 for the upstream,
    /// the pending check error for a streamed body, 408 for a stalled client.
    pub async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut GateCtx,
    ) -> FailToProxy {
        let err = if let Some(pending) = ctx.pending_error.take() {
            pending
        } else {
            classify_proxy_error(e, ctx)
        };
        let code = err.status;
        if session.response_written().is_none() && respond(session, &err).await.is_err() {
            log::debug!("could not write error response: downstream gone");
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// Metrics and the access-log line. The line never holds the token or a query value
    /// (filters carry user names): only ids, the route label, statuses and the duration.
    pub fn logging(&self, session: &Session, ctx: &mut GateCtx) {
        if ctx.counted {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            ctx.counted = false;
        }
        let method = method_label(&session.req_header().method);
        let route = ctx.route.as_ref().map_or("none", Route::label);
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let elapsed = ctx.start.map_or(0.0, |s| s.elapsed().as_secs_f64());
        metrics::REQUESTS
            .with_label_values(&[method, route, ctx.outcome.label()])
            .inc();
        metrics::DURATION.observe(elapsed);
        log::info!(
            target: "access",
            "token={} tenant={} method={} route={} status={} upstream_status={} outcome={} duration_ms={:.2}",
            ctx.token_id().unwrap_or("-"),
            ctx.tenant().unwrap_or("-"),
            method,
            route,
            status,
            ctx.upstream_status.map_or("-".to_string(), |s| s.to_string()),
            ctx.outcome.label(),
            elapsed * 1000.0,
        );
    }
}

fn has_body(m: &http::Method) -> bool {
    matches!(
        *m,
        http::Method::POST | http::Method::PUT | http::Method::PATCH
    )
}

fn method_label(m: &http::Method) -> &'static str {
    match *m {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        _ => "other",
    }
}

fn check_content_type(req: &RequestHeader) -> Result<(), ScimError> {
    let ct = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/scim+json")
        || media.eq_ignore_ascii_case("application/json")
    {
        Ok(())
    } else {
        Err(ScimError::new(
            415,
            Some("invalidSyntax"),
            "Content-Type must be application/scim+json or application/json",
        ))
    }
}

fn content_length(req: &RequestHeader) -> Result<Option<usize>, ScimError> {
    if req.headers.get(http::header::TRANSFER_ENCODING).is_some() {
        return Ok(None);
    }
    match req.headers.get(http::header::CONTENT_LENGTH) {
        None => Ok(Some(0)),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| ScimError::new(400, Some("invalidSyntax"), "invalid Content-Length")),
    }
}

fn too_large(max: usize) -> ScimError {
    ScimError::new(
        413,
        None,
        format!("the request body is larger than the gate's limit of {max} bytes"),
    )
}

fn timeout_408() -> ScimError {
    ScimError::new(408, None, "the request body did not arrive in time")
}

fn reject(r: crate::scim::Rejection) -> ScimError {
    metrics::POLICY_REJECTIONS
        .with_label_values(&[r.reason.label()])
        .inc();
    r.into()
}

fn upstream_error(e: &UpstreamError) -> ScimError {
    let (status, kind) = e.status_and_kind();
    metrics::UPSTREAM_ERRORS.with_label_values(&[kind]).inc();
    log::warn!("{e}");
    let detail = match status {
        504 => "the upstream directory did not answer in time",
        _ => "the upstream directory is unreachable or answered badly",
    };
    ScimError::new(status, None, detail)
}

fn classify_proxy_error(e: &Error, ctx: &mut GateCtx) -> ScimError {
    use pingora::ErrorSource;
    let downstream = matches!(e.esource(), ErrorSource::Downstream);
    match e.etype() {
        ErrorType::HTTPStatus(code) => ScimError::new(*code, None, "request refused"),
        ErrorType::ReadTimedout if downstream => timeout_408(),
        _ if downstream => ScimError::new(400, None, "the request could not be read"),
        ErrorType::ConnectTimedout
        | ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::ConnectError
        | ErrorType::TLSHandshakeFailure
        | ErrorType::TLSHandshakeTimedout
        | ErrorType::InvalidCert => {
            ctx.outcome = Outcome::UpstreamError;
            let kind = if matches!(
                e.etype(),
                ErrorType::TLSHandshakeFailure | ErrorType::InvalidCert
            ) {
                "tls"
            } else {
                "connect"
            };
            metrics::UPSTREAM_ERRORS.with_label_values(&[kind]).inc();
            ScimError::new(502, None, "the upstream directory is unreachable")
        }
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            ctx.outcome = Outcome::UpstreamError;
            metrics::UPSTREAM_ERRORS
                .with_label_values(&["timeout"])
                .inc();
            ScimError::new(504, None, "the upstream directory did not answer in time")
        }
        _ => {
            ctx.outcome = Outcome::UpstreamError;
            metrics::UPSTREAM_ERRORS.with_label_values(&["other"]).inc();
            ScimError::new(502, None, "the upstream directory failed to answer")
        }
    }
}

/// Writes a complete SCIM error response.
pub async fn respond(session: &mut Session, e: &ScimError) -> pingora::Result<()> {
    let body = e.body();
    let header = e.header(body.len())?;
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session.write_response_body(Some(body), true).await?;
    Ok(())
}

/// Keeps the client's `Content-Length` valid on the stream path (see the module docs).
fn fit_length(original: Bytes, checked: Bytes) -> Bytes {
    use std::cmp::Ordering as O;
    match checked.len().cmp(&original.len()) {
        O::Equal => checked,
        O::Less => {
            let mut padded = BytesMut::with_capacity(original.len());
            padded.extend_from_slice(&checked);
            padded.resize(original.len(), b' ');
            padded.freeze()
        }
        O::Greater => {
            log::warn!(
                "normalised body is longer than the streamed original; forwarding it as sent"
            );
            original
        }
    }
}

/// `/ServiceProviderConfig` answered through the gate advertises the gate's own body limit
/// when it is lower than the upstream's, so an IdP that reads it never sends a Bulk request the
/// gate would refuse with 413.
fn advertise_limits(body: Bytes, max_body: usize) -> Bytes {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return body;
    };
    let Some(bulk) = v.get_mut("bulk").and_then(|b| b.as_object_mut()) else {
        return body;
    };
    let upstream = bulk.get("maxPayloadSize").and_then(|n| n.as_u64());
    if upstream.is_some_and(|n| n <= max_body as u64) {
        return body;
    }
    bulk.insert("maxPayloadSize".into(), max_body.into());
    serde_json::to_vec(&v).map(Bytes::from).unwrap_or(body)
}

/// `rewritten` padded with trailing spaces (JSON whitespace, RFC 8259 §2) to `n` bytes, the
/// Content-Length already sent. Should the upstream have sent other than `n` bytes, the
/// original body is forwarded as it came, so the framing stays whatever the upstream made it.
fn pad_to(original: Bytes, rewritten: Bytes, n: usize) -> Bytes {
    if original.len() != n || rewritten.len() > n {
        return original;
    }
    let mut out = BytesMut::with_capacity(n);
    out.extend_from_slice(&rewritten);
    out.resize(n, b' ');
    out.freeze()
}

fn replace_all(haystack: &[u8], from: &[u8], to: &[u8]) -> Bytes {
    if from.is_empty() {
        return Bytes::copy_from_slice(haystack);
    }
    let mut out = Vec::with_capacity(haystack.len() + haystack.len() / 8);
    let mut last = 0;
    for at in memchr::memmem::find_iter(haystack, from) {
        out.extend_from_slice(&haystack[last..at]);
        out.extend_from_slice(to);
        last = at + from.len();
    }
    out.extend_from_slice(&haystack[last..]);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_all_rewrites_every_occurrence() {
        let out = replace_all(
            b"{\"a\":\"http://up/v2/Users/1\",\"b\":\"http://up/v2/Groups/2\"}",
            b"http://up/v2",
            b"https://gate/scim/v2",
        );
        assert_eq!(
            &out[..],
            &b"{\"a\":\"https://gate/scim/v2/Users/1\",\"b\":\"https://gate/scim/v2/Groups/2\"}"[..]
        );
    }

    #[test]
    fn service_provider_config_advertises_the_lower_limit() {
        let up = Bytes::from_static(
            br#"{"bulk":{"supported":true,"maxPayloadSize":10485760,"maxOperations":100}}"#,
        );
        let v: serde_json::Value =
            serde_json::from_slice(&advertise_limits(up, 1024)).expect("json");
        assert_eq!(v["bulk"]["maxPayloadSize"], 1024);
        assert_eq!(v["bulk"]["maxOperations"], 100);
        let low = Bytes::from_static(br#"{"bulk":{"maxPayloadSize":512}}"#);
        assert_eq!(advertise_limits(low.clone(), 1024), low);
        let none = Bytes::from_static(br#"{"patch":{"supported":true}}"#);
        assert_eq!(advertise_limits(none.clone(), 1024), none);
    }

    #[test]
    fn a_shrinking_rewrite_is_padded_to_the_sent_length() {
        let up = Bytes::from_static(br#"{"l":"http://directory.internal:8080/v2/Users/1"}"#);
        let re = replace_all(&up, b"http://directory.internal:8080/v2", b"https://g/scim");
        let out = pad_to(up.clone(), re, up.len());
        assert_eq!(out.len(), up.len());
        let v: serde_json::Value = serde_json::from_slice(&out).expect("still JSON");
        assert_eq!(v["l"], "https://g/scim/Users/1");
        assert_eq!(
            pad_to(up.clone(), Bytes::from_static(b"{}"), up.len() + 1),
            up
        );
    }

    #[test]
    fn fit_length_pads_or_keeps_the_original() {
        assert_eq!(
            &fit_length(
                Bytes::from_static(b"{\"a\":\"False\"}"),
                Bytes::from_static(b"{\"a\":false}")
            )[..],
            b"{\"a\":false}  "
        );
        assert_eq!(
            &fit_length(Bytes::from_static(b"{}"), Bytes::from_static(b"{ }"))[..],
            b"{}"
        );
    }
}
