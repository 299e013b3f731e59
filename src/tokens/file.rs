//! The token file (docs/token-file.md): YAML, hashes only, written by the gate and safe to edit by hand.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{secret, tenant, FastMap, FastSet};
use crate::net::Cidr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
/// The identity provider a token belongs to (docs/token-file.md).
pub enum Idp {
    /// Microsoft Entra ID.
    Entra,
    /// Okta.
    Okta,
    /// Google Workspace.
    Google,
    /// OneLogin.
    Onelogin,
    /// JumpCloud.
    Jumpcloud,
    /// Any other SCIM client.
    Other,
}

impl Idp {
    /// The name used in the file, the admin API and metrics.
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

    /// The IdP named `s` (as written in the file), if any.
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
/// Whether a token is accepted.
pub enum Status {
    /// Accepted.
    Active,
    /// Refused with 401 until activated again.
    Inactive,
}

/// One token as the file holds it. `sha256` is the hex digest of the plaintext token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    /// Public id (`tok_…`): named in lists, logs and the audit trail.
    pub id: String,
    /// The tenant it provisions, sent upstream as `X-Scim-Tenant`.
    pub tenant: String,
    /// The IdP that holds it.
    pub idp: Idp,
    /// Active or inactive.
    pub status: Status,
    /// SHA-256 of the plaintext, 64 lower-case hex digits: the only trace of the secret.
    pub sha256: String,
    #[serde(default)]
    /// E-mail domains it may write (empty: any).
    pub domains: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    /// Client networks (CIDR blocks) it may be used from (empty: any). Left out of the file
    /// when empty, so files written before the field existed stay as they were.
    pub networks: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    /// When its secret was last replaced.
    pub refreshed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// When it last passed authentication, to within `tokens.last_used_interval` (the gate
    /// writes it back at most that often). Left out of the file until the token is used.
    pub last_used_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    /// Unexpired OAuth access tokens issued on this token's credentials (`docs/oauth.md`):
    /// hashes and expiries only. Dropped when the token is refreshed, deactivated or deleted.
    pub access: Vec<AccessRecord>,
}

/// One OAuth access token: its SHA-256 and when it stops working.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRecord {
    /// SHA-256 of the access token, 64 lower-case hex digits.
    pub sha256: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    #[serde(default)]
    tokens: Vec<TokenRecord>,
}

#[derive(Debug, thiserror::Error)]
/// Why a token file (or a change to it) is refused; never quotes a secret (docs/token-file.md).
pub enum TokenFileError {
    #[error("{0}: {1}")]
    /// The file cannot be read or written.
    Io(String, std::io::Error),
    #[error("the file is empty; write `tokens: []` to remove every token")]
    /// An empty file while tokens are loaded: refused so a truncated write never removes every token.
    Empty,
    #[error("not valid token YAML: {0}")]
    /// Not valid token YAML; line, column and a fixed description.
    Yaml(YamlProblem),
    #[error("token {id}: sha256 must be 64 hex digits")]
    /// A `sha256` that is not 64 hex digits.
    BadHash {
        /// The token's id.
        id: String,
    },
    #[error("token id {0:?} appears twice")]
    /// Two tokens share an id.
    DuplicateId(String),
    #[error("tokens {0} and {1} have the same sha256")]
    /// Two tokens share a hash.
    DuplicateHash(String, String),
    #[error("token {id}: {reason}")]
    /// A field of a token is invalid.
    BadField {
        /// The token's id.
        id: String,
        /// What is wrong with which field.
        reason: String,
    },
    /// A record whose id itself is unusable: named by its place in the list, since the id may
    /// be anything pasted into the file.
    #[error("token number {number} in the list: {reason}")]
    BadId {
        /// 1-based place in the list.
        number: usize,
        /// What is wrong with the id.
        reason: &'static str,
    },
    #[error("tenant {tenant:?} holds {count} tokens for idp {idp}, more than max_per_idp {max}")]
    /// More tokens for a (tenant, idp) than `tokens.max_per_idp`.
    OverLimit {
        /// The tenant.
        tenant: String,
        /// The IdP.
        idp: &'static str,
        /// Tokens found.
        count: usize,
        /// The configured maximum.
        max: usize,
    },
}

