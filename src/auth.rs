//! Bearer-token authentication (docs/operations.md#authentication, RFC 6750).
//!
//! The header is parsed strictly but forgivingly where RFCs allow it: the scheme is
//! case-insensitive (RFC 9110 §11.1), optional whitespace around the token is ignored, and the
//! token must be a `b64token` (RFC 6750 §2.1). Then the token is hashed and looked up; see
//! [`crate::tokens::TokenSet::lookup`] for why that does not leak through timing.

use http::HeaderMap;

use crate::error::ScimError;
use crate::tokens::{secret, Lookup, TokenInfo, TokenStore};

/// Longer than any token the gate issues by far; hashing is cheap, but nothing this long is a
/// token, and the answer does not depend on which tokens exist.
const MAX_TOKEN_LEN: usize = 1024;

const CHALLENGE: &str = "Bearer realm=\"scim\"";
const CHALLENGE_INVALID: &str = "Bearer realm=\"scim\", error=\"invalid_token\"";
const CHALLENGE_REQUEST: &str = "Bearer realm=\"scim\", error=\"invalid_request\"";

fn unauthorized(challenge: &'static str, reason: &'static str, detail: &str) -> ScimError {
    let mut e = ScimError::new(401, None, detail).reason(reason);
    e.www_authenticate = Some(challenge);
    e
}

/// How the `Authorization` header may carry the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schemes {
    /// `Bearer <token>` only (`policy.dialect: strict`).
    BearerOnly,
    /// Also a well-formed gate token with no scheme at all: Okta's "HTTP Header"
    /// authentication mode sends `Authorization: <token>` (`docs/guards.md#okta`).
    AlsoSchemeless,
}

/// Authenticates a request's headers against the store.
pub fn authenticate(
    headers: &HeaderMap,
    store: &TokenStore,
    schemes: Schemes,
) -> Result<TokenInfo, ScimError> {
    let token = extract_bearer(headers, schemes)?;
    match store.lookup(token) {
        Lookup::Valid(info) => Ok(info),
        Lookup::Unknown => Err(unauthorized(
            CHALLENGE_INVALID,
            "token_unknown",
            "the bearer token is not valid",
        )),
        Lookup::Inactive => Err(unauthorized(
            CHALLENGE_INVALID,
            "token_inactive",
            "the bearer token is inactive",
        )),
        Lookup::Expired => Err(unauthorized(
            CHALLENGE_INVALID,
            "token_expired",
            "the bearer token has expired",
        )),
        Lookup::NotServing => Err(not_serving()),
    }
}

/// 503 while the token set cannot be proved current (docs/cluster.md#fencing): the IdP retries
/// after a second, by which time a resync usually finished.
pub fn not_serving() -> ScimError {
    ScimError::new(
        503,
        None,
        "this gate replica cannot confirm the token state is current (cluster store unreachable or resynchronising); retry shortly",
    )
    .reason("not_serving")
    .retry_after(1)
}

/// Returns the token bytes of the one `Authorization: Bearer` header, or the 401/400 to send.
pub fn extract_bearer(headers: &HeaderMap, schemes: Schemes) -> Result<&[u8], ScimError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(unauthorized(
            CHALLENGE,
            "token_missing",
            "an Authorization: Bearer token is required",
        ));
    };
    if values.next().is_some() {
        // RFC 6750 §3.1: a malformed request is invalid_request, 400.
        let mut e = ScimError::new(400, None, "more than one Authorization header was sent")
            .reason("two_authorization_headers");
        e.www_authenticate = Some(CHALLENGE_REQUEST);
        return Err(e);
    }
    let raw = trim(value.as_bytes());
    let (scheme, rest) = match raw.iter().position(|b| *b == b' ' || *b == b'\t') {
        Some(i) => (&raw[..i], trim(&raw[i..])),
        None => (raw, &raw[raw.len()..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        // A value that is a whole gate token, prefix and checksum, cannot be another scheme's
        // credential: accepted as if `Bearer` preceded it, unless the dialect is strict.
        if schemes == Schemes::AlsoSchemeless && rest.is_empty() && secret::well_formed(scheme) {
            return Ok(scheme);
        }
        return Err(unauthorized(
            CHALLENGE,
            "scheme_not_bearer",
            "the Authorization scheme must be Bearer",
        ));
    }
    if rest.is_empty() {
        return Err(unauthorized(
            CHALLENGE_INVALID,
            "token_malformed",
            "the Bearer token is empty",
        ));
    }
    if rest.len() > MAX_TOKEN_LEN || !is_b64token(rest) {
        return Err(unauthorized(
            CHALLENGE_INVALID,
            "token_malformed",
            "the bearer token is malformed",
        ));
    }
    if rest.starts_with(secret::PREFIX.as_bytes()) && !secret::well_formed(rest) {
        return Err(unauthorized(
            CHALLENGE_INVALID,
            "token_checksum",
            "the bearer token is malformed (checksum mismatch: truncated or mistyped?)",
        ));
    }
    Ok(rest)
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| *c != b' ' && *c != b'\t')
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| *c != b' ' && *c != b'\t')
        .map_or(start, |i| i + 1);
    &b[start..end.max(start)]
}

