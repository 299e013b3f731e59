//! Prometheus metrics (docs/metrics.md), registered once in the default registry of the `prometheus`
//! version that `pingora-prometheus` re-exports (a second copy of the crate would register into
//! a registry nobody gathers, and the metrics would silently vanish).
//!
//! No label carries a secret or a user's data: labels are methods, resource kinds, outcome and
//! reason names, token *ids* (public), and error kinds.

use std::sync::{Arc, LazyLock, OnceLock};

use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use pingora_prometheus::prometheus::{
    self, Encoder, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, TextEncoder,
};

use crate::tokens::TokenStore;

fn register<C: prometheus::core::Collector + Clone + 'static>(c: C) -> C {
    // A second registration only happens if two metrics share a name, which is a programming
    // error caught by the unit tests; keep serving rather than panic in production.
    if let Err(e) = prometheus::register(Box::new(c.clone())) {
        log::error!("metric registration failed: {e}");
    }
    c
}

pub static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "scim_gate_requests_total",
                "SCIM requests by method, resource and outcome",
            ),
            &["method", "resource", "outcome"],
        )
        .unwrap_or_else(|e| unreachable_metric(e)),
    )
});

pub static DURATION: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(
            HistogramOpts::new(
                "scim_gate_request_duration_seconds",
                "Time from request head to the end of the response",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ]),
        )
        .unwrap_or_else(|e| unreachable_metric(e)),
    )
});

pub static POLICY_REJECTIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "scim_gate_policy_rejections_total",
                "Requests refused by a SCIM check, by rule",
            ),
            &["reason"],
        )
        .unwrap_or_else(|e| unreachable_metric(e)),
    )
});

pub static TOKENS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new("scim_gate_tokens", "Loaded tokens by status"),
            &["status"],
        )
        .unwrap_or_else(|e| unreachable_metric(e)),
    )
});

pub static TOKEN_EXPIRY: LazyLock<GaugeVec> = LazyLock::new(|| {
    register(
        GaugeVec::new(
            Opts::new(
                "scim_gate_token_expiry_timestamp_seconds",
                "Unix time at which a token expires (absent: never)",
            ),
            &["token_id"],
        )
        .unwrap_or_else(|e| unreachable_metric(e)),
    )
});

pub static TOKEN_RELOADS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "scim_gate_token_reloads_total",
                "Token file reloads by result",
            ),
            &["result"],
        )
        .unwrap_or_else(|e| unreachable_metric(e)),
    )
});

pub static UPSTREAM_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "scim_gate_upstream_errors_total",
                "Upstream failures by kind",
            ),
            &["kind"],
        )
        .unwrap_or_else(|e| unreachable_metric(e)),
    )
});

/// The `outcome` label of `scim_gate_requests_total`: what became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outcome {
    /// Sent to the upstream (whatever it answered).
    #[default]
    Forwarded,
    /// Refused for its token (401, or 400 for two `Authorization` headers).
    Unauthorized,
    /// Refused by a route, guard or SCIM check.
    Rejected,
    /// The upstream could not be reached or did not answer (502, 504).
    UpstreamError,
}

impl Outcome {
    /// Every outcome, in declaration order (`outcome as usize` is its place).
    pub const ALL: [Outcome; 4] = [
        Outcome::Forwarded,
        Outcome::Unauthorized,
        Outcome::Rejected,
        Outcome::UpstreamError,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Forwarded => "forwarded",
            Outcome::Unauthorized => "unauthorized",
            Outcome::Rejected => "rejected",
            Outcome::UpstreamError => "upstream_error",
        }
    }
}

/// The `method` label's values: a bounded set, so a client cannot grow the metric with odd
/// methods.
const METHOD_LABELS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "other"];

/// The place of `m`'s label in [`METHOD_LABELS`].
fn method_index(m: &http::Method) -> usize {
    match *m {
        http::Method::GET => 0,
        http::Method::POST => 1,
        http::Method::PUT => 2,
        http::Method::PATCH => 3,
        http::Method::DELETE => 4,
        http::Method::HEAD => 5,
        _ => 6,
    }
}

/// The `method` label of `m` (`other` for any method outside the known set).
pub fn method_label(m: &http::Method) -> &'static str {
    METHOD_LABELS[method_index(m)]
}

