//! PATCH paths (RFC 7644 §3.5.2, Figure 1 "PATH"):
//! ```text
//! PATH      = attrPath / valuePath [subAttr]
//! attrPath  = [URI ":"] ATTRNAME *1subAttr
//! valuePath = attrPath "[" valFilter "]"
//! ```
//! The URN prefix is the hard part: it contains both ':' and '.' (`…:enterprise:2.0:User`),
//! so it is matched against the *longest known* schema URN, case-insensitively (RFC 7644 §3.10
//! makes every part of a name case-insensitive), never split on the first '.'. A `urn:` prefix
//! that matches no known URN is split at the last ':' before any '[' (attribute names contain
//! no ':'), so the checks can still name the unknown extension in their answer.
//! A path that is exactly a known URN targets the whole extension object.

use std::fmt;

use super::filter::{split_attr_sub, starts_with_ci, Cursor, Filter, DEFAULT_MAX_TERMS};

/// A parsed PATCH path. Names are kept as written; the checks compare them case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatchPath {
    /// The schema URN prefix, if any.
    pub urn: Option<String>,
    /// The attribute; `None` only when the path is a bare extension URN.
    pub attr: Option<String>,
    /// The value filter of `attr[filter]`.
    pub filter: Option<Filter>,
    /// The sub-attribute of `attr.sub` or `attr[filter].sub`.
    pub sub: Option<String>,
}

/// Why a PATCH path did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("empty path")]
    /// The path is empty or blank.
    Empty,
    #[error("invalid attribute name in '{0}'")]
    /// An attribute or sub-attribute name is not an RFC 7643 §2.1 ATTRNAME.
    BadName(String),
    #[error("invalid filter in path: {0}")]
    /// The value filter between brackets did not parse.
    Filter(#[from] super::filter::FilterError),
    #[error("unexpected input after position {0}")]
    /// Input follows a complete path (the byte offset).
    Trailing(usize),
}

/// Parse a PATCH path. `known_urns` are the schema URNs the gate knows (core, enterprise and the
/// policy's extensions), in any order and case.
pub fn parse_path(s: &str, known_urns: &[&str]) -> Result<PatchPath, PathError> {
    parse_path_in(s, known_urns, DEFAULT_MAX_TERMS)
}

/// [`parse_path`] over any list of URN strings (the compiled policy keeps `String`s), with at
/// most `max_terms` terms in a value filter.
pub(crate) fn parse_path_in<S: AsRef<str>>(
    s: &str,
    known_urns: &[S],
    max_terms: usize,
) -> Result<PatchPath, PathError> {
    let s = s.trim_matches(|c| c == ' ' || c == '\t');
    if s.is_empty() {
        return Err(PathError::Empty);
    }
    let (urn, rest_at) = split_urn(s, known_urns);
    let rest = s.get(rest_at..).unwrap_or("");
    if let (Some(u), true) = (&urn, rest.is_empty()) {
        // `urn:…:User:` (a dangling ':') names nothing.
        if rest_at != u.len() {
            return Err(PathError::BadName(s.to_string()));
        }
        return Ok(PatchPath {
            urn,
            attr: None,
            filter: None,
            sub: None,
        });
    }
    let name_end = rest.find('[').unwrap_or(rest.len());
    let head = &rest[..name_end];
    let (attr, head_sub) = split_attr_sub(head).ok_or_else(|| PathError::BadName(s.to_string()))?;
    if name_end == rest.len() {
        return Ok(PatchPath {
            urn,
            attr: Some(attr),
            filter: None,
            sub: head_sub,
        });
    }
    // `name.sub[…]` is not in the grammar: a value path filters a (multi-valued) attribute.
    if head_sub.is_some() {
        return Err(PathError::BadName(s.to_string()));
    }
    let (filter, after) = bracket_filter(s, rest_at + name_end + 1, max_terms)?;
    let tail = s.get(after..).unwrap_or("");
    let sub = match tail.strip_prefix('.') {
        None if tail.is_empty() => None,
        None => return Err(PathError::Trailing(after)),
        Some(name) => match split_attr_sub(name) {
            Some((n, None)) => Some(n),
            _ => return Err(PathError::BadName(s.to_string())),
        },
    };
    Ok(PatchPath {
        urn,
        attr: Some(attr),
        filter: Some(filter),
        sub,
    })
}

/// The filter between '[' (already consumed, content starts at `start`) and ']'; returns the
/// filter and the offset just after ']'.
fn bracket_filter(s: &str, start: usize, max_terms: usize) -> Result<(Filter, usize), PathError> {
    let mut c = Cursor::at(s, start, max_terms);
    c.skip_ws();
    let f = c.filter(1)?;
    c.skip_ws();
    if c.peek() != Some(b']') {
        return Err(PathError::Trailing(c.pos()));
    }
    Ok((f, c.pos() + 1))
}

/// Find the URN prefix: the longest known URN followed by ':' or the end, else a `urn:` prefix
/// up to the last ':' before any '['. Returns the URN as written and where the rest starts.
fn split_urn<S: AsRef<str>>(s: &str, known_urns: &[S]) -> (Option<String>, usize) {
    let best = known_urns
        .iter()
        .map(AsRef::as_ref)
        .filter(|u| starts_with_ci(s, u))
        .filter(|u| matches!(s.as_bytes().get(u.len()), None | Some(b':')))
        .map(str::len)
        .max();
    if let Some(n) = best {
        let rest = if n == s.len() { n } else { n + 1 };
        return (Some(s[..n].to_string()), rest);
    }
    if starts_with_ci(s, "urn:") {
        let head_end = s.find('[').unwrap_or(s.len());
        if let Some(i) = s[..head_end].rfind(':') {
            if i >= 4 {
                return (Some(s[..i].to_string()), i + 1);
            }
        }
    }
    (None, 0)
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.urn, &self.attr) {
            (Some(urn), Some(_)) => write!(f, "{urn}:")?,
            (Some(urn), None) => f.write_str(urn)?,
            (None, _) => {}
        }
        if let Some(attr) = &self.attr {
            f.write_str(attr)?;
        }
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}
