//! The `[outbox]` section of the daemon's configuration: its bound and what happens when full.
//! Parsed and checked with the rest of the file by [`crate::config`].

use serde::Deserialize;

/// What the outbox does when appending would exceed its byte bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Keep what is stored; the new event is not stored (its sequence number shows as a gap).
    RefuseNew,
    /// Delete the oldest unacknowledged events until the new one fits.
    DropOldest,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    #[serde(default = "default_outbox_bytes")]
    pub max_bytes: u64,
    #[serde(default = "default_when_full")]
    pub when_full: WhenFull,
    /// sled's page cache; its default of 1 GiB is far too much for a Pi.
    #[serde(default = "default_cache_bytes")]
    pub cache_bytes: u64,
}

fn default_outbox_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_when_full() -> WhenFull {
    WhenFull::RefuseNew
}
fn default_cache_bytes() -> u64 {
    8 * 1024 * 1024
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_bytes: default_outbox_bytes(),
            when_full: default_when_full(),
            cache_bytes: default_cache_bytes(),
        }
    }
}
