//! What `scim-gate console` needs to know before it listens: which admin socket to talk to,
//! where to listen (loopback only), and the public SCIM base URL the create dialog shows.
//!
//! The admin plane is reached through a Unix socket precisely so that it is not on the network
//! (docs/console.md); a console listening on a routable address would undo that, so anything but
//! a loopback address is refused before a socket is opened.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::config::Config;

/// Why the console cannot start; each names what to change.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("--listen {0:?} is not an IP address and port (for example 127.0.0.1:0)")]
    BadListen(String),
    #[error("--listen {0} is not a loopback address: the console serves the admin plane and stays on 127.0.0.0/8 or [::1]")]
    NotLoopback(SocketAddr),
    #[error("the console needs --socket PATH or -c CONFIG")]
    NoSocket,
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("--scim-url {0:?} must be an http:// or https:// URL")]
    BadScimUrl(String),
}

/// The command-line choices, before they are checked.
#[derive(Debug, Clone, Default)]
pub struct ConsoleOptions {
    pub config: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub listen: String,
    pub scim_url: Option<String>,
}

/// Checked settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub socket: PathBuf,
    pub listen: SocketAddr,
    /// The gate's public SCIM root, shown with a new secret; `None` when neither the config nor
    /// `--scim-url` says it.
    pub scim_url: Option<String>,
}

impl Settings {
    /// Checks the options; the config (when given) is read with the gate's own loader, so the
    /// console finds the socket exactly where the gate put it.
    pub fn resolve(opts: &ConsoleOptions) -> Result<Settings, SettingsError> {
        let listen = loopback_listen(&opts.listen)?;
        let config = opts.config.as_deref().map(Config::load).transpose()?;
        let socket = match (&opts.socket, &config) {
            (Some(s), _) => s.clone(),
            (None, Some(c)) => c.admin.socket.clone(),
            (None, None) => return Err(SettingsError::NoSocket),
        };
        let scim_url = match (&opts.scim_url, &config) {
            (Some(u), _) => Some(checked_url(u)?),
            (None, Some(c)) => scim_url_from(c),
            (None, None) => None,
        };
        Ok(Settings {
            socket,
            listen,
            scim_url,
        })
    }
}

/// Parses `--listen` and refuses every address that is not loopback.
pub fn loopback_listen(s: &str) -> Result<SocketAddr, SettingsError> {
    let addr: SocketAddr = s
        .parse()
        .map_err(|_| SettingsError::BadListen(s.to_string()))?;
    if !addr.ip().is_loopback() {
        return Err(SettingsError::NotLoopback(addr));
    }
    Ok(addr)
}

fn checked_url(u: &str) -> Result<String, SettingsError> {
    let ok = (u.starts_with("http://") || u.starts_with("https://"))
        && !u.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(u.trim_end_matches('/').to_string())
    } else {
        Err(SettingsError::BadScimUrl(u.to_string()))
    }
}

/// The SCIM root an IdP would use, from the gate's first listen address: `https` when the gate
/// terminates TLS. An unspecified address (`0.0.0.0`) says nothing about the name IdPs use, so
/// the machine's loopback stands in and `--scim-url` gives the real one (docs/console.md).
fn scim_url_from(c: &Config) -> Option<String> {
    let addr: SocketAddr = c.server.listen.first()?.parse().ok()?;
    let scheme = if c.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let host = SocketAddr::new(ip, addr.port());
    Some(format!("{scheme}://{host}{}", c.base_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_listens() {
        assert!(loopback_listen("127.0.0.1:0").is_ok());
        assert!(loopback_listen("127.8.9.1:8000").is_ok());
        assert!(loopback_listen("[::1]:0").is_ok());
        for bad in ["0.0.0.0:0", "[::]:0", "192.168.1.2:80", "10.0.0.1:1"] {
            assert!(
                matches!(loopback_listen(bad), Err(SettingsError::NotLoopback(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            loopback_listen("localhost:80"),
            Err(SettingsError::BadListen(_))
        ));
    }

    #[test]
    fn scim_url_comes_from_the_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = Config::from_yaml(
            "server: { listen: 0.0.0.0:8443 }\nbase_path: /scim/v2\nupstream: { url: http://127.0.0.1:1/v2 }\n",
            "t.yaml",
            dir.path(),
        )
        .expect("config");
        assert_eq!(
            scim_url_from(&cfg).as_deref(),
            Some("http://127.0.0.1:8443/scim/v2")
        );
        assert!(checked_url("ftp://x").is_err());
        assert_eq!(
            checked_url("https://gate.example.com/scim/v2/")
                .ok()
                .as_deref(),
            Some("https://gate.example.com/scim/v2")
        );
    }
}
