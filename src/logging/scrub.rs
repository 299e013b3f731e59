//! Removes secrets from a formatted log message, whoever wrote it.
//!
//! At `debug`/`trace` Pingora prints whole request and response heads (`Request header: …`,
//! `Sending header to upstream …`, `Writing request header: b"GET …\r\n…"`), and at `error` a
//! failed proxy attempt names the request line with its query string. An IdP may put a
//! credential anywhere in those: `Authorization`, another header, `?access_token=`. Every line
//! goes through [`scrub`], which keeps the shape of the message and replaces:
//!
//! - anything shaped like a gate token (`scimgate_…`, docs/token-file.md#token-format);
//! - the credential after `Bearer ` / `Basic ` (RFC 6750 §2.1, RFC 7617);
//! - a query string, after a `?` that follows a path (RFC 3986 §3.4);
//! - the value of every header not known to be harmless, in the two forms Pingora prints
//!   (`"name": "value"` of a header map, `Name: value` of the wire bytes);
//! - decimal byte lists (`[47, 115, …]`), the `Debug` form of a raw request target.
//!
//! What it cannot recognise it cannot scrub (a secret in a free-text message of some crate);
//! the gate's own messages never carry one.

/// Replaces a secret.
const REDACTED: &str = "[redacted]";

/// Headers whose values carry no credential and help debugging; every other header value in a
/// header dump is replaced.
const HARMLESS_HEADERS: &[&str] = &[
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "cache-control",
    "connection",
    "content-encoding",
    "content-length",
    "content-location",
    "content-type",
    "date",
    "etag",
    "expect",
    "host",
    "if-match",
    "if-none-match",
    "keep-alive",
    "last-modified",
    "location",
    "retry-after",
    "server",
    "te",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "www-authenticate",
    "x-request-id",
    "x-scim-tenant",
    "x-scim-token-id",
];

/// Auth schemes whose next word is a credential.
const SCHEMES: &[&str] = &["bearer ", "basic "];

/// Appends `text` to `out` with every secret it can recognise replaced by `[redacted]`.
pub fn scrub(text: &str, out: &mut String) {
    let b = text.as_bytes();
    let mut i = 0;
    // Start of the run of bytes not yet copied to `out`.
    let mut copied = 0;
    while i < b.len() {
        let skip = match b[i] {
            b's' | b'S' => token_at(b, i),
            b'b' | b'B' => scheme_at(b, i),
            b'?' => query_at(b, i),
            b'"' => quoted_header_at(b, i),
            b'\n' => wire_header_at(b, i, i + 1),
            b'\\' if b[i..].starts_with(b"\\r\\n") => wire_header_at(b, i, i + 4),
            b'[' => byte_list_at(b, i),
            _ => None,
        };
        match skip {
            // `keep` bytes from `i` stay, then `[redacted]`, and scanning goes on at `end`.
            Some((keep, end)) => {
                out.push_str(&text[copied..i + keep]);
                out.push_str(REDACTED);
                copied = end;
                i = end;
            }
            None => i += 1,
        }
    }
    out.push_str(&text[copied..]);
}

/// Whether `b[i]` starts a word (nothing alphanumeric just before it).
fn word_start(b: &[u8], i: usize) -> bool {
    i == 0 || !b[i - 1].is_ascii_alphanumeric()
}

fn starts_with_ignore_case(b: &[u8], i: usize, word: &str) -> bool {
    b.get(i..i + word.len())
        .is_some_and(|w| w.eq_ignore_ascii_case(word.as_bytes()))
}

/// The end of a credential-like run starting at `i`: up to whitespace, a quote, an escape or
/// a separator that ends a value in `Debug` output.
fn value_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len()
        && !b[i].is_ascii_whitespace()
        && !matches!(
            b[i],
            b'"' | b'\'' | b'\\' | b',' | b';' | b')' | b'}' | b']' | b'>'
        )
    {
        i += 1;
    }
    i
}

/// `scimgate_` + anything alphanumeric: the prefix stays (it says what leaked), the rest goes.
fn token_at(b: &[u8], i: usize) -> Option<(usize, usize)> {
    const PREFIX: &str = crate::tokens::secret::PREFIX;
    if !starts_with_ignore_case(b, i, PREFIX) {
        return None;
    }
    let start = i + PREFIX.len();
    let end = start
        + b[start..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric())
            .count();
    (end > start).then_some((PREFIX.len(), end))
}

/// `Bearer <credential>` and the other schemes.
fn scheme_at(b: &[u8], i: usize) -> Option<(usize, usize)> {
    if !word_start(b, i) {
        return None;
    }
    let scheme = SCHEMES.iter().find(|s| starts_with_ignore_case(b, i, s))?;
    let mut start = i + scheme.len();
    while b.get(start) == Some(&b' ') {
        start += 1;
    }
    let end = value_end(b, start);
    (end > start).then_some((start - i, end))
}

/// `path?query`: a `?` right after a non-space character and followed by one.
fn query_at(b: &[u8], i: usize) -> Option<(usize, usize)> {
    if i == 0 || b[i - 1].is_ascii_whitespace() {
        return None;
    }
    let end = value_end(b, i + 1);
    (end > i + 1).then_some((1, end))
}

fn header_name_len(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'))
        .count()
}

fn harmless(name: &[u8]) -> bool {
    HARMLESS_HEADERS
        .iter()
        .any(|h| h.as_bytes().eq_ignore_ascii_case(name))
}

