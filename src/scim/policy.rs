//! The operator's attribute policy (the `policy` configuration keys, README), compiled once at config load so that a
//! request never pays for parsing the policy: names are lower-cased, updatable entries are
//! parsed paths, and the known URNs are sorted longest first for the path parser.

use std::sync::Arc;

use super::filter::valid_attr_name;
use super::filter::DEFAULT_MAX_TERMS;

/// The default bound on operations in one Bulk request (`policy.bulk_max_operations`). Each
/// operation costs a check and a PUT one upstream read, so the bound is what keeps one request's
/// cost proportional to something the operator chose, not to what fits in the body.
pub const DEFAULT_BULK_MAX_OPERATIONS: usize = 1000;
use super::path::parse_path_in;
use super::schema::{self, AttrDef, ENTERPRISE_URN, GROUP_URN, USER_URN};

/// How the gate treats the known IdP deviations from RFC 7644 (`docs/scim-checks.md`, "Dialects").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Dialect {
    /// Accept the deviations and rewrite them to RFC form before forwarding.
    #[default]
    Normalize,
    /// Accept the deviations and forward the bytes as sent.
    Tolerate,
    /// Reject every deviation (reason `dialect`).
    Strict,
}

/// Which attributes of an extension may appear at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtensionAllow {
    /// `"*"`: every attribute.
    All,
    /// A list of attribute names (case-insensitive).
    Attrs(Vec<String>),
}

/// The policy as configured: plain data, built by the config module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySpec {
    /// What to do with the known IdP deviations.
    pub dialect: Dialect,
    /// `policy.users.updatable`: the User attributes a PATCH or PUT may change.
    pub users_updatable: Vec<String>,
    /// `policy.groups.updatable`: the Group attributes a PATCH or PUT may change.
    pub groups_updatable: Vec<String>,
    /// `policy.extensions`: the extension URNs accepted, with their attributes.
    pub extensions: Vec<(String, ExtensionAllow)>,
    /// Terms allowed in one filter, search or PATCH path (`policy.max_filter_terms`).
    pub max_filter_terms: usize,
    /// Operations allowed in one Bulk request (`policy.bulk_max_operations`).
    pub bulk_max_operations: usize,
}

/// The SCIM resource types the gate checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    /// `/Users` (RFC 7643 §4.1).
    Users,
    /// `/Groups` (RFC 7643 §4.2).
    Groups,
}

impl Dialect {
    /// The configuration spelling (`policy.dialect`), used in `dialect` rejections.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Normalize => "normalize",
            Dialect::Tolerate => "tolerate",
            Dialect::Strict => "strict",
        }
    }
}

impl Resource {
    pub(crate) fn core_urn(self) -> &'static str {
        match self {
            Resource::Users => USER_URN,
            Resource::Groups => GROUP_URN,
        }
    }

    pub(crate) fn attrs(self) -> &'static [AttrDef] {
        match self {
            Resource::Users => schema::USER_ATTRS,
            Resource::Groups => schema::GROUP_ATTRS,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Resource::Users => "Users",
            Resource::Groups => "Groups",
        }
    }
}

/// A bad policy entry; the message names the entry so that `check-config` can point at it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicySpecError {
    #[error("policy.{resource}.updatable: entry '{entry}': {reason}")]
    /// An entry of `policy.{users,groups}.updatable` is not a valid attribute path.
    Updatable {
        /// `users` or `groups`.
        resource: &'static str,
        /// The entry as configured.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    #[error("policy.extensions: '{urn}': {reason}")]
    /// An entry of `policy.extensions` is refused.
    Extension {
        /// The URN as configured.
        urn: String,
        /// Why it is refused.
        reason: String,
    },
}

impl Default for PolicySpec {
    /// The defaults documented in the README and `config/scim-gate.yaml`.
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        PolicySpec {
            dialect: Dialect::Normalize,
            users_updatable: s(&[
                "displayName",
                "emails",
                "name.givenName",
                "name.familyName",
                "active",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
                "urn:ietf:params:scim:schemas:extension:ivanti:2.0:User",
            ]),
            groups_updatable: s(&["displayName", "members"]),
            extensions: vec![
                (
                    ENTERPRISE_URN.to_string(),
                    ExtensionAllow::Attrs(vec!["department".to_string()]),
                ),
                (
                    "urn:ietf:params:scim:schemas:extension:ivanti:2.0:User".to_string(),
                    ExtensionAllow::All,
                ),
            ],
            max_filter_terms: DEFAULT_MAX_TERMS,
            bulk_max_operations: DEFAULT_BULK_MAX_OPERATIONS,
        }
    }
}

/// The compiled policy. Cheap to clone (the proxy keeps one per config generation).
#[derive(Clone, Debug)]
pub struct Policy {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub dialect: Dialect,
    pub users: Rules,
    pub groups: Rules,
    pub extensions: Vec<Extension>,
    /// Lower-cased, longest first: the path parser takes the longest match.
    pub known_urns: Vec<String>,
    pub max_filter_terms: usize,
    pub bulk_max_operations: usize,
}

