//! Allowed client networks: `server.allowed_networks` before authentication, a token's own
//! `networks` after it (403 either way). The client address is the TCP peer, or — from a peer in
//! `server.trusted_proxies` only — the rightmost untrusted hop of `X-Forwarded-For`
//! ([`crate::net::client_address`]), so a client cannot name its own address by sending the
//! header.

use std::net::IpAddr;

use super::Limited;
use crate::error::ScimError;
use crate::gate::{GuardInput, RequestGuard};
use crate::net::{any_contains, client_address, Cidr};
use crate::tokens::TokenInfo;

/// The network guard, built once from `server:`.
pub(crate) struct NetworkGuard {
    allowed: Vec<Cidr>,
    trusted_proxies: Vec<Cidr>,
}

impl NetworkGuard {
    pub(crate) fn new(allowed: Vec<Cidr>, trusted_proxies: Vec<Cidr>) -> NetworkGuard {
        NetworkGuard {
            allowed,
            trusted_proxies,
        }
    }

    /// The address the request is judged by; `None` when there is no TCP peer (a Unix socket:
    /// nothing to judge).
    fn client(&self, req: &GuardInput<'_>) -> Option<IpAddr> {
        let peer = req.client?.ip();
        let forwarded = req
            .head
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.as_bytes());
        Some(client_address(peer, &self.trusted_proxies, forwarded))
    }
}

fn refused(what: &str) -> ScimError {
    Limited::Network.count();
    ScimError::new(
        403,
        None,
        format!("requests from this address are not allowed ({what})"),
    )
    .limited(Limited::Network)
    .reason("network_refused")
}

impl RequestGuard for NetworkGuard {
    fn before_auth(&self, req: &GuardInput<'_>) -> Result<(), ScimError> {
        if self.allowed.is_empty() {
            return Ok(());
        }
        match self.client(req) {
            Some(ip) if !any_contains(&self.allowed, ip) => Err(refused("server.allowed_networks")),
            _ => Ok(()),
        }
    }

    fn after_auth(&self, req: &GuardInput<'_>, token: &TokenInfo) -> Result<(), ScimError> {
        let networks = token.networks();
        if networks.is_empty() {
            return Ok(());
        }
        match self.client(req) {
            Some(ip) if !any_contains(networks, ip) => Err(refused("the token's networks")),
            _ => Ok(()),
        }
    }
}
