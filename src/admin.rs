//! The admin socket (docs/admin-api.md): HTTP/1.1 + JSON over a Unix socket, a Pingora service in the
//! same server as the proxy, so a change applied here is in the proxy's token set before the
//! response is written.
//!
//! Access control is the socket's mode (0600) *and* the peer's uid from `SO_PEERCRED`, checked
//! on every request: a socket file copied, re-permissioned or reached through a container mount
//! still refuses other users.

use std::os::fd::RawFd;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::{json, Value};

use crate::audit::AuditLog;
use crate::config::parse_duration;
use crate::decisions::DecisionLog;
use crate::guards::{Breakers, Tripped};
use crate::tokens::{
    tenant, Change, Changed, Committed, Idp, Status, StoreError, TokenRecord, TokenStore,
};

/// The largest admin request body; token requests are a few hundred bytes.
const MAX_ADMIN_BODY: usize = 64 * 1024;

/// The longest `expires_in`: 100 years.
const MAX_EXPIRES_DAYS: i64 = 36_500;

pub struct AdminApp {
    store: Arc<TokenStore>,
    audit: Arc<AuditLog>,
    allowed_uids: Vec<u32>,
    breakers: Arc<Breakers>,
    decisions: Arc<DecisionLog>,
}

/// An admin answer: status and JSON body (`None` for 204).
struct Reply(u16, Option<Value>);

fn error(status: u16, msg: impl std::fmt::Display) -> Reply {
    Reply(status, Some(json!({ "error": msg.to_string() })))
}

/// The record as the admin API shows it: everything but the hash.
pub fn public_record(r: &TokenRecord) -> Value {
    json!({
        "id": r.id,
        "tenant": r.tenant,
        "idp": r.idp.as_str(),
        "status": match r.status { Status::Active => "active", Status::Inactive => "inactive" },
        "domains": r.domains,
        "networks": r.networks,
        "created_at": r.created_at,
        "refreshed_at": r.refreshed_at,
        "expires_at": r.expires_at,
        "last_used_at": r.last_used_at,
    })
}

struct CreateBody {
    tenant: String,
    idp: String,
    domains: Vec<String>,
    networks: Vec<String>,
    expires_in: Option<String>,
}

/// The fields `POST /tokens` accepts; anything else is a 400 that names the field.
const CREATE_FIELDS: [&str; 5] = ["tenant", "idp", "domains", "networks", "expires_in"];

impl AdminApp {
    pub fn new(
        store: Arc<TokenStore>,
        audit: Arc<AuditLog>,
        allowed_uids: Vec<u32>,
        breakers: Arc<Breakers>,
        decisions: Arc<DecisionLog>,
    ) -> AdminApp {
        AdminApp {
            store,
            audit,
            allowed_uids,
            breakers,
            decisions,
        }
    }

    fn peer_allowed(&self, uid: Option<u32>) -> bool {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let own = unsafe { libc::geteuid() };
        uid.is_some_and(|u| u == own || self.allowed_uids.contains(&u))
    }

