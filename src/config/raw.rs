//! The configuration file as serde reads it: every key the YAML may hold and nothing else.
//!
//! Every struct denies unknown fields (a typo is an error, not a silently ignored key), and
//! every optional key is an `Option`: `None` means "not written", and only
//! [`super::Config::resolve`] decides what that means (see [`super::defaults`]). The types
//! derive `Serialize` too, so a test harness can build a config as a typed value and write it
//! as YAML, and `check-config` prints the effective config in the very same shape.
//!
//! A key that is present must hold a value: `threads: ~` is a type error as before, not a
//! request for the default (`present` below), so an operator who blanks a key by mistake is
//! told so.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The whole file. Only `upstream.url` is required.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The public listener.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub server: Option<RawServer>,
    /// The public SCIM root, e.g. `/scim/v2`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub base_path: Option<String>,
    /// The directory behind the gate.
    pub upstream: RawUpstream,
    /// The token file.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub tokens: Option<RawTokens>,
    /// The etcd cluster holding the token state (`tokens.backend: etcd`).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub etcd: Option<RawEtcd>,
    /// The admin socket.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub admin: Option<RawAdmin>,
    /// The audit trail.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub audit: Option<RawAudit>,
    /// The Prometheus listener.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub metrics: Option<RawMetrics>,
    /// The SCIM checks.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub policy: Option<RawPolicy>,
    /// Rate limits and the directory's saturation bound.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub limits: Option<RawLimits>,
    /// The destructive-change breaker.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub guards: Option<RawGuards>,
    /// The OAuth 2.0 client-credentials token endpoint.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub oauth: Option<RawOAuth>,
}

/// `oauth:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawOAuth {
    /// Whether `POST {base_path}/oauth/token` answers.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub enabled: Option<bool>,
    /// How long an access token works.
    #[serde(
        default,
        with = "duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub access_token_ttl: Option<Duration>,
}

/// `limits:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Requests per second per token (a token bucket's refill rate).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub rate: Option<f64>,
    /// The bucket's size: requests a token may send at once after a quiet time.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub burst: Option<u32>,
    /// Overrides by IdP name (`okta: {rate: 50, burst: 100}`).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub per_idp: Option<BTreeMap<String, RawRate>>,
    /// Requests in flight to the directory, all tokens together.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub upstream_max_in_flight: Option<usize>,
}

/// One `limits.per_idp` entry; a missing key takes the global value.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRate {
    /// Requests per second.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub rate: Option<f64>,
    /// Bucket size.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub burst: Option<u32>,
}

/// `guards:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuards {
    /// The destructive-change breaker, per token.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub destructive: Option<RawDestructive>,
}

/// `guards.destructive:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDestructive {
    /// Destructive requests a token may make inside `window`; one more trips the breaker.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub max: Option<u32>,
    /// The sliding window.
    #[serde(
        default,
        with = "duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub window: Option<Duration>,
}

/// `server:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// One address or a list (YAML may write either; printed as a list).
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Option::is_none"
    )]
    pub listen: Option<Vec<String>>,
    /// PEM certificate and key: the listener speaks HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RawTls>,
    /// Pingora worker threads.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub threads: Option<usize>,
    /// How long SIGTERM waits for in-flight requests.
    #[serde(
        default,
        with = "duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub shutdown_grace: Option<Duration>,
    /// How long a client may take to send a request body, and the longest pause between two
    /// of its reads (408 when exceeded).
    #[serde(
        default,
        with = "duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub body_timeout: Option<Duration>,
    /// A request head must arrive whole within this; else the connection closes.
    #[serde(
        default,
        with = "duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub header_timeout: Option<Duration>,
    /// A keep-alive connection with no request for this long closes.
    #[serde(
        default,
        with = "duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub idle_timeout: Option<Duration>,
    /// Open client connections; beyond it new ones are refused at once.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_connections: Option<usize>,
    /// CIDRs that may call the SCIM side; empty = any.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub allowed_networks: Option<Vec<String>>,
    /// CIDRs whose `X-Forwarded-For` is believed for the client address.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub trusted_proxies: Option<Vec<String>>,
}