#[derive(Debug)]
pub(crate) struct Extension {
    /// As configured, for messages.
    pub urn: String,
    pub urn_lc: String,
    pub allow: Allow,
    /// The RFC schema when the gate knows it (Enterprise User); `None` = any JSON value.
    pub schema: Option<&'static [AttrDef]>,
    /// The resource it extends, when known (Enterprise User extends Users only).
    pub only: Option<Resource>,
}

#[derive(Debug)]
pub(crate) enum Allow {
    All,
    Attrs(Vec<String>),
}

impl Extension {
    pub fn allows(&self, attr: &str) -> bool {
        match &self.allow {
            Allow::All => true,
            Allow::Attrs(list) => list.iter().any(|a| a.eq_ignore_ascii_case(attr)),
        }
    }

    pub fn applies_to(&self, r: Resource) -> bool {
        self.only.is_none_or(|o| o == r)
    }
}

/// The updatable entries of one resource type.
#[derive(Debug, Default)]
pub(crate) struct Rules {
    entries: Vec<Updatable>,
}

/// One updatable entry: `attr`, `attr.sub`, `urn:attr[.sub]` or a whole extension `urn`.
#[derive(Debug)]
struct Updatable {
    /// `None` for the core schema, else the lower-cased extension URN.
    scope: Option<String>,
    /// `None` = the whole extension.
    attr: Option<String>,
    sub: Option<String>,
}

impl Rules {
    /// Whether `scope:attr[.sub]` may change. `scope` is `None` for core attributes.
    pub fn allows(&self, scope: Option<&str>, attr: &str, sub: Option<&str>) -> bool {
        self.entries.iter().any(|u| {
            let same_scope = match (&u.scope, scope) {
                (None, None) => true,
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => false,
            };
            same_scope
                && match &u.attr {
                    None => true,
                    Some(a) => {
                        a.eq_ignore_ascii_case(attr)
                            && match (&u.sub, sub) {
                                (None, _) => true,
                                (Some(us), Some(s)) => us.eq_ignore_ascii_case(s),
                                (Some(_), None) => false,
                            }
                    }
                }
        })
    }

    /// Whether the whole extension `scope` is updatable.
    pub fn allows_whole(&self, scope: &str) -> bool {
        self.entries.iter().any(|u| {
            u.attr.is_none()
                && u.scope
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case(scope))
        })
    }

    /// The sub-attributes of `scope:attr` that are updatable on their own (`name.givenName`).
    pub fn updatable_subs(&self, scope: Option<&str>, attr: &str) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|u| {
                u.scope.as_deref() == scope
                    && u.attr
                        .as_deref()
                        .is_some_and(|a| a.eq_ignore_ascii_case(attr))
            })
            .filter_map(|u| u.sub.as_deref())
            .collect()
    }
}

impl Policy {
    /// Validate and compile a [`PolicySpec`].
    pub fn compile(spec: &PolicySpec) -> Result<Policy, PolicySpecError> {
        let extensions = compile_extensions(&spec.extensions)?;
        let mut known_urns: Vec<String> = [USER_URN, GROUP_URN, ENTERPRISE_URN]
            .iter()
            .map(|u| u.to_ascii_lowercase())
            .chain(extensions.iter().map(|e| e.urn_lc.clone()))
            .collect();
        known_urns.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        known_urns.dedup();
        let users = compile_rules(
            Resource::Users,
            &spec.users_updatable,
            &extensions,
            &known_urns,
        )?;
        let groups = compile_rules(
            Resource::Groups,
            &spec.groups_updatable,
            &extensions,
            &known_urns,
        )?;
        Ok(Policy {
            inner: Arc::new(Inner {
                dialect: spec.dialect,
                users,
                groups,
                extensions,
                known_urns,
                max_filter_terms: spec.max_filter_terms,
                bulk_max_operations: spec.bulk_max_operations,
            }),
        })
    }

    /// The configured dialect.
    pub fn dialect(&self) -> Dialect {
        self.inner.dialect
    }
}

impl Inner {
    pub fn rules(&self, r: Resource) -> &Rules {
        match r {
            Resource::Users => &self.users,
            Resource::Groups => &self.groups,
        }
    }

    pub fn extension(&self, urn: &str) -> Option<&Extension> {
        self.extensions
            .iter()
            .find(|e| e.urn_lc.eq_ignore_ascii_case(urn))
    }
}