    async fn route(
        &self,
        method: &http::Method,
        path: &str,
        query: Option<&str>,
        body: &[u8],
        uid: u32,
    ) -> Reply {
        // Segments are percent-decoded: the CLI (and curl users) may encode an id.
        let decoded: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
        match (method.as_str(), segments.as_slice()) {
            ("GET", ["tokens"]) => self.list().await,
            ("POST", ["tokens"]) => match parse_create(body) {
                Ok(change) => self.apply(change, uid, 201).await,
                Err(e) => e,
            },
            ("POST", ["tokens", id, "refresh"]) => {
                self.apply(Change::Refresh(id.to_string()), uid, 200).await
            }
            ("POST", ["tokens", id, "activate"]) => {
                self.apply(Change::SetStatus(id.to_string(), Status::Active), uid, 200)
                    .await
            }
            ("POST", ["tokens", id, "deactivate"]) => {
                self.apply(
                    Change::SetStatus(id.to_string(), Status::Inactive),
                    uid,
                    200,
                )
                .await
            }
            ("DELETE", ["tokens", id]) => {
                self.apply(Change::Delete(id.to_string()), uid, 204).await
            }
            ("GET", ["audit"]) => self.audit_since(query).await,
            ("GET", ["cluster"]) => match self.store.backend().cluster(&self.store).await {
                Some(Ok(status)) => Reply(200, Some(json!(status))),
                Some(Err(e)) => error(503, e),
                None => error(
                    404,
                    "cluster mode is off (tokens.backend: file); GET /cluster answers with tokens.backend: etcd",
                ),
            },
            ("GET", ["decisions"]) => self.decisions(query),
            ("GET", ["guards"]) => {
                let list: Vec<Value> = self.breakers.tripped().iter().map(tripped_json).collect();
                Reply(200, Some(json!({ "guards": list })))
            }
            ("POST", ["guards", id, "release"]) => match self.breakers.release(id, Some(uid)) {
                Some(t) => {
                    let mut body = tripped_json(&t);
                    if let Some(obj) = body.as_object_mut() {
                        obj.insert("released".into(), Value::Bool(true));
                    }
                    Reply(200, Some(body))
                }
                None => error(404, format!("no tripped guard for token {id}")),
            },
            (
                _,
                ["tokens"]
                | ["tokens", ..]
                | ["audit"]
                | ["cluster"]
                | ["decisions"]
                | ["guards"]
                | ["guards", ..],
            ) => error(405, format!("{method} is not allowed on {path}")),
            _ => error(404, format!("no admin route {path}")),
        }
    }

    /// `GET /tokens`: the records, with the latest last use any replica recorded.
    async fn list(&self) -> Reply {
        let mut records = self.store.snapshot().records();
        let elsewhere = self.store.backend().last_used_elsewhere().await;
        if !elsewhere.is_empty() {
            let latest: std::collections::HashMap<String, DateTime<Utc>> =
                elsewhere.into_iter().collect();
            for r in &mut records {
                if let Some(t) = latest.get(&r.id) {
                    r.last_used_at = r.last_used_at.max(Some(*t));
                }
            }
        }
        let list: Vec<Value> = records.iter().map(public_record).collect();
        Reply(200, Some(json!({ "tokens": list })))
    }

    /// Applies the change and shapes the answer; in cluster mode it names the commit's
    /// revision and the replicas that confirmed it or were fenced (docs/admin-api.md#cluster).
    async fn apply(&self, change: Change, uid: u32, ok_status: u16) -> Reply {
        let cluster = self.store.backend().name() == "etcd";
        match self.store.apply(change, Some(uid)).await {
            Ok(Committed {
                changed: Changed { record, token, .. },
                propagation,
            }) => {
                let mut body = match ok_status {
                    204 => json!({}),
                    _ => record
                        .as_ref()
                        .map(public_record)
                        .unwrap_or_else(|| json!({})),
                };
                if let (Some(t), Some(obj)) = (token, body.as_object_mut()) {
                    obj.insert("token".into(), Value::String(t.expose().to_string()));
                }
                if cluster {
                    if let Some(obj) = body.as_object_mut() {
                        obj.insert("revision".into(), json!(propagation.revision));
                        obj.insert("confirmed".into(), json!(propagation.confirmed));
                        obj.insert("fenced".into(), json!(propagation.fenced));
                    }
                }
                match (ok_status, cluster) {
                    (204, false) => Reply(204, None),
                    // A 204 has no body: `into_response` moves these into headers.
                    _ => Reply(ok_status, Some(body)),
                }
            }
            Err(e) => {
                let status = match &e {
                    StoreError::NotFound(_) => 404,
                    StoreError::TooMany { .. } => 409,
                    StoreError::BadRequest(_) => 400,
                    StoreError::FileInvalid(_) => 409,
                    StoreError::Persist(_) => 500,
                    StoreError::Unavailable(_) => 503,
                    StoreError::Unconfirmed { .. } => 504,
                };
                error(status, e)
            }
        }
    }

