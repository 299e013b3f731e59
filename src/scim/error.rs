//! Rejections: every way the gate refuses a SCIM write, as an RFC 7644 §3.12 error.
//!
//! A rejection carries both the HTTP answer (`status`, `scimType`, `detail`) and a machine
//! reason whose [`RejectReason::label`] is the `reason` label of
//! `scim_gate_policy_rejections_total` (README, metrics). Details name attributes and paths, never a
//! user's values: an e-mail address is personal data, so a domain failure names only the domain.

use std::fmt;

/// Why a request was refused; the label is a Prometheus label value, so it is fixed snake_case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The body is not UTF-8 JSON, not an object, or has duplicate member names.
    InvalidJson,
    /// The body does not follow the RFC 7643 schema (types, required attributes, `schemas`).
    Schema,
    /// The operator's policy does not allow this attribute to change.
    Mutability,
    /// A PATCH path (or a Bulk operation path) does not parse or names no attribute.
    InvalidPath,
    /// An extension attribute outside the policy's `extensions`.
    Extension,
    /// An e-mail domain outside the token's domains (403).
    Domain,
    /// A known IdP deviation refused because the dialect is `strict`.
    Dialect,
    /// A search filter that does not parse.
    InvalidFilter,
    /// A `remove` without a path (RFC 7644 §3.5.2.2).
    NoTarget,
    /// A PUT target whose current representation the upstream did not return (404).
    NotFound,
    /// More Bulk operations than `policy.bulk_max_operations` (413).
    TooManyOperations,
}

impl RejectReason {
    /// The metric label of this reason.
    pub fn label(&self) -> &'static str {
        match self {
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::Schema => "schema",
            RejectReason::Mutability => "mutability",
            RejectReason::InvalidPath => "invalid_path",
            RejectReason::Extension => "extension",
            RejectReason::Domain => "domain",
            RejectReason::Dialect => "dialect",
            RejectReason::InvalidFilter => "invalid_filter",
            RejectReason::NoTarget => "no_target",
            RejectReason::NotFound => "not_found",
            RejectReason::TooManyOperations => "too_many_operations",
        }
    }
}

/// A refused request: what the IdP is told and why we count it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The HTTP status of the answer (400, 403 or 404).
    pub status: u16,
    /// The RFC 7644 §3.12 `scimType`, on 400s only.
    pub scim_type: Option<&'static str>,
    /// What is wrong, naming the attribute or path, never a user's value.
    pub detail: String,
    /// The machine reason, the `reason` label of the rejection metric.
    pub reason: RejectReason,
}

/// RFC 7644 §3.12 `scimType` values used here.
pub(crate) mod scim_type {
    pub const INVALID_SYNTAX: &str = "invalidSyntax";
    pub const INVALID_VALUE: &str = "invalidValue";
    pub const INVALID_PATH: &str = "invalidPath";
    pub const INVALID_FILTER: &str = "invalidFilter";
    pub const MUTABILITY: &str = "mutability";
    pub const NO_TARGET: &str = "noTarget";
}

const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

impl Rejection {
    fn new(
        status: u16,
        scim_type: Option<&'static str>,
        reason: RejectReason,
        detail: impl Into<String>,
    ) -> Self {
        Rejection {
            status,
            scim_type,
            detail: detail.into(),
            reason,
        }
    }

    pub(crate) fn invalid_json(detail: impl Into<String>) -> Self {
        Self::new(
            400,
            Some(scim_type::INVALID_SYNTAX),
            RejectReason::InvalidJson,
            detail,
        )
    }

    pub(crate) fn syntax(detail: impl Into<String>) -> Self {
        Self::new(
            400,
            Some(scim_type::INVALID_SYNTAX),
            RejectReason::Schema,
            detail,
        )
    }

    pub(crate) fn value(detail: impl Into<String>) -> Self {
        Self::new(
            400,
            Some(scim_type::INVALID_VALUE),
            RejectReason::Schema,
            detail,
        )
    }

    pub(crate) fn mutability(detail: impl Into<String>) -> Self {
        Self::new(
            400,
            Some(scim_type::MUTABILITY),
            RejectReason::Mutability,
            detail,
        )
    }

    pub(crate) fn path(detail: impl Into<String>) -> Self {
        Self::new(
            400,
            Some(scim_type::INVALID_PATH),
            RejectReason::InvalidPath,
            detail,
        )
    }

    /// Extension attributes outside the policy answer `invalidValue`: on a POST there is no
    /// "change" to speak of, the attribute is simply not accepted by this gate.
    pub(crate) fn extension(detail: impl Into<String>) -> Self {
        Self::new(
            400,
            Some(scim_type::INVALID_VALUE),
            RejectReason::Extension,
            detail,
        )
    }

    /// 403 carries no `scimType`: RFC 7644 §3.12 defines scimType for 400 only.
    pub(crate) fn domain(detail: impl Into<String>) -> Self {
        Self::new(403, None, RejectReason::Domain, detail)
    }

    pub(crate) fn dialect(scim: &'static str, detail: impl Into<String>) -> Self {
        Self::new(400, Some(scim), RejectReason::Dialect, detail)
    }

    pub(crate) fn filter(detail: impl Into<String>) -> Self {
        Self::new(
            400,
            Some(scim_type::INVALID_FILTER),
            RejectReason::InvalidFilter,
            detail,
        )
    }

    /// RFC 7644 §3.7.4 answers an over-long Bulk request with 413 (no `scimType`: that is for
    /// 400s; `tooMany` is about filter results).
    pub(crate) fn too_many_operations(sent: usize, max: usize) -> Self {
        Self::new(
            413,
            None,
            RejectReason::TooManyOperations,
            format!("the Bulk request has {sent} operations; the gate accepts at most {max} (bulk.maxOperations)"),
        )
    }
    pub(crate) fn no_target(detail: impl Into<String>) -> Self {
        Self::new(
            400,
            Some(scim_type::NO_TARGET),
            RejectReason::NoTarget,
            detail,
        )
    }

    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, None, RejectReason::NotFound, detail)
    }

    /// Prefix the detail, e.g. with `Operations[3]: ` inside a Bulk request.
    pub(crate) fn prefixed(mut self, prefix: &str) -> Self {
        self.detail.insert_str(0, prefix);
        self
    }

    /// The RFC 7644 §3.12 error body; `status` is a JSON string as the RFC shows it.
    pub fn to_scim_json(&self) -> Vec<u8> {
        let mut obj = serde_json::Map::new();
        obj.insert(
            "schemas".into(),
            serde_json::Value::Array(vec![ERROR_URN.into()]),
        );
        obj.insert("status".into(), self.status.to_string().into());
        if let Some(t) = self.scim_type {
            obj.insert("scimType".into(), t.into());
        }
        obj.insert("detail".into(), self.detail.clone().into());
        serde_json::to_vec(&serde_json::Value::Object(obj)).unwrap_or_default()
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status,
            self.reason.label(),
            self.detail
        )
    }
}

impl std::error::Error for Rejection {}
