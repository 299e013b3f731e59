//! The sidecar's Pingora proxy: every hook delegates to the library [`Gate`], exactly as an
//! embedding proxy would (see `examples/embed.rs`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::Error;

use crate::gate::{Decision, Gate, GateCtx};

/// `ProxyHttp` for the `scim-gate` binary.
pub struct GateProxy {
    pub gate: Arc<Gate>,
}

#[async_trait]
impl ProxyHttp for GateProxy {
    type CTX = GateCtx;

    fn new_ctx(&self) -> GateCtx {
        GateCtx::default()
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut GateCtx,
    ) -> pingora::Result<bool> {
        Ok(self.gate.request_filter(session, ctx).await? == Decision::Responded)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut GateCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        Ok(self.gate.upstream_peer(ctx))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut GateCtx,
    ) -> pingora::Result<()> {
        self.gate.upstream_request_filter(upstream_request, ctx)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut GateCtx,
    ) -> pingora::Result<()> {
        self.gate
            .request_body_filter(body, end_of_stream, ctx)
            .await
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut GateCtx,
    ) -> pingora::Result<()> {
        self.gate.response_filter(upstream_response, ctx)
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut GateCtx,
    ) -> pingora::Result<Option<Duration>> {
        self.gate.response_body_filter(body, end_of_stream, ctx);
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut GateCtx,
    ) -> FailToProxy {
        self.gate.fail_to_proxy(session, e, ctx).await
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut GateCtx) {
        self.gate.logging(session, ctx);
    }
}