    /// `GET /decisions?token_id=&since=&limit=`: the recent refusals, newest first.
    fn decisions(&self, query: Option<&str>) -> Reply {
        let mut token_id = None;
        let mut since = None;
        let mut limit = 100usize;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned();
            match k {
                "token_id" => token_id = Some(v),
                "since" => match DateTime::parse_from_rfc3339(&v) {
                    Ok(t) => since = Some(t.with_timezone(&Utc)),
                    Err(e) => return error(400, format!("since must be an RFC 3339 time: {e}")),
                },
                "limit" => match v.parse::<usize>() {
                    Ok(n) if n > 0 => limit = n,
                    _ => return error(400, "limit must be a positive integer"),
                },
                _ => {
                    return error(
                        400,
                        format!("unknown query parameter {k:?} (token_id=, since=, limit=)"),
                    )
                }
            }
        }
        let list = self.decisions.recent(token_id.as_deref(), since, limit);
        Reply(200, Some(json!({ "decisions": list })))
    }

    async fn audit_since(&self, query: Option<&str>) -> Reply {
        let mut since = None;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("since", v)) => {
                    let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
                    match DateTime::parse_from_rfc3339(&v) {
                        Ok(t) => since = Some(t.with_timezone(&Utc)),
                        Err(e) => {
                            return error(400, format!("since must be an RFC 3339 time: {e}"))
                        }
                    }
                }
                _ => {
                    return error(
                        400,
                        format!("unknown query parameter {pair:?} (only since=)"),
                    )
                }
            }
        }
        let mut events = match self.audit.read_since(since) {
            Ok(events) => events,
            Err(e) => return error(500, e),
        };
        // Cluster mode: token changes are in etcd (every replica's), this process's own
        // events (expiries, guards) in its file; one list, by time.
        match self.store.backend().audit_since(since).await {
            None => {}
            Some(Ok(cluster)) => {
                events.extend(cluster);
                events.sort_by_key(|e| e.time);
            }
            Some(Err(e)) => return error(503, e),
        }
        Reply(200, Some(json!({ "events": events })))
    }
}

/// A JSON list of replica ids as one header value: `a, b` (ids are host-pid-hex, no commas).
fn names(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// A tripped breaker as the admin API shows it.
fn tripped_json(t: &Tripped) -> Value {
    json!({
        "token_id": t.token_id,
        "tenant": t.tenant,
        "idp": t.idp,
        "guard": "destructive",
        "tripped_at": t.tripped_at,
    })
}

fn parse_create(body: &[u8]) -> Result<Change, Reply> {
    // Field by field rather than one serde struct, so each error names the field at fault
    // (serde's own type errors only give a line and column).
    let v: Value =
        serde_json::from_slice(body).map_err(|e| error(400, format!("invalid JSON body: {e}")))?;
    let Some(obj) = v.as_object() else {
        return Err(error(
            400,
            "invalid JSON body: expected an object like {\"tenant\":\"acme\",\"idp\":\"okta\"}",
        ));
    };
    if let Some(k) = obj.keys().find(|k| !CREATE_FIELDS.contains(&k.as_str())) {
        return Err(error(
            400,
            format!(
                "unknown field {k:?}, expected one of {}",
                CREATE_FIELDS.join(", ")
            ),
        ));
    }
    let string = |name: &str| -> Result<Option<String>, Reply> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(error(400, format!("{name} must be a string, not {other}"))),
        }
    };
    let tenant = string("tenant")?.ok_or_else(|| error(400, "missing field tenant"))?;
    let idp = string("idp")?.ok_or_else(|| error(400, "missing field idp"))?;
    let list = |name: &str, what: &str| -> Result<Vec<String>, Reply> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|d| {
                    d.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| error(400, format!("{name} must be strings, not {d}")))
                })
                .collect(),
            Some(other) => Err(error(
                400,
                format!("{name} must be a list of {what}, not {other}"),
            )),
        }
    };
    let b = CreateBody {
        tenant,
        idp,
        domains: list("domains", "domain names")?,
        networks: list("networks", "CIDR blocks")?,
        expires_in: string("expires_in")?,
    };
    for n in &b.networks {
        crate::net::Cidr::parse(n).map_err(|e| error(400, format!("networks: {e}")))?;
    }
    let idp = Idp::parse(&b.idp).ok_or_else(|| {
        error(
            400,
            format!(
                "idp {:?} is not one of entra, okta, google, onelogin, jumpcloud, other",
                b.idp
            ),
        )
    })?;
    // The same rule the token file is held to at load (`tokens::tenant`).
    tenant::check(&b.tenant).map_err(|e| error(400, e))?;
    let expires_at = match b.expires_in {
        None => None,
        Some(s) => {
            let d = parse_duration(&s).map_err(|e| error(400, format!("expires_in: {e}")))?;
            let d = chrono::Duration::from_std(d)
                .map_err(|e| error(400, format!("expires_in: {e}")))?;
            if d.is_zero() {
                return Err(error(400, "expires_in must be above zero"));
            }
            // A date past year 9999 has no RFC 3339 form: the token file would not parse back.
            if d > chrono::Duration::days(MAX_EXPIRES_DAYS) {
                return Err(error(
                    400,
                    format!("expires_in must be at most {MAX_EXPIRES_DAYS}d"),
                ));
            }
            Some(Utc::now() + d)
        }
    };
    Ok(Change::Create {
        tenant: b.tenant,
        idp,
        domains: b
            .domains
            .into_iter()
            .map(|d| d.to_ascii_lowercase())
            .collect(),
        networks: b.networks,
        expires_at,
    })
}

