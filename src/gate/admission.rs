//! Body admission: a write's body is read and checked as a whole before the upstream receives
//! a complete request.
//!
//! ## Bodies, and Pingora's 64 KiB replay buffer
//! Pingora consumes a request body read in `request_filter`; it replays it to the upstream only
//! from its retry buffer, which holds 64 KiB (`BODY_BUF_LIMIT`; cloudflare/pingora#349, #575,
//! PR #816 proposes early body buffering). So the gate has two paths:
//! * **Replay** (`Content-Length` ≤ 64 KiB — every IdP request we have seen): the body is read in
//!   `request_filter` with retry buffering on, checked *before any upstream connection exists*,
//!   and `request_body_filter` swaps the replayed bytes for the checked (possibly normalised)
//!   ones, with the upstream `Content-Length` set to their exact length.
//! * **Stream** (larger or chunked bodies, up to `max_body_bytes`): Pingora streams the body and
//!   `request_body_filter` withholds every chunk, checks the whole body at its end, and only then
//!   releases it. A rejected body makes the filter fail, so the upstream connection is dropped
//!   with the body incomplete: the upstream never receives a complete invalid request. The
//!   client's framing is kept (so the bytes arrive byte-exact); a normalisation that changes
//!   the length is padded with JSON whitespace when shorter, and not applied when longer (the
//!   request is then forwarded as sent, as `tolerate` would; logged).
//!
//! ## Timeouts
//! `server.body_timeout` bounds both paths: the replay read as a whole, and on the stream path
//! both each read (Pingora's downstream read timeout) and the whole body (checked per chunk, as
//! a client trickling bytes never trips a per-read timeout). Either way the answer is 408.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorType};

use super::ctx::BodyMode;
use super::current::{read_all, Caller, CurrentResources, ReadLimits};
use super::failure::{read_error, reject};
use super::{Gate, GateCtx};
use crate::error::ScimError;
use crate::metrics::Outcome;
use crate::routes::Route;
use crate::scim::{Policy, Request, WriteMethod};
use crate::upstream::same_header_name;

/// Pingora's retry-buffer size (`pingora-core` `BODY_BUF_LIMIT`, not exported).
const REPLAY_LIMIT: usize = 64 * 1024;

/// The current resources one request's PUTs replace may hold this many times
/// `policy.max_body_bytes` together (4 MiB by default): a PUT's body is at most
/// `max_body_bytes`, and what it replaces may be larger (a PUT that drops members), but not
/// without bound (`docs/threat-model.md`, Bulk amplification).
const READ_BUDGET_FACTOR: usize = 4;

/// Reads of current resources in flight at once for one request: enough to make a Bulk of
/// PUTs not wait on one round trip after another, few enough not to flood the directory.
const READ_CONCURRENCY: usize = 4;

impl Gate {
    /// Checks media type and size, answers `Expect: 100-continue`, and either reads and checks the
    /// body now (replay path) or arranges for the stream path.
    pub(super) async fn admit_body(
        &self,
        session: &mut Session,
        ctx: &mut GateCtx,
        route: &Route,
    ) -> Result<(), ScimError> {
        let req = session.req_header();
        ctx.body_method = Some(match req.method {
            http::Method::PUT => WriteMethod::Put,
            http::Method::PATCH => WriteMethod::Patch,
            _ => WriteMethod::Post,
        });
        check_content_type(req)?;
        let length = content_length(req)?;
        if length.is_some_and(|n| n > self.max_body) {
            session.set_keepalive(None);
            return Err(too_large(self.max_body));
        }
        let expects_continue = req
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if expects_continue {
            session
                .req_header_mut()
                .remove_header(&http::header::EXPECT);
            session
                .as_downstream_mut()
                .write_continue_response()
                .await
                .map_err(|_| {
                    ScimError::new(400, None, "could not answer Expect: 100-continue")
                        .reason("body_unreadable")
                })?;
        }
        match length {
            Some(n) if n <= REPLAY_LIMIT => {
                let body = self.read_body(session, n).await?;
                let checked = self.check(route, body, ctx).await?;
                ctx.body = BodyMode::Replay(checked);
            }
            _ => {
                // Pingora reads this body while the upstream waits for it. A client that stops
                // sending must get 408 from this read timeout, before the upstream read timeout
                // (stretched by the same amount in `upstream_peer`) turns it into a 504.
                session
                    .as_downstream_mut()
                    .set_read_timeout(Some(self.body_timeout));
                ctx.body = BodyMode::Stream(BytesMut::new());
            }
        }
        Ok(())
    }

