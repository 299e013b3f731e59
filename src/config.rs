//! The one internal configuration type (SPEC §2), read and validated once at start.
//!
//! Following River's habit, the YAML file is deserialised straight into [`Config`] with
//! `deny_unknown_fields` everywhere (a typo is an error, not a silently ignored key), and then
//! [`Config::finish`] resolves relative paths against the config file's folder and checks every
//! value. Nothing downstream re-validates: if a `Config` exists, it is good.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::scim::{Dialect, ExtensionAllow, PolicySpec};

/// Why a configuration could not be used. Every variant names the file; validation errors also
/// name the key, so an operator can fix the file without reading code.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {source}")]
    Parse {
        file: String,
        source: serde_yaml::Error,
    },
    #[error("{file}: {key}: {reason}")]
    Invalid {
        file: String,
        key: &'static str,
        reason: String,
    },
}

/// The gate's whole configuration. Field names are the YAML keys of SPEC §2.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default = "default_base_path")]
    pub base_path: String,
    pub upstream: UpstreamConfig,
    #[serde(default)]
    pub tokens: TokensConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen", deserialize_with = "one_or_many")]
    pub listen: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    #[serde(default = "default_threads")]
    pub threads: usize,
    #[serde(default = "default_grace", with = "duration_str")]
    pub shutdown_grace: Duration,
    /// How long a client may take to send a request body, and the longest pause between two of
    /// its reads (beyond SPEC §2; 408 when exceeded).
    #[serde(default = "default_body_timeout", with = "duration_str")]
    pub body_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_env: Option<String>,
    #[serde(default = "default_connect_timeout", with = "duration_str")]
    pub connect_timeout: Duration,
    #[serde(default = "default_read_timeout", with = "duration_str")]
    pub read_timeout: Duration,
    /// The parsed `url`, filled by [`Config::finish`].
    #[serde(skip)]
    pub target: Option<UpstreamTarget>,
    /// The header value read from `authorization_env` at start. Never serialised, never logged.
    #[serde(skip)]
    pub authorization: Option<Secret>,
}

/// A value that must never reach a log line: `Debug` prints a placeholder.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The upstream's SCIM root, split into what Pingora's `HttpPeer` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTarget {
    pub tls: bool,
    /// Host name or IP literal, without brackets; used for SNI and certificate checks.
    pub host: String,
    pub port: u16,
    /// The `Host` header value the upstream expects (`host` or `host:port`).
    pub authority: String,
    /// Path prefix without a trailing slash, e.g. `/v2` (empty for the root).
    pub path: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokensConfig {
    #[serde(default = "default_tokens_file")]
    pub file: PathBuf,
    #[serde(default = "default_max_per_idp")]
    pub max_per_idp: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default = "default_admin_socket")]
    pub socket: PathBuf,
    /// Peer uids allowed besides the gate's own (SPEC §6).
    #[serde(default)]
    pub allowed_uids: Vec<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    #[serde(default = "default_audit_file")]
    pub file: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    #[serde(default = "default_metrics_listen")]
    pub listen: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    #[serde(default)]
    pub dialect: DialectName,
    #[serde(default = "default_users")]
    pub users: Updatable,
    #[serde(default = "default_groups")]
    pub groups: Updatable,
    #[serde(default = "default_extensions")]
    pub extensions: BTreeMap<String, ExtensionAttrs>,
    /// Terms allowed in one filter, search or PATCH path (400 `invalidFilter` above).
    #[serde(default = "default_max_filter_terms")]
    pub max_filter_terms: usize,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DialectName {
    #[default]
    Normalize,
    Tolerate,
    Strict,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Updatable {
    pub updatable: Vec<String>,
}

/// `"*"` (every attribute of the extension) or a list of attribute names.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ExtensionAttrs {
    All(String),
    Attrs(Vec<String>),
}

pub const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const IVANTI_URN: &str = "urn:ietf:params:scim:schemas:extension:ivanti:2.0:User";

