//! The dialect decision, in one place: the catalogue of the ways real IdPs deviate from
//! RFC 7643/7644 that the gate knows, and what each dialect does about each of them
//! ([`Deviation::verdict`]). `docs/scim-checks.md` ("Deviation catalogue") prints the same
//! table; a unit test fails when the two disagree.
//!
//! The checks call [`Deviation::verdict`] (through the checking context) at the one spot where
//! they recognise a deviation, and act on the [`Verdict`]: refuse, rewrite the forwarded body,
//! or forward it as sent. Whatever the verdict, the checks read the *normalized* meaning (so
//! `"False"` is checked and compared as `false` under `tolerate` too).

use serde_json::Value;

use super::error::scim_type;
use super::policy::Dialect;

/// What a dialect does with one deviation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Accept it and forward the body as sent.
    AsSent,
    /// Accept it and rewrite the forwarded body to RFC form.
    Rewrite,
    /// Refuse the request: 400 with reason `dialect`.
    Refuse,
}

impl Verdict {
    /// The word `docs/scim-checks.md` uses for this outcome.
    #[cfg(test)]
    pub(crate) fn word(self) -> &'static str {
        match self {
            Verdict::AsSent => "as sent",
            Verdict::Rewrite => "rewrite",
            Verdict::Refuse => "refuse",
        }
    }
}

/// One known deviation. Adding a variant forces a row in [`Deviation::ALL`], a verdict per
/// dialect and a row in `docs/scim-checks.md` (the match is exhaustive, the test compares).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Deviation {
    /// `"op":"Replace"` (Entra).
    CapitalisedOp,
    /// `"active":"False"` where the schema says boolean (Entra without `aadOptscim062020`).
    BooleanString,
    /// `remove` of `members` with a value list instead of a filter path (Entra, JumpCloud).
    MemberRemovalValue,
    /// The enterprise `manager` as a bare id string (Entra).
    ManagerString,
    /// A no-path value whose keys are paths (`name.givenName`; Entra).
    PathKeyInValue,
    /// `add` on a value filter that may match nothing yet (Entra, expecting creation).
    AddOnValueFilter,
    /// A readOnly attribute (`id`, `meta`) in a no-path PATCH value (Okta's group rename).
    ReadOnlyInValue,
    /// A readOnly attribute or sub-attribute (`id`, `meta`, `groups`, `members[].display`) in
    /// a POST or PUT body (Okta's `groups: []`, `meta` from everyone).
    ReadOnlyInResource,
    /// A non-URN schema id in `schemas` (Entra's `http://schemas.microsoft.com/…/ADSCIM/2.0/Group`).
    ForeignSchemaId,
    /// `schemas` inside an extension object (scim2-client) or a no-path PATCH value.
    NestedSchemas,
    /// A single element, not an array, added to a multi-valued attribute by a PATCH path.
    SingleValueForMulti,
    /// A Bulk `method` in another case than the RFC's (`"post"`).
    BulkMethodCase,
    /// A PATCH `path` with spaces or tabs around it (`" displayName"`).
    PaddedPath,
    /// SCIM 1.x schema URNs (`urn:scim:schemas:core:1.0`,
    /// `urn:scim:schemas:extension:enterprise:1.0`) in a User body (OneLogin's templates).
    LegacyUrn,
    /// A single object where a resource body needs an array (`"emails": {…}`; OneLogin).
    SingleObjectForMulti,
    /// The enterprise `manager` as `{"managerId": id}` (SCIM 1.1; OneLogin).
    ManagerId,
}

impl Deviation {
    /// The whole catalogue, in the order of the docs table.
    #[cfg(test)]
    pub(crate) const ALL: [Deviation; 16] = [
        Deviation::CapitalisedOp,
        Deviation::BooleanString,
        Deviation::MemberRemovalValue,
        Deviation::ManagerString,
        Deviation::PathKeyInValue,
        Deviation::AddOnValueFilter,
        Deviation::ReadOnlyInValue,
        Deviation::ReadOnlyInResource,
        Deviation::ForeignSchemaId,
        Deviation::NestedSchemas,
        Deviation::SingleValueForMulti,
        Deviation::BulkMethodCase,
        Deviation::PaddedPath,
        Deviation::LegacyUrn,
        Deviation::SingleObjectForMulti,
        Deviation::ManagerId,
    ];

