//! The demo's SCIM error (RFC 7644 §3.12): what routing, the store and PATCH return, turned
//! into a response only at the edge.

use serde_json::json;

use crate::message::DemoResponse;
use crate::urn::ERROR_URN;

/// An RFC 7644 §3.12 error on its way to becoming a response.
#[derive(Debug, thiserror::Error)]
#[error("{status} {scim_type:?}: {detail}")]
pub(crate) struct ScimError {
    pub status: u16,
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

impl ScimError {
    pub(crate) fn new(
        status: u16,
        scim_type: Option<&'static str>,
        detail: impl Into<String>,
    ) -> Self {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
        }
    }
    pub(crate) fn not_found(what: &str) -> Self {
        ScimError::new(404, None, format!("{what} not found"))
    }
    pub(crate) fn response(&self) -> DemoResponse {
        let mut body = json!({"schemas": [ERROR_URN], "status": self.status.to_string(), "detail": self.detail});
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        DemoResponse::scim(self.status, &body)
    }
}