fn default_base_path() -> String {
    "/scim/v2".into()
}
fn default_listen() -> Vec<String> {
    vec!["127.0.0.1:8080".into()]
}
fn default_threads() -> usize {
    2
}
fn default_grace() -> Duration {
    Duration::from_secs(10)
}
fn default_body_timeout() -> Duration {
    Duration::from_secs(15)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_read_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_tokens_file() -> PathBuf {
    "tokens.yaml".into()
}
fn default_max_per_idp() -> usize {
    2
}
fn default_admin_socket() -> PathBuf {
    "admin.sock".into()
}
fn default_audit_file() -> PathBuf {
    "audit.jsonl".into()
}
fn default_metrics_listen() -> String {
    "127.0.0.1:9090".into()
}
fn default_max_body() -> usize {
    1024 * 1024
}
fn default_max_filter_terms() -> usize {
    crate::scim::DEFAULT_MAX_TERMS
}
fn default_users() -> Updatable {
    Updatable {
        updatable: [
            "displayName",
            "emails",
            "name.givenName",
            "name.familyName",
            "active",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
            IVANTI_URN,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    }
}
fn default_groups() -> Updatable {
    Updatable {
        updatable: vec!["displayName".into(), "members".into()],
    }
}
fn default_extensions() -> BTreeMap<String, ExtensionAttrs> {
    let mut m = BTreeMap::new();
    m.insert(
        ENTERPRISE_URN.to_string(),
        ExtensionAttrs::Attrs(vec!["department".into()]),
    );
    m.insert(IVANTI_URN.to_string(), ExtensionAttrs::All("*".into()));
    m
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            tls: None,
            threads: default_threads(),
            shutdown_grace: default_grace(),
            body_timeout: default_body_timeout(),
        }
    }
}
impl Default for TokensConfig {
    fn default() -> Self {
        TokensConfig {
            file: default_tokens_file(),
            max_per_idp: default_max_per_idp(),
        }
    }
}
impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            socket: default_admin_socket(),
            allowed_uids: Vec::new(),
        }
    }
}
impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            file: default_audit_file(),
        }
    }
}
impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: default_metrics_listen(),
        }
    }
}
impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            max_body_bytes: default_max_body(),
            dialect: DialectName::Normalize,
            users: default_users(),
            groups: default_groups(),
            extensions: default_extensions(),
            max_filter_terms: default_max_filter_terms(),
        }
    }
}

