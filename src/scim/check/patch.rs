//! PATCH requests (RFC 7644 §3.5.2): the envelope, each operation, `remove` and the no-path
//! form. What a path may write is decided in `target`.

use serde_json::{Map, Value};

use super::context::{is_read_only, path_rejection, require_schema, Cx, Loc};
use crate::scim::dialect::{self, Deviation, OpKind};
use crate::scim::error::Rejection;
use crate::scim::json::{get_ci, key_ci};
use crate::scim::path::{parse_path_in, PatchPath};
use crate::scim::schema::{self, AttrType, PATCH_OP_URN};

/// What a PATCH operation becomes after normalization.
pub(super) enum OpOutcome {
    Keep,
    KeepThen(Vec<Value>),
    ReplaceWith(Vec<Value>),
}

impl<'p> Cx<'p> {
    /// RFC 7644 §3.5.2: `{"schemas":[PatchOp],"Operations":[…]}`.
    pub(super) fn check_patch(&mut self, root: &mut Value) -> Result<(), Rejection> {
        let Value::Object(obj) = root else {
            return Err(Rejection::invalid_json("the body must be a JSON object"));
        };
        require_schema(obj, PATCH_OP_URN)?;
        let key = key_ci(obj, "Operations")
            .ok_or_else(|| Rejection::syntax("'Operations' is required"))?;
        let Some(Value::Array(ops)) = obj.get_mut(&key) else {
            return Err(Rejection::syntax("'Operations' must be an array"));
        };
        if ops.is_empty() {
            return Err(Rejection::value("'Operations' must not be empty"));
        }
        let taken = std::mem::take(ops);
        let mut out = Vec::with_capacity(taken.len());
        let base = Loc::Name("Operations");
        for (i, mut op) in taken.into_iter().enumerate() {
            match self.check_op(&mut op, &Loc::Index(&base, i))? {
                OpOutcome::Keep => out.push(op),
                OpOutcome::KeepThen(extra) => {
                    out.push(op);
                    out.extend(extra);
                }
                OpOutcome::ReplaceWith(ops) => out.extend(ops),
            }
        }
        *ops = out;
        Ok(())
    }

