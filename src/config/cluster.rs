//! `tokens.backend` and `etcd:` resolved and checked once (docs/cluster.md#configuration).

use std::path::PathBuf;
use std::time::Duration;

use super::defaults;
use super::raw::{BackendName, RawEtcd, RawEtcdTls};
use super::{ConfigError, Resolver, Secret};

/// Where the token state lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenBackend {
    /// `tokens.file` (the default).
    File,
    /// etcd (`etcd:`), cluster mode.
    Etcd,
}

/// `etcd:`.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// Client URLs (`http://` or `https://`), at least one; the gate fails over itself.
    pub endpoints: Vec<String>,
    /// The key prefix, starting with `/`, without a trailing `/`.
    pub prefix: String,
    /// At least 1 s (etcd's minimum TTL with a 500 ms election timeout is 1 s).
    pub lease_ttl: Duration,
    /// Above zero.
    pub ack_timeout: Duration,
    /// TLS files (all exist at start).
    pub tls: Option<EtcdTls>,
    /// User name and password, read from the environment at start.
    pub credentials: Option<(String, Secret)>,
    /// The variables they came from (for `check-config` output; values never printed).
    pub credential_envs: Option<(String, String)>,
}

/// `etcd.tls`.
#[derive(Debug, Clone)]
pub struct EtcdTls {
    /// CA certificate (PEM).
    pub ca: PathBuf,
    /// Client certificate and key (PEM), when etcd wants one.
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl Resolver<'_> {
    /// Resolves `tokens.backend` with `etcd:`: each needs the other.
    pub(super) fn cluster(
        &self,
        backend: Option<BackendName>,
        raw: Option<RawEtcd>,
    ) -> Result<(TokenBackend, Option<EtcdConfig>), ConfigError> {
        match (backend.unwrap_or(BackendName::File), raw) {
            (BackendName::File, None) => Ok((TokenBackend::File, None)),
            (BackendName::File, Some(_)) => Err(self.invalid(
                "etcd",
                "is set but tokens.backend is file: set tokens.backend: etcd, or remove etcd:"
                    .into(),
            )),
            (BackendName::Etcd, None) => {
                Err(self.invalid("etcd", "is required when tokens.backend is etcd".into()))
            }
            (BackendName::Etcd, Some(raw)) => {
                if !cfg!(feature = "etcd") {
                    return Err(self.invalid(
                        "tokens.backend",
                        "etcd: this build of scim-gate has no etcd support (cargo feature etcd)"
                            .into(),
                    ));
                }
                Ok((TokenBackend::Etcd, Some(self.etcd(raw)?)))
            }
        }
    }

    fn etcd(&self, raw: RawEtcd) -> Result<EtcdConfig, ConfigError> {
        let endpoints = raw.endpoints.unwrap_or_default();
        if endpoints.is_empty() {
            return Err(self.invalid("etcd.endpoints", "needs at least one URL".into()));
        }
        let tls = raw.tls.map(|t| self.etcd_tls(t)).transpose()?;
        for e in &endpoints {
            let ok = match &tls {
                Some(_) => e.starts_with("https://"),
                None => e.starts_with("http://"),
            };
            if !ok || e.len() <= "https://".len() {
                let want = if tls.is_some() { "https://" } else { "http://" };
                return Err(self.invalid(
                    "etcd.endpoints",
                    format!("{e:?}: must be a {want}host:port URL (https:// with etcd.tls)"),
                ));
            }
        }
        let prefix = raw.prefix.unwrap_or_else(|| defaults::ETCD_PREFIX.into());
        let prefix = prefix.trim_end_matches('/').to_string();
        if !prefix.starts_with('/') || prefix.len() < 2 || prefix.contains("//") {
            return Err(self.invalid(
                "etcd.prefix",
                format!("{prefix:?}: must start with / and name a folder, e.g. /scim-gate/prod"),
            ));
        }
        let lease_ttl = raw.lease_ttl.unwrap_or(defaults::ETCD_LEASE_TTL);
        if lease_ttl < Duration::from_secs(1) || lease_ttl.subsec_nanos() != 0 {
            return Err(self.invalid(
                "etcd.lease_ttl",
                "must be whole seconds, at least 1s (etcd grants leases in seconds)".into(),
            ));
        }
        let ack_timeout = self.above_zero(
            "etcd.ack_timeout",
            raw.ack_timeout.unwrap_or(defaults::ETCD_ACK_TIMEOUT),
        )?;
        let (credentials, credential_envs) = match (raw.username_env, raw.password_env) {
            (None, None) => (None, None),
            (Some(u), Some(p)) => {
                let user = self.env_value("etcd.username_env", &u)?;
                let pass = self.env_value("etcd.password_env", &p)?;
                (Some((user, Secret(pass))), Some((u, p)))
            }
            _ => {
                return Err(self.invalid(
                    "etcd.username_env",
                    "username_env and password_env go together".into(),
                ))
            }
        };
        Ok(EtcdConfig {
            endpoints,
            prefix,
            lease_ttl,
            ack_timeout,
            tls,
            credentials,
            credential_envs,
        })
    }

    fn etcd_tls(&self, raw: RawEtcdTls) -> Result<EtcdTls, ConfigError> {
        let ca = self.absolute(raw.ca);
        let identity = match (raw.cert, raw.key) {
            (None, None) => None,
            (Some(c), Some(k)) => Some((self.absolute(c), self.absolute(k))),
            _ => return Err(self.invalid("etcd.tls", "cert and key go together".into())),
        };
        for p in std::iter::once(&ca).chain(identity.iter().flat_map(|(c, k)| [c, k])) {
            if !p.is_file() {
                return Err(self.invalid("etcd.tls", format!("{} does not exist", p.display())));
            }
        }
        Ok(EtcdTls { ca, identity })
    }

    fn env_value(&self, key: &'static str, var: &str) -> Result<String, ConfigError> {
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(v),
            Ok(_) => Err(self.invalid(key, format!("environment variable {var} is empty"))),
            Err(_) => Err(self.invalid(key, format!("environment variable {var} is not set"))),
        }
    }
}

impl EtcdConfig {
    /// The serde form, for the effective configuration (`check-config`).
    pub fn to_raw(&self) -> RawEtcd {
        RawEtcd {
            endpoints: Some(self.endpoints.clone()),
            prefix: Some(self.prefix.clone()),
            lease_ttl: Some(self.lease_ttl),
            ack_timeout: Some(self.ack_timeout),
            tls: self.tls.as_ref().map(|t| RawEtcdTls {
                ca: t.ca.clone(),
                cert: t.identity.as_ref().map(|(c, _)| c.clone()),
                key: t.identity.as_ref().map(|(_, k)| k.clone()),
            }),
            username_env: self.credential_envs.as_ref().map(|(u, _)| u.clone()),
            password_env: self.credential_envs.as_ref().map(|(_, p)| p.clone()),
        }
    }
}