    /// Reads the whole (small) body with retry buffering on, so Pingora replays it and calls
    /// `request_body_filter` once more, where the checked bytes are substituted.
    async fn read_body(&self, session: &mut Session, expected: usize) -> Result<Bytes, ScimError> {
        session.as_downstream_mut().enable_retry_buffering();
        let read = async {
            let mut buf = BytesMut::with_capacity(expected);
            while let Some(chunk) = session.read_request_body().await? {
                buf.extend_from_slice(&chunk);
            }
            Ok::<_, Box<Error>>(buf.freeze())
        };
        match tokio::time::timeout(self.body_timeout, read).await {
            Ok(Ok(b)) => Ok(b),
            Ok(Err(e)) if e.etype() == &ErrorType::ReadTimedout => Err(timeout_408()),
            Ok(Err(_)) => Err(ScimError::new(
                400,
                Some("invalidSyntax"),
                "the request body could not be read",
            )
            .reason("body_unreadable")),
            Err(_) => Err(timeout_408()),
        }
    }

    /// Runs the SCIM checks on a whole body with this gate's policy and upstream.
    async fn check(&self, route: &Route, body: Bytes, ctx: &GateCtx) -> Result<Bytes, ScimError> {
        let Some(token) = ctx.token.as_ref() else {
            return Err(ScimError::new(401, None, "not authenticated"));
        };
        let caller = Caller {
            tenant: token.tenant(),
            token_id: token.id(),
            domains: token.domains(),
        };
        let limits = ReadLimits {
            budget: self.max_body.saturating_mul(READ_BUDGET_FACTOR),
            deadline: self.read_timeout,
            concurrency: READ_CONCURRENCY,
        };
        let (checked, destructive) = check_body(
            &self.policy,
            &self.upstream,
            limits,
            route,
            ctx.body_method,
            body,
            &caller,
        )
        .await?;
        // Counted only once the body passed every check: a refused body changed nothing.
        self.breakers.admit(token, destructive)?;
        Ok(checked)
    }

    /// Substitutes the checked body (replay path) or withholds and then checks it (stream path).
    pub(super) async fn filter_request_body(
        &self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut GateCtx,
    ) -> pingora::Result<()> {
        match &mut ctx.body {
            BodyMode::None => Ok(()),
            BodyMode::Replay(checked) => {
                if end_of_stream {
                    *body = Some(checked.clone());
                } else {
                    *body = Some(Bytes::new());
                }
                Ok(())
            }
            BodyMode::Stream(buf) => {
                if let Some(chunk) = body.take() {
                    buf.extend_from_slice(&chunk);
                }
                if buf.len() > self.max_body {
                    return fail_mid_stream(ctx, too_large(self.max_body));
                }
                // A client trickling bytes never trips the per-read timeout; this bounds the whole.
                if !end_of_stream && ctx.start.is_some_and(|t| t.elapsed() > self.body_timeout) {
                    return fail_mid_stream(ctx, timeout_408());
                }
                if !end_of_stream {
                    // An empty chunk is not written upstream (an absent one would end the body).
                    *body = Some(Bytes::new());
                    return Ok(());
                }
                let whole = std::mem::take(buf).freeze();
                let route = ctx.route.clone();
                let Some(route) = route else {
                    return Error::e_explain(ErrorType::InternalError, "no route");
                };
                match self.check(&route, whole.clone(), ctx).await {
                    Ok(checked) => {
                        *body = Some(fit_length(whole, checked));
                        Ok(())
                    }
                    Err(e) => fail_mid_stream(ctx, e),
                }
            }
        }
    }
}

