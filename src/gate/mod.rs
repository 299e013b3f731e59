//! The gate: the steps every SCIM request goes through, one Pingora hook at a time.
//!
//! One request goes: guards → authenticate → route → guards → (for writes) read and check the
//! whole body → forward → rewrite the response. This module is the hook surface — one method
//! per Pingora hook, each a few lines that hand over to the phase that does the work:
//!
//! | phase | file | hooks |
//! |---|---|---|
//! | per-request guard steps | `guard.rs` | `request_filter` |
//! | body admission (replay and stream paths, timeouts) | `admission.rs` | `request_filter`, `request_body_filter` |
//! | the current resource a PUT is compared with | `current.rs` | (from admission) |
//! | response rewriting | `response.rs` | `response_filter`, `response_body_filter` |
//! | failure classification | `failure.rs` | `fail_to_proxy` |
//! | per-request state | `ctx.rs` | all |
//!
//! Nobody calls these hooks one by one: [`crate::GatedProxy`] runs every one of them in the
//! matching Pingora hook, so a proxy cannot be half-wired.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};

mod admission;
mod ctx;
mod current;
mod failure;
mod guard;
mod oauth;
mod response;

pub use ctx::GateCtx;
pub use guard::{GuardInput, RequestGuard};

use crate::auth;
use crate::config::Config;
use crate::decisions::{self, DecisionLog};
use crate::error::ScimError;
use crate::guards::{Breakers, InFlight, NetworkGuard, RateGuard};
use crate::metrics::{self, Outcome};
use crate::routes::{match_route, Route};
use crate::scim::Policy;
use crate::tokens::TokenStore;
use crate::upstream::{Upstream, UpstreamError};
use ctx::BodyMode;
use guard::GuardChain;

/// What `request_filter` decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Forward to the upstream; the token's tenant and id are in the ctx.
    Forward,
    /// The gate already wrote the response (an error); stop.
    Responded,
}

/// The gate: tokens, policy, upstream, guards. Built once, shared by every request (`Arc`).
pub struct Gate {
    base_path: String,
    max_body: usize,
    /// `policy.bulk_max_operations`, advertised in ServiceProviderConfig.
    bulk_max_operations: usize,
    /// `server.body_timeout`: the whole body must arrive within it (408 otherwise).
    body_timeout: Duration,
    read_timeout: Duration,
    tls_listener: bool,
    tokens: Arc<TokenStore>,
    policy: Policy,
    upstream: Upstream,
    /// The search for [`Upstream::prefix`] in response bodies, built once (`response.rs`).
    upstream_finder: memchr::memmem::Finder<'static>,
    guards: GuardChain,
    in_flight: AtomicUsize,
    /// Requests in flight to the directory (`limits.upstream_max_in_flight`).
    upstream_in_flight: InFlight,
    /// Whether a schemeless gate token is accepted (every dialect but `strict`).
    schemes: auth::Schemes,
    /// The destructive-change breakers (`guards.destructive`).
    breakers: Arc<Breakers>,
    /// The recent refusals (`GET /decisions`).
    decisions: Arc<DecisionLog>,
    /// The tenants with their own metric series (`metrics.max_tenants`).
    tenants: metrics::TenantCap,
    /// `scim_gate_requests_total`'s series, resolved once each.
    request_series: metrics::RequestSeries,
    /// `oauth.access_token_ttl` when the token endpoint is on.
    oauth_ttl: Option<Duration>,
}

impl Gate {
    /// Builds the gate for a resolved configuration, with the guard rails it configures
    /// (networks, then the rate limit; `docs/guards.md`). Resolves the upstream's host name
    /// once, here, so no request waits on DNS.
    pub fn new(cfg: &Config, tokens: Arc<TokenStore>) -> Result<Gate, UpstreamError> {
        let mut guards = GuardChain::default();
        guards.push(Box::new(NetworkGuard::new(
            cfg.server.allowed_networks.clone(),
            cfg.server.trusted_proxies.clone(),
        )));
        guards.push(Box::new(RateGuard::new(&cfg.limits)));
        let upstream = Upstream::new(cfg)?;
        Ok(Gate {
            upstream_finder: memchr::memmem::Finder::new(upstream.prefix.as_bytes()).into_owned(),
            base_path: cfg.base_path.clone(),
            max_body: cfg.policy.max_body_bytes,
            bulk_max_operations: cfg.policy.spec.bulk_max_operations,
            body_timeout: cfg.server.body_timeout,
            read_timeout: cfg.upstream.read_timeout,
            tls_listener: cfg.server.tls.is_some(),
            tokens,
            policy: cfg.policy.compiled.clone(),
            upstream,
            guards,
            in_flight: AtomicUsize::new(0),
            upstream_in_flight: InFlight::new(cfg.limits.upstream_max_in_flight),
            breakers: Arc::new(Breakers::new(&cfg.destructive)),
            decisions: Arc::new(DecisionLog::new(cfg.admin.decisions_kept)),
            tenants: metrics::TenantCap::new(cfg.metrics.max_tenants),
            request_series: metrics::RequestSeries::default(),
            oauth_ttl: cfg.oauth.map(|o| o.access_token_ttl),
            schemes: match cfg.policy.spec.dialect {
                crate::scim::Dialect::Strict => auth::Schemes::BearerOnly,
                _ => auth::Schemes::AlsoSchemeless,
            },
        })
    }