/// Where serde_yaml stopped, and a fixed description of why. serde's own message quotes the
/// offending value, which may be a plaintext token pasted into the file by mistake; this keeps
/// the line and column and a description that never holds text from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlProblem {
    /// 1-based line and column, when serde_yaml knows them.
    pub at: Option<(usize, usize)>,
    /// What is wrong, in words that never quote the file.
    pub what: &'static str,
}

/// The field names of the file, the only text of a serde message that may be repeated.
const FIELDS: [&str; 13] = [
    "tokens",
    "id",
    "tenant",
    "idp",
    "status",
    "sha256",
    "domains",
    "networks",
    "created_at",
    "refreshed_at",
    "expires_at",
    "last_used_at",
    "access",
];

impl YamlProblem {
    fn of(e: &serde_yaml::Error) -> YamlProblem {
        let msg = e.to_string();
        let what = if msg.contains("unknown field") {
            "unknown field (the fields are id, tenant, idp, status, sha256, domains, networks, created_at, refreshed_at, expires_at, last_used_at, access)"
        } else if msg.contains("unknown variant") {
            "unknown variant (idp is one of entra, okta, google, onelogin, jumpcloud, other; status is active or inactive)"
        } else if msg.contains("missing field") {
            FIELDS
                .iter()
                .zip(MISSING)
                .find(|(f, _)| msg.contains(&format!("missing field `{f}`")))
                .map_or("a required field is missing", |(_, m)| m)
        } else if msg.contains("duplicate field") {
            "a field appears twice in one token"
        } else if msg.contains("invalid type") {
            "a value of the wrong type (a list or a mapping where a string belongs, or the reverse)"
        } else if msg.contains("input contains invalid characters")
            || msg.contains("premature end of input")
            || msg.contains("input is out of range")
            || msg.contains("trailing input")
        {
            "a date that is not RFC 3339 (like 2026-11-22T10:00:00Z)"
        } else {
            "YAML syntax error"
        };
        YamlProblem {
            at: e.location().map(|l| (l.line(), l.column())),
            what,
        }
    }
}

/// "missing field X" for each of [`FIELDS`], as static text.
const MISSING: [&str; 13] = [
    "missing field tokens",
    "missing field id",
    "missing field tenant",
    "missing field idp",
    "missing field status",
    "missing field sha256",
    "missing field domains",
    "missing field networks",
    "missing field created_at",
    "missing field refreshed_at",
    "missing field expires_at",
    "missing field last_used_at",
    "missing field access",
];

impl std::fmt::Display for YamlProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at {
            Some((line, column)) => write!(f, "line {line} column {column}: {}", self.what),
            None => f.write_str(self.what),
        }
    }
}

