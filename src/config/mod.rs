//! The gate's configuration in two layers, after River's split and ripgrep's raw and resolved
//! arguments:
//!
//! * [`raw`]: what serde reads from YAML — every key, `Option` where a key may be left out,
//!   unknown keys refused;
//! * [`Config`] (this module): what the program runs with — every value present and checked,
//!   paths absolute, addresses parsed, the upstream URL split, the upstream credential read
//!   from the environment, the SCIM policy compiled. Nothing fills a field in later and
//!   nothing downstream re-validates: if a `Config` exists, it is good.
//!
//! [`Config::resolve`] is the only way from one to the other, and the only place a default
//! ([`defaults`]) is applied. [`Config::to_raw`] goes back, for `check-config`'s effective
//! config.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::scim::{Dialect, ExtensionAllow, Policy, PolicySpec};

mod cluster;
pub mod defaults;
mod guards;
pub mod raw;
mod values;

pub use cluster::{EtcdConfig, EtcdTls, TokenBackend};
pub use guards::{DestructiveConfig, LimitsConfig, Rate};

use raw::{
    DialectName, ExtensionAttrs, RawAdmin, RawAudit, RawConfig, RawDestructive, RawGuards,
    RawLimits, RawMetrics, RawOAuth, RawPolicy, RawRate, RawServer, RawTls, RawTokens, RawUpstream,
    Updatable,
};
use values::normalize_base_path;
pub use values::{
    format_duration, parse_duration, parse_upstream_url, UpstreamTarget, TENANT_PLACEHOLDER,
};

/// Why a configuration could not be used. Every variant names the file; validation errors also
/// name the key, so an operator can fix the file without reading code.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The config file as given.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not YAML, an unknown key, or a value of the wrong type.
    #[error("{file}: {source}")]
    Parse {
        /// The config file as given.
        file: String,
        /// serde's message, with the key and line.
        source: serde_yaml::Error,
    },
    /// A value that parses but cannot be used.
    #[error("{file}: {key}: {reason}")]
    Invalid {
        /// The config file as given.
        file: String,
        /// The dotted YAML key, e.g. `server.listen`.
        key: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
}

/// The gate's whole configuration, resolved. Field names are the YAML keys.
#[derive(Debug, Clone)]
pub struct Config {
    /// `server:` — the public listener.
    pub server: ServerConfig,
    /// `base_path`, without a trailing slash (empty for the root).
    pub base_path: String,
    /// `upstream:` — the directory behind the gate.
    pub upstream: UpstreamConfig,
    /// `tokens:` — the token file.
    pub tokens: TokensConfig,
    /// `etcd:` — the token state's cluster store, when `tokens.backend` is etcd.
    pub etcd: Option<EtcdConfig>,
    /// `admin:` — the admin socket.
    pub admin: AdminConfig,
    /// `audit:` — the audit trail.
    pub audit: AuditConfig,
    /// `metrics:` — the Prometheus listener.
    pub metrics: MetricsConfig,
    /// `policy:` — the SCIM checks, compiled.
    pub policy: PolicyConfig,
    /// `limits:` — rate limits and the directory's saturation bound.
    pub limits: LimitsConfig,
    /// `guards.destructive:` — the destructive-change breaker.
    pub destructive: DestructiveConfig,
    /// `oauth:` — the client-credentials token endpoint; `None` when disabled.
    pub oauth: Option<OAuthConfig>,
}

/// `oauth:` when enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OAuthConfig {
    /// How long an access token works; above zero, at most a day.
    pub access_token_ttl: Duration,
}

/// `server:`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// At least one address.
    pub listen: Vec<SocketAddr>,
    /// HTTPS with these PEM files (both exist at start).
    pub tls: Option<TlsConfig>,
    /// Pingora worker threads, at least 1.
    pub threads: usize,
    /// How long SIGTERM waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// How long a client may take to send a request body, and the longest pause between two of
    /// its reads (408 when exceeded). Above zero.
    pub body_timeout: Duration,
    /// How long a request head may take to arrive whole, from its first byte. Above zero.
    pub header_timeout: Duration,
    /// How long a connection may wait for its next request. Above zero.
    pub idle_timeout: Duration,
    /// Open client connections at most (before the open-file limit may lower it at start).
    /// At least 1.
    pub max_connections: usize,
    /// Client networks that may call the SCIM side; empty = any.
    pub allowed_networks: Vec<crate::net::Cidr>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<crate::net::Cidr>,
}

