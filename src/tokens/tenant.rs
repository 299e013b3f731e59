//! Tenant names. The gate sends a token's tenant upstream in `X-Scim-Tenant` and writes it into
//! the access log and audit trail; a name with `,` reads as two header values, and non-ASCII
//! or control characters read differently in each place. Names are therefore a narrow ASCII
//! alphabet, checked wherever a tenant enters the gate: an admin create and the token file at
//! load (docs: README, "Token file").

use super::secret;

/// The longest tenant name.
pub const MAX_LEN: usize = 64;

/// Why a tenant name is refused. The messages never repeat the name: it may be anything an
/// operator pasted, a secret included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    #[error("tenant must not be empty")]
    /// The name is empty.
    Empty,
    #[error("tenant must be at most {MAX_LEN} characters")]
    /// The name is longer than 64 characters.
    TooLong,
    #[error("tenant may hold only letters A-Z a-z, digits, '.', '_' and '-'")]
    /// A character outside `A-Z a-z 0-9 . _ -`.
    BadCharacter,
    #[error("tenant looks like a scim-gate token; a secret is never a name")]
    /// The name starts like a gate token (a secret pasted into the wrong field).
    LooksLikeToken,
    #[error("tenant must not be '.' or '..'")]
    /// A dot segment: with `{tenant}` in `upstream.url` it would leave the tenant's root.
    DotSegment,
}

/// Checks `name` against `[A-Za-z0-9._-]{1,64}`, and refuses a name that starts like a gate
/// token (an operator pasting the wrong line must not put a secret into headers and logs).
pub fn check(name: &str) -> Result<(), TenantError> {
    if name.is_empty() {
        return Err(TenantError::Empty);
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(TenantError::BadCharacter);
    }
    if name.len() > MAX_LEN {
        return Err(TenantError::TooLong);
    }
    if name == "." || name == ".." {
        return Err(TenantError::DotSegment);
    }
    if name
        .get(..secret::PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(secret::PREFIX))
    {
        return Err(TenantError::LooksLikeToken);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_alphabet_passes() {
        for ok in [
            "acme",
            "Acme-Corp_2.eu",
            "a",
            &"x".repeat(MAX_LEN),
            "0",
            "...",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn ambiguous_names_are_refused() {
        let cases = [
            ("", TenantError::Empty),
            ("acme,evil", TenantError::BadCharacter),
            (".", TenantError::DotSegment),
            ("..", TenantError::DotSegment),
            ("acme evil", TenantError::BadCharacter),
            ("acmé", TenantError::BadCharacter),
            ("ａｃｍｅ", TenantError::BadCharacter),
            ("acme\n", TenantError::BadCharacter),
            ("acme\u{0}", TenantError::BadCharacter),
            ("a;b", TenantError::BadCharacter),
            ("a/b", TenantError::BadCharacter),
            ("\"acme\"", TenantError::BadCharacter),
            (&"x".repeat(MAX_LEN + 1), TenantError::TooLong),
            ("scimgate_abc", TenantError::LooksLikeToken),
            ("SCIMGATE_abc", TenantError::LooksLikeToken),
        ];
        for (name, want) in cases {
            assert_eq!(check(name), Err(want), "{name:?}");
        }
        // The message never repeats the name.
        let e = check("secret,value").expect_err("comma").to_string();
        assert!(!e.contains("secret"), "{e}");
    }
}