/// The series of `scim_gate_requests_total`, each resolved on the first request that counts in
/// it and kept: `with_label_values` hashes its three labels on every call, and every request
/// counts itself. A series appears in `/metrics` once it counted, as before.
pub struct RequestSeries {
    /// By (method, route or `none`, outcome), flattened.
    cells: Box<[OnceLock<IntCounter>]>,
}

impl Default for RequestSeries {
    fn default() -> RequestSeries {
        let routes = crate::routes::Route::LABELS.len() + 1;
        RequestSeries {
            cells: (0..METHOD_LABELS.len() * routes * Outcome::ALL.len())
                .map(|_| OnceLock::new())
                .collect(),
        }
    }
}

impl RequestSeries {
    /// Counts one request.
    pub fn inc(
        &self,
        method: &http::Method,
        route: Option<&crate::routes::Route>,
        outcome: Outcome,
    ) {
        let routes = crate::routes::Route::LABELS.len() + 1;
        let (route_index, route_label) = match route {
            Some(r) => (r.label_index(), r.label()),
            None => (routes - 1, "none"),
        };
        let m = method_index(method);
        let cell = (m * routes + route_index) * Outcome::ALL.len() + outcome as usize;
        if let Some(series) = self.cells.get(cell) {
            series
                .get_or_init(|| {
                    REQUESTS.with_label_values(&[METHOD_LABELS[m], route_label, outcome.label()])
                })
                .inc();
        }
    }
}

/// The `kind` label of `scim_gate_upstream_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    /// No connection (refused, no route, connect timeout, DNS).
    Connect,
    /// The TLS handshake or the certificate failed.
    Tls,
    /// Connected, but no answer in time.
    Timeout,
    /// An answer the gate could not use when reading a resource itself.
    BadResponse,
    /// A 5xx status from the upstream (forwarded as it is).
    Status5xx,
    /// Anything else Pingora reports.
    Other,
}

impl UpstreamErrorKind {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            UpstreamErrorKind::Connect => "connect",
            UpstreamErrorKind::Tls => "tls",
            UpstreamErrorKind::Timeout => "timeout",
            UpstreamErrorKind::BadResponse => "bad_response",
            UpstreamErrorKind::Status5xx => "status_5xx",
            UpstreamErrorKind::Other => "other",
        }
    }
}

/// Counts one upstream failure.
pub fn count_upstream_error(kind: UpstreamErrorKind) {
    UPSTREAM_ERRORS.with_label_values(&[kind.label()]).inc();
}

/// Metric constructors only fail on invalid names or label sets, which are constants here.
fn unreachable_metric(e: prometheus::Error) -> ! {
    panic!("invalid metric definition: {e}")
}

/// Touches every metric so they appear in `/metrics` from the start (an operator's alert on
/// `scim_gate_token_reloads_total{result="error"}` should see 0, not "no data").
/// Requests by tenant, IdP and outcome (`metrics.max_tenants` tenants get their own series; the
/// rest are `other`; unauthenticated requests are `none`).
pub static TENANT_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "scim_gate_tenant_requests_total",
                "SCIM requests by tenant, IdP and outcome",
            ),
            &["tenant", "idp", "outcome"],
        )
        .unwrap_or_else(|e| unreachable_metric(e)),
    )
});

/// Which tenants have their own series in [`TENANT_REQUESTS`]: the first `max` seen. The set is
/// read without a lock and copied on write, which happens at most `max` times in a process's
/// life, so a client cannot grow the metric (or the memory) without bound.
pub struct TenantCap {
    max: usize,
    seen: arc_swap::ArcSwap<std::collections::HashSet<std::sync::Arc<str>>>,
}

impl TenantCap {
    /// A cap of `max` tenants.
    pub fn new(max: usize) -> TenantCap {
        TenantCap {
            max,
            seen: arc_swap::ArcSwap::from_pointee(std::collections::HashSet::new()),
        }
    }