/// `server.tls:`, absolute paths.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// `upstream:`.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The URL as written (printed by `check-config`).
    pub url: String,
    /// The same URL, split.
    pub target: UpstreamTarget,
    /// The `Authorization` value the gate sends upstream, read at start.
    pub authorization: Option<UpstreamAuth>,
    /// Above zero; 502 beyond it.
    pub connect_timeout: Duration,
    /// Above zero; 504 beyond it.
    pub read_timeout: Duration,
}

/// The upstream credential and the environment variable it came from.
#[derive(Debug, Clone)]
pub struct UpstreamAuth {
    /// The variable's name (printed; the value never is).
    pub env: String,
    /// A valid, non-empty header value.
    pub value: Secret,
}

/// A value that must never reach a log line: `Debug` prints a placeholder.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that sends it (the upstream request head).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// `tokens:`.
#[derive(Debug, Clone)]
pub struct TokensConfig {
    /// Where the token state lives.
    pub backend: TokenBackend,
    /// Absolute path of the token file.
    pub file: PathBuf,
    /// At least 1.
    pub max_per_idp: usize,
    /// How often `last_used_at` is written back to the file, at most. Above zero.
    pub last_used_interval: Duration,
}

/// `admin:`.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Absolute path of the admin socket.
    pub socket: PathBuf,
    /// Peer uids allowed besides the gate's own.
    pub allowed_uids: Vec<u32>,
    /// Refusals kept for `GET /decisions`; at least 1.
    pub decisions_kept: usize,
}

/// `audit:`.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Absolute path of the audit file.
    pub file: PathBuf,
}

/// `metrics:`.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// Where `GET /metrics` is served.
    pub listen: SocketAddr,
    /// Tenants with their own series in `scim_gate_tenant_requests_total`.
    pub max_tenants: usize,
}

