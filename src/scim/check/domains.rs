//! E-mail domains: a token limited to domains may write only addresses in them
//! (`docs/scim-checks.md`, "Domains").

use std::borrow::Cow;
use std::fmt;

use unicode_normalization::UnicodeNormalization;

use serde_json::{Map, Value};

use super::context::{Cx, Loc};
use crate::scim::error::Rejection;
use crate::scim::filter::{CompareOp, Filter, Literal};
use crate::scim::json::get_ci;
use crate::scim::path::PatchPath;

impl<'p> Cx<'p> {
    pub(super) fn check_user_domains(&self, obj: &Map<String, Value>) -> Result<(), Rejection> {
        if self.domains.is_empty() {
            return Ok(());
        }
        if let Some(Value::String(u)) = get_ci(obj, "userName") {
            self.check_user_name_domain(u)?;
        }
        if let Some(Value::Array(emails)) = get_ci(obj, "emails") {
            for (i, e) in emails.iter().enumerate() {
                self.check_email_item(e, &Loc::Index(&Loc::Name("emails"), i))?;
            }
        }
        Ok(())
    }

    /// A `userName` that is an address must be in the token's domains.
    pub(super) fn check_user_name_domain(&self, user_name: &str) -> Result<(), Rejection> {
        if self.domains.is_empty() || !nfkc(user_name).contains('@') {
            return Ok(());
        }
        self.check_domain(user_name, "userName")
    }

    pub(super) fn check_email_item(&self, item: &Value, loc: &Loc) -> Result<(), Rejection> {
        if let Some(Value::String(addr)) = item.as_object().and_then(|o| get_ci(o, "value")) {
            self.check_domain(addr, Loc::Key(loc, "value"))?;
        }
        Ok(())
    }

    /// The address's domain (see [`address_domain`]) must be one of the token's domains. The
    /// message names the attribute and the domain, never the address (user data).
    pub(super) fn check_domain(
        &self,
        addr: &str,
        what: impl fmt::Display,
    ) -> Result<(), Rejection> {
        if self.domains.is_empty() {
            return Ok(());
        }
        let Some(domain) = address_domain(addr) else {
            return Err(Rejection::domain(format!(
                "{what}: not an e-mail address, so its domain cannot be allowed \
                 (one '@', a local part and a domain, no control characters or spaces)"
            )));
        };
        let allowed = self
            .domains
            .iter()
            .any(|d| d.trim_start_matches('@').eq_ignore_ascii_case(&domain));
        if allowed {
            return Ok(());
        }
        Err(Rejection::domain(format!(
            "{what}: domain '{domain}' is not allowed for this token"
        )))
    }

    /// Addresses named by `value eq "…"` inside a value filter that an `add` or `replace`
    /// writes through (`emails[value eq "x@evil.com"].primary`): an upstream that creates the
    /// element a filter matches nothing for (Entra expects it) would create that address.
    pub(super) fn check_filter_emails(&self, f: &Filter, at: &Loc) -> Result<(), Rejection> {
        match f {
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value: Literal::String(addr),
            } if path.urn.is_none()
                && (path.attr.eq_ignore_ascii_case("value") && path.sub.is_none()
                    || path.attr.eq_ignore_ascii_case("emails")
                        && path
                            .sub
                            .as_deref()
                            .is_some_and(|s| s.eq_ignore_ascii_case("value"))) =>
            {
                self.check_domain(addr, format_args!("{at}: the value filter of 'emails'"))
            }
            // Recursion is bounded by the filter's bracket depth (filter.rs `MAX_DEPTH`).
            Filter::And(fs) | Filter::Or(fs) => {
                fs.iter().try_for_each(|f| self.check_filter_emails(f, at))
            }
            // A negated term or a nested value path names no value to create.
            _ => Ok(()),
        }
    }

    /// E-mail addresses written by a PATCH at `emails`, `emails[…]`, `emails[…].value`.
    pub(super) fn check_patch_emails(
        &self,
        pp: &PatchPath,
        v: &Value,
        at: &Loc,
    ) -> Result<(), Rejection> {
        match (pp.sub.as_deref(), &pp.filter, v) {
            (Some(s), _, Value::String(addr)) if s.eq_ignore_ascii_case("value") => {
                self.check_domain(addr, at)
            }
            (Some(_), _, _) => Ok(()),
            (None, _, Value::Array(items)) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, item)| self.check_email_item(item, &Loc::Index(at, i))),
            (None, _, item) => self.check_email_item(item, at),
        }
    }
}

/// NFKC (Unicode compatibility normalization, UAX #15): what an upstream that normalizes will
/// store. ASCII is already in that form, so the common case borrows.
fn nfkc(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.nfkc().collect())
    }
}

/// The domain of an address, read strictly after NFKC (a fullwidth `＠` is an `@`): exactly
/// one `@`, a non-empty local part and domain, no control characters or white space inside.
/// `None` for anything else, which a token with domains cannot be allowed to write.
pub(super) fn address_domain(addr: &str) -> Option<String> {
    let norm = nfkc(addr.trim());
    if norm.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return None;
    }
    let (local, domain) = norm.split_once('@')?;
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return None;
    }
    Some(domain.to_string())
}
