//! The `[trust]` section of the daemon's configuration: bootstrap and configuration keys,
//! staleness. Parsed and checked with the rest of the file by [`crate::config`].

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfigSection {
    /// Issuer public keys (PEM) used until central's retained trust configuration arrives.
    #[serde(default)]
    pub bootstrap_keys: Vec<PathBuf>,
    /// Trust material older than this is stale and `policy.trust_stale` applies. 0 = never.
    #[serde(default = "default_trust_max_age", with = "humantime_serde")]
    pub max_age: Duration,
    /// Central's configuration-signing public keys (`pki/config-signing.pub`, PEM). Trust
    /// material and face galleries from the network are applied only when signed by one of
    /// them; with none, the box applies nothing from the network.
    #[serde(default)]
    pub config_keys: Vec<PathBuf>,
    /// Signed material published further in the future than this is refused, so a central
    /// with a wrong clock cannot lock boxes out of later updates.
    #[serde(default = "default_max_skew", with = "humantime_serde")]
    pub max_skew: Duration,
}

fn default_max_skew() -> Duration {
    Duration::from_secs(300)
}

impl TrustConfigSection {
    /// What [`crate::trust::Trust::load`] needs from this section.
    pub fn setup<'a>(&'a self, state_dir: &'a std::path::Path) -> crate::trust::TrustSetup<'a> {
        crate::trust::TrustSetup {
            state_dir,
            bootstrap: &self.bootstrap_keys,
            config_keys: &self.config_keys,
            max_age: self.max_age,
            max_skew_s: i64::try_from(self.max_skew.as_secs()).unwrap_or(i64::MAX),
        }
    }
}

fn default_trust_max_age() -> Duration {
    Duration::from_secs(72 * 3600)
}
