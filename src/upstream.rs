//! The upstream directory: the Pingora peer every request goes to, and a small client for the
//! reads the gate makes itself (the current resource a PUT is compared with).

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::HeaderValue;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;

use crate::config::{Config, UpstreamTarget};
use crate::metrics::UpstreamErrorKind;

/// The bytes one request's reads of current resources may hold, all reads together (a Bulk
/// request of PUTs shares one budget). Without it, a small Bulk request naming many large
/// Groups made the gate hold every one of them at once (reliability finding 2,
/// `docs/threat-model.md`). Shared by reads running concurrently, hence atomic.
#[derive(Debug)]
pub struct ReadBudget {
    limit: usize,
    left: AtomicUsize,
}

impl ReadBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> ReadBudget {
        ReadBudget {
            limit,
            left: AtomicUsize::new(limit),
        }
    }

    /// Takes `n` bytes from the budget; `Err` (and nothing taken) when fewer are left.
    pub(crate) fn take(&self, n: usize) -> Result<(), UpstreamError> {
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(n)
            })
            .map(|_| ())
            .map_err(|_| UpstreamError::OverBudget(self.limit))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot resolve upstream {0}: {1}")]
    Resolve(String, String),
    /// A configured value that cannot be sent as a header (checked at start).
    #[error("{0} cannot be sent as an HTTP header value")]
    Header(String),
    #[error("upstream unreachable: {0}")]
    Connect(String),
    #[error("upstream timed out: {0}")]
    Timeout(String),
    #[error("upstream answered {0} when the gate read the current resource")]
    Status(u16),
    #[error("upstream sent a body the gate cannot read: {0}")]
    Body(String),
    /// Not the upstream's fault: the resources one request replaces are larger, together, than
    /// the gate holds for a comparison ([`ReadBudget`]).
    #[error("the resources this request replaces hold more than {0} bytes")]
    OverBudget(usize),
}

impl UpstreamError {
    /// The SCIM error status for the IdP, and the kind the failure is counted as.
    pub fn status_and_kind(&self) -> (u16, UpstreamErrorKind) {
        match self {
            UpstreamError::Timeout(_) => (504, UpstreamErrorKind::Timeout),
            UpstreamError::Status(_) | UpstreamError::Body(_) => {
                (502, UpstreamErrorKind::BadResponse)
            }
            // Answered 413 by the gate (`gate::failure::read_error`); never counted as the
            // upstream's error. Listed here so the match stays total.
            UpstreamError::OverBudget(_) => (413, UpstreamErrorKind::Other),
            UpstreamError::Resolve(..) | UpstreamError::Connect(_) | UpstreamError::Header(_) => {
                (502, UpstreamErrorKind::Connect)
            }
        }
    }
}

/// Removes every spelling of the gate's identity headers (`X-Scim-Tenant`, `X-Scim-Token-Id`
/// with dashes or underscores, any case) before the gate sets its own: a CGI or WSGI upstream
/// reads `X_Scim_Tenant` as the same `HTTP_X_SCIM_TENANT` variable. Allocates nothing unless a
/// client sent one.
fn strip_identity_spellings(req: &mut RequestHeader) {
    const OWN: [&[u8]; 2] = [b"x-scim-tenant", b"x-scim-token-id"];
    while let Some(name) = req
        .headers
        .keys()
        .find(|n| {
            OWN.iter()
                .any(|own| same_header_name(n.as_str().as_bytes(), own))
        })
        .cloned()
    {
        req.remove_header(&name);
    }
}

/// Header names compared as CGI/WSGI upstreams see them: case-insensitive, `_` the same as `-`.
pub(crate) fn same_header_name(name: &[u8], wanted: &[u8]) -> bool {
    let fold = |b: u8| match b {
        b'_' => b'-',
        b => b.to_ascii_lowercase(),
    };
    name.len() == wanted.len() && name.iter().zip(wanted).all(|(a, b)| fold(*a) == fold(*b))
}

/// A configured value as a header value; at start, so a bad one stops the gate with its name.
fn header_value(value: &str, what: &str) -> Result<HeaderValue, UpstreamError> {
    HeaderValue::from_str(value).map_err(|_| UpstreamError::Header(what.to_string()))
}

/// Everything about the upstream, built once at start.
pub struct Upstream {
    pub target: UpstreamTarget,
    /// `scheme://authority/path` as the upstream names itself in `Location` and `meta.location`.
    pub prefix: String,
    /// `upstream.url` holds `{tenant}`: the path and prefix differ per token.
    pub per_tenant: bool,
    /// `upstream.authorization` as the header value it is sent as, built once.
    authorization: Option<HeaderValue>,
    /// The upstream's `Host`, built once.
    host: HeaderValue,
    peer: HttpPeer,
    connector: Connector,
}