/// Runs the SCIM checks on a whole body; returns the bytes to forward and how many destructive
/// changes they make (`guards::Breakers`). A PUT's current resource is read through `current`
/// (the upstream, or a test's stub).
pub(super) async fn check_body<C: CurrentResources>(
    policy: &Policy,
    current: &C,
    limits: ReadLimits,
    route: &Route,
    method: Option<WriteMethod>,
    body: Bytes,
    caller: &Caller<'_>,
) -> Result<(Bytes, u32), ScimError> {
    let domains = caller.domains;
    let prepared = match route {
        Route::Search(_) => {
            policy.check_search(&body).map_err(reject)?;
            return Ok((body, 0));
        }
        Route::Bulk => policy.prepare_bulk(&body, domains),
        Route::Collection(resource) | Route::Item(resource, _) => {
            let (method, id) = match route {
                Route::Item(_, id) => (method.unwrap_or(WriteMethod::Patch), Some(id.as_str())),
                _ => (WriteMethod::Post, None),
            };
            policy.prepare(&Request {
                resource: *resource,
                method,
                id,
                body: &body,
                domains,
            })
        }
        _ => return Ok((body, 0)),
    }
    .map_err(reject)?;
    let resources = if prepared.needs().is_empty() {
        HashMap::new()
    } else {
        read_all(current, prepared.needs(), caller, limits)
            .await
            .map_err(|e| read_error(&e))?
    };
    let checked = prepared.finish(&resources).map_err(reject)?;
    let destructive = checked.destructive;
    Ok((checked.body.map(Bytes::from).unwrap_or(body), destructive))
}

/// Records a check failure on the stream path and fails the body filter, which drops the
/// upstream connection with the body incomplete; `fail_to_proxy` then writes the error.
fn fail_mid_stream(ctx: &mut GateCtx, e: ScimError) -> pingora::Result<()> {
    ctx.outcome = Outcome::Rejected;
    let status = e.status;
    ctx.pending_error = Some(e);
    Error::e_explain(
        ErrorType::HTTPStatus(status),
        "SCIM check failed on a streamed body",
    )
}

/// Whether the method carries a body the gate must check.
pub(super) fn has_body(m: &http::Method) -> bool {
    matches!(
        *m,
        http::Method::POST | http::Method::PUT | http::Method::PATCH
    )
}

/// GET and DELETE carry no body to the upstream (RFC 9110 §9.3.1 gives one no meaning): the
/// gate checks bodies only on writes, so one forwarded here would reach the upstream unchecked.
/// Refused (400) rather than dropped, so an IdP sending one learns it was not used.
pub(super) fn check_no_body(req: &RequestHeader) -> Result<(), ScimError> {
    let chunked = req.headers.get(http::header::TRANSFER_ENCODING).is_some();
    let length = req
        .headers
        .get(http::header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes().iter().any(|b| *b != b'0' && *b != b' '));
    if chunked || length {
        return Err(ScimError::new(
            400,
            Some("invalidSyntax"),
            match req.method {
                http::Method::GET => "a GET request carries no body",
                http::Method::DELETE => "a DELETE request carries no body",
                _ => "this request carries no body",
            },
        )
        .reason("body_not_allowed"));
    }
    Ok(())
}

/// Method-override headers and the `_method` parameter some frameworks honour: the gate
/// judges the request by its method, so an upstream that acted on another one would act on
/// something nobody checked. Refused (400), never forwarded.
pub(super) fn check_method_override(req: &RequestHeader) -> Result<(), ScimError> {
    const HEADERS: [&str; 3] = [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    ];
    let header = req.headers.keys().any(|name| {
        HEADERS
            .iter()
            .any(|h| same_header_name(name.as_str().as_bytes(), h.as_bytes()))
    });
    let param = req.uri.query().is_some_and(|q| {
        q.split('&').any(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            percent_encoding::percent_decode_str(name)
                .map(|b| b.to_ascii_lowercase())
                .eq(b"_method".iter().copied())
        })
    });
    if header || param {
        return Err(ScimError::new(
            400,
            Some("invalidSyntax"),
            "method overrides (X-HTTP-Method-Override and the like, _method) are not accepted",
        )
        .reason("method_override"));
    }
    Ok(())
}

fn check_content_type(req: &RequestHeader) -> Result<(), ScimError> {
    let ct = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/scim+json")
        || media.eq_ignore_ascii_case("application/json")
    {
        Ok(())
    } else {
        Err(ScimError::new(
            415,
            Some("invalidSyntax"),
            "Content-Type must be application/scim+json or application/json",
        )
        .reason("media_type"))
    }
}

