//! The SCIM checks of scim-gate (SPEC §5): every POST, PUT and PATCH on `/Users` and
//! `/Groups`, every operation inside `/Bulk`, and the filter of every SearchRequest.
//!
//! The proxy compiles a [`Policy`] once per configuration, then for each request calls
//! [`Policy::prepare`] (or [`Policy::prepare_bulk`]), reads the resources listed by
//! [`Prepared::needs`] from the upstream (a PUT must be compared with what it replaces) and
//! calls [`Prepared::finish`]. A [`Rejection`] becomes the SCIM error answer
//! ([`Rejection::to_scim_json`]) and the `reason` label of the rejection metric.
//!
//! Decisions where the RFCs and the SPEC leave room:
//! - **Unknown attributes are refused** (400 `invalidValue`, naming them), core and
//!   sub-attributes alike, and so are unknown attributes of the Enterprise extension: the
//!   policy must know what may change, and an attribute the gate cannot name is one it cannot
//!   police. Extensions whose schema the gate does not know (ivanti) accept any JSON value
//!   for the attributes the policy allows.
//! - **Extension attributes outside `policy.extensions`** answer 400 `invalidValue` with reason
//!   `extension`, on every method. Unknown *non-URN* schema ids in `schemas` (Entra's
//!   `http://schemas.microsoft.com/…/ADSCIM/2.0/Group`) are tolerated and forwarded; a URN in
//!   `schemas` without an object is harmless and tolerated; an object whose URN is missing from
//!   `schemas` is refused.
//! - **readOnly attributes** (`id`, `meta`, User `groups`, `members[].display`,
//!   `manager.displayName`) in a POST/PUT are ignored and never compared; `normalize` removes
//!   them from the forwarded body. Inside PATCH values readOnly *sub*-attributes (Okta's
//!   `members[].display`) are ignored and kept, so a large member PATCH stays byte-exact; a
//!   readOnly *attribute* in a no-path value (Okta's group rename carries `id`) is a dialect
//!   deviation. A path that targets a readOnly attribute is 400 `mutability`.
//! - **PUT comparison** (see `check::compare_put`): `""`, `null`, `[]`, `{}` and a missing
//!   attribute are all unassigned; multi-valued attributes compare as unordered sets;
//!   `$ref` sub-attributes are server-derived and not compared; attributes of the current
//!   resource outside the core schema and the policy's extensions are not compared.
//! - **Domains**: exact match of the part after the last `@` (no sub-domains); an `emails`
//!   value without `@` is refused when the token has domains. 403 without a `scimType`
//!   (RFC 7644 §3.12 defines scimType for 400 only); the detail names the attribute and the
//!   domain, never the address.
//! - A PUT whose current resource the proxy could not read: 404, reason `not_found` (a reason
//!   added to the list in the brief).
//! - `add` on a value filter (Entra, expecting creation) is kept as sent under `normalize`:
//!   only the upstream knows whether the filter matches.

pub mod check;
mod dialect;
pub mod error;
pub mod filter;
mod json;
pub mod path;
pub mod policy;
pub mod schema;

pub use check::{Checked, Prepared, Request, WriteMethod};
pub use error::{RejectReason, Rejection};
pub use filter::{
    parse_filter, parse_filter_limited, AttrPath, CompareOp, Filter, FilterError, Literal,
    DEFAULT_MAX_TERMS,
};
pub use path::{parse_path, PatchPath, PathError};
pub use policy::{Dialect, ExtensionAllow, Policy, PolicySpec, PolicySpecError, Resource};

#[cfg(test)]
mod tests;