/// `server.tls:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// `upstream:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// The directory's SCIM root, `http://` or `https://`.
    pub url: String,
    /// The environment variable holding the upstream's `Authorization` value. The value itself
    /// never appears in a config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_env: Option<String>,
    /// 502 beyond it.
    #[serde(
        default,
        with = "duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub connect_timeout: Option<Duration>,
    /// 504 beyond it.
    #[serde(
        default,
        with = "duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub read_timeout: Option<Duration>,
}

/// `tokens:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokens {
    /// The token file (hashes only).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub file: Option<PathBuf>,
    /// Tokens allowed per (tenant, IdP).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_per_idp: Option<usize>,
    /// How often `last_used_at` is written back to the token file (at most).
    #[serde(
        default,
        with = "duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_used_interval: Option<Duration>,
    /// Where the token state lives: `file` or `etcd`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub backend: Option<BackendName>,
}

/// `tokens.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendName {
    /// The token file.
    File,
    /// etcd (cluster mode).
    Etcd,
}

/// `etcd:` (cluster mode, docs/cluster.md).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawEtcd {
    /// Client URLs of the etcd members.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub endpoints: Option<Vec<String>>,
    /// The key prefix of this cluster of gates.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub prefix: Option<String>,
    /// A replica that cannot renew its lease within this stops serving.
    #[serde(
        default,
        with = "duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub lease_ttl: Option<Duration>,
    /// How long an admin change waits for a replica's ack before fencing it.
    #[serde(
        default,
        with = "duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub ack_timeout: Option<Duration>,
    /// TLS to etcd.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub tls: Option<RawEtcdTls>,
    /// The variable holding the etcd user name.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub username_env: Option<String>,
    /// The variable holding the etcd password.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub password_env: Option<String>,
}

/// `etcd.tls`: PEM files.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawEtcdTls {
    /// The CA that signed the etcd members' certificates.
    pub ca: PathBuf,
    /// A client certificate, when etcd asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// Its key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// `admin:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// The Unix socket of the admin API.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub socket: Option<PathBuf>,
    /// Peer uids allowed besides the gate's own.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub allowed_uids: Option<Vec<u32>>,
    /// Refusals kept for `GET /decisions`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub decisions_kept: Option<usize>,
}

/// `audit:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// The append-only JSON-lines file.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub file: Option<PathBuf>,
}

/// `metrics:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// Where `GET /metrics` is served.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub listen: Option<String>,
    /// Tenants with their own series in `scim_gate_tenant_requests_total`; the rest are `other`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_tenants: Option<usize>,
}

/// `policy:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// Larger bodies get 413.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_body_bytes: Option<usize>,
    /// How known IdP deviations are handled.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub dialect: Option<DialectName>,
    /// What may change on a User.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub users: Option<Updatable>,
    /// What may change on a Group.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub groups: Option<Updatable>,
    /// Which extension attributes may appear at all.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub extensions: Option<BTreeMap<String, ExtensionAttrs>>,
    /// Terms allowed in one filter, search or PATCH path (400 `invalidFilter` above).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_filter_terms: Option<usize>,
    /// Operations allowed in one Bulk request (413 above; advertised in ServiceProviderConfig).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub bulk_max_operations: Option<usize>,
}

/// `policy.dialect`.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DialectName {
    /// Rewrite known deviations into standard SCIM before forwarding.
    #[default]
    Normalize,
    /// Accept known deviations and forward them as sent.
    Tolerate,
    /// Refuse known deviations.
    Strict,
}

/// `policy.users` / `policy.groups`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Updatable {
    /// Attribute paths (or whole extension URNs) an IdP may change.
    pub updatable: Vec<String>,
}

/// `"*"` (every attribute of the extension) or a list of attribute names.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ExtensionAttrs {
    /// Must be `"*"`; any other string is refused at resolution.
    All(String),
    /// These attributes only.
    Attrs(Vec<String>),
}

/// A key that is present must deserialise as its type: `null` is not "use the default".
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `listen: 127.0.0.1:8080` or `listen: [a, b]`.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(Some(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    }))
}

/// Durations as the humans write them (`500ms`, `2s`, `10m`, `1h`, `365d`).
mod duration_opt {
    use super::*;
    use crate::config::values::{format_duration, parse_duration};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}
