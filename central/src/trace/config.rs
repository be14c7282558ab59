//! The `[trace]` section of central's configuration: the contact window and the longest stay.
//! Parsed and checked with the rest of the file by [`crate::config`].

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceConfig {
    /// Close contact: seen at the same checkpoint within this many seconds.
    #[serde(default = "default_window", with = "humantime_serde")]
    pub window: Duration,
    /// Someone who entered and never left counts as gone after this long.
    #[serde(default = "default_max_stay", with = "humantime_serde")]
    pub max_stay: Duration,
}

fn default_window() -> Duration {
    Duration::from_secs(300)
}
fn default_max_stay() -> Duration {
    Duration::from_secs(12 * 3600)
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            window: default_window(),
            max_stay: default_max_stay(),
        }
    }
}
