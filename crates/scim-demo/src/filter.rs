//! `attr eq value [and attr eq value]…` filters: the only kind the demo understands, in list
//! queries and inside PATCH path brackets (RFC 7644 §3.4.2.2 has many more; the demo refuses them
//! rather than guessing).

use serde_json::Value;

use crate::attrs::get_ci;

/// `attr eq value` conjunctions; values are JSON literals (`"x"`, `true`, `3`).
pub(crate) type EqFilter = Vec<(String, Value)>;

pub(crate) fn parse_eq_filter(s: &str) -> Result<EqFilter, String> {
    let mut tokens = tokenize(s)?.into_iter();
    let mut out = Vec::new();
    loop {
        let (Some(attr), Some(op), Some(value)) = (tokens.next(), tokens.next(), tokens.next())
        else {
            return Err(format!("expected `attr eq value` in {s:?}"));
        };
        if !op.eq_ignore_ascii_case("eq") {
            return Err(format!(
                "operator {op:?} is not supported by the demo (only eq)"
            ));
        }
        let value: Value = serde_json::from_str(&value)
            .map_err(|_| format!("{value} is not a JSON literal (strings need quotes)"))?;
        if value.is_array() || value.is_object() {
            return Err(format!("{value} is not a comparable value"));
        }
        out.push((attr, value));
        match tokens.next() {
            None => return Ok(out),
            Some(t) if t.eq_ignore_ascii_case("and") => {}
            Some(t) => return Err(format!("unexpected {t:?} (only `and` is supported)")),
        }
    }
}

/// Whitespace-separated tokens; a double-quoted string (with `\` escapes) is one token.
fn tokenize(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut tok = String::new();
        let mut in_string = false;
        while let Some(&c) = chars.peek() {
            if !in_string && c.is_whitespace() {
                break;
            }
            tok.push(c);
            chars.next();
            if c == '"' {
                in_string = !in_string;
            } else if c == '\\' && in_string {
                tok.extend(chars.next());
            }
        }
        if in_string {
            return Err("unterminated string in filter".into());
        }
        out.push(tok);
    }
    Ok(out)
}

/// Whether `elem` is an object whose attributes equal every term of `filter`.
pub(crate) fn filter_matches(elem: &Value, filter: &EqFilter) -> bool {
    let Some(obj) = elem.as_object() else {
        return false;
    };
    filter
        .iter()
        .all(|(attr, want)| match (get_ci(obj, attr), want) {
            // `value` holds ids (caseExact); `type`, `display` and the like compare case-insensitively.
            (Some(Value::String(have)), Value::String(want))
                if !attr.eq_ignore_ascii_case("value") =>
            {
                have.eq_ignore_ascii_case(want)
            }
            (Some(have), want) => have == want,
            (None, _) => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn eq_filters() {
        assert_eq!(
            parse_eq_filter(r#"userName Eq "a \"q\" b""#),
            Ok(vec![("userName".into(), json!("a \"q\" b"))])
        );
        assert!(parse_eq_filter("userName eq").is_err());
        assert!(parse_eq_filter(r#"a eq "x" and"#).is_err());
        assert!(parse_eq_filter(r#"not (a eq "x")"#).is_err());
        assert!(parse_eq_filter(r#"a eq ["x"]"#).is_err());
    }
}
