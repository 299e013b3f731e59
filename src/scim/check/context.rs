//! The per-request checking context ([`Cx`]) and what every rule family shares: where in the
//! body a message points ([`Loc`]), the `schemas` member, and how a path error is answered.

use std::fmt;

use serde_json::{Map, Value};

use crate::scim::dialect::{Deviation, Verdict};
use crate::scim::error::Rejection;
use crate::scim::json::get_ci;
use crate::scim::path::PathError;
use crate::scim::policy::{Inner, Resource, Rules};
use crate::scim::schema::{AttrDef, AttrType};

/// Where in the body a message points, built only when a message is written.
#[derive(Clone, Copy)]
pub(super) enum Loc<'a> {
    Name(&'a str),
    /// `Operations[0]: path`
    Under(&'a Loc<'a>, &'a str),
    Key(&'a Loc<'a>, &'a str),
    Index(&'a Loc<'a>, usize),
}

impl fmt::Display for Loc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loc::Name(n) => f.write_str(n),
            Loc::Under(p, s) => write!(f, "{p}: {s}"),
            Loc::Key(p, k) => write!(f, "{p}.{k}"),
            Loc::Index(p, i) => write!(f, "{p}[{i}]"),
        }
    }
}

/// Per-request state.
pub(super) struct Cx<'p> {
    pub(super) p: &'p Inner,
    pub(super) resource: Resource,
    pub(super) domains: &'p [String],
    /// The forwarded body must be re-encoded: a deviation's verdict was [`Verdict::Rewrite`].
    pub(super) changed: bool,
}

pub(super) fn is_read_only(def: Option<&AttrDef>) -> bool {
    def.is_some_and(AttrDef::read_only)
}

pub(super) fn require_schema(
    obj: &Map<String, Value>,
    urn: &str,
) -> Result<Vec<String>, Rejection> {
    let schemas = schemas_of(obj)?;
    if !schemas.iter().any(|s| s.eq_ignore_ascii_case(urn)) {
        return Err(Rejection::value(format!("'schemas' must list {urn}")));
    }
    Ok(schemas)
}

/// `schemas` (RFC 7643 §3): required, an array of strings.
pub(super) fn schemas_of(obj: &Map<String, Value>) -> Result<Vec<String>, Rejection> {
    match get_ci(obj, "schemas") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| Rejection::syntax("'schemas' must be an array of strings"))
            })
            .collect(),
        None | Some(Value::Null) => Err(Rejection::syntax("'schemas' is required")),
        Some(_) => Err(Rejection::syntax("'schemas' must be an array of strings")),
    }
}

impl<'p> Cx<'p> {
    pub(super) fn new(p: &'p Inner, resource: Resource, domains: &'p [String]) -> Self {
        Cx {
            p,
            resource,
            domains,
            changed: false,
        }
    }

    /// The one place where a recognised deviation meets the dialect (`docs/scim-checks.md`,
    /// "Dialects"; the decision itself is [`Deviation::verdict`]). Refuses, or answers whether
    /// the caller must rewrite the forwarded body, and then records that the body changed.
    pub(super) fn deviate(
        &mut self,
        dev: Deviation,
        at: impl fmt::Display,
    ) -> Result<bool, Rejection> {
        match dev.verdict(self.p.dialect) {
            Verdict::Refuse => Err(Rejection::dialect(
                dev.scim_type(),
                format!(
                    "{at}: {} (dialect {})",
                    dev.describe(),
                    self.p.dialect.name()
                ),
            )),
            Verdict::AsSent => Ok(false),
            Verdict::Rewrite => {
                self.changed = true;
                Ok(true)
            }
        }
    }

    pub(super) fn rules(&self) -> &'p Rules {
        self.p.rules(self.resource)
    }
}

/// A path that did not parse is `invalidPath`, except a value filter over the term limit,
/// which is `invalidFilter` like an over-long search filter (the limit is on filters).
pub(super) fn path_rejection(what: String, e: &PathError) -> Rejection {
    match e {
        PathError::Filter(f) if f.too_many_terms => Rejection::filter(format!("{what}: {e}")),
        _ => Rejection::path(format!("{what}: {e}")),
    }
}

pub(super) fn type_name(t: AttrType) -> &'static str {
    match t {
        AttrType::String => "a string",
        AttrType::Boolean => "a boolean",
        AttrType::Decimal => "a number",
        AttrType::Integer => "an integer",
        AttrType::DateTime => "a dateTime string",
        AttrType::Binary => "a base64 string",
        AttrType::Reference => "a reference string",
        AttrType::Complex => "an object",
    }
}
