//! The SCIM checks of scim-gate: every POST, PUT and PATCH on `/Users` and `/Groups`, every
//! operation inside `/Bulk`, and the filter of every SearchRequest. The rules, the dialects and
//! the deviation catalogue are documented in `docs/scim-checks.md`.
//!
//! The proxy compiles a [`Policy`] once per configuration, then for each request calls
//! [`Policy::prepare`] (or [`Policy::prepare_bulk`]), reads the resources listed by
//! [`Prepared::needs`] from the upstream (a PUT must be compared with what it replaces) and
//! calls [`Prepared::finish`]. A [`Rejection`] becomes the SCIM error answer
//! ([`Rejection::to_scim_json`]) and the `reason` label of the rejection metric.
//!
//! This module imports nothing from the rest of the crate: it is pure functions over bytes and
//! a compiled policy, so it can be tested (and fuzzed) without a proxy.

#![warn(missing_docs)]

mod check;
mod dialect;
mod error;
mod filter;
mod json;
mod path;
mod policy;
mod schema;

pub use check::{Checked, Prepared, Request, WriteMethod};
pub use error::{RejectReason, Rejection};
pub use filter::{
    parse_filter, parse_filter_limited, AttrPath, CompareOp, Filter, FilterError, Literal,
    DEFAULT_MAX_TERMS,
};
pub use path::{parse_path, PatchPath, PathError};
pub use policy::{
    Dialect, ExtensionAllow, Policy, PolicySpec, PolicySpecError, Resource,
    DEFAULT_BULK_MAX_OPERATIONS,
};

#[cfg(test)]
mod tests;
