//! The token file of SPEC §3: YAML, hashes only, written by the gate and safe to edit by hand.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{secret, FastMap, FastSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Idp {
    Entra,
    Okta,
    Google,
    Onelogin,
    Jumpcloud,
    Other,
}

impl Idp {
    pub fn as_str(&self) -> &'static str {
        match self {
            Idp::Entra => "entra",
            Idp::Okta => "okta",
            Idp::Google => "google",
            Idp::Onelogin => "onelogin",
            Idp::Jumpcloud => "jumpcloud",
            Idp::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Idp> {
        Some(match s {
            "entra" => Idp::Entra,
            "okta" => Idp::Okta,
            "google" => Idp::Google,
            "onelogin" => Idp::Onelogin,
            "jumpcloud" => Idp::Jumpcloud,
            "other" => Idp::Other,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Inactive,
}

/// One token as the file holds it. `sha256` is the hex digest of the plaintext token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    pub id: String,
    pub tenant: String,
    pub idp: Idp,
    pub status: Status,
    pub sha256: String,
    #[serde(default)]
    pub domains: Vec<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub refreshed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    #[serde(default)]
    tokens: Vec<TokenRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("the file is empty; write `tokens: []` to remove every token")]
    Empty,
    #[error("not valid token YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("token {id}: sha256 must be 64 hex digits")]
    BadHash { id: String },
    #[error("token id {0:?} appears twice")]
    DuplicateId(String),
    #[error("tokens {0} and {1} have the same sha256")]
    DuplicateHash(String, String),
    #[error("token {id}: {reason}")]
    BadField { id: String, reason: String },
    #[error("tenant {tenant:?} holds {count} tokens for idp {idp}, more than max_per_idp {max}")]
    OverLimit {
        tenant: String,
        idp: &'static str,
        count: usize,
        max: usize,
    },
}

/// Parses and validates the file's bytes. An empty file is an empty set.
pub fn parse(bytes: &[u8], max_per_idp: usize) -> Result<Vec<TokenRecord>, TokenFileError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let mut tokens = match parse_canonical(bytes) {
        Some(t) => t,
        None => serde_yaml::from_slice::<TokenFile>(bytes)?.tokens,
    };
    for r in &mut tokens {
        // Hand-written hashes may be upper case; the index and diff compare lower case.
        r.sha256.make_ascii_lowercase();
    }
    validate(&tokens, max_per_idp)?;
    Ok(tokens)
}

/// The fast path for the layout [`render`] writes: comments, a `tokens:` line, then one token
/// per line as `- {JSON object}` (JSON is YAML, so the file stays a YAML file anyone can
/// edit). Parsing that with serde_json line by line is ~20x faster than serde_yaml and needs
/// no more memory than the records: serde_yaml first holds the whole event stream, which for a
/// million tokens is gigabytes and seconds. Anything else — a block mapping typed by hand, a
/// comment between entries is fine — returns `None` and the file goes through serde_yaml, so
/// both layouts are accepted and errors still come from a YAML parser.
fn parse_canonical(bytes: &[u8]) -> Option<Vec<TokenRecord>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    match lines.next()? {
        "tokens:" => {}
        "tokens: []" => return lines.next().is_none().then(Vec::new),
        _ => return None,
    }
    let mut out = Vec::new();
    for line in lines {
        let json = line.strip_prefix('-')?.trim_start();
        if !json.starts_with('{') {
            return None;
        }
        out.push(serde_json::from_str(json).ok()?);
    }
    Some(out)
}

/// The rules a set must satisfy, for files and admin changes alike.
pub fn validate(records: &[TokenRecord], max_per_idp: usize) -> Result<(), TokenFileError> {
    let mut ids = FastSet::default();
    // Keyed by the digest's bytes (the first 8 are already uniform), not its 64 hex characters.
    let mut hashes: FastMap<[u8; 32], &str> = FastMap::default();
    let mut per_idp: FastMap<(&str, Idp), usize> = FastMap::default();
    ids.reserve(records.len());
    hashes.reserve(records.len());
    for r in records {
        let bad = |reason: &str| TokenFileError::BadField {
            id: r.id.clone(),
            reason: reason.to_string(),
        };
        if r.id.is_empty()
            || !r
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(bad("id must be non-empty letters, digits, '_' or '-'"));
        }
        if r.tenant.is_empty() || r.tenant.chars().any(char::is_control) {
            return Err(bad("tenant must be a non-empty printable string"));
        }
        if r.domains
            .iter()
            .any(|d| d.is_empty() || d.contains('@') || d.chars().any(char::is_whitespace))
        {
            return Err(bad("domains must be bare domain names like acme.com"));
        }
        let Some(digest) = secret::from_hex(&r.sha256) else {
            return Err(TokenFileError::BadHash { id: r.id.clone() });
        };
        if !ids.insert(r.id.as_str()) {
            return Err(TokenFileError::DuplicateId(r.id.clone()));
        }
        if let Some(other) = hashes.insert(digest, r.id.as_str()) {
            return Err(TokenFileError::DuplicateHash(
                other.to_string(),
                r.id.clone(),
            ));
        }
        let n = per_idp.entry((r.tenant.as_str(), r.idp)).or_default();
        *n += 1;
        if *n > max_per_idp {
            return Err(TokenFileError::OverLimit {
                tenant: r.tenant.clone(),
                idp: r.idp.as_str(),
                count: *n,
                max: max_per_idp,
            });
        }
    }
    Ok(())
}

