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
        if session.response_written().is_none() && respond(session, &err).await.is_err() {
            log::debug!("could not write error response: downstream gone");
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }
}

/// A policy rejection: counted by its reason, answered as it is.
pub(super) fn reject(r: crate::scim::Rejection) -> ScimError {
    metrics::POLICY_REJECTIONS
        .with_label_values(&[r.reason.label()])
        .inc();
    r.into()
}

/// The gate's own upstream read (a PUT's current resource) failed.
pub(super) fn upstream_error(e: &UpstreamError) -> ScimError {
    let (status, kind) = e.status_and_kind();
    metrics::count_upstream_error(kind);
    log::warn!("{e}");
    let detail = match status {
        504 => "the upstream directory did not answer in time",
        _ => "the upstream directory is unreachable or answered badly",
    };
    ScimError::new(status, None, detail)
}

/// Pingora's error after admission: the client's side (408, 400) or the upstream's (502, 504).
fn classify_proxy_error(e: &Error, ctx: &mut GateCtx) -> ScimError {
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
                UpstreamErrorKind::Tls
            } else {
                UpstreamErrorKind::Connect
            };
            metrics::count_upstream_error(kind);
            ScimError::new(502, None, "the upstream directory is unreachable")
        }
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            ctx.outcome = Outcome::UpstreamError;
            metrics::count_upstream_error(UpstreamErrorKind::Timeout);
            ScimError::new(504, None, "the upstream directory did not answer in time")
        }
        _ => {
            ctx.outcome = Outcome::UpstreamError;
            metrics::count_upstream_error(UpstreamErrorKind::Other);
            ScimError::new(502, None, "the upstream directory failed to answer")
        }
    }
}

/// Writes a complete SCIM error response.
pub(super) async fn respond(session: &mut Session, e: &ScimError) -> pingora::Result<()> {
    let body = e.body();
    let header = e.header(body.len())?;
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session.write_response_body(Some(body), true).await?;
    Ok(())
}
