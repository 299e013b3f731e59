//! `POST {base_path}/oauth/token`: the OAuth 2.0 client-credentials grant (RFC 6749 §4.4,
//! `docs/oauth.md`). The client is a gate token: `client_id` its public id, `client_secret` the
//! token itself, sent with HTTP Basic (RFC 6749 §2.3.1) or as form fields. The answer is a
//! short-lived access token that authenticates SCIM requests as its parent token does; only its
//! hash is kept (in the parent's record, so refreshing, deactivating or deleting the parent
//! revokes it in the same write). The gate answers this route itself; it never reaches the
//! upstream.

use std::time::Duration;

use base64::Engine;
use bytes::BytesMut;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use serde_json::json;

use super::{Gate, GateCtx};
use crate::error::ScimError;
use crate::metrics::{self, Outcome};
use crate::tokens::Change;

/// The largest form the endpoint reads: three short fields.
const MAX_FORM: usize = 4096;

/// Unexpired access tokens kept per parent token; issuing more drops the oldest.
const KEEP_PER_TOKEN: usize = 10;

/// An RFC 6749 §5.2 error: status, `error` code, `error_description`.
struct OAuthError {
    status: u16,
    code: &'static str,
    description: &'static str,
    /// Seconds, for a 429 from the parent token's rate limit.
    retry_after: Option<u64>,
}

impl OAuthError {
    fn invalid_request(description: &'static str) -> OAuthError {
        OAuthError {
            status: 400,
            code: "invalid_request",
            description,
            retry_after: None,
        }
    }

    fn invalid_client() -> OAuthError {
        OAuthError {
            status: 401,
            code: "invalid_client",
            description: "unknown client, wrong secret, or an inactive or expired token",
            retry_after: None,
        }
    }
}

impl Gate {
    /// Answers the token endpoint completely (success or an RFC 6749 error).
    pub(super) async fn token_endpoint(
        &self,
        session: &mut Session,
        ctx: &mut GateCtx,
        ttl: Duration,
    ) -> pingora::Result<()> {
        match self.issue(session, ctx, ttl).await {
            Ok((token, expires_in)) => {
                let body = json!({
                    "access_token": token,
                    "token_type": "Bearer",
                    "expires_in": expires_in,
                })
                .to_string();
                write(session, 200, &body, false, None).await
            }
            Err(e) => {
                ctx.outcome = if e.status == 401 {
                    Outcome::Unauthorized
                } else {
                    Outcome::Rejected
                };
                // For the decision log only; the client gets the RFC 6749 form below.
                ctx.refusal = Some(ScimError::new(e.status, None, e.description).reason(
                    match e.code {
                        "invalid_client" => "oauth_invalid_client",
                        "unsupported_grant_type" => "oauth_unsupported_grant_type",
                        _ => "oauth_invalid_request",
                    },
                ));
                let body = json!({"error": e.code, "error_description": e.description}).to_string();
                write(session, e.status, &body, e.status == 401, e.retry_after).await
            }
        }
    }