    /// The decision. `normalize` rewrites what it can and forwards the rest as sent; `tolerate`
    /// forwards as sent; `strict` refuses — except where the deviation is harmless to every
    /// upstream (it names or changes nothing) and for readOnly values, which RFC 7643 §2.2 tells
    /// the server to ignore: every dialect removes them (a PATCH value's under strict is
    /// refused, as RFC 7644 §3.5.2 forbids modifying them).
    pub(crate) fn verdict(self, dialect: Dialect) -> Verdict {
        use Deviation::*;
        use Verdict::*;
        match (self, dialect) {
            (
                CapitalisedOp | BooleanString | MemberRemovalValue | ManagerString | PathKeyInValue
                | ReadOnlyInValue,
                Dialect::Normalize,
            ) => Rewrite,
            (
                CapitalisedOp | BooleanString | MemberRemovalValue | ManagerString | PathKeyInValue,
                Dialect::Tolerate,
            ) => AsSent,
            // readOnly values are ignored under every dialect (RFC 7643 §2.2): never forwarded
            // as a change, so even `tolerate` removes them.
            (ReadOnlyInValue, Dialect::Tolerate) => Rewrite,
            (
                CapitalisedOp | BooleanString | MemberRemovalValue | ManagerString | PathKeyInValue
                | ReadOnlyInValue | AddOnValueFilter,
                Dialect::Strict,
            ) => Refuse,
            // Only the upstream knows whether the filter matches (RFC 7644 §3.5.2.1 leaves it
            // open), so there is nothing to rewrite it to.
            (AddOnValueFilter, Dialect::Normalize | Dialect::Tolerate) => AsSent,
            // RFC 7643 §2.2: a server ignores readOnly values sent on POST/PUT, so this is no
            // error even under strict; the gate removes them so the upstream never sees them.
            (ReadOnlyInResource, _) => Rewrite,
            // Strict directories (scim2-server) refuse unknown schema ids; it names no attribute.
            (ForeignSchemaId, Dialect::Normalize) => Rewrite,
            (ForeignSchemaId, Dialect::Tolerate | Dialect::Strict) => AsSent,
            (NestedSchemas | SingleValueForMulti | BulkMethodCase | PaddedPath, _) => AsSent,
            // Checked in their RFC form either way; `tolerate` forwards the bytes as sent.
            (LegacyUrn | SingleObjectForMulti | ManagerId, Dialect::Normalize) => Rewrite,
            (LegacyUrn | SingleObjectForMulti | ManagerId, Dialect::Tolerate) => AsSent,
            (LegacyUrn | SingleObjectForMulti | ManagerId, Dialect::Strict) => Refuse,
        }
    }