impl From<serde_yaml::Error> for TokenFileError {
    fn from(e: serde_yaml::Error) -> TokenFileError {
        TokenFileError::Yaml(YamlProblem::of(&e))
    }
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
        for a in &mut r.access {
            a.sha256.make_ascii_lowercase();
        }
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
    for (number, r) in records.iter().enumerate() {
        if let Err(reason) = check_id(&r.id) {
            return Err(TokenFileError::BadId {
                number: number + 1,
                reason,
            });
        }
        let bad = |reason: &str| TokenFileError::BadField {
            id: r.id.clone(),
            reason: reason.to_string(),
        };
        if let Err(e) = tenant::check(&r.tenant) {
            return Err(bad(&e.to_string()));
        }
        if r.domains
            .iter()
            .any(|d| d.is_empty() || d.contains('@') || d.chars().any(char::is_whitespace))
        {
            return Err(bad("domains must be bare domain names like acme.com"));
        }
        if r.networks.iter().any(|n| Cidr::parse(n).is_err()) {
            // The text is not quoted: a value in the wrong field may be a pasted secret.
            return Err(bad(
                "networks must be CIDR blocks like 10.0.0.0/8 or 2001:db8::/32, host bits zero",
            ));
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
        for a in &r.access {
            let Some(digest) = secret::from_hex(&a.sha256) else {
                return Err(TokenFileError::BadHash { id: r.id.clone() });
            };
            if let Some(other) = hashes.insert(digest, r.id.as_str()) {
                return Err(TokenFileError::DuplicateHash(
                    other.to_string(),
                    r.id.clone(),
                ));
            }
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

/// An id is public (lists, logs, audit): letters, digits, '_' or '-', and never something that
/// starts like a plaintext token pasted into the wrong field.
fn check_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err("id must be non-empty letters, digits, '_' or '-'");
    }
    if id
        .get(..secret::PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(secret::PREFIX))
    {
        return Err("id looks like a scim-gate token; a secret is never an id");
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
///
/// The temp file gets a random name and is created with `O_EXCL | O_NOFOLLOW`, mode 0600
/// (open(2)): whoever can write the token folder cannot plant a symlink at a name the gate is
/// about to open and have it overwrite a file the gate's uid can write elsewhere.
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
    let (tmp, mut f) = create_temp(&dir, &name).map_err(io)?;
    let written = f
        .write_all(bytes)
        .and_then(|()| f.sync_all())
        .and_then(|()| {
            drop(f);
            std::fs::rename(&tmp, path)
        });
    if let Err(e) = written {
        // Best effort: a leftover temp file holds hashes only, but should not pile up.
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(())
}

/// How many random names to try before giving up; a collision of 64 random bits means
/// something is planting files, and a few retries are plenty.
const TEMP_ATTEMPTS: usize = 8;

/// Creates `.{name}.tmp-{64 random bits}` in `dir` with [`open_exclusive`], trying another
/// random name if one exists already.
fn create_temp(dir: &Path, name: &str) -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    let mut last = std::io::Error::from(std::io::ErrorKind::AlreadyExists);
    for _ in 0..TEMP_ATTEMPTS {
        let tmp = dir.join(format!(".{name}.tmp-{:016x}", rand::random::<u64>()));
        match open_exclusive(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Opens a new file for writing: `O_CREAT | O_EXCL` refuses any existing entry (a symlink
/// included, dangling or not), `O_NOFOLLOW` makes that explicit should the flags ever change,
/// and the mode is 0600 (open(2)).
fn open_exclusive(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
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
        // The block layout of docs/token-file.md#format goes through serde_yaml.
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

    #[test]
    fn a_planted_symlink_is_never_followed_and_the_file_is_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "root only\n").expect("victim");
        let path = dir.path().join("tokens.yaml");
        // Every name the gate ever used predictably: the old `.tokens.yaml.tmp-<pid>`, for
        // this process and the pids around it.
        let pid = std::process::id();
        for p in pid.saturating_sub(50)..pid + 50 {
            let link = dir.path().join(format!(".tokens.yaml.tmp-{p}"));
            std::os::unix::fs::symlink(&victim, &link).expect("plant");
        }
        write_atomic(&path, &render(&[])).expect("the write still succeeds");
        assert_eq!(
            std::fs::read_to_string(&victim).expect("read"),
            "root only\n"
        );
        assert_eq!(
            parse(&std::fs::read(&path).expect("read"), 2).expect("parse"),
            vec![]
        );
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        // The planted links are still links to the untouched victim, and nothing else is left.
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 102);
    }

    #[test]
    fn the_temp_file_is_created_exclusively_without_following_links() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").expect("victim");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).expect("plant");
        let e = open_exclusive(&link).expect_err("a symlink is refused");
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("dangling"))
            .expect("plant");
        assert!(open_exclusive(&dir.path().join("dangling")).is_err());
        assert!(!dir.path().join("nowhere").exists());
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "keep");
        let (tmp, _f) = create_temp(dir.path(), "tokens.yaml").expect("temp");
        let mode = std::fs::metadata(&tmp).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        let (other, _g) = create_temp(dir.path(), "tokens.yaml").expect("temp");
        assert_ne!(tmp, other, "names are random");
    }

    #[test]
    fn tenant_names_outside_the_documented_alphabet_are_refused_at_load() {
        let good = parse(yaml(&entry("a", "okta", HASH)).as_bytes(), 2).expect("valid");
        let long = "x".repeat(65);
        for bad in ["acme,evil", "acmé", "a b", "", "acme\tevil", long.as_str()] {
            // The block layout, through serde_yaml.
            let text = yaml(
                &entry("a", "okta", HASH).replace("tenant: acme", &format!("tenant: {bad:?}")),
            );
            let e = parse(text.as_bytes(), 2).expect_err(&text).to_string();
            assert!(e.starts_with("token a: tenant"), "{e}");
            // The layout the gate writes, through the fast path.
            let canonical = render(&[TokenRecord {
                tenant: bad.to_string(),
                ..good[0].clone()
            }]);
            let e = parse(&canonical, 2)
                .expect_err("canonical layout")
                .to_string();
            assert!(e.starts_with("token a: tenant"), "{e}");
        }
    }
}