    /// Authenticates the client and issues an access token: `(token, expires_in seconds)`.
    async fn issue(
        &self,
        session: &mut Session,
        ctx: &mut GateCtx,
        ttl: Duration,
    ) -> Result<(String, u64), OAuthError> {
        let req = session.req_header();
        if req.method != http::Method::POST {
            return Err(OAuthError {
                status: 405,
                code: "invalid_request",
                description: "the token endpoint takes POST",
                retry_after: None,
            });
        }
        let form_type = req
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form_type {
            return Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let basic = basic_credentials(req)?;
        let body = self.read_form(session).await?;
        let form = parse_form(&body)?;
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        match field("grant_type") {
            None => return Err(OAuthError::invalid_request("grant_type is required")),
            Some("client_credentials") => {}
            Some(_) => {
                return Err(OAuthError {
                    status: 400,
                    code: "unsupported_grant_type",
                    description: "only grant_type=client_credentials is supported",
                    retry_after: None,
                })
            }
        }
        let (id, secret) = match (basic, field("client_id"), field("client_secret")) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                // RFC 6749 §2.3: one authentication method per request.
                return Err(OAuthError::invalid_request(
                    "send the client credentials either with HTTP Basic or in the form, not both",
                ));
            }
            (Some(pair), None, None) => pair,
            (None, Some(id), Some(secret)) => (id.to_string(), secret.to_string()),
            _ => return Err(OAuthError::invalid_client()),
        };
        let parent = self
            .tokens
            .client(&id, secret.as_bytes())
            .ok_or_else(OAuthError::invalid_client)?;
        // The parent's own guards hold here too (its networks, its rate): each issuance writes
        // the token file, so a valid client must not be able to ask without bound.
        if let Err(e) = self
            .guards
            .after_auth(&super::guard_input(session, ctx), &parent)
        {
            ctx.limited = e.limited;
            return Err(OAuthError {
                status: e.status,
                code: if e.status == 429 {
                    "temporarily_unavailable"
                } else {
                    "invalid_client"
                },
                description: if e.status == 429 {
                    "this client is over its rate limit (limits.rate); retry later"
                } else {
                    "requests from this address are not allowed for this client"
                },
                retry_after: e.retry_after,
            });
        }
        ctx.token = Some(parent.clone());
        let change = Change::IssueAccess {
            id: id.clone(),
            ttl,
            keep: KEEP_PER_TOKEN,
        };
        // An admin-plane write (the file, or etcd in cluster mode) on the token endpoint's
        // own request, never on a SCIM request's path.
        let issued = self
            .tokens
            .apply(change, None)
            .await
            .ok()
            .and_then(|c| c.changed.token)
            .ok_or(OAuthError {
                status: 503,
                code: "temporarily_unavailable",
                description: "the access token could not be recorded; try again",
                retry_after: None,
            })?;
        metrics::OAUTH_ISSUED
            .with_label_values(&[parent.idp().as_str()])
            .inc();
        Ok((issued.expose().to_string(), ttl.as_secs()))
    }

    /// The form body, at most [`MAX_FORM`] bytes, within `server.body_timeout`.
    async fn read_form(&self, session: &mut Session) -> Result<BytesMut, OAuthError> {
        let read = async {
            let mut buf = BytesMut::new();
            while let Some(chunk) = session
                .read_request_body()
                .await
                .map_err(|_| OAuthError::invalid_request("the body could not be read"))?
            {
                buf.extend_from_slice(&chunk);
                if buf.len() > MAX_FORM {
                    return Err(OAuthError::invalid_request("the form is too large"));
                }
            }
            Ok(buf)
        };
        tokio::time::timeout(self.body_timeout, read)
            .await
            .unwrap_or(Err(OAuthError::invalid_request(
                "the body did not arrive in time",
            )))
    }
}

/// `Authorization: Basic base64(client_id ":" client_secret)`, each form-urlencoded first
/// (RFC 6749 §2.3.1); `None` without the header. Any other scheme is an invalid client.
fn basic_credentials(
    req: &pingora::http::RequestHeader,
) -> Result<Option<(String, String)>, OAuthError> {
    let mut values = req.headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OAuthError::invalid_request(
            "more than one Authorization header",
        ));
    }
    let value = value.to_str().map_err(|_| OAuthError::invalid_client())?;
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| OAuthError::invalid_client())?;
    let text = String::from_utf8(decoded).map_err(|_| OAuthError::invalid_client())?;
    let (id, secret) = text
        .split_once(':')
        .ok_or_else(OAuthError::invalid_client)?;
    Ok(Some((form_decode(id)?, form_decode(secret)?)))
}

/// `application/x-www-form-urlencoded` pairs; a parameter twice is an invalid request
/// (RFC 6749 §3.2).
fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, OAuthError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| OAuthError::invalid_request("the form is not UTF-8"))?;
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in text.trim().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (form_decode(k)?, form_decode(v)?);
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err(OAuthError::invalid_request(
                "a form parameter appears more than once",
            ));
        }
        out.push((k, v));
    }
    Ok(out)
}

fn form_decode(s: &str) -> Result<String, OAuthError> {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| OAuthError::invalid_request("the form is not valid UTF-8 once decoded"))
}

/// Writes a JSON answer with `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1),
/// and `WWW-Authenticate: Basic` for an invalid client (§5.2).
async fn write(
    session: &mut Session,
    status: u16,
    body: &str,
    challenge: bool,
    retry_after: Option<u64>,
) -> pingora::Result<()> {
    let mut h = ResponseHeader::build(status, Some(5))?;
    h.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    h.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    h.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    h.insert_header(http::header::PRAGMA, "no-cache")?;
    if challenge {
        h.insert_header(http::header::WWW_AUTHENTICATE, "Basic realm=\"scim\"")?;
    }
    if status == 405 {
        h.insert_header(http::header::ALLOW, "POST")?;
    }
    if let Some(s) = retry_after {
        h.insert_header(http::header::RETRY_AFTER, s.to_string())?;
    }
    session.set_keepalive(None);
    session.write_response_header(Box::new(h), false).await?;
    session
        .write_response_body(Some(bytes::Bytes::copy_from_slice(body.as_bytes())), true)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_and_refuse_repeats() {
        let f = parse_form(b"grant_type=client_credentials&client_id=tok_1&client_secret=a%2Bb+c")
            .ok()
            .expect("form");
        assert_eq!(f[2], ("client_secret".to_string(), "a+b c".to_string()));
        assert!(parse_form(b"grant_type=a&grant_type=b").is_err());
    }
}
