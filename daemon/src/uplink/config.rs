//! The `[uplink]` section of the daemon's configuration: the broker and the pace of sending. Parsed
//! and checked with the rest of the file by [`crate::config`].

use std::time::Duration;

use checkpoint_link::Transport;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkConfig {
    pub host: String,
    pub port: u16,
    pub transport: Transport,
    /// Defaults to the box id (which the broker's ACL may pin to the certificate).
    pub client_id: Option<String>,
    #[serde(default = "default_keep_alive", with = "humantime_serde")]
    pub keep_alive: Duration,
    #[serde(default = "default_telemetry", with = "humantime_serde")]
    pub telemetry_interval: Duration,
    /// An event without an end-to-end ack after this long is published again.
    #[serde(default = "default_resend", with = "humantime_serde")]
    pub resend_after: Duration,
    /// Backlog events (stored before the current connection) sent per second; live events are
    /// not limited.
    #[serde(default = "default_drain")]
    pub drain_per_s: u32,
    #[serde(default = "default_backoff_min", with = "humantime_serde")]
    pub backoff_min: Duration,
    #[serde(default = "default_backoff_max", with = "humantime_serde")]
    pub backoff_max: Duration,
}

fn default_keep_alive() -> Duration {
    Duration::from_secs(30)
}
fn default_telemetry() -> Duration {
    Duration::from_secs(30)
}
fn default_resend() -> Duration {
    Duration::from_secs(30)
}
fn default_drain() -> u32 {
    50
}
fn default_backoff_min() -> Duration {
    Duration::from_millis(500)
}
fn default_backoff_max() -> Duration {
    Duration::from_secs(60)
}

impl UplinkConfig {
    pub fn keep_alive(&self) -> Duration {
        self.keep_alive
    }
}
