//! The `[broker]` and `[ingest]` sections of central's configuration: the broker session and the
//! batching. Parsed and checked with the rest of the file by [`crate::config`].

use std::path::PathBuf;
use std::time::Duration;

use checkpoint_link::Transport;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    pub host: String,
    pub port: u16,
    pub transport: Transport,
    #[serde(default = "default_client_id")]
    pub client_id: String,
    #[serde(default = "default_keep_alive", with = "humantime_serde")]
    pub keep_alive: Duration,
    #[serde(default = "default_backoff_min", with = "humantime_serde")]
    pub backoff_min: Duration,
    #[serde(default = "default_backoff_max", with = "humantime_serde")]
    pub backoff_max: Duration,
}

fn default_client_id() -> String {
    "checkpoint-central".to_string()
}
fn default_keep_alive() -> Duration {
    Duration::from_secs(30)
}
fn default_backoff_min() -> Duration {
    Duration::from_millis(500)
}
fn default_backoff_max() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    #[serde(default = "default_batch_max")]
    pub batch_max: usize,
    #[serde(default = "default_batch_wait", with = "humantime_serde")]
    pub batch_wait: Duration,
    #[serde(default = "default_gap_grace", with = "humantime_serde")]
    pub gap_grace: Duration,
    /// A box not heard from (status, telemetry or events) for this long is offline.
    #[serde(default = "default_silent", with = "humantime_serde")]
    pub box_silent: Duration,
    /// The site PKI directory: messages are accepted only from boxes with a current
    /// certificate in its `boxes/` (issued and not revoked). Defaults to
    /// `embedded_broker.pki_dir`; without either, any box the broker admits is accepted.
    #[serde(default)]
    pub pki_dir: Option<PathBuf>,
}

fn default_silent() -> Duration {
    Duration::from_secs(120)
}

fn default_batch_max() -> usize {
    512
}
fn default_batch_wait() -> Duration {
    Duration::from_millis(20)
}
fn default_gap_grace() -> Duration {
    Duration::from_secs(600)
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            batch_max: default_batch_max(),
            batch_wait: default_batch_wait(),
            gap_grace: default_gap_grace(),
            box_silent: default_silent(),
            pki_dir: None,
        }
    }
}
