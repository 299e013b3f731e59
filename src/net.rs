//! Client networks: CIDR blocks (`server.allowed_networks`, `server.trusted_proxies`, a token's
//! `networks`) and the client address a request is judged by (`docs/guards.md#networks`).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// An IP network in CIDR notation: `10.0.0.0/8`, `2001:db8::/32`; a bare address stands for
/// itself (`/32`, `/128`). Host bits must be zero, so `10.1.2.3/8` (likely a typo) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/PREFIX` or `ADDR`; the error says what is wrong with the text.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR block"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        let cidr = Cidr { net, prefix };
        if cidr.masked(net) != net {
            return Err(format!(
                "{s:?} has bits set after the first {prefix} (did you mean {}/{prefix}?)",
                cidr.masked(net)
            ));
        }
        Ok(cidr)
    }

    /// `ip` with the bits after this block's prefix cleared.
    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((bits & mask).into())
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(bits & mask))
            }
        }
    }

    /// Whether `ip` is inside the block. An IPv4 address seen as IPv4-mapped IPv6
    /// (`::ffff:10.0.0.1`, what a dual-stack listener reports) counts as the IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        ip.is_ipv4() == self.net.is_ipv4() && self.masked(ip) == self.net
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// Whether any block of `list` holds `ip`.
pub fn any_contains(list: &[Cidr], ip: IpAddr) -> bool {
    list.iter().any(|c| c.contains(ip))
}

/// The client address a request is judged by. The TCP peer, unless the peer is a trusted proxy:
/// then `X-Forwarded-For` is read from the right, skipping trusted proxies, and the first
/// address that is not one is the client (the rightmost untrusted hop — everything to its left
/// was written by parties nobody vouches for). A malformed entry ends the walk at the last
/// trusted hop. Without trusted proxies the header is never read.
pub fn client_address<'a>(
    peer: IpAddr,
    trusted: &[Cidr],
    forwarded_for: impl DoubleEndedIterator<Item = &'a [u8]>,
) -> IpAddr {
    if trusted.is_empty() || !any_contains(trusted, peer) {
        return peer;
    }
    let mut client = peer;
    // Every X-Forwarded-For header, in order; each a comma-separated list, read right to left.
    for value in forwarded_for.rev() {
        let Ok(text) = std::str::from_utf8(value) else {
            return client;
        };
        for hop in text.rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                return client;
            };
            client = ip;
            if !any_contains(trusted, ip) {
                return ip;
            }
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn cidr(s: &str) -> Cidr {
        Cidr::parse(s).expect("cidr")
    }

    #[test]
    fn blocks_parse_and_contain() {
        let c = cidr("10.0.0.0/8");
        assert!(c.contains(ip("10.255.1.2")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.1.1.1")), "an IPv4-mapped address");
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(cidr("2001:db8::/32").contains(ip("2001:db8:1::5")));
        assert!(!cidr("2001:db8::/32").contains(ip("10.0.0.1")));
        assert!(cidr("192.0.2.7").contains(ip("192.0.2.7")));
        assert!(!cidr("192.0.2.7").contains(ip("192.0.2.8")));
        assert_eq!(cidr("192.0.2.7").to_string(), "192.0.2.7/32");
        for bad in ["10.0.0.0/33", "10.1.2.3/8", "example.com", "10.0.0.0/x", ""] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(Cidr::parse("10.1.2.3/8")
            .unwrap_err()
            .contains("10.0.0.0/8"));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = [cidr("10.0.0.0/8")];
        let xff = |v: &[&'static str]| v.iter().map(|s| s.as_bytes()).collect::<Vec<_>>();
        // An untrusted peer: the header changes nothing.
        let h = xff(&["192.0.2.1"]);
        assert_eq!(
            client_address(ip("203.0.113.5"), &trusted, h.iter().copied()),
            ip("203.0.113.5")
        );
        // Through a trusted proxy: the rightmost untrusted hop, not the spoofable leftmost.
        let h = xff(&["1.1.1.1, 192.0.2.1, 10.0.0.3"]);
        assert_eq!(
            client_address(ip("10.0.0.2"), &trusted, h.iter().copied()),
            ip("192.0.2.1")
        );
        // Two headers are one list.
        let h = xff(&["1.1.1.1", "192.0.2.9"]);
        assert_eq!(
            client_address(ip("10.0.0.2"), &trusted, h.iter().copied()),
            ip("192.0.2.9")
        );
        // Garbage stops the walk at the last trusted hop.
        let h = xff(&["192.0.2.1, nonsense"]);
        assert_eq!(
            client_address(ip("10.0.0.2"), &trusted, h.iter().copied()),
            ip("10.0.0.2")
        );
        // No trusted proxies: never read.
        let h = xff(&["192.0.2.1"]);
        assert_eq!(
            client_address(ip("10.0.0.2"), &[], h.iter().copied()),
            ip("10.0.0.2")
        );
    }
}
