//! E-mail domains: a token limited to domains may write only addresses in them
//! (`docs/scim-checks.md`, "Domains").

use std::fmt;

use serde_json::{Map, Value};

use super::context::{Cx, Loc};
use crate::scim::error::Rejection;
use crate::scim::json::get_ci;
use crate::scim::path::PatchPath;

impl<'p> Cx<'p> {
    pub(super) fn check_user_domains(&self, obj: &Map<String, Value>) -> Result<(), Rejection> {
        if self.domains.is_empty() {
            return Ok(());
        }
        if let Some(Value::String(u)) = get_ci(obj, "userName") {
            if u.contains('@') {
                self.check_domain(u, "userName")?;
            }
        }
        if let Some(Value::Array(emails)) = get_ci(obj, "emails") {
            for (i, e) in emails.iter().enumerate() {
                self.check_email_item(e, &Loc::Index(&Loc::Name("emails"), i))?;
            }
        }
        Ok(())
    }

    pub(super) fn check_email_item(&self, item: &Value, loc: &Loc) -> Result<(), Rejection> {
        if let Some(Value::String(addr)) = item.as_object().and_then(|o| get_ci(o, "value")) {
            self.check_domain(addr, Loc::Key(loc, "value"))?;
        }
        Ok(())
    }

    /// The part after the last '@' must be one of the token's domains. The message names the
    /// attribute and the domain, never the address (user data).
    pub(super) fn check_domain(
        &self,
        addr: &str,
        what: impl fmt::Display,
    ) -> Result<(), Rejection> {
        if self.domains.is_empty() {
            return Ok(());
        }
        let domain = addr.rsplit_once('@').map(|(_, d)| d.trim()).unwrap_or("");
        let allowed = !domain.is_empty()
            && self
                .domains
                .iter()
                .any(|d| d.trim_start_matches('@').eq_ignore_ascii_case(domain));
        if allowed {
            return Ok(());
        }
        Err(Rejection::domain(if domain.is_empty() {
            format!("{what}: not an e-mail address, so its domain cannot be allowed")
        } else {
            format!("{what}: domain '{domain}' is not allowed for this token")
        }))
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