    /// The `tenant` label for `tenant`: itself, or `other` once `max` others have one.
    pub fn label<'a>(&self, tenant: &'a str) -> &'a str {
        let seen = self.seen.load();
        if seen.contains(tenant) {
            return tenant;
        }
        if seen.len() >= self.max {
            return "other";
        }
        drop(seen);
        let mut admitted = false;
        self.seen.rcu(|s| {
            let mut s = std::collections::HashSet::clone(s);
            admitted = s.len() < self.max || s.contains(tenant);
            if admitted {
                s.insert(std::sync::Arc::from(tenant));
            }
            s
        });
        if admitted {
            tenant
        } else {
            "other"
        }
    }
}

/// OAuth access tokens issued, by the parent token's IdP.
pub static OAUTH_ISSUED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "scim_gate_oauth_tokens_issued_total",
                "OAuth access tokens issued by the token endpoint, by IdP",
            ),
            &["idp"],
        )
        .unwrap_or_else(|e| unreachable_metric(e)),
    )
});

/// Requests a guard rail refused, by `reason` (`guards::Limited`).
pub static LIMITED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "scim_gate_limited_total",
                "Requests refused by a guard rail: rate, upstream_busy, destructive, network",
            ),
            &["reason"],
        )
        .unwrap_or_else(|e| unreachable_metric(e)),
    )
});

/// Open client connections on the public listener (`server.max_connections` bounds it).
pub static CONNECTIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "scim_gate_connections",
            "Open client connections on the public listener",
        )
        .unwrap_or_else(|e| unreachable_metric(e)),
    )
});

/// Client connections a limit closed, by `reason`.
pub static CONNECTIONS_CLOSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "scim_gate_connections_closed_total",
                "Client connections closed by a limit: max_connections, header_timeout, idle_timeout",
            ),
            &["reason"],
        )
        .unwrap_or_else(|e| unreachable_metric(e)),
    )
});

/// 1 while this process serves SCIM requests from its token set, 0 while fenced
/// (docs/cluster.md#fencing); always 1 with the file backend. Set when scraped.
pub static CLUSTER_SERVING: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "scim_gate_cluster_serving",
            "1 while this replica serves SCIM requests, 0 while it is fenced",
        )
        .unwrap_or_else(|e| unreachable_metric(e)),
    )
});

/// The revision of the token state in force in this process.
pub static CLUSTER_APPLIED_REVISION: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "scim_gate_cluster_applied_revision",
            "Revision of the token state this replica has applied",
        )
        .unwrap_or_else(|e| unreachable_metric(e)),
    )
});

/// Commit → every listed replica acknowledged or was fenced, for admin changes.
pub static ADMIN_PROPAGATION: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(
            HistogramOpts::new(
                "scim_gate_admin_propagation_seconds",
                "From an admin change's commit to every replica having applied it or been fenced",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )
        .unwrap_or_else(|e| unreachable_metric(e)),
    )
});

/// Why a limit closed a client connection (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionClose {
    /// Refused at accept: `server.max_connections` were open.
    MaxConnections,
    /// A request head took longer than `server.header_timeout`.
    HeaderTimeout,
    /// No request within `server.idle_timeout`.
    IdleTimeout,
}

impl ConnectionClose {
    fn label(self) -> &'static str {
        match self {
            ConnectionClose::MaxConnections => "max_connections",
            ConnectionClose::HeaderTimeout => "header_timeout",
            ConnectionClose::IdleTimeout => "idle_timeout",
        }
    }
}

/// Counts one connection closed by a limit.
pub fn count_connection_closed(reason: ConnectionClose) {
    CONNECTIONS_CLOSED
        .with_label_values(&[reason.label()])
        .inc();
}

pub fn init() {
    for result in ["ok", "error"] {
        TOKEN_RELOADS.with_label_values(&[result]);
    }
    for status in ["active", "inactive", "expired"] {
        TOKENS.with_label_values(&[status]);
    }
    LazyLock::force(&REQUESTS);
    LazyLock::force(&DURATION);
    LazyLock::force(&POLICY_REJECTIONS);
    LazyLock::force(&TOKEN_EXPIRY);
    LazyLock::force(&UPSTREAM_ERRORS);
    LazyLock::force(&CONNECTIONS);
    LazyLock::force(&TENANT_REQUESTS);
    LazyLock::force(&OAUTH_ISSUED);
    LazyLock::force(&CLUSTER_SERVING);
    LazyLock::force(&CLUSTER_APPLIED_REVISION);
    LazyLock::force(&ADMIN_PROPAGATION);
    for reason in crate::guards::Limited::ALL {
        LIMITED.with_label_values(&[reason.label()]);
    }
    for reason in [
        ConnectionClose::MaxConnections,
        ConnectionClose::HeaderTimeout,
        ConnectionClose::IdleTimeout,
    ] {
        CONNECTIONS_CLOSED.with_label_values(&[reason.label()]);
    }
}

