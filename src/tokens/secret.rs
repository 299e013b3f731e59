//! The plaintext token format (docs/token-file.md#token-format): `scimgate_` + 43 base62 characters carrying 32 bytes
//! from the OS RNG + a 6-character base62 CRC-32 checksum.
//!
//! The prefix lets secret scanners (GitHub's, trufflehog…) recognise a leaked token, as GitHub
//! and Tailscale do with theirs; the checksum lets the gate refuse a mistyped or truncated token
//! without a lookup, and tells an operator "this is not a scim-gate token" at once.

use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Every gate token starts with this, so scanners and the log scrubber recognise one.
pub const PREFIX: &str = "scimgate_";
const BODY_LEN: usize = 43;
const CHECK_LEN: usize = 6;
/// Total length of a well-formed token.
pub const TOKEN_LEN: usize = PREFIX.len() + BODY_LEN + CHECK_LEN;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A freshly generated plaintext token. It exists only until the admin response is written;
/// `Debug` never shows it, so a stray `{:?}` cannot leak it into a log.
pub struct NewToken {
    plaintext: String,
}

impl NewToken {
    /// A fresh token from 32 random bytes of the OS generator.
    pub fn generate() -> NewToken {
        let mut raw = [0u8; 32];
        OsRng.fill_bytes(&mut raw);
        let body = base62_fixed(&raw, BODY_LEN);
        let mut plaintext = String::with_capacity(TOKEN_LEN);
        plaintext.push_str(PREFIX);
        plaintext.push_str(&body);
        let check = checksum(plaintext.as_bytes());
        plaintext.push_str(std::str::from_utf8(&check).unwrap_or_default());
        NewToken { plaintext }
    }

    /// The secret, for the one response that shows it.
    pub fn expose(&self) -> &str {
        &self.plaintext
    }

    /// The SHA-256 the token file stores for this token.
    pub fn sha256(&self) -> [u8; 32] {
        sha256(self.plaintext.as_bytes())
    }
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewToken(<redacted>)")
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Parses 64 hex digits (either case) into a digest.
pub fn from_hex(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// Whether `token` has the scim-gate shape and a correct checksum. A `false` here is a typo or a
/// foreign token; it says nothing about which tokens exist, so it is safe to answer early.
pub fn well_formed(token: &[u8]) -> bool {
    if token.len() != TOKEN_LEN || !token.starts_with(PREFIX.as_bytes()) {
        return false;
    }
    if !token[PREFIX.len()..]
        .iter()
        .all(|c| c.is_ascii_alphanumeric())
    {
        return false;
    }
    let (head, check) = token.split_at(TOKEN_LEN - CHECK_LEN);
    checksum(head) == check
}

/// Base62 of `bytes` as a big-endian number, left-padded with '0' to `width`.
fn base62_fixed(bytes: &[u8], width: usize) -> String {
    let mut num: Vec<u8> = bytes.to_vec();
    let mut digits = Vec::with_capacity(width);
    while num.iter().any(|&b| b != 0) {
        let mut rem: u32 = 0;
        for b in num.iter_mut() {
            let acc = (rem << 8) | u32::from(*b);
            *b = (acc / 62) as u8;
            rem = acc % 62;
        }
        digits.push(ALPHABET[rem as usize]);
    }
    while digits.len() < width {
        digits.push(b'0');
    }
    digits.reverse();
    String::from_utf8_lossy(&digits).into_owned()
}

/// The CRC-32 in 6 base62 digits (62^6 > 2^32), without allocating: it runs per request.
fn checksum(data: &[u8]) -> [u8; CHECK_LEN] {
    let mut n = crc32(data);
    let mut out = [b'0'; CHECK_LEN];
    for d in out.iter_mut().rev() {
        *d = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// CRC-32 (IEEE) with a table built at compile time: every request with a `scimgate_` token
/// pays this checksum, and the bitwise form showed up in the load benchmark's profile.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc = (crc >> 8) ^ CRC_TABLE[((crc ^ u32::from(b)) & 0xFF) as usize];
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_the_documented_shape() {
        let a = NewToken::generate();
        let b = NewToken::generate();
        assert_eq!(a.expose().len(), TOKEN_LEN);
        assert!(a.expose().starts_with("scimgate_"));
        assert!(well_formed(a.expose().as_bytes()));
        assert_ne!(a.expose(), b.expose());
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn a_typo_fails_the_checksum() {
        let t = NewToken::generate();
        let mut bytes = t.expose().as_bytes().to_vec();
        let i = PREFIX.len() + 5;
        bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
        assert!(!well_formed(&bytes));
        assert!(!well_formed(&t.expose().as_bytes()[..TOKEN_LEN - 1]));
        assert!(!well_formed(b"Bearer"));
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn the_checksum_is_the_base62_of_the_crc() {
        let crc = crc32(b"scimgate_abc");
        assert_eq!(
            std::str::from_utf8(&checksum(b"scimgate_abc")).ok(),
            Some(base62_fixed(&crc.to_be_bytes(), CHECK_LEN).as_str())
        );
    }

    #[test]
    fn hex_round_trips() {
        let d = sha256(b"test");
        let h = to_hex(&d);
        assert_eq!(
            h,
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert_eq!(from_hex(&h), Some(d));
        assert_eq!(from_hex(&h.to_uppercase()), Some(d));
        assert_eq!(from_hex("zz"), None);
    }
}
