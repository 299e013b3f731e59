//! The console's bridge to the admin socket: a fixed list of admin routes (docs/console.md), each
//! forwarded as one call of the CLI's own [`AdminClient`]. Nothing else reaches the socket, so
//! the page cannot be used to send the admin API a request the console was not built to send.
//!
//! Routes the gate may not have yet (decisions, guards, replicas) are forwarded like the rest;
//! the admin socket's 404 for them is what tells the page to hide those views.

use std::path::PathBuf;

use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use crate::client::AdminClient;

/// The largest body the console forwards; a token request is a few hundred bytes.
pub const MAX_BODY: usize = 16 * 1024;

/// A forwarded call's answer: status and JSON body (`Null` for 204).
#[derive(Debug)]
pub struct ProxyReply {
    pub status: u16,
    pub body: Value,
}

fn refuse(status: u16, msg: impl Into<String>) -> ProxyReply {
    ProxyReply {
        status,
        body: json!({ "error": msg.into() }),
    }
}

/// One admin call the console may make, already shaped for the socket.
#[derive(Debug, PartialEq, Eq)]
pub struct AdminCall {
    pub method: &'static str,
    pub path: String,
    pub body: Option<Value>,
}

/// A token or guard id as a path segment: ids are `tok_…`, so anything outside
/// `[A-Za-z0-9._-]` (a slash, a dot segment) is refused rather than encoded into a new route.
fn id_segment(raw: &str) -> Option<String> {
    let id = percent_decode_str(raw).decode_utf8().ok()?;
    let ok = !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    ok.then(|| id.into_owned())
}

/// Keeps only the named query parameters, decoded and encoded again, so nothing else rides along.
fn query_of(query: Option<&str>, allowed: &[&str]) -> Result<String, ProxyReply> {
    let mut out = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if !allowed.contains(&k) {
            return Err(refuse(400, format!("unknown query parameter {k:?}")));
        }
        if v.is_empty() {
            continue;
        }
        let v = percent_decode_str(v).decode_utf8_lossy();
        out.push(format!("{k}={}", utf8_percent_encode(&v, NON_ALPHANUMERIC)));
    }
    Ok(if out.is_empty() {
        String::new()
    } else {
        format!("?{}", out.join("&"))
    })
}

/// Maps a console API request (the path after `/api/admin`) onto an admin call, or refuses it.
pub fn admin_call(
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Result<AdminCall, ProxyReply> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let call = |method, path: String, body| Ok(AdminCall { method, path, body });
    let id = |raw: &str| id_segment(raw).ok_or_else(|| refuse(400, "not a valid id"));
    match (method, segs.as_slice()) {
        ("GET", ["tokens"]) => call("GET", "/tokens".into(), None),
        ("POST", ["tokens"]) => call("POST", "/tokens".into(), Some(json_object(body)?)),
        ("POST", ["tokens", raw, action @ ("refresh" | "activate" | "deactivate")]) => {
            call("POST", format!("/tokens/{}/{action}", id(raw)?), None)
        }
        ("DELETE", ["tokens", raw]) => call("DELETE", format!("/tokens/{}", id(raw)?), None),
        ("GET", ["audit"]) => call(
            "GET",
            format!("/audit{}", query_of(query, &["since"])?),
            None,
        ),
        ("GET", ["decisions"]) => call(
            "GET",
            format!(
                "/decisions{}",
                query_of(query, &["token_id", "since", "limit"])?
            ),
            None,
        ),
        ("GET", ["guards"]) => call("GET", "/guards".into(), None),
        ("POST", ["guards", raw, "release"]) => {
            call("POST", format!("/guards/{}/release", id(raw)?), None)
        }
        ("GET", ["cluster"]) => call("GET", "/cluster".into(), None),
        _ => Err(refuse(404, format!("the console has no {method} {path}"))),
    }
}

/// The create form's body must be one JSON object; the admin API judges its fields.
fn json_object(body: &[u8]) -> Result<Value, ProxyReply> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(refuse(400, "the body must be a JSON object")),
        Err(e) => Err(refuse(400, format!("the body is not JSON: {e}"))),
    }
}

/// Sends a call to the admin socket on a blocking thread (the client is synchronous, one short
/// call per connection). A socket that cannot be reached becomes a 502 that says so in words.
pub async fn forward(socket: PathBuf, call: AdminCall) -> ProxyReply {
    let joined = tokio::task::spawn_blocking(move || {
        AdminClient::new(&socket).call(call.method, &call.path, call.body.as_ref())
    })
    .await;
    match joined {
        Ok(Ok(r)) => ProxyReply {
            status: r.status,
            body: r.body,
        },
        Ok(Err(e)) => refuse(502, e.to_string()),
        Err(e) => refuse(500, format!("console task failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(method: &str, path: &str, query: Option<&str>) -> AdminCall {
        admin_call(method, path, query, b"{}").expect("allowed")
    }

    #[test]
    fn only_the_listed_routes_pass() {
        assert_eq!(ok("GET", "/tokens", None).path, "/tokens");
        assert_eq!(
            ok("POST", "/tokens/tok_1a/refresh", None).path,
            "/tokens/tok_1a/refresh"
        );
        assert_eq!(ok("DELETE", "/tokens/tok_1a", None).method, "DELETE");
        assert_eq!(
            ok("GET", "/audit", Some("since=2026-01-01T00%3A00%3A00Z")).path,
            "/audit?since=2026%2D01%2D01T00%3A00%3A00Z"
        );
        assert_eq!(
            ok("POST", "/guards/tok_9/release", None).path,
            "/guards/tok_9/release"
        );
        for (m, p) in [
            ("GET", "/tokens/tok_1/refresh"),
            ("PUT", "/tokens"),
            ("POST", "/tokens/tok_1/explode"),
            ("POST", "/tokens/../audit/refresh"),
            ("POST", "/tokens/a%2Fb/refresh"),
            ("DELETE", "/tokens/%2E%2E"),
            ("GET", "/"),
        ] {
            assert!(admin_call(m, p, None, b"{}").is_err(), "{m} {p}");
        }
    }

    #[test]
    fn queries_and_bodies_are_checked() {
        assert!(admin_call("GET", "/audit", Some("since=x&evil=1"), b"").is_err());
        assert_eq!(ok("GET", "/audit", Some("since=")).path, "/audit");
        assert_eq!(
            admin_call("POST", "/tokens", None, b"[]")
                .err()
                .map(|r| r.status),
            Some(400)
        );
        assert_eq!(
            admin_call("POST", "/tokens", None, b"{")
                .err()
                .map(|r| r.status),
            Some(400)
        );
    }
}