/// The Prometheus text of every registered metric.
pub fn render() -> Vec<u8> {
    let mut buf = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&prometheus::gather(), &mut buf) {
        log::error!("metrics encoding failed: {e}");
    }
    buf
}

/// `GET /metrics`, `/healthz` and `/readyz` on `metrics.listen` (docs/metrics.md#health);
/// anything else is 404 (pingora-prometheus' own app answers every path, which would make
/// typos in scrape configs look like success).
pub struct MetricsApp {
    tokens: Arc<TokenStore>,
}

impl MetricsApp {
    /// The app for the store whose serving state `/readyz` reports.
    pub fn new(tokens: Arc<TokenStore>) -> MetricsApp {
        MetricsApp { tokens }
    }
}

#[async_trait]
impl ServeHttp for MetricsApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let path = session.req_header().uri.path();
        let serving = self.tokens.serving();
        let (status, ctype, body) = match path {
            "/metrics" => {
                CLUSTER_SERVING.set(i64::from(serving));
                (200, "text/plain; version=0.0.4", render())
            }
            // The process runs and answers: a liveness probe must not restart a replica that
            // is only waiting for etcd.
            "/healthz" => (200, "text/plain", b"ok\n".to_vec()),
            "/readyz" if serving => (200, "text/plain", b"ready\n".to_vec()),
            "/readyz" => (
                503,
                "text/plain",
                b"not ready: the token state is not loaded or cannot be confirmed current\n"
                    .to_vec(),
            ),
            _ => (
                404,
                "text/plain",
                b"not found: metrics are at /metrics, health at /healthz and /readyz\n".to_vec(),
            ),
        };
        http::Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, ctype)
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::{Resource, Route};

    #[test]
    fn request_series_count_under_their_own_labels() {
        let series = RequestSeries::default();
        let value = |labels: &[&str]| REQUESTS.with_label_values(labels).get();
        let route = Route::Search(Some(Resource::Groups));
        let before = [
            value(&["POST", "search", "rejected"]),
            value(&["other", "none", "upstream_error"]),
            value(&["DELETE", "oauth_token", "unauthorized"]),
        ];
        series.inc(&http::Method::POST, Some(&route), Outcome::Rejected);
        series.inc(&http::Method::POST, Some(&route), Outcome::Rejected);
        series.inc(&http::Method::OPTIONS, None, Outcome::UpstreamError);
        series.inc(
            &http::Method::DELETE,
            Some(&Route::OAuthToken),
            Outcome::Unauthorized,
        );
        assert_eq!(value(&["POST", "search", "rejected"]), before[0] + 2);
        assert_eq!(value(&["other", "none", "upstream_error"]), before[1] + 1);
        assert_eq!(
            value(&["DELETE", "oauth_token", "unauthorized"]),
            before[2] + 1
        );
        for (i, outcome) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*outcome as usize, i, "ALL is in declaration order");
        }
    }

    #[test]
    fn every_metric_of_the_spec_is_rendered() {
        init();
        REQUESTS
            .with_label_values(&["GET", "Users", "forwarded"])
            .inc();
        super::DURATION.observe(0.001);
        super::POLICY_REJECTIONS
            .with_label_values(&["mutability"])
            .inc();
        super::UPSTREAM_ERRORS.with_label_values(&["connect"]).inc();
        super::TOKEN_EXPIRY.with_label_values(&["tok_1"]).set(1.0);
        let text = String::from_utf8(super::render()).expect("utf8");
        for name in [
            "scim_gate_requests_total",
            "scim_gate_request_duration_seconds",
            "scim_gate_policy_rejections_total",
            "scim_gate_tokens",
            "scim_gate_token_expiry_timestamp_seconds",
            "scim_gate_token_reloads_total",
            "scim_gate_upstream_errors_total",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
    }
}