impl Config {
    /// Reads, parses and validates the file; relative paths resolve against its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        // Absolute, so the effective config (and a daemon that changes directory) is unambiguous.
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let base = absolute
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Config::from_yaml(&text, &file, &base)
    }

    /// Parses YAML text; `file` names it in errors and `base` anchors relative paths.
    pub fn from_yaml(text: &str, file: &str, base: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = serde_yaml::from_str(text).map_err(|source| ConfigError::Parse {
            file: file.to_string(),
            source,
        })?;
        cfg.finish(file, base)?;
        Ok(cfg)
    }

    /// Resolves paths and checks every value once, so the rest of the program can trust it.
    pub fn finish(&mut self, file: &str, base: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, reason: String| ConfigError::Invalid {
            file: file.to_string(),
            key,
            reason,
        };
        if self.server.listen.is_empty() {
            return Err(invalid(
                "server.listen",
                "needs at least one address".into(),
            ));
        }
        for addr in &self.server.listen {
            addr.parse::<std::net::SocketAddr>()
                .map_err(|e| invalid("server.listen", format!("{addr:?}: {e}")))?;
        }
        if self.server.threads == 0 {
            return Err(invalid("server.threads", "must be at least 1".into()));
        }
        if let Some(tls) = &mut self.server.tls {
            tls.cert = resolve(base, &tls.cert);
            tls.key = resolve(base, &tls.key);
            for (key, p) in [("server.tls.cert", &tls.cert), ("server.tls.key", &tls.key)] {
                // Pingora panics inside the service on an unreadable cert; fail here instead.
                std::fs::metadata(p).map_err(|e| invalid(key, format!("{}: {e}", p.display())))?;
            }
        }
        self.base_path =
            normalize_base_path(&self.base_path).map_err(|r| invalid("base_path", r))?;
        let target =
            parse_upstream_url(&self.upstream.url).map_err(|r| invalid("upstream.url", r))?;
        self.upstream.target = Some(target);
        if let Some(var) = &self.upstream.authorization_env {
            match std::env::var(var) {
                Ok(v) if !v.is_empty() && http::HeaderValue::from_str(&v).is_ok() => {
                    self.upstream.authorization = Some(Secret(v));
                }
                Ok(_) => {
                    return Err(invalid(
                        "upstream.authorization_env",
                        format!("environment variable {var} is empty or not a valid header value"),
                    ))
                }
                Err(_) => {
                    return Err(invalid(
                        "upstream.authorization_env",
                        format!("environment variable {var} is not set"),
                    ))
                }
            }
        }
        if self.server.body_timeout.is_zero() {
            return Err(invalid("server.body_timeout", "must be above zero".into()));
        }
        if self.upstream.connect_timeout.is_zero() {
            return Err(invalid(
                "upstream.connect_timeout",
                "must be above zero".into(),
            ));
        }
        if self.upstream.read_timeout.is_zero() {
            return Err(invalid(
                "upstream.read_timeout",
                "must be above zero".into(),
            ));
        }
        self.tokens.file = resolve(base, &self.tokens.file);
        if self.tokens.max_per_idp == 0 {
            return Err(invalid("tokens.max_per_idp", "must be at least 1".into()));
        }
        self.admin.socket = resolve(base, &self.admin.socket);
        self.audit.file = resolve(base, &self.audit.file);
        self.metrics
            .listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| invalid("metrics.listen", format!("{:?}: {e}", self.metrics.listen)))?;
        if self.policy.max_body_bytes == 0 {
            return Err(invalid(
                "policy.max_body_bytes",
                "must be above zero".into(),
            ));
        }
        if self.policy.max_filter_terms == 0 {
            return Err(invalid(
                "policy.max_filter_terms",
                "must be at least 1".into(),
            ));
        }
        for (urn, attrs) in &self.policy.extensions {
            if let ExtensionAttrs::All(s) = attrs {
                if s != "*" {
                    return Err(invalid(
                        "policy.extensions",
                        format!("{urn}: expected \"*\" or a list of attribute names, got {s:?}"),
                    ));
                }
            }
        }
        crate::scim::Policy::compile(&self.policy_spec())
            .map_err(|e| invalid("policy", e.to_string()))?;
        Ok(())
    }

    /// The upstream target; `finish` guarantees it is set.
    pub fn upstream_target(&self) -> UpstreamTarget {
        self.upstream.target.clone().unwrap_or_else(|| {
            parse_upstream_url(&self.upstream.url).unwrap_or(UpstreamTarget {
                tls: false,
                host: "127.0.0.1".into(),
                port: 80,
                authority: "127.0.0.1".into(),
                path: String::new(),
            })
        })
    }

    /// The policy section in the form the `scim` module compiles.
    pub fn policy_spec(&self) -> PolicySpec {
        PolicySpec {
            dialect: match self.policy.dialect {
                DialectName::Normalize => Dialect::Normalize,
                DialectName::Tolerate => Dialect::Tolerate,
                DialectName::Strict => Dialect::Strict,
            },
            users_updatable: self.policy.users.updatable.clone(),
            groups_updatable: self.policy.groups.updatable.clone(),
            extensions: self
                .policy
                .extensions
                .iter()
                .map(|(urn, a)| {
                    let allow = match a {
                        ExtensionAttrs::All(_) => ExtensionAllow::All,
                        ExtensionAttrs::Attrs(v) => ExtensionAllow::Attrs(v.clone()),
                    };
                    (urn.clone(), allow)
                })
                .collect(),
            max_filter_terms: self.policy.max_filter_terms,
        }
    }

    /// The effective configuration as YAML, for `check-config`. Holds no secret: the upstream
    /// credential is only named by its environment variable.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_else(|e| format!("# cannot print config: {e}\n"))
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// `/scim/v2/` → `/scim/v2`; the root is the empty string so joins stay simple.
fn normalize_base_path(p: &str) -> Result<String, String> {
    if !p.starts_with('/') {
        return Err(format!("{p:?} must start with '/'"));
    }
    if p.contains("//")
        || p.contains('%')
        || p.contains('?')
        || p.split('/').any(|s| s == "." || s == "..")
    {
        return Err(format!(
            "{p:?} must be a plain path (no //, %, ?, dot segments)"
        ));
    }
    Ok(p.trim_end_matches('/').to_string())
}

/// Splits `http(s)://host[:port][/path]` without pulling in a URL crate for one field.
pub fn parse_upstream_url(url: &str) -> Result<UpstreamTarget, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("{url:?}: must start with http:// or https://"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("{url:?}: needs a host (and no user info)"));
    }
    if path.contains('?') || path.contains('#') {
        return Err(format!("{url:?}: no query or fragment allowed"));
    }
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(r) = authority.strip_prefix('[') {
        let end = r
            .find(']')
            .ok_or_else(|| format!("{url:?}: bad IPv6 literal"))?;
        let host = &r[..end];
        let port = match &r[end + 1..] {
            "" => default_port,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("{url:?}: bad port"))?,
        };
        (host.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse().map_err(|_| format!("{url:?}: bad port {p:?}"))?,
            ),
            None => (authority.to_string(), default_port),
        }
    };
    if host.is_empty() {
        return Err(format!("{url:?}: empty host"));
    }
    Ok(UpstreamTarget {
        tls,
        host,
        port,
        authority: authority.to_string(),
        path: path.trim_end_matches('/').to_string(),
    })
}