fn compile_extensions(
    list: &[(String, ExtensionAllow)],
) -> Result<Vec<Extension>, PolicySpecError> {
    let mut out: Vec<Extension> = Vec::with_capacity(list.len());
    for (urn, allow) in list {
        let bad = |reason: &str| PolicySpecError::Extension {
            urn: urn.clone(),
            reason: reason.to_string(),
        };
        let lc = urn.to_ascii_lowercase();
        if !lc.starts_with("urn:") || lc.len() <= 4 || lc.contains(['[', ']', ' ', '"']) {
            return Err(bad("an extension schema id must be a URN"));
        }
        if lc == USER_URN.to_ascii_lowercase() || lc == GROUP_URN.to_ascii_lowercase() {
            return Err(bad("a core schema is not an extension"));
        }
        if out.iter().any(|e| e.urn_lc == lc) {
            return Err(bad("listed twice"));
        }
        let known = lc == ENTERPRISE_URN.to_ascii_lowercase();
        let schema = known.then_some(schema::ENTERPRISE_ATTRS);
        let allow = match allow {
            ExtensionAllow::All => Allow::All,
            ExtensionAllow::Attrs(attrs) => {
                for a in attrs {
                    if !valid_attr_name(a) {
                        return Err(bad(&format!("'{a}' is not an attribute name")));
                    }
                    if let Some(s) = schema {
                        if schema::find(s, a).is_none() {
                            return Err(bad(&format!("'{a}' is not an attribute of this schema")));
                        }
                    }
                }
                Allow::Attrs(attrs.iter().map(|a| a.to_ascii_lowercase()).collect())
            }
        };
        out.push(Extension {
            urn: urn.clone(),
            urn_lc: lc,
            allow,
            schema,
            only: known.then_some(Resource::Users),
        });
    }
    Ok(out)
}

fn compile_rules(
    resource: Resource,
    entries: &[String],
    extensions: &[Extension],
    known_urns: &[String],
) -> Result<Rules, PolicySpecError> {
    let label = match resource {
        Resource::Users => "users",
        Resource::Groups => "groups",
    };
    let mut rules = Rules::default();
    for entry in entries {
        let bad = |reason: String| PolicySpecError::Updatable {
            resource: label,
            entry: entry.clone(),
            reason,
        };
        let p =
            parse_path_in(entry, known_urns, DEFAULT_MAX_TERMS).map_err(|e| bad(e.to_string()))?;
        if p.filter.is_some() {
            return Err(bad(
                "an updatable entry names an attribute, not a filter".into()
            ));
        }
        let core = resource.core_urn();
        let scope = match &p.urn {
            None => None,
            Some(u) if u.eq_ignore_ascii_case(core) => None,
            Some(u) => {
                let ext = extensions
                    .iter()
                    .find(|e| e.urn_lc.eq_ignore_ascii_case(u))
                    .ok_or_else(
                        || bad("the extension is not listed in policy.extensions".into()),
                    )?;
                if !ext.applies_to(resource) {
                    return Err(bad(format!(
                        "the extension does not extend {}",
                        resource.name()
                    )));
                }
                Some(ext)
            }
        };
        let attr = match (&p.attr, scope) {
            (None, None) => return Err(bad("a path must name an attribute".into())),
            (None, Some(_)) => None,
            (Some(a), None) => {
                check_core_entry(resource, a, p.sub.as_deref()).map_err(bad)?;
                Some(a.to_ascii_lowercase())
            }
            (Some(a), Some(ext)) => {
                if !ext.allows(a) {
                    return Err(bad(
                        "the attribute is not allowed by policy.extensions".into()
                    ));
                }
                if let Some(s) = ext.schema {
                    let def = schema::find(s, a)
                        .ok_or_else(|| bad("no such attribute in the extension".into()))?;
                    check_sub(def, p.sub.as_deref()).map_err(bad)?;
                }
                Some(a.to_ascii_lowercase())
            }
        };
        rules.entries.push(Updatable {
            scope: scope.map(|e| e.urn_lc.clone()),
            attr,
            sub: p.sub.map(|s| s.to_ascii_lowercase()),
        });
    }
    Ok(rules)
}

/// ReadOnly attributes can never change, so listing them is a configuration mistake worth
/// failing on. `userName` may be listed: renames are the operator's choice (`docs/scim-checks.md`;
/// the default list leaves it out, so it is immutable after creation unless listed).
fn check_core_entry(resource: Resource, attr: &str, sub: Option<&str>) -> Result<(), String> {
    let def = schema::find(resource.attrs(), attr)
        .ok_or_else(|| format!("no attribute '{attr}' in {}", resource.name()))?;
    if def.read_only() {
        return Err(format!("'{}' is readOnly", def.name));
    }
    check_sub(def, sub)
}

fn check_sub(def: &AttrDef, sub: Option<&str>) -> Result<(), String> {
    let Some(sub) = sub else { return Ok(()) };
    let s = def
        .sub(sub)
        .ok_or_else(|| format!("'{}' has no sub-attribute '{sub}'", def.name))?;
    if s.read_only() {
        return Err(format!("'{}.{}' is readOnly", def.name, s.name));
    }
    Ok(())
}
