//! Parsers for the configuration's scalar values: durations, the base path, the upstream URL.
//! Each returns a reason string; [`super::Config::resolve`] adds the file and the key.

use std::time::Duration;

/// The upstream's SCIM root, split into what Pingora's `HttpPeer` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTarget {
    /// `https://`: the gate verifies the upstream's certificate.
    pub tls: bool,
    /// Host name or IP literal, without brackets; used for SNI and certificate checks.
    pub host: String,
    /// The URL's port, or 80 / 443.
    pub port: u16,
    /// The `Host` header value the upstream expects (`host` or `host:port`).
    pub authority: String,
    /// Path prefix without a trailing slash, e.g. `/v2` (empty for the root).
    pub path: String,
}

/// `/scim/v2/` → `/scim/v2`; the root is the empty string so joins stay simple.
pub(super) fn normalize_base_path(p: &str) -> Result<String, String> {
    if !p.starts_with('/') {
        return Err(format!("{p:?} must start with '/'"));
    }
    if p.contains("//")
        || p.contains('%')
        || p.contains('?')
        || p.split('/').any(|s| s == "." || s == "..")
    {
        return Err(format!(
            "{p:?} must be a plain path (no //, %, ?, dot segments)"
        ));
    }
    Ok(p.trim_end_matches('/').to_string())
}

/// Stands for the authenticated token's tenant in `upstream.url`'s path (`docs/configuration.md#upstream`).
pub const TENANT_PLACEHOLDER: &str = "{tenant}";

/// Splits `http(s)://host[:port][/path]` without pulling in a URL crate for one field.
pub fn parse_upstream_url(url: &str) -> Result<UpstreamTarget, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("{url:?}: must start with http:// or https://"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("{url:?}: needs a host (and no user info)"));
    }
    if authority.contains(TENANT_PLACEHOLDER) {
        return Err(format!(
            "{url:?}: {TENANT_PLACEHOLDER} may stand only in the path (the host is resolved once, at start)"
        ));
    }
    if path.contains('{') && path.replace(TENANT_PLACEHOLDER, "").contains(['{', '}']) {
        return Err(format!(
            "{url:?}: the only placeholder is {TENANT_PLACEHOLDER}"
        ));
    }
    if path.contains('?') || path.contains('#') {
        return Err(format!("{url:?}: no query or fragment allowed"));
    }
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(r) = authority.strip_prefix('[') {
        let end = r
            .find(']')
            .ok_or_else(|| format!("{url:?}: bad IPv6 literal"))?;
        let host = &r[..end];
        let port = match &r[end + 1..] {
            "" => default_port,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("{url:?}: bad port"))?,
        };
        (host.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse().map_err(|_| format!("{url:?}: bad port {p:?}"))?,
            ),
            None => (authority.to_string(), default_port),
        }
    };
    if host.is_empty() {
        return Err(format!("{url:?}: empty host"));
    }
    Ok(UpstreamTarget {
        tls,
        host,
        port,
        authority: authority.to_string(),
        path: path.trim_end_matches('/').to_string(),
    })
}

/// Parses `500ms`, `2s`, `10m`, `1h`, `365d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?}: missing unit (ms, s, m, h, d)"))?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number followed by ms, s, m, h or d"))?;
    let secs = |mult: u64| {
        n.checked_mul(mult)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{s:?}: too large"))
    };
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => Err(format!(
            "{s:?}: unknown unit {unit:?} (use ms, s, m, h or d)"
        )),
    }
}

/// The inverse of [`parse_duration`], choosing the largest exact unit.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if s != 0 && s.is_multiple_of(size) {
            return format!("{}{unit}", s / size);
        }
    }
    format!("{s}s")
}