/// `policy:`.
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    /// Above zero; 413 above it.
    pub max_body_bytes: usize,
    /// The policy as configured (printed by `check-config`).
    pub spec: PolicySpec,
    /// The same policy, compiled once here and shared by every request.
    pub compiled: Policy,
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
        let raw: RawConfig = serde_yaml::from_str(text).map_err(|source| ConfigError::Parse {
            file: file.to_string(),
            source,
        })?;
        Config::resolve(raw, file, base)
    }

    /// Applies the defaults, resolves paths against `base`, and checks every value once, so
    /// the rest of the program can trust it. `file` names the source in errors.
    pub fn resolve(raw: RawConfig, file: &str, base: &Path) -> Result<Config, ConfigError> {
        let r = Resolver { file, base };
        let server = r.server(raw.server.unwrap_or_default())?;
        let base_path =
            normalize_base_path(raw.base_path.as_deref().unwrap_or(defaults::BASE_PATH))
                .map_err(|e| r.invalid("base_path", e))?;
        let upstream = r.upstream(raw.upstream)?;
        let tokens = raw.tokens.unwrap_or_default();
        let max_per_idp = tokens.max_per_idp.unwrap_or(defaults::MAX_PER_IDP);
        if max_per_idp == 0 {
            return Err(r.invalid("tokens.max_per_idp", "must be at least 1".into()));
        }
        let last_used_interval = r.above_zero(
            "tokens.last_used_interval",
            tokens
                .last_used_interval
                .unwrap_or(defaults::LAST_USED_INTERVAL),
        )?;
        let (backend, etcd) = r.cluster(tokens.backend, raw.etcd)?;
        let tokens = TokensConfig {
            backend,
            file: r.path(tokens.file, defaults::TOKENS_FILE),
            max_per_idp,
            last_used_interval,
        };
        let admin = raw.admin.unwrap_or_default();
        let decisions_kept = admin.decisions_kept.unwrap_or(defaults::DECISIONS_KEPT);
        if decisions_kept == 0 {
            return Err(r.invalid("admin.decisions_kept", "must be at least 1".into()));
        }
        let admin = AdminConfig {
            socket: r.path(admin.socket, defaults::ADMIN_SOCKET),
            allowed_uids: admin.allowed_uids.unwrap_or_default(),
            decisions_kept,
        };
        let audit = AuditConfig {
            file: r.path(raw.audit.unwrap_or_default().file, defaults::AUDIT_FILE),
        };
        let raw_metrics = raw.metrics.unwrap_or_default();
        let listen = raw_metrics.listen;
        let listen = listen.as_deref().unwrap_or(defaults::METRICS_LISTEN);
        let metrics = MetricsConfig {
            listen: listen
                .parse()
                .map_err(|e| r.invalid("metrics.listen", format!("{listen:?}: {e}")))?,
            max_tenants: raw_metrics.max_tenants.unwrap_or(defaults::MAX_TENANTS),
        };
        let policy = r.policy(raw.policy.unwrap_or_default())?;
        let limits = r.limits(raw.limits.unwrap_or_default())?;
        let destructive = r.destructive(
            raw.guards
                .unwrap_or_default()
                .destructive
                .unwrap_or_default(),
        )?;
        let raw_oauth = raw.oauth.unwrap_or_default();
        let oauth = match raw_oauth.enabled.unwrap_or(true) {
            false => None,
            true => {
                let ttl = r.above_zero(
                    "oauth.access_token_ttl",
                    raw_oauth
                        .access_token_ttl
                        .unwrap_or(defaults::ACCESS_TOKEN_TTL),
                )?;
                if ttl > Duration::from_secs(86_400) {
                    return Err(r.invalid(
                        "oauth.access_token_ttl",
                        "must be at most 1d (a short-lived credential is the point)".into(),
                    ));
                }
                Some(OAuthConfig {
                    access_token_ttl: ttl,
                })
            }
        };
        Ok(Config {
            server,
            base_path,
            upstream,
            tokens,
            etcd,
            admin,
            audit,
            metrics,
            policy,
            limits,
            destructive,
            oauth,
        })
    }

    /// The configuration in its serde form with every key written out: the effective config.
    pub fn to_raw(&self) -> RawConfig {
        let s = &self.server;
        let p = &self.policy.spec;
        RawConfig {
            server: Some(RawServer {
                listen: Some(s.listen.iter().map(SocketAddr::to_string).collect()),
                tls: s.tls.as_ref().map(|t| RawTls {
                    cert: t.cert.clone(),
                    key: t.key.clone(),
                }),
                threads: Some(s.threads),
                shutdown_grace: Some(s.shutdown_grace),
                body_timeout: Some(s.body_timeout),
                header_timeout: Some(s.header_timeout),
                idle_timeout: Some(s.idle_timeout),
                max_connections: Some(s.max_connections),
                allowed_networks: Some(s.allowed_networks.iter().map(|c| c.to_string()).collect()),
                trusted_proxies: Some(s.trusted_proxies.iter().map(|c| c.to_string()).collect()),
            }),
            base_path: Some(self.base_path.clone()),
            upstream: RawUpstream {
                url: self.upstream.url.clone(),
                authorization_env: self.upstream.authorization.as_ref().map(|a| a.env.clone()),
                connect_timeout: Some(self.upstream.connect_timeout),
                read_timeout: Some(self.upstream.read_timeout),
            },
            tokens: Some(RawTokens {
                file: Some(self.tokens.file.clone()),
                max_per_idp: Some(self.tokens.max_per_idp),
                last_used_interval: Some(self.tokens.last_used_interval),
                backend: Some(match self.tokens.backend {
                    TokenBackend::File => raw::BackendName::File,
                    TokenBackend::Etcd => raw::BackendName::Etcd,
                }),
            }),
            etcd: self.etcd.as_ref().map(EtcdConfig::to_raw),
            admin: Some(RawAdmin {
                socket: Some(self.admin.socket.clone()),
                allowed_uids: Some(self.admin.allowed_uids.clone()),
                decisions_kept: Some(self.admin.decisions_kept),
            }),
            audit: Some(RawAudit {
                file: Some(self.audit.file.clone()),
            }),
            metrics: Some(RawMetrics {
                listen: Some(self.metrics.listen.to_string()),
                max_tenants: Some(self.metrics.max_tenants),
            }),
            policy: Some(RawPolicy {
                max_body_bytes: Some(self.policy.max_body_bytes),
                dialect: Some(match p.dialect {
                    Dialect::Normalize => DialectName::Normalize,
                    Dialect::Tolerate => DialectName::Tolerate,
                    Dialect::Strict => DialectName::Strict,
                }),
                users: Some(Updatable {
                    updatable: p.users_updatable.clone(),
                }),
                groups: Some(Updatable {
                    updatable: p.groups_updatable.clone(),
                }),
                extensions: Some(
                    p.extensions
                        .iter()
                        .map(|(urn, allow)| {
                            let attrs = match allow {
                                ExtensionAllow::All => ExtensionAttrs::All("*".into()),
                                ExtensionAllow::Attrs(v) => ExtensionAttrs::Attrs(v.clone()),
                            };
                            (urn.clone(), attrs)
                        })
                        .collect(),
                ),
                max_filter_terms: Some(p.max_filter_terms),
                bulk_max_operations: Some(p.bulk_max_operations),
            }),
            limits: Some(RawLimits {
                rate: Some(self.limits.rate.per_second),
                burst: Some(self.limits.rate.burst),
                per_idp: Some(
                    self.limits
                        .per_idp
                        .iter()
                        .map(|(idp, r)| {
                            let raw = RawRate {
                                rate: Some(r.per_second),
                                burst: Some(r.burst),
                            };
                            (idp.as_str().to_string(), raw)
                        })
                        .collect(),
                ),
                upstream_max_in_flight: Some(self.limits.upstream_max_in_flight),
            }),
            guards: Some(RawGuards {
                destructive: Some(RawDestructive {
                    max: Some(self.destructive.max),
                    window: Some(self.destructive.window),
                }),
            }),
            oauth: Some(RawOAuth {
                enabled: Some(self.oauth.is_some()),
                access_token_ttl: self.oauth.map(|o| o.access_token_ttl),
            }),
        }
    }

    /// The effective configuration as YAML, for `check-config`. Holds no secret: the upstream
    /// credential is only named by its environment variable.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(&self.to_raw())
            .unwrap_or_else(|e| format!("# cannot print config: {e}\n"))
    }
}