impl Upstream {
    /// Resolves the host once: `HttpPeer::new` with a host name would resolve it synchronously
    /// on every request, blocking a worker thread on DNS.
    pub fn new(cfg: &Config) -> Result<Upstream, UpstreamError> {
        let target = cfg.upstream.target.clone();
        let addr: SocketAddr = (target.host.as_str(), target.port)
            .to_socket_addrs()
            .map_err(|e| UpstreamError::Resolve(target.authority.clone(), e.to_string()))?
            .next()
            .ok_or_else(|| UpstreamError::Resolve(target.authority.clone(), "no address".into()))?;
        let mut peer = HttpPeer::new(addr, target.tls, target.host.clone());
        let o = &mut peer.options;
        o.connection_timeout = Some(cfg.upstream.connect_timeout);
        o.total_connection_timeout = Some(cfg.upstream.connect_timeout);
        o.read_timeout = Some(cfg.upstream.read_timeout);
        o.write_timeout = Some(cfg.upstream.read_timeout);
        o.verify_cert = true;
        o.verify_hostname = true;
        o.idle_timeout = Some(Duration::from_secs(60));
        let scheme = if target.tls { "https" } else { "http" };
        Ok(Upstream {
            prefix: format!("{scheme}://{}{}", target.authority, target.path),
            per_tenant: target.path.contains(crate::config::TENANT_PLACEHOLDER),
            authorization: match &cfg.upstream.authorization {
                Some(a) => Some(header_value(a.value.expose(), "upstream.authorization")?),
                None => None,
            },
            host: header_value(&target.authority, "upstream.url's host")?,
            target,
            peer,
            connector: Connector::new(None),
        })
    }

    /// The upstream root's path for `tenant` (`{tenant}` replaced; tenant names are
    /// `[A-Za-z0-9._-]` without dot segments, so no encoding is needed and no root is left).
    pub fn path_for(&self, tenant: &str) -> std::borrow::Cow<'_, str> {
        if self.per_tenant {
            self.target
                .path
                .replace(crate::config::TENANT_PLACEHOLDER, tenant)
                .into()
        } else {
            self.target.path.as_str().into()
        }
    }

    /// [`Upstream::prefix`] for `tenant`: what the response rewrite replaces.
    pub fn prefix_for(&self, tenant: &str) -> std::borrow::Cow<'_, str> {
        if self.per_tenant {
            self.prefix
                .replace(crate::config::TENANT_PLACEHOLDER, tenant)
                .into()
        } else {
            self.prefix.as_str().into()
        }
    }

    /// A peer for Pingora's proxy phase (cloned: Pingora takes ownership of a boxed peer).
    pub fn peer(&self) -> Box<HttpPeer> {
        Box::new(self.peer.clone())
    }

    /// Fills the headers every upstream request carries: its `Host`, its credential (the IdP's
    /// own `Authorization` never travels on), and the token's identity (`tenant` as a header
    /// value already, so a caller reports an invalid one in its own terms).
    pub fn set_headers(
        &self,
        req: &mut RequestHeader,
        tenant: HeaderValue,
        token_id: &str,
    ) -> pingora::Result<()> {
        req.remove_header(&http::header::AUTHORIZATION);
        if let Some(auth) = &self.authorization {
            req.insert_header(http::header::AUTHORIZATION, auth.clone())?;
        }
        req.insert_header(http::header::HOST, self.host.clone())?;
        strip_identity_spellings(req);
        req.insert_header("X-Scim-Tenant", tenant)?;
        req.insert_header("X-Scim-Token-Id", token_id)?;
        Ok(())
    }

    /// GETs `suffix` (e.g. `/Users/42`) below the upstream root. `Ok(None)` is a 404. Every
    /// byte of the answer is taken from `budget` as it arrives, so an over-large answer is cut
    /// off, not held.
    pub async fn get_json(
        &self,
        suffix: &str,
        tenant: &str,
        token_id: &str,
        budget: &ReadBudget,
    ) -> Result<Option<serde_json::Value>, UpstreamError> {
        let classify = |e: Box<pingora::Error>| {
            let msg = e.to_string();
            match e.etype() {
                pingora::ErrorType::ConnectTimedout
                | pingora::ErrorType::ReadTimedout
                | pingora::ErrorType::WriteTimedout => UpstreamError::Timeout(msg),
                _ => UpstreamError::Connect(msg),
            }
        };
        let (mut session, _reused) = self
            .connector
            .get_http_session(&self.peer)
            .await
            .map_err(classify)?;
        let path = format!("{}{}", self.path_for(tenant), suffix);
        let mut req = RequestHeader::build("GET", path.as_bytes(), None).map_err(classify)?;
        req.insert_header(
            http::header::ACCEPT,
            "application/scim+json, application/json",
        )
        .map_err(classify)?;
        let tenant = HeaderValue::from_str(tenant)
            .map_err(|e| UpstreamError::Connect(format!("tenant is no header value: {e}")))?;
        self.set_headers(&mut req, tenant, token_id)
            .map_err(classify)?;
        session
            .write_request_header(Box::new(req))
            .await
            .map_err(classify)?;
        session.finish_request_body().await.map_err(classify)?;
        session.read_response_header().await.map_err(classify)?;
        let status = session.response_header().map_or(0, |h| h.status.as_u16());
        let mut body = Vec::new();
        while let Some(chunk) = session.read_response_body().await.map_err(classify)? {
            budget.take(chunk.len())?;
            body.extend_from_slice(&chunk);
        }
        self.connector
            .release_http_session(session, &self.peer, None)
            .await;
        match status {
            404 => Ok(None),
            200 => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| UpstreamError::Body(e.to_string())),
            s => Err(UpstreamError::Status(s)),
        }
    }
}
