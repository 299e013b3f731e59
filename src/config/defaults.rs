//! Every default of the configuration, defined once. The serde layer ([`super::raw`]) leaves a
//! missing key as `None`; resolution ([`super::Config::resolve`]) fills it from here, and
//! nowhere else invents a value. `config/scim-gate.yaml` shows the same values to operators.

use std::time::Duration;

/// `server.listen`.
pub const LISTEN: &str = "127.0.0.1:8080";
/// `server.threads`: Pingora worker threads.
pub const THREADS: usize = 2;
/// `server.shutdown_grace`: how long SIGTERM waits for in-flight requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// `server.body_timeout`: the whole request body must arrive within this (408 otherwise).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(15);
/// `server.header_timeout`: a request head must arrive whole within this.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// `server.idle_timeout`: a connection waiting for its next request closes after this.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `server.max_connections`: open client connections; more are refused at once.
pub const MAX_CONNECTIONS: usize = 10_000;
/// `limits.rate`: requests per second per token, twice what Entra documents it sends (25/s).
pub const RATE: f64 = 50.0;
/// `limits.burst`.
pub const BURST: u32 = 100;
/// `limits.upstream_max_in_flight`: requests in flight to the directory, all tokens together.
pub const UPSTREAM_MAX_IN_FLIGHT: usize = 64;
/// `guards.destructive.max`: destructive requests per token inside the window.
pub const DESTRUCTIVE_MAX: u32 = 100;
/// `guards.destructive.window`.
pub const DESTRUCTIVE_WINDOW: Duration = Duration::from_secs(600);
/// `base_path`: the public SCIM root.
pub const BASE_PATH: &str = "/scim/v2";
/// `upstream.connect_timeout` (502 beyond it).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// `upstream.read_timeout` (504 beyond it).
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// `tokens.file`, relative to the config file's folder.
pub const TOKENS_FILE: &str = "tokens.yaml";
/// `tokens.max_per_idp`: two tokens per (tenant, IdP) allow a rotation without an outage.
pub const MAX_PER_IDP: usize = 2;
/// `tokens.last_used_interval`: `last_used_at` is written back to the token file at most this
/// often.
pub const LAST_USED_INTERVAL: Duration = Duration::from_secs(60);
/// `etcd.prefix`: the keys of one cluster of gates.
pub const ETCD_PREFIX: &str = "/scim-gate/default";
/// `etcd.lease_ttl`: a replica that cannot renew its lease within this stops serving.
pub const ETCD_LEASE_TTL: Duration = Duration::from_secs(5);
/// `etcd.ack_timeout`: how long an admin change waits for a replica before fencing it.
pub const ETCD_ACK_TIMEOUT: Duration = Duration::from_secs(1);
/// `admin.socket`, relative to the config file's folder.
pub const ADMIN_SOCKET: &str = "admin.sock";
/// `audit.file`, relative to the config file's folder.
pub const AUDIT_FILE: &str = "audit.jsonl";
/// `oauth.access_token_ttl`: how long an OAuth access token works.
pub const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// `admin.decisions_kept`: refusals kept for `GET /decisions`.
pub const DECISIONS_KEPT: usize = 10_000;
/// `metrics.max_tenants`: tenants with their own series; the rest are counted as `other`.
pub const MAX_TENANTS: usize = 1000;
/// `metrics.listen`.
pub const METRICS_LISTEN: &str = "127.0.0.1:9090";
/// `policy.max_body_bytes`: 1 MiB, the usual SCIM `maxPayloadSize`.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// `policy.max_filter_terms`: the `scim` module's own bound.
pub const MAX_FILTER_TERMS: usize = crate::scim::DEFAULT_MAX_TERMS;
/// `policy.bulk_max_operations`: the `scim` module's own bound.
pub const BULK_MAX_OPERATIONS: usize = crate::scim::DEFAULT_BULK_MAX_OPERATIONS;

/// The SCIM enterprise User extension (RFC 7643 §4.3).
pub const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// Ivanti's User extension, whose schema the gate does not know (any value is accepted).
pub const IVANTI_URN: &str = "urn:ietf:params:scim:schemas:extension:ivanti:2.0:User";

/// `policy.users.updatable`: what an IdP may change on a User (`userName` never).
pub const USERS_UPDATABLE: &[&str] = &[
    "displayName",
    "emails",
    "name.givenName",
    "name.familyName",
    "active",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
    IVANTI_URN,
];

/// `policy.groups.updatable`.
pub const GROUPS_UPDATABLE: &[&str] = &["displayName", "members"];

/// `policy.extensions`: of the enterprise extension only `department`; all of Ivanti's.
/// `None` stands for `"*"` (every attribute).
pub const EXTENSIONS: &[(&str, Option<&[&str]>)] =
    &[(ENTERPRISE_URN, Some(&["department"])), (IVANTI_URN, None)];