/// `"name": "value"` as a `HeaderMap` prints it: the value goes unless the name is harmless.
fn quoted_header_at(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let name_len = header_name_len(b, i + 1);
    let after_name = i + 1 + name_len;
    if name_len == 0 || !b[after_name..].starts_with(b"\": \"") {
        return None;
    }
    if harmless(&b[i + 1..after_name]) {
        return None;
    }
    let start = after_name + 4;
    // The value ends at the first quote not escaped by a backslash.
    let mut j = start;
    while j < b.len() && b[j] != b'"' {
        j += if b[j] == b'\\' { 2 } else { 1 };
    }
    Some((start - i, j.min(b.len())))
}

/// `Name: value` at the start of a line of wire bytes, the line starting at `line` (after a
/// real or an escaped CRLF found at `at`).
fn wire_header_at(b: &[u8], at: usize, line: usize) -> Option<(usize, usize)> {
    let name_len = header_name_len(b, line);
    let colon = line + name_len;
    if name_len == 0 || b.get(colon) != Some(&b':') || harmless(&b[line..colon]) {
        return None;
    }
    let mut start = colon + 1;
    while b.get(start) == Some(&b' ') {
        start += 1;
    }
    // Up to the end of the line: an escaped `\r`, a real one, or the closing quote.
    let mut end = start;
    while end < b.len() && !matches!(b[end], b'\\' | b'\r' | b'\n' | b'"') {
        end += 1;
    }
    (end > start).then_some((start - at, end))
}

/// `[47, 115, 99, …]`: four or more decimal bytes in a row.
fn byte_list_at(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let mut j = i + 1;
    let mut count = 0;
    loop {
        let digits = b[j..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 3 {
            return None;
        }
        count += 1;
        j += digits;
        match b.get(j..j + 2) {
            Some(b", ") => j += 2,
            _ => break,
        }
    }
    (b.get(j) == Some(&b']') && count >= 4).then_some((1, j))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(s: &str) -> String {
        let mut out = String::new();
        scrub(s, &mut out);
        out
    }

    const TOKEN: &str = "scimgate_4f9c2a1bA0b1C2d3E4f5G6h7I8j9K0l1M2n3O4p5Q6rAbCdEf";

    #[test]
    fn gate_tokens_are_redacted_wherever_they_appear() {
        assert_eq!(
            clean(&format!("x-api-key={TOKEN}, next")),
            "x-api-key=scimgate_[redacted], next"
        );
        assert_eq!(clean("SCIMGATE_abc"), "SCIMGATE_[redacted]");
        assert_eq!(clean("scimgate_"), "scimgate_");
    }

    #[test]
    fn credentials_after_a_scheme_are_redacted() {
        assert_eq!(
            clean("Bearer hand-made.secret~1 and more"),
            "Bearer [redacted] and more"
        );
        assert_eq!(clean("basic dXNlcjpwYXNz)"), "basic [redacted])");
        assert_eq!(clean("the bearer  x"), "the bearer  [redacted]");
        // Only whole words: "subtoken x" is no scheme.
        assert_eq!(clean("subtoken x"), "subtoken x");
    }

    #[test]
    fn query_strings_are_redacted_but_not_question_marks_in_prose() {
        assert_eq!(
            clean("Fail to proxy: boom, GET /scim/v2/Users?access_token=s3cret&x=1, Host: h"),
            "Fail to proxy: boom, GET /scim/v2/Users?[redacted], Host: h"
        );
        assert_eq!(
            clean("uri: http://h/p?q=1, version"),
            "uri: http://h/p?[redacted], version"
        );
        assert_eq!(
            clean("is the gate running?) ok ? yes"),
            "is the gate running?) ok ? yes"
        );
    }

    #[test]
    fn header_map_values_go_unless_the_header_is_harmless() {
        let dump = r#"headers: {"host": "127.0.0.1:8080", "x-api-key": "hand\"made", "authorization": "s3cret", "content-length": "2"}"#;
        assert_eq!(
            clean(dump),
            r#"headers: {"host": "127.0.0.1:8080", "x-api-key": "[redacted]", "authorization": "[redacted]", "content-length": "2"}"#
        );
    }

    #[test]
    fn wire_header_values_go_unless_the_header_is_harmless() {
        let wire = r#"b"GET /v2/Users?filter=x HTTP/1.1\r\nHost: up\r\nX-Api-Key: s3cret\r\nCookie: a=b\r\n\r\n""#;
        assert_eq!(
            clean(wire),
            r#"b"GET /v2/Users?[redacted] HTTP/1.1\r\nHost: up\r\nX-Api-Key: [redacted]\r\nCookie: [redacted]\r\n\r\n""#
        );
        assert_eq!(
            clean("GET / HTTP/1.1\r\nhost: a\r\nx-secret: s3cret\r\n"),
            "GET / HTTP/1.1\r\nhost: a\r\nx-secret: [redacted]\r\n"
        );
    }

    #[test]
    fn raw_byte_lists_are_redacted() {
        assert_eq!(
            clean("Verbatim([47, 63, 116, 61, 115]) x [1, 2] [2026]"),
            "Verbatim([[redacted]]) x [1, 2] [2026]"
        );
    }

    #[test]
    fn the_gates_own_lines_pass_unchanged() {
        let access = "token=tok_4f9c2a1b tenant=acme method=GET route=users status=200 upstream_status=200 outcome=forwarded duration_ms=1.20";
        assert_eq!(clean(access), access);
        let reload = "token file /etc/gate/tokens.yaml reloaded: 1 added, 0 removed";
        assert_eq!(clean(reload), reload);
    }
}