/// `None` for a chunked body (its length is known only at its end).
fn content_length(req: &RequestHeader) -> Result<Option<usize>, ScimError> {
    if req.headers.get(http::header::TRANSFER_ENCODING).is_some() {
        return Ok(None);
    }
    match req.headers.get(http::header::CONTENT_LENGTH) {
        None => Ok(Some(0)),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| {
                ScimError::new(400, Some("invalidSyntax"), "invalid Content-Length")
                    .reason("content_length")
            }),
    }
}

fn too_large(max: usize) -> ScimError {
    ScimError::new(
        413,
        None,
        format!("the request body is larger than the gate's limit of {max} bytes"),
    )
    .reason("body_too_large")
}

/// The answer to a client whose body did not arrive within `server.body_timeout`.
pub(super) fn timeout_408() -> ScimError {
    ScimError::new(408, None, "the request body did not arrive in time").reason("body_timeout")
}

/// Keeps the client's `Content-Length` valid on the stream path (see the module docs).
fn fit_length(original: Bytes, checked: Bytes) -> Bytes {
    use std::cmp::Ordering as O;
    match checked.len().cmp(&original.len()) {
        O::Equal => checked,
        O::Less => {
            let mut padded = BytesMut::with_capacity(original.len());
            padded.extend_from_slice(&checked);
            padded.resize(original.len(), b' ');
            padded.freeze()
        }
        O::Greater => {
            log::warn!(
                "normalised body is longer than the streamed original; forwarding it as sent"
            );
            original
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::Resource;
    use crate::upstream::{ReadBudget, UpstreamError};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    #[test]
    fn fit_length_pads_or_keeps_the_original() {
        assert_eq!(
            &fit_length(
                Bytes::from_static(b"{\"a\":\"False\"}"),
                Bytes::from_static(b"{\"a\":false}")
            )[..],
            b"{\"a\":false}  "
        );
        assert_eq!(
            &fit_length(Bytes::from_static(b"{}"), Bytes::from_static(b"{ }"))[..],
            b"{}"
        );
    }

    /// A directory holding Users "42" and "u0".."u999", recording who asked for what and how
    /// many reads ran at once; each read takes `delay` and charges the budget for its JSON.
    struct Stub {
        user: serde_json::Value,
        asked: Mutex<Vec<(Resource, String, String)>>,
        delay: Duration,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
    }

    impl Stub {
        fn new(user: serde_json::Value, delay: Duration) -> Stub {
            Stub {
                user,
                asked: Mutex::new(Vec::new()),
                delay,
                in_flight: AtomicUsize::new(0),
                most_in_flight: AtomicUsize::new(0),
            }
        }
    }

    impl CurrentResources for Stub {
        async fn current(
            &self,
            resource: Resource,
            id: &str,
            caller: &Caller<'_>,
            budget: &ReadBudget,
        ) -> Result<Option<serde_json::Value>, UpstreamError> {
            self.asked.lock().expect("lock").push((
                resource,
                id.to_string(),
                caller.tenant.to_string(),
            ));
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if id != "42" && !id.starts_with('u') {
                return Ok(None);
            }
            let mut user = self.user.clone();
            user["id"] = id.into();
            budget.take(user.to_string().len())?;
            Ok(Some(user))
        }
    }

    fn limits() -> ReadLimits {
        ReadLimits {
            budget: 1 << 20,
            deadline: Duration::from_secs(30),
            concurrency: 4,
        }
    }

    fn config() -> crate::config::Config {
        crate::config::Config::from_yaml(
            "upstream: { url: http://127.0.0.1:1/v2 }",
            "t.yaml",
            std::path::Path::new("/"),
        )
        .expect("config")
    }

    const CALLER: Caller<'static> = Caller {
        tenant: "acme",
        token_id: "tok_1",
        domains: &[],
    };

    /// A Bulk request of PUTs, one per id, each sending `user` unchanged.
    fn bulk_of_puts(ids: &[String], user: &serde_json::Value) -> Bytes {
        let ops: Vec<serde_json::Value> = ids
            .iter()
            .map(|id| {
                let mut data = user.clone();
                data["id"] = id.as_str().into();
                serde_json::json!({"method": "PUT", "path": format!("/Users/{id}"), "data": data})
            })
            .collect();
        Bytes::from(
            serde_json::json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                "Operations": ops,
            })
            .to_string(),
        )
    }

    async fn bulk(
        stub: &Stub,
        limits: ReadLimits,
        ids: &[String],
    ) -> Result<(Bytes, u32), ScimError> {
        let cfg = config();
        let body = bulk_of_puts(ids, &stub.user);
        check_body(
            &cfg.policy.compiled,
            stub,
            limits,
            &Route::Bulk,
            None,
            body,
            &CALLER,
        )
        .await
    }

    #[tokio::test]
    async fn a_bulk_reads_each_target_once_a_few_at_a_time() {
        let stub = Stub::new(user("ada@example.com", "Ada"), Duration::from_millis(20));
        let mut ids: Vec<String> = (0..10).map(|i| format!("u{i}")).collect();
        ids.extend(["u0".to_string(), "u3".to_string()]);
        let r = bulk(&stub, limits(), &ids).await;
        assert!(r.is_ok(), "{r:?}");
        let asked = stub.asked.lock().expect("lock").len();
        assert_eq!(asked, 10, "twelve operations on ten users make ten reads");
        assert_eq!(stub.most_in_flight.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn reads_over_the_budget_are_413_and_stop_reading() {
        let stub = Stub::new(user("ada@example.com", "Ada"), Duration::ZERO);
        let one = stub.user.to_string().len();
        let ids: Vec<String> = (0..100).map(|i| format!("u{i}")).collect();
        let tight = ReadLimits {
            budget: one * 10,
            concurrency: 1,
            ..limits()
        };
        let e = bulk(&stub, tight, &ids).await.unwrap_err();
        assert_eq!(e.status, 413, "{}", e.detail);
        assert!(e.detail.contains("PATCH"), "{}", e.detail);
        let asked = stub.asked.lock().expect("lock").len();
        assert!(
            asked <= 12,
            "reading went on after the budget ran out: {asked} reads"
        );
    }

    #[tokio::test]
    async fn reads_past_the_deadline_are_504() {
        let stub = Stub::new(user("ada@example.com", "Ada"), Duration::from_secs(600));
        let short = ReadLimits {
            deadline: Duration::from_millis(50),
            ..limits()
        };
        let e = bulk(&stub, short, &["u1".to_string(), "u2".to_string()])
            .await
            .unwrap_err();
        assert_eq!(e.status, 504, "{}", e.detail);
    }

    fn user(user_name: &str, display: &str) -> serde_json::Value {
        serde_json::json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "42",
            "userName": user_name,
            "displayName": display,
        })
    }

    #[tokio::test]
    async fn a_put_is_compared_with_the_resource_the_seam_returns() {
        let cfg = config();
        let stub = Stub::new(user("ada@example.com", "Ada"), Duration::ZERO);
        let put = |id: &str, body: serde_json::Value| {
            let route = Route::Item(Resource::Users, id.to_string());
            let body = Bytes::from(body.to_string());
            let (policy, stub) = (&cfg.policy.compiled, &stub);
            async move {
                check_body(
                    policy,
                    stub,
                    limits(),
                    &route,
                    Some(WriteMethod::Put),
                    body,
                    &CALLER,
                )
                .await
            }
        };
        // displayName is updatable: the PUT passes.
        assert!(put("42", user("ada@example.com", "Ada L.")).await.is_ok());
        // userName is not: the comparison with the stub's resource refuses it.
        let e = put("42", user("eve@example.com", "Ada")).await.unwrap_err();
        assert_eq!((e.status, e.scim_type), (400, Some("mutability")));
        // A resource the seam does not have is 404.
        let e = put("7", user("ada@example.com", "Ada")).await.unwrap_err();
        assert_eq!(e.status, 404);
        let asked = stub.asked.lock().expect("lock").clone();
        assert_eq!(asked.len(), 3);
        assert_eq!(
            asked[0],
            (Resource::Users, "42".to_string(), "acme".to_string())
        );
    }
}
