//! The SCIM error responses the gate produces itself (RFC 7644 §3.12).

use bytes::Bytes;

pub const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const SCIM_JSON: &str = "application/scim+json";

/// An error the gate answers with instead of forwarding. `detail` names the offending path or
/// rule; it never contains a token or a header value the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<&'static str>,
    pub detail: String,
    /// Set for 401s: the `WWW-Authenticate` value (RFC 6750 §3).
    pub www_authenticate: Option<&'static str>,
    /// Set for 429 and 503: `Retry-After` in whole seconds (RFC 9110 §10.2.3).
    pub retry_after: Option<u64>,
    /// Set when a guard rail refused the request (the access log's `limited=`).
    pub limited: Option<crate::guards::Limited>,
    /// The stable code of this refusal in the decision log (`docs/troubleshooting.md`).
    pub reason: &'static str,
}

impl ScimError {
    pub fn new(
        status: u16,
        scim_type: Option<&'static str>,
        detail: impl Into<String>,
    ) -> ScimError {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
            www_authenticate: None,
            retry_after: None,
            limited: None,
            reason: "refused",
        }
    }

    /// The same error with its decision-log code.
    pub fn reason(mut self, reason: &'static str) -> ScimError {
        self.reason = reason;
        self
    }

    /// The same error, marked as a guard rail's refusal.
    pub fn limited(mut self, reason: crate::guards::Limited) -> ScimError {
        self.limited = Some(reason);
        self
    }

    /// The same error with a `Retry-After` of `seconds` (at least 1).
    pub fn retry_after(mut self, seconds: u64) -> ScimError {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// The RFC 7644 body: `status` is a string, `scimType` only when there is one.
    pub fn body(&self) -> Bytes {
        let mut v = serde_json::json!({
            "schemas": [ERROR_URN],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let (Some(t), Some(obj)) = (self.scim_type, v.as_object_mut()) {
            obj.insert("scimType".into(), t.into());
        }
        Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
    }

    /// The response head for this error.
    pub fn header(&self, body_len: usize) -> pingora::Result<pingora::http::ResponseHeader> {
        let mut h = pingora::http::ResponseHeader::build(self.status, Some(4))?;
        h.insert_header(http::header::CONTENT_TYPE, SCIM_JSON)?;
        h.insert_header(http::header::CONTENT_LENGTH, body_len.to_string())?;
        h.insert_header(http::header::CACHE_CONTROL, "no-store")?;
        if let Some(w) = self.www_authenticate {
            h.insert_header(http::header::WWW_AUTHENTICATE, w)?;
        }
        if let Some(s) = self.retry_after {
            h.insert_header(http::header::RETRY_AFTER, s.to_string())?;
        }
        Ok(h)
    }
}

impl From<crate::scim::Rejection> for ScimError {
    fn from(r: crate::scim::Rejection) -> ScimError {
        ScimError::new(r.status, r.scim_type, r.detail).reason(r.reason.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_follows_rfc7644() {
        let e = ScimError::new(400, Some("mutability"), "userName is immutable");
        let v: serde_json::Value = serde_json::from_slice(&e.body()).expect("json");
        assert_eq!(v["schemas"][0], ERROR_URN);
        assert_eq!(v["status"], "400");
        assert_eq!(v["scimType"], "mutability");
        assert_eq!(v["detail"], "userName is immutable");
        let v: serde_json::Value =
            serde_json::from_slice(&ScimError::new(404, None, "x").body()).expect("json");
        assert!(v.get("scimType").is_none());
    }
}