/// Parses `500ms`, `2s`, `10m`, `1h`, `365d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?}: missing unit (ms, s, m, h, d)"))?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number followed by ms, s, m, h or d"))?;
    let secs = |mult: u64| {
        n.checked_mul(mult)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{s:?}: too large"))
    };
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => Err(format!(
            "{s:?}: unknown unit {unit:?} (use ms, s, m, h or d)"
        )),
    }
}

/// The inverse of [`parse_duration`], choosing the largest exact unit.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if s != 0 && s.is_multiple_of(size) {
            return format!("{}{unit}", s / size);
        }
    }
    format!("{s}s")
}

mod duration_str {
    use super::*;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Config, ConfigError> {
        Config::from_yaml(yaml, "test.yaml", Path::new("/etc/gate"))
    }

    #[test]
    fn defaults_fill_everything_but_the_upstream() {
        let c = parse("upstream: { url: http://127.0.0.1:18080/v2 }").expect("valid");
        assert_eq!(c.base_path, "/scim/v2");
        assert_eq!(c.server.listen, vec!["127.0.0.1:8080"]);
        assert_eq!(c.tokens.file, PathBuf::from("/etc/gate/tokens.yaml"));
        assert_eq!(c.tokens.max_per_idp, 2);
        assert_eq!(c.policy.max_body_bytes, 1_048_576);
        assert_eq!(c.upstream.connect_timeout, Duration::from_secs(2));
        let t = c.upstream_target();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str(), t.tls),
            ("127.0.0.1", 18080, "/v2", false)
        );
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_key() {
        let e = parse("upstream: { url: http://h/v2 }\nserver: { lisen: 1 }").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("test.yaml") && msg.contains("lisen"), "{msg}");
    }

    #[test]
    fn missing_upstream_is_an_error() {
        let e = parse("base_path: /scim/v2").unwrap_err().to_string();
        assert!(e.contains("upstream"), "{e}");
    }

    #[test]
    fn bad_values_name_file_key_and_reason() {
        let e = parse("upstream: { url: ftp://x }").unwrap_err().to_string();
        assert!(e.starts_with("test.yaml: upstream.url:"), "{e}");
        let e = parse("upstream: { url: http://x, connect_timeout: 2 }")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("connect_timeout") || e.contains("missing unit"),
            "{e}"
        );
        let e = parse("upstream: { url: http://x }\nserver: { listen: nope }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.listen"), "{e}");
        let e = parse("upstream: { url: http://x, authorization_env: SCIM_GATE_SURELY_UNSET_VAR }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("SCIM_GATE_SURELY_UNSET_VAR is not set"), "{e}");
    }

    #[test]
    fn listen_takes_one_or_many() {
        let c =
            parse("upstream: { url: http://x }\nserver: { listen: [127.0.0.1:1, 127.0.0.1:2] }")
                .expect("valid");
        assert_eq!(c.server.listen.len(), 2);
    }

    #[test]
    fn durations_round_trip() {
        for (s, d) in [
            ("500ms", 500u64),
            ("2s", 2000),
            ("10m", 600_000),
            ("365d", 31_536_000_000),
        ] {
            assert_eq!(parse_duration(s), Ok(Duration::from_millis(d)));
            assert_eq!(format_duration(Duration::from_millis(d)), s);
        }
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn upstream_urls() {
        let t = parse_upstream_url("https://scim.example.com/v2/").expect("valid");
        assert_eq!(
            (t.tls, t.port, t.path.as_str(), t.authority.as_str()),
            (true, 443, "/v2", "scim.example.com")
        );
        let t = parse_upstream_url("http://[::1]:9000").expect("valid");
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 9000, "")
        );
        assert!(parse_upstream_url("http://user@h/").is_err());
        assert!(parse_upstream_url("http://h:99999/").is_err());
    }

    #[test]
    fn effective_config_prints_without_secrets() {
        std::env::set_var("SCIM_GATE_TEST_UPSTREAM_AUTH", "Bearer hunter2");
        let c =
            parse("upstream: { url: http://x, authorization_env: SCIM_GATE_TEST_UPSTREAM_AUTH }")
                .expect("valid");
        let y = c.to_yaml();
        assert!(
            y.contains("SCIM_GATE_TEST_UPSTREAM_AUTH") && !y.contains("hunter2"),
            "{y}"
        );
        assert!(!format!("{c:?}").contains("hunter2"));
        let again =
            Config::from_yaml(&y, "again.yaml", Path::new("/")).expect("printed config parses");
        assert_eq!(again.tokens.file, c.tokens.file);
    }
}