    /// Adds a per-request guard step; guards run in the order they were added.
    pub fn with_guard(mut self, guard: impl RequestGuard + 'static) -> Gate {
        self.guards.push(Box::new(guard));
        self
    }

    /// The destructive-change breakers, for the admin socket's `/guards` routes.
    pub(crate) fn breakers(&self) -> &Arc<Breakers> {
        &self.breakers
    }

    /// The decision log, for the admin socket's `/decisions`.
    pub(crate) fn decisions(&self) -> &Arc<DecisionLog> {
        &self.decisions
    }

    /// The token store this gate authenticates against.
    pub fn tokens(&self) -> &Arc<TokenStore> {
        &self.tokens
    }

    /// Requests between `request_filter` and `logging`, for the drain on shutdown.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// `request_filter`: guards, authentication, route and (for writes) the body checks. On
    /// `Responded` the error response is already written.
    pub(crate) async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut GateCtx,
    ) -> pingora::Result<Decision> {
        ctx.start = Some(Instant::now());
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        ctx.counted = true;
        if let Some(ttl) = self.oauth_ttl {
            if self.is_token_endpoint(session, ctx) {
                if let Err(e) = self.guards.before_auth(&guard_input(session, ctx)) {
                    ctx.limited = e.limited;
                    ctx.refusal = Some(e.clone());
                    self.answer(session, &e).await?;
                } else {
                    self.token_endpoint(session, ctx, ttl).await?;
                }
                return Ok(Decision::Responded);
            }
        }
        match self.admit(session, ctx).await {
            Ok(()) => Ok(Decision::Forward),
            Err(e) => {
                if ctx.outcome == Outcome::Forwarded {
                    ctx.outcome = Outcome::Rejected;
                }
                ctx.limited = e.limited;
                ctx.refusal = Some(e.clone());
                self.answer(session, &e).await?;
                Ok(Decision::Responded)
            }
        }
    }

    async fn admit(&self, session: &mut Session, ctx: &mut GateCtx) -> Result<(), ScimError> {
        let req = session.req_header();
        // The token is checked before the route is judged, so a caller without a valid token
        // learns nothing about which paths exist (401 everywhere, never 404 or 400).
        let route_error = match match_route(req.uri.path(), &self.base_path) {
            Ok(route) => {
                ctx.route = Some(route);
                None
            }
            Err(e) => Some(e),
        };
        if !self.guards.is_empty() {
            self.guards.before_auth(&guard_input(session, ctx))?;
        }
        let req = session.req_header();
        let token = auth::authenticate(&req.headers, &self.tokens, self.schemes)
            .inspect_err(|_| ctx.outcome = Outcome::Unauthorized)?;
        ctx.token = Some(token);
        if let (false, Some(token)) = (self.guards.is_empty(), &ctx.token) {
            self.guards.after_auth(&guard_input(session, ctx), token)?;
        }
        if let Some(e) = route_error {
            return Err(e);
        }
        // With the token endpoint off, its path is no SCIM endpoint (never forwarded).
        if matches!(ctx.route, Some(Route::OAuthToken)) {
            return Err(ScimError::new(404, None, "no such SCIM endpoint").reason("route_unknown"));
        }
        // The route is lent to the checks (which never read `ctx.route`) and given back whatever
        // they answer: no copy of its id per request.
        let Some(route) = ctx.route.take() else {
            return Err(ScimError::new(500, None, "no route after matching"));
        };
        let admitted = self.admit_routed(session, ctx, &route).await;
        ctx.route = Some(route);
        admitted
    }

    /// The checks of a request whose token passed and whose route exists: the method, the body
    /// (for writes), the breakers, the upstream's in-flight limit.
    async fn admit_routed(
        &self,
        session: &mut Session,
        ctx: &mut GateCtx,
        route: &Route,
    ) -> Result<(), ScimError> {
        let req = session.req_header();
        let method = req.method.clone();
        if !route.allows(&method) {
            return Err(ScimError::new(
                405,
                None,
                // The method is named only from the known set: an arbitrary method is the
                // client's own text, which may be anything, a token included (found by the
                // request fuzzer, fuzz/fuzz_targets/request.rs).
                match metrics::method_label(&method) {
                    "other" => format!("this method is not allowed on {}", route.label()),
                    known => format!("{known} is not allowed on {}", route.label()),
                },
            )
            .reason("method_not_allowed"));
        }
        admission::check_method_override(req)?;
        ctx.public_prefix = self.public_prefix(req);
        if admission::has_body(&method) {
            self.admit_body(session, ctx, route).await?;
        } else {
            admission::check_no_body(req)?;
            if let (&http::Method::DELETE, Route::Item(..), Some(token)) =
                (&method, route, &ctx.token)
            {
                self.breakers.admit(token, 1)?;
            }
        }
        // No tunnel past the checks: without `Upgrade` on the request, neither the upstream
        // nor Pingora treats the exchange as a protocol switch (a 101 anyway is refused in
        // `response.rs`). Removed here, so the upstream copy never has it either.
        session
            .req_header_mut()
            .remove_header(&http::header::UPGRADE);
        // Last, so only a request that will really be forwarded takes a place.
        ctx.upstream_slot = Some(self.upstream_in_flight.enter()?);
        Ok(())
    }

    /// Whether this is `POST {base_path}/oauth/token` (a cheap suffix test first, so other
    /// requests do not match their route twice).
    fn is_token_endpoint(&self, session: &Session, ctx: &mut GateCtx) -> bool {
        let path = session.req_header().uri.path();
        let tail = path
            .len()
            .checked_sub("/oauth/token".len())
            .and_then(|i| path.get(i..));
        if !tail.is_some_and(|t| t.eq_ignore_ascii_case("/oauth/token")) {
            return false;
        }
        let route = match_route(path, &self.base_path).ok();
        let hit = route == Some(Route::OAuthToken);
        if hit {
            ctx.route = route;
        }
        hit
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
        let mut prefix =
            String::with_capacity(scheme.len() + 3 + host.len() + self.base_path.len());
        for part in [scheme, "://", host, &self.base_path] {
            prefix.push_str(part);
        }
        prefix
    }

    /// `upstream_peer`, first half: the configured upstream.
    pub(crate) fn configured_peer(&self) -> Box<HttpPeer> {
        self.upstream.peer()
    }

    /// `upstream_peer`, second half, on the gate's peer or an embedder's choice. On the stream
    /// path the upstream's read timeout starts while the IdP is still sending, so it gets
    /// `body_timeout` of extra room.
    pub(crate) fn fit_peer(&self, peer: &mut HttpPeer, ctx: &GateCtx) {
        if matches!(ctx.body, BodyMode::Stream(_)) {
            peer.options.read_timeout = Some(self.read_timeout + self.body_timeout);
        }
    }

    /// `upstream_request_filter`: maps the path onto the upstream, replaces credentials and
    /// identity headers, and sets the exact `Content-Length` of a checked body.
    pub(crate) fn upstream_request_filter(
        &self,
        req: &mut RequestHeader,
        ctx: &mut GateCtx,
    ) -> pingora::Result<()> {
        let (Some(route), Some(token)) = (&ctx.route, &ctx.token) else {
            return Error::e_explain(
                ErrorType::InternalError,
                "upstream_request_filter before request_filter",
            );
        };
        // One buffer, sized once, handed to the URI without a copy (`TryFrom<String>`).
        let root = self.upstream.path_for(token.tenant());
        let query = req.uri.query();
        let mut path = String::with_capacity(
            root.len() + route.upstream_suffix_len_hint() + query.map_or(0, |q| q.len() + 1),
        );
        path.push_str(&root);
        route.push_upstream_suffix(&mut path);
        if let Some(q) = query {
            path.push('?');
            path.push_str(q);
        }
        if self.upstream.per_tenant {
            ctx.upstream_prefix = Some(self.upstream.prefix_for(token.tenant()).into_owned());
        }
        let uri = http::Uri::try_from(path)
            .map_err(|e| Error::because(ErrorType::InternalError, "building upstream uri", e))?;
        req.set_uri(uri);
        // What must not travel goes first: a header removed frees a slot in Pingora's header
        // map, which is sized to the headers that arrived, so the gate's own may not grow it.
        req.remove_header(&http::header::EXPECT);
        // Upstream bodies are rewritten (URLs); ask for them uncompressed.
        req.remove_header(&http::header::ACCEPT_ENCODING);
        // Built per request: one value per tenant kept in the token set would cost a million-
        // token set about 8 MB (BENCHMARKS.md), for one small copy here.
        let tenant = http::HeaderValue::from_str(token.tenant())
            .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "tenant header value", e))?;
        if let BodyMode::Replay(_) = &ctx.body {
            req.remove_header(&http::header::TRANSFER_ENCODING);
        }
        self.upstream.set_headers(req, tenant, token.id())?;
        if let BodyMode::Replay(body) = &ctx.body {
            req.insert_header(
                http::header::CONTENT_LENGTH,
                http::HeaderValue::from(body.len()),
            )?;
        }
        Ok(())
    }

    /// `request_body_filter`: substitutes the checked body (replay path) or withholds and then
    /// checks it (stream path).
    pub(crate) async fn request_body_filter(
        &self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut GateCtx,
    ) -> pingora::Result<()> {
        self.filter_request_body(body, end_of_stream, ctx).await
    }

    /// `response_filter`: rewrites `Location` and prepares the body rewrite.
    pub(crate) fn response_filter(
        &self,
        resp: &mut ResponseHeader,
        ctx: &mut GateCtx,
    ) -> pingora::Result<()> {
        self.rewrite_response_head(resp, ctx)
    }

    /// `response_body_filter`: replaces upstream URLs in a JSON body with public ones.
    pub(crate) fn response_body_filter(
        &self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut GateCtx,
    ) {
        self.rewrite_response_body(body, end_of_stream, ctx)
    }

    /// `fail_to_proxy`: writes the SCIM error for a failure after `request_filter`.
    pub(crate) async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut GateCtx,
    ) -> FailToProxy {
        self.fail(session, e, ctx).await
    }

    /// `logging`: metrics and the access-log line. The line never holds the token or a query
    /// value (filters carry user names): only ids, the route label, statuses and the duration.
    pub(crate) fn logging(&self, session: &Session, ctx: &mut GateCtx) {
        if ctx.counted {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            ctx.counted = false;
        }
        let req_method = &session.req_header().method;
        let method = metrics::method_label(req_method);
        let route = ctx.route.as_ref().map_or("none", Route::label);
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let elapsed = ctx.start.map_or(Duration::ZERO, |s| s.elapsed());
        self.request_series
            .inc(req_method, ctx.route.as_ref(), ctx.outcome);
        let (tenant, idp) = match &ctx.token {
            Some(t) => (self.tenants.label(t.tenant()), t.idp().as_str()),
            None => ("none", "none"),
        };
        metrics::TENANT_REQUESTS
            .with_label_values(&[tenant, idp, ctx.outcome.label()])
            .inc();
        if let Some(e) = &ctx.refusal {
            let cx = decisions::Context {
                token_id: ctx.token_id(),
                tenant: ctx.tenant(),
                idp: ctx.token.as_ref().map(|t| t.idp().as_str()),
                method,
                route,
            };
            self.decisions.record(&cx, e);
        }
        metrics::DURATION.observe(elapsed.as_secs_f64());
        crate::logging::access(&crate::logging::AccessFields {
            token: ctx.token_id().unwrap_or("-"),
            tenant: ctx.tenant().unwrap_or("-"),
            method,
            route,
            status,
            upstream_status: ctx.upstream_status,
            outcome: ctx.outcome.label(),
            limited: ctx.limited.map_or("-", |l| l.label()),
            duration: elapsed,
        });
    }
}

/// What the guards see; borrowed from the session, so building it allocates nothing.
fn guard_input<'a>(session: &'a Session, ctx: &'a GateCtx) -> GuardInput<'a> {
    GuardInput {
        head: session.req_header(),
        client: session.client_addr().and_then(|a| a.as_inet()).copied(),
        route: ctx.route.as_ref(),
    }
}