    /// The identifier used in `docs/scim-checks.md`.
    #[cfg(test)]
    pub(crate) fn id(self) -> &'static str {
        match self {
            Deviation::CapitalisedOp => "capitalised-op",
            Deviation::BooleanString => "boolean-string",
            Deviation::MemberRemovalValue => "member-removal-value",
            Deviation::ManagerString => "manager-string",
            Deviation::PathKeyInValue => "path-key-in-value",
            Deviation::AddOnValueFilter => "add-on-value-filter",
            Deviation::ReadOnlyInValue => "read-only-in-value",
            Deviation::ReadOnlyInResource => "read-only-in-resource",
            Deviation::ForeignSchemaId => "foreign-schema-id",
            Deviation::NestedSchemas => "nested-schemas",
            Deviation::SingleValueForMulti => "single-value-for-multi",
            Deviation::BulkMethodCase => "bulk-method-case",
            Deviation::PaddedPath => "padded-path",
            Deviation::LegacyUrn => "legacy-urn",
            Deviation::SingleObjectForMulti => "single-object-for-multi",
            Deviation::ManagerId => "manager-id",
        }
    }

    /// The words of a `strict` rejection.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Deviation::CapitalisedOp => "op must be lower-case 'add', 'replace' or 'remove'",
            Deviation::BooleanString => "boolean sent as a string",
            Deviation::MemberRemovalValue => {
                "remove with a value list; use a path filter such as members[value eq \"id\"]"
            }
            Deviation::ManagerString => "manager must be an object {\"value\": id}, not a string",
            Deviation::PathKeyInValue => {
                "a no-path value's keys must be attribute names, not paths"
            }
            Deviation::AddOnValueFilter => "add on a value filter path",
            Deviation::ReadOnlyInValue => "readOnly attribute in a PATCH value",
            Deviation::ReadOnlyInResource => "readOnly attribute in a resource body",
            Deviation::ForeignSchemaId => "a schema id that is not a URN",
            Deviation::NestedSchemas => "'schemas' inside an extension object or a PATCH value",
            Deviation::SingleValueForMulti => "a multi-valued attribute needs an array",
            Deviation::BulkMethodCase => "a Bulk method must be upper-case",
            Deviation::PaddedPath => "a path must not be padded with white space",
            Deviation::LegacyUrn => "SCIM 1.x schema URNs; use the RFC 7643 URNs",
            Deviation::SingleObjectForMulti => "a multi-valued attribute must be an array",
            Deviation::ManagerId => "manager must be {\"value\": id}, not {\"managerId\": id}",
        }
    }

    /// The `scimType` of a `strict` rejection.
    pub(crate) fn scim_type(self) -> &'static str {
        match self {
            Deviation::BooleanString
            | Deviation::ManagerString
            | Deviation::SingleValueForMulti
            | Deviation::ForeignSchemaId
            | Deviation::LegacyUrn
            | Deviation::SingleObjectForMulti
            | Deviation::ManagerId => scim_type::INVALID_VALUE,
            Deviation::ReadOnlyInValue | Deviation::ReadOnlyInResource => scim_type::MUTABILITY,
            Deviation::AddOnValueFilter => scim_type::INVALID_PATH,
            Deviation::CapitalisedOp
            | Deviation::MemberRemovalValue
            | Deviation::PathKeyInValue
            | Deviation::NestedSchemas
            | Deviation::BulkMethodCase => scim_type::INVALID_SYNTAX,
            Deviation::PaddedPath => scim_type::INVALID_PATH,
        }
    }
}

/// The PATCH operations of RFC 7644 §3.5.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpKind {
    Add,
    Replace,
    Remove,
}

impl OpKind {
    /// Any case is recognised; the caller decides whether a non-lower-case spelling is a
    /// deviation. Returns the op and whether it was spelled in lower case.
    pub fn parse(s: &str) -> Option<(OpKind, bool)> {
        let kind = [
            ("add", OpKind::Add),
            ("replace", OpKind::Replace),
            ("remove", OpKind::Remove),
        ]
        .into_iter()
        .find(|(n, _)| s.eq_ignore_ascii_case(n))?
        .1;
        Some((kind, s == kind.as_str()))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Add => "add",
            OpKind::Replace => "replace",
            OpKind::Remove => "remove",
        }
    }
}

/// `"true"`/`"false"` in any case (Entra sends `"True"`/`"False"`).
pub(crate) fn bool_from_string(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// The ids of an Entra-style member removal value `[{"value":"id"}, …]`, or `None` when the
/// value is not of that shape.
pub(crate) fn removal_ids(value: &Value) -> Option<Vec<&str>> {
    let items = value.as_array()?;
    if items.is_empty() {
        return None;
    }
    items
        .iter()
        .map(|item| {
            let obj = item.as_object()?;
            super::json::get_ci(obj, "value")?.as_str()
        })
        .collect()
}

/// The RFC form of a member removal: `{"op":"remove","path":"attr[value eq \"id\"]"}`.
pub(crate) fn removal_op(attr: &str, id: &str) -> Value {
    let mut path = String::with_capacity(attr.len() + id.len() + 16);
    path.push_str(attr);
    path.push_str("[value eq ");
    // Writing into a String cannot fail.
    let _ = super::filter::write_json_string(&mut path, id);
    path.push(']');
    let mut op = serde_json::Map::new();
    op.insert("op".into(), "remove".into());
    op.insert("path".into(), path.into());
    Value::Object(op)
}

/// A PATCH operation with a path: the RFC form of a no-path value key that is a path.
pub(crate) fn path_op(kind: OpKind, path: &str, value: Value) -> Value {
    let mut op = serde_json::Map::new();
    op.insert("op".into(), kind.as_str().into());
    op.insert("path".into(), path.into());
    op.insert("value".into(), value);
    Value::Object(op)
}
