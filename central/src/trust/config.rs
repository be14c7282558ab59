//! The `[trust]` section of central's configuration: the issuer keys boxes trust and the signing
//! key. Parsed and checked with the rest of the file by [`crate::config`].

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustSection {
    /// Issuer public keys boxes must trust (PEM files or key directories). Empty: central
    /// publishes no trust material and boxes keep their bootstrap keys.
    #[serde(default)]
    pub keys: Vec<PathBuf>,
    /// Republish this often so boxes see fresh material (their staleness limit is longer).
    #[serde(default = "default_republish", with = "humantime_serde")]
    pub republish_every: Duration,
    /// Central's configuration-signing key (`pki/config-signing.key`, mode 0600): trust
    /// material and galleries are signed with it, and boxes apply nothing unsigned. Required
    /// when `keys` is given.
    #[serde(default)]
    pub signing_key: Option<PathBuf>,
}

fn default_republish() -> Duration {
    Duration::from_secs(6 * 3600)
}

impl Default for TrustSection {
    fn default() -> Self {
        TrustSection {
            keys: Vec::new(),
            republish_every: default_republish(),
            signing_key: None,
        }
    }
}
