//! The one way to put the gate in a Pingora server: [`GatedProxy`], a `ProxyHttp` that runs
//! every gate step in every hook and hands an [`Embedder`] only what is safe to hand over.
//!
//! Wiring the gate's hooks one by one into an operator's own `ProxyHttp` can be done half: a
//! forgotten `request_body_filter` lets large and chunked bodies through unchecked, a forgotten
//! `upstream_request_filter` sends the IdP's token and a client-supplied `X-Scim-Tenant`
//! upstream. So the gate owns the `ProxyHttp` implementation, and the embedder implements a
//! small trait whose hooks cannot touch those steps:
//!
//! | Pingora hook | gate | embedder |
//! |---|---|---|
//! | `request_filter` | guards, token, route, body admission | [`Embedder::admitted`], only after the gate admitted the request |
//! | `upstream_peer` | the configured upstream, stream-path timeout | [`Embedder::upstream_peer`] may choose another peer |
//! | `upstream_request_filter` | path, credentials and identity headers — **last**, so final | [`Embedder::upstream_request_filter`], first |
//! | `request_body_filter` | replay substitution, stream check | — |
//! | `response_filter` | `Location` rewrite | [`Embedder::response_filter`], after |
//! | `response_body_filter` | URL rewrite | — |
//! | `fail_to_proxy` | the SCIM error | — |
//! | `logging` | metrics, access log, in-flight count | [`Embedder::logging`], after |
//!
//! Pingora's other hooks keep their defaults. The `scim-gate` binary uses the same type with
//! [`DefaultEmbedder`] ([`GateProxy`]), so the binary and every embedding run the same code.
//!
//! The embedder's hooks are generic (static dispatch, `impl Future` rather than boxed
//! futures), so an empty hook costs the request path nothing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::Error;

use crate::gate::{Decision, Gate, GateCtx};