/// One resolution: the file (for errors) and the folder relative paths hang off.
struct Resolver<'a> {
    file: &'a str,
    base: &'a Path,
}

impl Resolver<'_> {
    fn invalid(&self, key: &'static str, reason: String) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_string(),
            key,
            reason,
        }
    }

    /// A path as written (or the default), made absolute against the config file's folder.
    fn path(&self, p: Option<PathBuf>, default: &str) -> PathBuf {
        self.absolute(p.unwrap_or_else(|| PathBuf::from(default)))
    }

    /// Relative paths hang off the config file's folder, not the gate's working directory (a
    /// daemon changes it).
    fn absolute(&self, p: PathBuf) -> PathBuf {
        if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        }
    }

    /// A timeout of zero would make every request fail; refuse it instead.
    fn above_zero(&self, key: &'static str, d: Duration) -> Result<Duration, ConfigError> {
        if d.is_zero() {
            return Err(self.invalid(key, "must be above zero".into()));
        }
        Ok(d)
    }

    fn server(&self, raw: RawServer) -> Result<ServerConfig, ConfigError> {
        let listen = raw
            .listen
            .unwrap_or_else(|| vec![defaults::LISTEN.to_string()]);
        if listen.is_empty() {
            return Err(self.invalid("server.listen", "needs at least one address".into()));
        }
        let listen = listen
            .iter()
            .map(|addr| {
                addr.parse::<SocketAddr>()
                    .map_err(|e| self.invalid("server.listen", format!("{addr:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let threads = raw.threads.unwrap_or(defaults::THREADS);
        if threads == 0 {
            return Err(self.invalid("server.threads", "must be at least 1".into()));
        }
        let tls = raw.tls.map(|t| self.tls(t)).transpose()?;
        let max_connections = raw.max_connections.unwrap_or(defaults::MAX_CONNECTIONS);
        if max_connections == 0 {
            return Err(self.invalid("server.max_connections", "must be at least 1".into()));
        }
        Ok(ServerConfig {
            listen,
            tls,
            threads,
            shutdown_grace: raw.shutdown_grace.unwrap_or(defaults::SHUTDOWN_GRACE),
            body_timeout: self.above_zero(
                "server.body_timeout",
                raw.body_timeout.unwrap_or(defaults::BODY_TIMEOUT),
            )?,
            header_timeout: self.above_zero(
                "server.header_timeout",
                raw.header_timeout.unwrap_or(defaults::HEADER_TIMEOUT),
            )?,
            idle_timeout: self.above_zero(
                "server.idle_timeout",
                raw.idle_timeout.unwrap_or(defaults::IDLE_TIMEOUT),
            )?,
            max_connections,
            allowed_networks: self.networks("server.allowed_networks", raw.allowed_networks)?,
            trusted_proxies: self.networks("server.trusted_proxies", raw.trusted_proxies)?,
        })
    }

    fn tls(&self, raw: RawTls) -> Result<TlsConfig, ConfigError> {
        let tls = TlsConfig {
            cert: self.absolute(raw.cert),
            key: self.absolute(raw.key),
        };
        for (key, p) in [("server.tls.cert", &tls.cert), ("server.tls.key", &tls.key)] {
            // Pingora panics inside the service on an unreadable cert; fail here instead.
            std::fs::metadata(p).map_err(|e| self.invalid(key, format!("{}: {e}", p.display())))?;
        }
        Ok(tls)
    }

    fn upstream(&self, raw: RawUpstream) -> Result<UpstreamConfig, ConfigError> {
        let target = parse_upstream_url(&raw.url).map_err(|r| self.invalid("upstream.url", r))?;
        let authorization = match raw.authorization_env {
            Some(var) => Some(self.upstream_auth(var)?),
            None => None,
        };
        Ok(UpstreamConfig {
            url: raw.url,
            target,
            authorization,
            connect_timeout: self.above_zero(
                "upstream.connect_timeout",
                raw.connect_timeout.unwrap_or(defaults::CONNECT_TIMEOUT),
            )?,
            read_timeout: self.above_zero(
                "upstream.read_timeout",
                raw.read_timeout.unwrap_or(defaults::READ_TIMEOUT),
            )?,
        })
    }

    /// Reads the credential now: a gate that would start without it fails every request.
    fn upstream_auth(&self, var: String) -> Result<UpstreamAuth, ConfigError> {
        const KEY: &str = "upstream.authorization_env";
        match std::env::var(&var) {
            Ok(v) if !v.is_empty() && http::HeaderValue::from_str(&v).is_ok() => Ok(UpstreamAuth {
                env: var,
                value: Secret(v),
            }),
            Ok(_) => Err(self.invalid(
                KEY,
                format!("environment variable {var} is empty or not a valid header value"),
            )),
            Err(_) => Err(self.invalid(KEY, format!("environment variable {var} is not set"))),
        }
    }

    fn policy(&self, raw: RawPolicy) -> Result<PolicyConfig, ConfigError> {
        let max_body_bytes = raw.max_body_bytes.unwrap_or(defaults::MAX_BODY_BYTES);
        if max_body_bytes == 0 {
            return Err(self.invalid("policy.max_body_bytes", "must be above zero".into()));
        }
        let max_filter_terms = raw.max_filter_terms.unwrap_or(defaults::MAX_FILTER_TERMS);
        if max_filter_terms == 0 {
            return Err(self.invalid("policy.max_filter_terms", "must be at least 1".into()));
        }
        let bulk_max_operations = raw
            .bulk_max_operations
            .unwrap_or(defaults::BULK_MAX_OPERATIONS);
        if bulk_max_operations == 0 {
            return Err(self.invalid("policy.bulk_max_operations", "must be at least 1".into()));
        }
        let extensions = raw.extensions.unwrap_or_else(default_extensions);
        let mut allowed = Vec::with_capacity(extensions.len());
        for (urn, attrs) in extensions {
            let allow = match attrs {
                ExtensionAttrs::All(s) if s == "*" => ExtensionAllow::All,
                ExtensionAttrs::All(s) => {
                    return Err(self.invalid(
                        "policy.extensions",
                        format!("{urn}: expected \"*\" or a list of attribute names, got {s:?}"),
                    ))
                }
                ExtensionAttrs::Attrs(v) => ExtensionAllow::Attrs(v),
            };
            allowed.push((urn, allow));
        }
        let list = |u: Option<Updatable>, default: &[&str]| {
            u.map_or_else(
                || default.iter().map(|s| s.to_string()).collect(),
                |u| u.updatable,
            )
        };
        let spec = PolicySpec {
            dialect: match raw.dialect.unwrap_or_default() {
                DialectName::Normalize => Dialect::Normalize,
                DialectName::Tolerate => Dialect::Tolerate,
                DialectName::Strict => Dialect::Strict,
            },
            users_updatable: list(raw.users, defaults::USERS_UPDATABLE),
            groups_updatable: list(raw.groups, defaults::GROUPS_UPDATABLE),
            extensions: allowed,
            max_filter_terms,
            bulk_max_operations,
        };
        let compiled = Policy::compile(&spec).map_err(|e| self.invalid("policy", e.to_string()))?;
        Ok(PolicyConfig {
            max_body_bytes,
            spec,
            compiled,
        })
    }
}

/// [`defaults::EXTENSIONS`] in the serde form, as if the operator had written it.
fn default_extensions() -> BTreeMap<String, ExtensionAttrs> {
    defaults::EXTENSIONS
        .iter()
        .map(|(urn, attrs)| {
            let attrs = match attrs {
                None => ExtensionAttrs::All("*".into()),
                Some(list) => ExtensionAttrs::Attrs(list.iter().map(|s| s.to_string()).collect()),
            };
            (urn.to_string(), attrs)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn tenant_may_stand_only_in_the_upstream_path() {
        let ok = parse_upstream_url("http://dir:8080/{tenant}/v2").expect("path");
        assert_eq!(ok.path, "/{tenant}/v2");
        for bad in [
            "http://{tenant}.dir/v2",
            "http://dir:8080/{tenants}/v2",
            "http://dir/{x}/v2",
        ] {
            assert!(parse_upstream_url(bad).is_err(), "{bad}");
        }
    }

    use super::*;

    fn parse(yaml: &str) -> Result<Config, ConfigError> {
        Config::from_yaml(yaml, "test.yaml", Path::new("/etc/gate"))
    }

    #[test]
    fn defaults_fill_everything_but_the_upstream() {
        let c = parse("upstream: { url: http://127.0.0.1:18080/v2 }").expect("valid");
        assert_eq!(c.base_path, "/scim/v2");
        assert_eq!(
            c.server.listen,
            vec![SocketAddr::from(([127, 0, 0, 1], 8080))]
        );
        assert_eq!(c.tokens.file, PathBuf::from("/etc/gate/tokens.yaml"));
        assert_eq!(c.tokens.max_per_idp, 2);
        assert_eq!(c.policy.max_body_bytes, 1_048_576);
        assert_eq!(c.upstream.connect_timeout, Duration::from_secs(2));
        let t = &c.upstream.target;
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str(), t.tls),
            ("127.0.0.1", 18080, "/v2", false)
        );
    }

    #[test]
    fn a_typed_raw_config_resolves_and_prints_back_as_written() {
        let raw = RawConfig {
            upstream: RawUpstream {
                url: "http://127.0.0.1:18080/v2".into(),
                read_timeout: Some(Duration::from_millis(2500)),
                ..RawUpstream::default()
            },
            policy: Some(RawPolicy {
                dialect: Some(DialectName::Strict),
                ..RawPolicy::default()
            }),
            ..RawConfig::default()
        };
        let yaml = serde_yaml::to_string(&raw).expect("yaml");
        assert!(!yaml.contains("server") && !yaml.contains("null"), "{yaml}");
        let c = parse(&yaml).expect("valid");
        assert_eq!(c.upstream.read_timeout, Duration::from_millis(2500));
        assert_eq!(c.policy.spec.dialect, Dialect::Strict);
        assert_eq!(c.policy.spec.max_filter_terms, defaults::MAX_FILTER_TERMS);
        // The effective config resolves to itself.
        let again = Config::resolve(c.to_raw(), "again.yaml", Path::new("/")).expect("valid");
        assert_eq!(again.to_raw(), c.to_raw());
    }

    #[test]
    fn a_key_written_empty_is_an_error_not_the_default() {
        let e = parse("upstream: { url: http://x }\nserver: { threads: ~ }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("threads"), "{e}");
        let e = parse("upstream: { url: http://x }\npolicy: ~")
            .unwrap_err()
            .to_string();
        assert!(e.contains("policy"), "{e}");
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
