//! The guard-rail sections (`limits:`, `guards:`, `server.allowed_networks`,
//! `server.trusted_proxies`) resolved and checked once (`docs/configuration.md#limits`).

use std::time::Duration;

use super::defaults;
use super::raw::{RawDestructive, RawLimits, RawRate};
use super::{ConfigError, Resolver};
use crate::net::Cidr;
use crate::tokens::Idp;

/// A token bucket: `per_second` refill, `burst` capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests per second, above zero.
    pub per_second: f64,
    /// Requests at once after a quiet time, at least 1.
    pub burst: u32,
}

/// `limits:`.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    /// The rate of every token whose IdP has no override.
    pub rate: Rate,
    /// Per-IdP overrides.
    pub per_idp: Vec<(Idp, Rate)>,
    /// Requests in flight to the directory, all tokens together; at least 1.
    pub upstream_max_in_flight: usize,
}

impl LimitsConfig {
    /// The rate that applies to a token of `idp`.
    pub fn rate_for(&self, idp: Idp) -> Rate {
        self.per_idp
            .iter()
            .find(|(i, _)| *i == idp)
            .map_or(self.rate, |(_, r)| *r)
    }
}

/// `guards.destructive:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestructiveConfig {
    /// Destructive requests allowed inside `window`; the next one trips the breaker. At least 1.
    pub max: u32,
    /// Above zero.
    pub window: Duration,
}

impl Resolver<'_> {
    pub(super) fn limits(&self, raw: RawLimits) -> Result<LimitsConfig, ConfigError> {
        let rate = self.rate(
            "limits.rate",
            "limits.burst",
            RawRate {
                rate: raw.rate,
                burst: raw.burst,
            },
            Rate {
                per_second: defaults::RATE,
                burst: defaults::BURST,
            },
        )?;
        let mut per_idp = Vec::new();
        for (name, r) in raw.per_idp.unwrap_or_default() {
            let idp = Idp::parse(&name).ok_or_else(|| {
                self.invalid(
                    "limits.per_idp",
                    format!(
                        "{name:?} is not an IdP (entra, okta, google, onelogin, jumpcloud, other)"
                    ),
                )
            })?;
            let rate = self
                .rate("limits.per_idp", "limits.per_idp", r, rate)
                .map_err(|e| match e {
                    ConfigError::Invalid { file, key, reason } => ConfigError::Invalid {
                        file,
                        key,
                        reason: format!("{name}: {reason}"),
                    },
                    e => e,
                })?;
            per_idp.push((idp, rate));
        }
        let upstream_max_in_flight = raw
            .upstream_max_in_flight
            .unwrap_or(defaults::UPSTREAM_MAX_IN_FLIGHT);
        if upstream_max_in_flight == 0 {
            return Err(self.invalid("limits.upstream_max_in_flight", "must be at least 1".into()));
        }
        Ok(LimitsConfig {
            rate,
            per_idp,
            upstream_max_in_flight,
        })
    }

    fn rate(
        &self,
        rate_key: &'static str,
        burst_key: &'static str,
        raw: RawRate,
        default: Rate,
    ) -> Result<Rate, ConfigError> {
        let per_second = raw.rate.unwrap_or(default.per_second);
        if !(per_second.is_finite() && per_second > 0.0) {
            return Err(self.invalid(
                rate_key,
                format!("rate must be above zero (requests per second), got {per_second}"),
            ));
        }
        let burst = raw.burst.unwrap_or(default.burst);
        if burst == 0 {
            return Err(self.invalid(burst_key, "burst must be at least 1".into()));
        }
        Ok(Rate { per_second, burst })
    }

    pub(super) fn destructive(
        &self,
        raw: RawDestructive,
    ) -> Result<DestructiveConfig, ConfigError> {
        let max = raw.max.unwrap_or(defaults::DESTRUCTIVE_MAX);
        if max == 0 {
            return Err(self.invalid("guards.destructive.max", "must be at least 1".into()));
        }
        let window = raw.window.unwrap_or(defaults::DESTRUCTIVE_WINDOW);
        if window.is_zero() {
            return Err(self.invalid("guards.destructive.window", "must be above zero".into()));
        }
        Ok(DestructiveConfig { max, window })
    }

    pub(super) fn networks(
        &self,
        key: &'static str,
        raw: Option<Vec<String>>,
    ) -> Result<Vec<Cidr>, ConfigError> {
        raw.unwrap_or_default()
            .iter()
            .map(|s| Cidr::parse(s).map_err(|e| self.invalid(key, e)))
            .collect()
    }
}