/// The file text for a set of records, with a header that says what the file is.
pub fn render(records: &[TokenRecord]) -> Vec<u8> {
    let mut out = b"# scim-gate token file: SHA-256 hashes only, no secrets. Written by the gate, one token\n\
# per line (JSON objects are YAML); hand edits in either style are picked up within a second\n\
# (invalid edits are refused and logged).\n"
        .to_vec();
    if records.is_empty() {
        out.extend_from_slice(b"tokens: []\n");
        return out;
    }
    out.reserve(records.len() * 260);
    out.extend_from_slice(b"tokens:\n");
    for r in records {
        out.extend_from_slice(b"- ");
        // A record of strings, enums and dates always serialises.
        if serde_json::to_writer(&mut out, r).is_err() {
            log::error!("token {} could not be written", r.id);
        }
        out.push(b'\n');
    }
    out
}

/// Temp file in the same folder, fsync, rename over the target, fsync the folder: a crash at any
/// instant leaves the old file or the new one, never a torn one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TokenFileError> {
    let io = |e: std::io::Error| TokenFileError::Io(path.display().to_string(), e);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn yaml(entries: &str) -> String {
        format!("tokens:\n{entries}")
    }

    fn entry(id: &str, idp: &str, hash: &str) -> String {
        format!(
            "  - {{id: {id}, tenant: acme, idp: {idp}, status: active, sha256: {hash}, domains: [acme.com], created_at: 2026-11-22T10:00:00Z, refreshed_at: null, expires_at: null}}\n"
        )
    }

    #[test]
    fn the_spec_example_parses() {
        let r = parse(yaml(&entry("tok_4f9c2a1b", "okta", HASH)).as_bytes(), 2).expect("valid");
        assert_eq!(r[0].id, "tok_4f9c2a1b");
        assert_eq!(r[0].idp, Idp::Okta);
        assert_eq!(r[0].domains, vec!["acme.com"]);
    }

    #[test]
    fn invalid_files_say_why() {
        let other = HASH.replace('9', "8");
        let cases = [
            (yaml(&entry("a", "okta", "abc")), "64 hex"),
            (
                yaml(&(entry("a", "okta", HASH) + &entry("a", "entra", &other))),
                "twice",
            ),
            (
                yaml(&(entry("a", "okta", HASH) + &entry("b", "entra", HASH))),
                "same sha256",
            ),
            (yaml(&entry("a", "myspace", HASH)), "unknown variant"),
            ("tokens: [ {id: ".to_string(), "YAML"),
            (
                yaml(
                    &entry("a", "okta", HASH)
                        .replace("status: active", "status: active, colour: red"),
                ),
                "unknown field",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text.as_bytes(), 2).expect_err(&text).to_string();
            assert!(e.contains(want), "{e} should mention {want}");
        }
        let third = HASH.replace('9', "7");
        let three =
            entry("a", "okta", HASH) + &entry("b", "okta", &other) + &entry("c", "okta", &third);
        let e = parse(yaml(&three).as_bytes(), 2)
            .expect_err("over limit")
            .to_string();
        assert!(e.contains("max_per_idp"), "{e}");
    }

    #[test]
    fn the_written_layout_takes_the_fast_path_and_block_yaml_still_parses() {
        let records = parse(yaml(&entry("tok_1", "entra", HASH)).as_bytes(), 2).expect("valid");
        let written = render(&records);
        assert_eq!(parse_canonical(&written), Some(records.clone()));
        // What serde_yaml makes of the written file is the same set.
        let via_yaml: TokenFile =
            serde_yaml::from_slice(&written).expect("the written file is YAML");
        assert_eq!(via_yaml.tokens, records);
        // The SPEC's block layout goes through serde_yaml.
        let block = format!(
            "tokens:\n  - id: tok_1\n    tenant: acme\n    idp: okta\n    status: active\n    sha256: {HASH}\n    domains: [acme.com]\n    created_at: 2026-11-22T10:00:00Z\n    refreshed_at: null\n    expires_at: null\n"
        );
        assert_eq!(parse_canonical(block.as_bytes()), None);
        assert_eq!(parse(block.as_bytes(), 2).expect("block").len(), 1);
        assert_eq!(parse(&render(&[]), 2).expect("empty"), vec![]);
    }

    #[test]
    fn render_then_parse_is_identity_and_writes_are_atomic() {
        let records = parse(yaml(&entry("tok_1", "entra", HASH)).as_bytes(), 2).expect("valid");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens.yaml");
        write_atomic(&path, &render(&records)).expect("write");
        let back = parse(&std::fs::read(&path).expect("read"), 2).expect("parse");
        assert_eq!(back, records);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
    }
}