/// What an operator's proxy adds to the gate: its own per-request state, peer choice and
/// extra header work. Every method has a default that does nothing (or keeps the gate's
/// choice); implement only what you need.
///
/// An `Err` from a hook is answered by the gate's failure classification: return
/// `pingora::Error::explain(ErrorType::HTTPStatus(code), …)` to refuse with `code`.
pub trait Embedder: Send + Sync + 'static {
    /// The embedder's per-request state, beside the gate's.
    type Ctx: Send + Sync;

    /// A fresh per-request state.
    fn new_ctx(&self) -> Self::Ctx;

    /// The gate admitted the request (token, route and body checked); `gate` names the caller
    /// ([`GateCtx::tenant`], [`GateCtx::token_id`]). Not called for requests the gate refused.
    fn admitted(
        &self,
        _session: &mut Session,
        _gate: &GateCtx,
        _ctx: &mut Self::Ctx,
    ) -> impl Future<Output = pingora::Result<()>> + Send {
        async { Ok(()) }
    }

    /// Chooses the upstream peer; `peer` is the gate's configured upstream. The gate still
    /// applies its own timeouts to whatever is returned, and still rewrites the request for its
    /// configured upstream (path prefix, `Host`, credential).
    fn upstream_peer(
        &self,
        _session: &mut Session,
        _gate: &GateCtx,
        peer: Box<HttpPeer>,
        _ctx: &mut Self::Ctx,
    ) -> impl Future<Output = pingora::Result<Box<HttpPeer>>> + Send {
        async move { Ok(peer) }
    }

    /// Edits the upstream request head *before* the gate's rewrite, which therefore wins: no
    /// header set here can forward the IdP's token or a client's identity headers.
    fn upstream_request_filter(
        &self,
        _session: &mut Session,
        _upstream_request: &mut RequestHeader,
        _ctx: &mut Self::Ctx,
    ) -> impl Future<Output = pingora::Result<()>> + Send {
        async { Ok(()) }
    }

    /// Edits the response head after the gate rewrote `Location`.
    fn response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        _ctx: &mut Self::Ctx,
    ) -> impl Future<Output = pingora::Result<()>> + Send {
        async { Ok(()) }
    }

    /// Installs the embedder's downstream modules. None by default: Pingora's own default is
    /// a *disabled* response-compression module (pingora-proxy `proxy_trait.rs`,
    /// `init_downstream_modules`) that still runs and allocates on every request; the gate
    /// never compresses, so the binary installs nothing (BENCHMARKS.md). An embedder that
    /// wants compression adds `ResponseCompressionBuilder` here.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    /// Runs after the gate counted and logged the request.
    fn logging(
        &self,
        _session: &mut Session,
        _e: Option<&Error>,
        _gate: &GateCtx,
        _ctx: &mut Self::Ctx,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// The embedder of the `scim-gate` binary: adds nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultEmbedder;

impl Embedder for DefaultEmbedder {
    type Ctx = ();

    fn new_ctx(&self) {}
}

/// The `ProxyHttp` of the `scim-gate` binary.
pub type GateProxy = GatedProxy<DefaultEmbedder>;

/// A `ProxyHttp` that runs every gate step in every hook, around an [`Embedder`].
pub struct GatedProxy<E: Embedder> {
    gate: Arc<Gate>,
    embedder: E,
}

impl<E: Embedder> GatedProxy<E> {
    /// The gate, embedded.
    pub fn new(gate: Arc<Gate>, embedder: E) -> GatedProxy<E> {
        GatedProxy { gate, embedder }
    }

    /// The gate (for its token store and in-flight count).
    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    /// The embedder.
    pub fn embedder(&self) -> &E {
        &self.embedder
    }
}

/// Per-request state of a [`GatedProxy`]: the gate's and the embedder's, side by side.
pub struct GatedCtx<C> {
    gate: GateCtx,
    embedder: C,
}

impl<C> GatedCtx<C> {
    /// The gate's state (who the caller is).
    pub fn gate(&self) -> &GateCtx {
        &self.gate
    }

    /// The embedder's state.
    pub fn embedder(&self) -> &C {
        &self.embedder
    }
}

#[async_trait]
impl<E: Embedder> ProxyHttp for GatedProxy<E> {
    type CTX = GatedCtx<E::Ctx>;

    fn new_ctx(&self) -> Self::CTX {
        GatedCtx {
            gate: GateCtx::default(),
            embedder: self.embedder.new_ctx(),
        }
    }

    fn init_downstream_modules(&self, modules: &mut pingora::modules::http::HttpModules) {
        self.embedder.init_downstream_modules(modules);
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<bool> {
        match self.gate.request_filter(session, &mut ctx.gate).await? {
            Decision::Responded => Ok(true),
            Decision::Forward => {
                self.embedder
                    .admitted(session, &ctx.gate, &mut ctx.embedder)
                    .await?;
                Ok(false)
            }
        }
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<Box<HttpPeer>> {
        let peer = self.gate.configured_peer();
        let mut peer = self
            .embedder
            .upstream_peer(session, &ctx.gate, peer, &mut ctx.embedder)
            .await?;
        self.gate.fit_peer(&mut peer, &ctx.gate);
        Ok(peer)
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<()> {
        self.embedder
            .upstream_request_filter(session, upstream_request, &mut ctx.embedder)
            .await?;
        self.gate
            .upstream_request_filter(upstream_request, &mut ctx.gate)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<()> {
        self.gate
            .request_body_filter(body, end_of_stream, &mut ctx.gate)
            .await
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<()> {
        self.gate
            .response_filter(upstream_response, &mut ctx.gate)?;
        self.embedder
            .response_filter(session, upstream_response, &mut ctx.embedder)
            .await
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<Option<Duration>> {
        self.gate
            .response_body_filter(body, end_of_stream, &mut ctx.gate);
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Self::CTX,
    ) -> FailToProxy {
        self.gate.fail_to_proxy(session, e, &mut ctx.gate).await
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Self::CTX) {
        self.gate.logging(session, &mut ctx.gate);
        self.embedder
            .logging(session, e, &ctx.gate, &mut ctx.embedder)
            .await;
    }
}
