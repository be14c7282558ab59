//! The `[store]` and `[retention]` sections of central's configuration: which database, and how
//! long events are kept. Parsed and checked with the rest of the file by [`crate::config`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Events (and everything derived from them) older than this are purged.
    #[serde(default = "default_events_days", with = "humantime_serde")]
    pub events: Duration,
    /// How often the purge runs.
    #[serde(default = "default_purge_every", with = "humantime_serde")]
    pub purge_every: Duration,
}

fn default_events_days() -> Duration {
    Duration::from_secs(28 * 86_400)
}
fn default_purge_every() -> Duration {
    Duration::from_secs(3600)
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            events: default_events_days(),
            purge_every: default_purge_every(),
        }
    }
}

/// Which database central keeps everything in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// Embedded, in one file under the data directory: zero setup.
    #[default]
    Sqlite,
    /// A PostgreSQL server (large sites, several central workers).
    Postgres,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(default)]
    pub kind: StoreKind,
    /// SQLite: the database file (default `data_dir/central.sqlite`).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// SQLite: the writer's page cache.
    #[serde(default = "default_cache")]
    pub cache_bytes: u64,
    /// PostgreSQL: `postgresql://user@host:port/db` or `host=… user=… dbname=…` (no password
    /// here: it goes in `password_file`).
    #[serde(default)]
    pub url: Option<String>,
    /// PostgreSQL: a file holding the password (mode 0600).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// PostgreSQL: the CA of the server's certificate; TLS is required when given.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PostgreSQL: connections kept open.
    #[serde(default = "default_pool")]
    pub pool_size: u32,
}

impl StoreConfig {
    /// Where a SQLite store lives: `path`, else `data_dir/central.sqlite`.
    pub fn sqlite_path(&self, data_dir: &Path) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(|| data_dir.join(super::sqlite::FILE))
    }
}

fn default_pool() -> u32 {
    8
}

fn default_cache() -> u64 {
    64 * 1024 * 1024
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: StoreKind::Sqlite,
            path: None,
            cache_bytes: default_cache(),
            url: None,
            password_file: None,
            ca_file: None,
            pool_size: default_pool(),
        }
    }
}