/// The peer's uid from `SO_PEERCRED`; `None` if the kernel does not tell.
pub fn peer_uid(fd: RawFd) -> Option<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes passed; the kernel checks `fd`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(cred.uid)
}

async fn read_body(session: &mut ServerSession) -> Result<Vec<u8>, Reply> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_ADMIN_BODY {
                    return Err(error(413, "request body too large"));
                }
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(error(400, format!("cannot read request body: {e}"))),
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let uid = session.stream().and_then(|s| peer_uid(s.id()));
        let reply = if !self.peer_allowed(uid) {
            log::warn!("admin: refused a connection from uid {uid:?}");
            error(403, "this uid may not use the admin socket")
        } else {
            let method = session.req_header().method.clone();
            let uri = session.req_header().uri.clone();
            match read_body(session).await {
                Ok(body) => {
                    self.route(&method, uri.path(), uri.query(), &body, uid.unwrap_or(0))
                        .await
                }
                Err(e) => e,
            }
        };
        let mut builder = http::Response::builder().status(reply.0);
        let body = match (reply.0, reply.1) {
            // DELETE answers 204 (docs/admin-api.md); in cluster mode its propagation travels
            // in headers, since a 204 carries no body.
            (204, Some(v)) => {
                builder = builder
                    .header("scim-gate-revision", v["revision"].to_string())
                    .header("scim-gate-confirmed", names(&v["confirmed"]))
                    .header("scim-gate-fenced", names(&v["fenced"]));
                Vec::new()
            }
            (_, v) => v
                .map(|v| serde_json::to_vec(&v).unwrap_or_default())
                .unwrap_or_default(),
        };
        if reply.0 != 204 {
            builder = builder
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(http::header::CONTENT_LENGTH, body.len());
        }
        builder
            .header(http::header::CACHE_CONTROL, "no-store")
            .body(body)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(body: &str) -> (u16, String) {
        match parse_create(body.as_bytes()) {
            Ok(_) => panic!("{body} was accepted"),
            Err(Reply(status, v)) => (
                status,
                v.and_then(|v| v["error"].as_str().map(str::to_string))
                    .unwrap_or_default(),
            ),
        }
    }

    #[test]
    fn create_refuses_tenant_names_outside_the_documented_alphabet() {
        let long = "x".repeat(65);
        for tenant in [
            "acme,evil",
            "acmé",
            " acme",
            "a b",
            "",
            "ｅｖｉｌ",
            "a\u{0}",
            &long,
        ] {
            let body = json!({ "tenant": tenant, "idp": "okta" }).to_string();
            let (status, e) = refusal(&body);
            assert_eq!(status, 400, "{tenant:?}");
            assert!(e.starts_with("tenant "), "{tenant:?}: {e}");
        }
        for tenant in ["acme", "Acme-Corp_2.eu", &"x".repeat(64)] {
            let body = json!({ "tenant": tenant, "idp": "okta" }).to_string();
            assert!(parse_create(body.as_bytes()).is_ok(), "{tenant:?}");
        }
    }
}
