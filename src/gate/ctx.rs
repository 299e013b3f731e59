//! Per-request state: what one hook leaves for the next.

use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::error::ScimError;
use crate::metrics::Outcome;
use crate::routes::Route;
use crate::scim::WriteMethod;
use crate::tokens::TokenInfo;

/// Where the request body stands (see `admission.rs` for the two paths).
#[derive(Debug, Default)]
pub(super) enum BodyMode {
    /// No body to check (GET, DELETE), or not decided yet.
    #[default]
    None,
    /// Checked bytes to send in place of Pingora's replay.
    Replay(Bytes),
    /// Withheld chunks so far.
    Stream(BytesMut),
}

/// The gate's per-request state. [`crate::GatedProxy`] keeps one per request beside the
/// embedder's own; an embedder reads the caller's identity from it.
#[derive(Debug, Default)]
pub struct GateCtx {
    pub(super) start: Option<Instant>,
    /// The token that passed; `None` until authentication succeeded.
    pub(super) token: Option<TokenInfo>,
    pub(super) route: Option<Route>,
    pub(super) outcome: Outcome,
    pub(super) body: BodyMode,
    /// The gate's own error for `fail_to_proxy` to write (a body rejected mid-stream).
    pub(super) pending_error: Option<ScimError>,
    /// `scheme://host/base_path` as the IdP sees the gate, for rewriting upstream URLs.
    pub(super) public_prefix: String,
    pub(super) rewrite_response: bool,
    /// The rewrite's carry: the end of the last chunk that may begin an upstream URL (see
    /// `response.rs`); the whole body only for `/ServiceProviderConfig`.
    pub(super) response_buf: BytesMut,
    /// Bytes of the rewritten response sent so far, for the padding at its end.
    pub(super) response_sent: usize,
    /// The upstream's Content-Length, kept for a rewritten body that can only shrink.
    pub(super) pad_to: Option<usize>,
    pub(super) upstream_status: Option<u16>,
    /// Whether this request is counted in [`super::Gate::in_flight`].
    pub(super) counted: bool,
    /// PUT and PATCH share a route; the checks need to know which one this is.
    pub(super) body_method: Option<WriteMethod>,
    /// This request's place among those in flight to the directory; given back when the
    /// context is dropped (`limits.upstream_max_in_flight`).
    pub(super) upstream_slot: Option<crate::guards::UpstreamSlot>,
    /// The guard rail that refused this request, for the access log.
    pub(super) limited: Option<crate::guards::Limited>,
    /// The gate's own refusal of this request, for the decision log (`logging`).
    pub(super) refusal: Option<ScimError>,
    /// The upstream's URL prefix for this token's tenant, when `upstream.url` holds
    /// `{tenant}` (`None`: the configured prefix).
    pub(super) upstream_prefix: Option<String>,
}

impl GateCtx {
    /// The authenticated token's tenant; `None` before (or without) authentication.
    pub fn tenant(&self) -> Option<&str> {
        self.token.as_ref().map(|t| t.tenant())
    }

    /// The authenticated token's id (public, never the secret).
    pub fn token_id(&self) -> Option<&str> {
        self.token.as_ref().map(|t| t.id())
    }

    /// The matched SCIM route, once the path was judged.
    pub fn route(&self) -> Option<&Route> {
        self.route.as_ref()
    }
}
