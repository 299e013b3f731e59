//! The known ways real IdPs deviate from RFC 7644, and what each dialect does about them
//! (SPEC §5 "Dialect", SCIM-NOTES "How the IdPs behave").
//!
//! | deviation | seen from | normalize rewrites to |
//! |---|---|---|
//! | capitalised `op` (`Replace`) | Entra | lower-case `op` |
//! | boolean as string (`"False"`), only where the schema says boolean | Entra without `aadOptscim062020` | JSON boolean |
//! | `remove` of `members` with a value array | Entra, JumpCloud | one `remove` per member with path `members[value eq "id"]` |
//! | enterprise `manager` as a bare id string | Entra | `{"value": id}` |
//! | no-path value whose keys are paths (`name.givenName`, `emails[type eq "work"].value`, `urn:…:department`) | Entra | one operation with that `path` per such key |
//! | `add` on a value filter (`emails[type eq "work"].value`) that may match nothing | Entra | kept as sent (the upstream must create it; RFC 7644 §3.5.2.1 leaves it open) |
//! | readOnly attribute (`id`, `meta`) in a no-path value | Okta group rename | the attribute removed |
//!
//! `tolerate` accepts all of these and forwards the original bytes; `strict` rejects each with
//! reason `dialect`. The checks always look at the *normalized* reading (so `"False"` is checked
//! and compared as `false` under `tolerate` too).

use serde_json::Value;

use super::error::scim_type;

/// One deviation, with the words used in a `strict` rejection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Deviation {
    CapitalisedOp,
    BooleanString,
    MemberRemovalValue,
    ManagerString,
    PathKeyInValue,
    AddOnValueFilter,
    ReadOnlyInValue,
}

impl Deviation {
    pub fn describe(self) -> &'static str {
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
        }
    }

    pub fn scim_type(self) -> &'static str {
        match self {
            Deviation::BooleanString | Deviation::ManagerString => scim_type::INVALID_VALUE,
            Deviation::ReadOnlyInValue => scim_type::MUTABILITY,
            Deviation::AddOnValueFilter => scim_type::INVALID_PATH,
            _ => scim_type::INVALID_SYNTAX,
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