    pub(super) fn check_op(&mut self, op: &mut Value, loc: &Loc) -> Result<OpOutcome, Rejection> {
        let Value::Object(o) = op else {
            return Err(Rejection::syntax(format!(
                "{loc}: an operation must be an object"
            )));
        };
        let op_key =
            key_ci(o, "op").ok_or_else(|| Rejection::syntax(format!("{loc}: 'op' is required")))?;
        let (kind, lower) = o
            .get(&op_key)
            .and_then(Value::as_str)
            .and_then(OpKind::parse)
            .ok_or_else(|| {
                Rejection::syntax(format!(
                    "{loc}: 'op' must be \"add\", \"replace\" or \"remove\""
                ))
            })?;
        if !lower && self.deviate(Deviation::CapitalisedOp, loc)? {
            o.insert(op_key, Value::String(kind.as_str().into()));
        }
        let path = match get_ci(o, "path") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(Rejection::syntax(format!("{loc}: 'path' must be a string"))),
        };
        if let Some(p) = &path {
            if p.trim_matches(|c| c == ' ' || c == '\t').len() != p.len() {
                // The path parser (`scim/path.rs`) reads it without the padding.
                self.deviate(Deviation::PaddedPath, format_args!("{loc}: 'path'"))?;
            }
        }
        let value_key = key_ci(o, "value");
        if kind == OpKind::Remove {
            let value = value_key.and_then(|k| o.get(&k)).filter(|v| !v.is_null());
            return self.check_remove(path, value, loc);
        }
        let value = value_key.and_then(|k| o.get_mut(&k)).ok_or_else(|| {
            Rejection::value(format!("{loc}: '{}' needs a 'value'", kind.as_str()))
        })?;
        match path {
            Some(p) => {
                let pp = self.parse(&p, loc)?;
                if kind == OpKind::Add && pp.filter.is_some() {
                    self.deviate(Deviation::AddOnValueFilter, format_args!("{loc}: '{p}'"))?;
                }
                self.check_target(&pp, &p, kind, Some(value), loc)?;
                Ok(OpOutcome::Keep)
            }
            None => self.check_no_path(kind, value, loc),
        }
    }

    pub(super) fn parse(&self, p: &str, loc: &Loc) -> Result<PatchPath, Rejection> {
        parse_path_in(p, &self.p.known_urns, self.p.max_filter_terms)
            .map_err(|e| path_rejection(format!("{loc}: invalid path '{p}'"), &e))
    }

    /// `remove` needs a path (RFC 7644 §3.5.2.2, else `noTarget`) and takes no value, except
    /// the Entra/JumpCloud member removal `{"path":"members","value":[{"value":"id"}]}`.
    pub(super) fn check_remove(
        &mut self,
        path: Option<String>,
        value: Option<&Value>,
        loc: &Loc,
    ) -> Result<OpOutcome, Rejection> {
        let p =
            path.ok_or_else(|| Rejection::no_target(format!("{loc}: 'remove' needs a 'path'")))?;
        let pp = self.parse(&p, loc)?;
        let Some(value) = value else {
            self.check_target(&pp, &p, OpKind::Remove, None, loc)?;
            return Ok(OpOutcome::Keep);
        };
        let ids = self
            .removal_target(&pp)
            .then(|| dialect::removal_ids(value))
            .flatten()
            .ok_or_else(|| {
                Rejection::value(format!(
                    "{loc}: 'remove' takes no 'value' (use a filter in the path)"
                ))
            })?;
        let rewrite = self.deviate(Deviation::MemberRemovalValue, loc)?;
        self.check_target(&pp, &p, OpKind::Remove, None, loc)?;
        if !rewrite {
            return Ok(OpOutcome::Keep);
        }
        let attr = p.trim();
        Ok(OpOutcome::ReplaceWith(
            ids.into_iter()
                .map(|id| dialect::removal_op(attr, id))
                .collect(),
        ))
    }

    /// A plain path to a core multi-valued complex attribute with a `value` sub-attribute
    /// (members, emails, …): the only place a value list on `remove` makes sense.
    pub(super) fn removal_target(&self, pp: &PatchPath) -> bool {
        let core = pp
            .urn
            .as_deref()
            .is_none_or(|u| u.eq_ignore_ascii_case(self.resource.core_urn()));
        let def = pp
            .attr
            .as_deref()
            .and_then(|a| schema::find(self.resource.attrs(), a));
        core && pp.filter.is_none()
            && pp.sub.is_none()
            && def.is_some_and(|d| d.multi && d.ty == AttrType::Complex && d.sub("value").is_some())
    }

    /// A no-path `add`/`replace` (RFC 7644 §3.5.2.1, §3.5.2.3): the value's keys are attribute
    /// names or extension URNs. Keys that are paths (Entra) and readOnly keys (Okta's group
    /// rename carries the group's `id`) are deviations.
    pub(super) fn check_no_path(
        &mut self,
        kind: OpKind,
        v: &mut Value,
        loc: &Loc,
    ) -> Result<OpOutcome, Rejection> {
        let Value::Object(map) = v else {
            return Err(Rejection::value(format!(
                "{loc}: without a 'path', 'value' must be an object"
            )));
        };
        let taken = std::mem::take(map);
        let mut keep = Map::new();
        let mut extra = Vec::new();
        for (k, mut sv) in taken {
            if k.eq_ignore_ascii_case("schemas") {
                self.deviate(Deviation::NestedSchemas, format_args!("{loc}: '{k}'"))?;
                keep.insert(k, sv);
                continue;
            }
            let pp =
                parse_path_in(&k, &self.p.known_urns, self.p.max_filter_terms).map_err(|e| {
                    path_rejection(format!("{loc}: value key '{k}' is not a valid path"), &e)
                })?;
            let plain =
                pp.attr.is_none() || (pp.urn.is_none() && pp.filter.is_none() && pp.sub.is_none());
            if plain {
                let def = pp
                    .attr
                    .as_deref()
                    .filter(|_| pp.urn.is_none())
                    .and_then(|a| schema::find(self.resource.attrs(), a));
                if is_read_only(def) {
                    if !self.deviate(Deviation::ReadOnlyInValue, format_args!("{loc}: '{k}'"))? {
                        keep.insert(k, sv);
                    }
                    continue;
                }
                self.check_target(&pp, &k, kind, Some(&mut sv), loc)?;
                keep.insert(k, sv);
                continue;
            }
            let rewrite = self.deviate(Deviation::PathKeyInValue, format_args!("{loc}: '{k}'"))?;
            self.check_target(&pp, &k, kind, Some(&mut sv), loc)?;
            if rewrite {
                extra.push(dialect::path_op(kind, k.trim(), sv));
            } else {
                keep.insert(k, sv);
            }
        }
        let kept_any = !keep.is_empty();
        *map = keep;
        Ok(match (extra.is_empty(), kept_any) {
            (true, _) => OpOutcome::Keep,
            (false, true) => OpOutcome::KeepThen(extra),
            (false, false) => OpOutcome::ReplaceWith(extra),
        })
    }
}
