//! MQTT connection plumbing shared by the box daemon and central: the transport section of both
//! configurations, the rustls client configuration for mutual TLS, and reconnect backoff.
//!
//! # Layout
//! - [`Transport`]: `{ kind = "tls", ca, cert, key }` or an explicit `{ kind = "plain" }`.
//! - [`tls`]: PEM files to a rustls `ClientConfig` (ring provider passed explicitly).
//! - [`Backoff`]: exponential backoff with full jitter.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub mod tls;

/// How to reach the broker.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Transport {
    /// Mutual TLS: the broker's CA, and this client's certificate chain and private key (PEM).
    Tls {
        ca: PathBuf,
        cert: PathBuf,
        key: PathBuf,
    },
    /// Unencrypted TCP. Only for a broker on the same machine or a lab; must be chosen explicitly.
    Plain,
}

impl Transport {
    /// The rumqttc transport, loading the TLS files now so a bad file is a clear start-up error.
    pub fn to_rumqttc(&self) -> Result<rumqttc::Transport, tls::TlsError> {
        Ok(match self {
            Transport::Tls { ca, cert, key } => rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(tls::client_config(ca, cert, key)?),
            ),
            Transport::Plain => rumqttc::Transport::tcp(),
        })
    }

    /// Paths that must not be empty, for configuration checks: `(field, path)`.
    pub fn files(&self) -> Vec<(&'static str, &PathBuf)> {
        match self {
            Transport::Tls { ca, cert, key } => vec![("ca", ca), ("cert", cert), ("key", key)],
            Transport::Plain => Vec::new(),
        }
    }
}

/// Exponential backoff with full jitter between `min` and the current ceiling, which doubles
/// after every failure up to `max`.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    ceiling: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            ceiling: min,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let lo = self.min.as_millis() as u64;
        let hi = (self.ceiling.as_millis() as u64).max(lo);
        self.ceiling = (self.ceiling * 2).min(self.max);
        Duration::from_millis(fastrand::u64(lo..=hi))
    }

    pub fn reset(&mut self) {
        self.ceiling = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap_and_resets() {
        let (min, max) = (Duration::from_millis(100), Duration::from_millis(1000));
        let mut b = Backoff::new(min, max);
        let mut ceilings = Vec::new();
        for _ in 0..8 {
            let ceiling = b.ceiling;
            let d = b.next_delay();
            assert!(
                d >= min && d <= ceiling,
                "{d:?} outside [{min:?}, {ceiling:?}]"
            );
            ceilings.push(ceiling.as_millis());
        }
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
        let draws: std::collections::HashSet<_> = (0..20).map(|_| b.next_delay()).collect();
        assert!(draws.len() > 1, "jitter");
        b.reset();
        assert!(b.next_delay() <= min);
    }
}