/// RFC 6750 §2.1: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(t: &[u8]) -> bool {
    let body_end = t.iter().rposition(|c| *c != b'=').map_or(0, |i| i + 1);
    body_end > 0 && t[..body_end].iter().all(|c| B64TOKEN[usize::from(*c)])
}

/// The characters of a b64token before its `=` padding, as a table: every request's token is
/// checked byte by byte.
static B64TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        table[c] =
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        c += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::{test_record, Idp};

    fn store(token: &str) -> TokenStore {
        let r = test_record("tok_1", "acme", Idp::Okta, token);
        TokenStore::from_records(vec![r], 2).expect("valid")
    }

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                http::header::AUTHORIZATION,
                http::HeaderValue::from_bytes(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn accepted_spellings() {
        let s = store("good-token");
        for v in [
            &b"Bearer good-token"[..],
            b"bearer good-token",
            b"BEARER   good-token  ",
            b"  Bearer\tgood-token",
        ] {
            let info = authenticate(&headers(&[v]), &s, Schemes::BearerOnly).expect("valid");
            assert_eq!(info.id(), "tok_1");
        }
    }

    #[test]
    fn refused_spellings() {
        let s = store("good-token");
        let cases: Vec<(Vec<&[u8]>, u16, &str)> = vec![
            (vec![], 401, CHALLENGE),
            (vec![b"Bearer"], 401, CHALLENGE_INVALID),
            (vec![b"Bearer    "], 401, CHALLENGE_INVALID),
            (vec![b"Basic Z29vZC10b2tlbg=="], 401, CHALLENGE),
            (vec![b"Bearer other-token"], 401, CHALLENGE_INVALID),
            (vec![b"Bearer good token"], 401, CHALLENGE_INVALID),
            (vec![b"Bearer good-token\xff"], 401, CHALLENGE_INVALID),
            (
                vec![b"Bearer good-token", b"Bearer good-token"],
                400,
                CHALLENGE_REQUEST,
            ),
        ];
        for (values, status, challenge) in cases {
            let e = authenticate(&headers(&values), &s, Schemes::BearerOnly).expect_err("refused");
            assert_eq!(e.status, status, "{values:?}");
            assert_eq!(e.www_authenticate, Some(challenge), "{values:?}");
            assert!(
                !e.detail.contains("good-token"),
                "the token never appears in an error"
            );
        }
        let long = format!("Bearer {}", "a".repeat(8192));
        assert_eq!(
            authenticate(&headers(&[long.as_bytes()]), &s, Schemes::BearerOnly)
                .map_err(|e| e.status)
                .err(),
            Some(401)
        );
    }

    #[test]
    fn a_mistyped_scimgate_token_fails_before_lookup() {
        let t = secret::NewToken::generate();
        let mut typo = t.expose().to_string();
        typo.pop();
        typo.push('0');
        let typo = if secret::well_formed(typo.as_bytes()) {
            format!("{typo}x")
        } else {
            typo
        };
        let e = extract_bearer(
            &headers(&[format!("Bearer {typo}").as_bytes()]),
            Schemes::BearerOnly,
        )
        .expect_err("bad checksum");
        assert!(e.detail.contains("checksum"));
        assert!(extract_bearer(
            &headers(&[format!("Bearer {}", t.expose()).as_bytes()]),
            Schemes::BearerOnly
        )
        .is_ok());
    }

    #[test]
    fn a_schemeless_gate_token_is_accepted_unless_strict() {
        let t = secret::NewToken::generate();
        let bare = t.expose().as_bytes();
        assert_eq!(
            extract_bearer(&headers(&[bare]), Schemes::AlsoSchemeless).ok(),
            Some(bare)
        );
        let e = extract_bearer(&headers(&[bare]), Schemes::BearerOnly).expect_err("strict");
        assert_eq!(e.status, 401);
        // Only a whole, well-formed gate token: not another scheme, not a typo, not two words.
        let mut typo = t.expose().to_string();
        typo.pop();
        for v in [
            typo.clone(),
            "Basic dXNlcjpwYXNz".to_string(),
            format!("Token {}", t.expose()),
            "plain-secret".to_string(),
        ] {
            assert!(
                extract_bearer(&headers(&[v.as_bytes()]), Schemes::AlsoSchemeless).is_err(),
                "{v}"
            );
        }
    }
}
