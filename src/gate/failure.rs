//! Failure classification: every way a request can fail after the gate admitted it, turned
//! into the one SCIM error the IdP receives and the metric that counts it.

use pingora::proxy::{FailToProxy, Session};
use pingora::{Error, ErrorSource, ErrorType};

use super::admission::timeout_408;
use super::{Gate, GateCtx};
use crate::error::ScimError;
use crate::metrics::{self, Outcome, UpstreamErrorKind};
use crate::upstream::UpstreamError;

impl Gate {
    /// Writes the SCIM error for a failure after `request_filter`: 502/504 for the upstream,
    /// the pending check error for a streamed body, 408 for a stalled client.
    pub(super) async fn fail(
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
        ctx.refusal = Some(err.clone());
        if session.response_written().is_none() && self.answer(session, &err).await.is_err() {
            log::debug!("could not write error response: downstream gone");
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }
}

impl Gate {
    /// Writes the gate's own answer, then drains what is left of the request body, so the
    /// answer reaches a client still sending.
    ///
    /// Pingora writes an answer given before the body fully arrived with `Connection: close`
    /// (`close_on_response_before_downstream_finish`, on by default) and then closes the socket
    /// without reading the rest (`HttpSession::reuse` shuts down instead of draining when
    /// keep-alive is off). The kernel answers a close with unread bytes in the receive queue
    /// with a reset (RFC 9112 §9.6 asks servers to close in stages for this reason), and a
    /// client that writes its whole body before reading (Python's `http.client`) sees the reset
    /// instead of the answer. Draining up to [`DRAIN_LIMIT`] bytes within `server.body_timeout`
    /// lets it finish sending and read the answer; past either bound the gate closes anyway.
    pub(super) async fn answer(&self, session: &mut Session, e: &ScimError) -> pingora::Result<()> {
        respond(session, e).await?;
        // A 408 answers a client that stopped sending: waiting for more would only hold the
        // connection longer.
        if e.status != 408 && !session.is_body_done() {
            self.drain(session).await;
        }
        Ok(())
    }

    /// Reads and discards the rest of the request body, up to [`DRAIN_LIMIT`] bytes and
    /// `server.body_timeout`. Chunks are dropped as they come, so draining holds no memory.
    async fn drain(&self, session: &mut Session) {
        // These bytes are the tail of a body, not a new request head: the connection's head
        // and idle deadlines must not cut the drain (`connections::TimedStream`).
        crate::connections::untime_for_drain(session.as_downstream().stream());
        let downstream = session.as_downstream_mut();
        downstream.set_read_timeout(Some(self.body_timeout));
        let read_all = async {
            let mut seen = 0usize;
            while let Ok(Some(chunk)) = downstream.read_request_body().await {
                seen = seen.saturating_add(chunk.len());
                if seen > DRAIN_LIMIT {
                    break;
                }
            }
        };
        if tokio::time::timeout(self.body_timeout, read_all)
            .await
            .is_err()
        {
            log::debug!("request body still arriving after the early answer; closing");
        }
    }
}

/// The most of an unwanted request body the gate reads to let its early answer arrive
/// (see [`Gate::answer`]): a few times the largest body an IdP sends; beyond it the client
/// is not one that will read the answer anyway.
pub(super) const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

/// A policy rejection: counted by its reason, answered as it is.
pub(super) fn reject(r: crate::scim::Rejection) -> ScimError {
    metrics::POLICY_REJECTIONS
        .with_label_values(&[r.reason.label()])
        .inc();
    r.into()
}

/// The gate's own upstream read (a PUT's current resource) failed.
/// A failed read of the resources a request replaces: over the gate's budget is the request's
/// size (413, as RFC 7644 §3.7.4 answers an over-large Bulk request), anything else the
/// upstream's failure.
pub(super) fn read_error(e: &UpstreamError) -> ScimError {
    match e {
        UpstreamError::OverBudget(limit) => ScimError::new(
            413,
            None,
            format!(
                "the resources this request replaces hold more than the gate compares at once \
                 ({limit} bytes); send fewer PUT operations per Bulk request, or PATCH"
            ),
        )
        .reason("put_reads_too_large"),
        e => upstream_error(e),
    }
}

fn upstream_error(e: &UpstreamError) -> ScimError {
    let (status, kind) = e.status_and_kind();
    metrics::count_upstream_error(kind);
    log::warn!("{e}");
    let detail = match status {
        504 => "the upstream directory did not answer in time",
        _ => "the upstream directory is unreachable or answered badly",
    };
    let reason = match status {
        504 => "upstream_timeout",
        _ => "upstream_unavailable",
    };
    ScimError::new(status, None, detail).reason(reason)
}

/// Pingora's error after admission: the client's side (408, 400) or the upstream's (502, 504).
fn classify_proxy_error(e: &Error, ctx: &mut GateCtx) -> ScimError {
    let downstream = matches!(e.esource(), ErrorSource::Downstream);
    match e.etype() {
        ErrorType::HTTPStatus(code) => ScimError::new(*code, None, "request refused"),
        ErrorType::ReadTimedout if downstream => timeout_408(),
        _ if downstream => {
            ScimError::new(400, None, "the request could not be read").reason("body_unreadable")
        }
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
                UpstreamErrorKind::Tls
            } else {
                UpstreamErrorKind::Connect
            };
            metrics::count_upstream_error(kind);
            let reason = match kind {
                UpstreamErrorKind::Tls => "upstream_tls",
                _ => "upstream_unavailable",
            };
            ScimError::new(502, None, "the upstream directory is unreachable").reason(reason)
        }
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            ctx.outcome = Outcome::UpstreamError;
            metrics::count_upstream_error(UpstreamErrorKind::Timeout);
            ScimError::new(504, None, "the upstream directory did not answer in time")
                .reason("upstream_timeout")
        }
        _ => {
            ctx.outcome = Outcome::UpstreamError;
            metrics::count_upstream_error(UpstreamErrorKind::Other);
            ScimError::new(502, None, "the upstream directory failed to answer")
                .reason("upstream_failed")
        }
    }
}

/// Writes a complete SCIM error response.
async fn respond(session: &mut Session, e: &ScimError) -> pingora::Result<()> {
    let body = e.body();
    let header = e.header(body.len())?;
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session.write_response_body(Some(body), true).await?;
    Ok(())
}
