//! Central's TOML configuration. `config/central.example.toml` documents every field and is
//! parsed by a test.
//!
//! Each section's type lives beside what it configures (`ingest/config.rs`, `alerts/config.rs`,
//! …) and is re-exported here; this module parses the file, rewrites old keys and collects the
//! problems.

use std::path::{Path, PathBuf};
use std::time::Duration;

use checkpoint_link::durations::{Renamed, Unit};
pub use checkpoint_link::Transport;
use serde::Deserialize;

mod files;
pub use crate::alerts::{AlertsConfig, Facility, WeComConfig, WebhookConfig};
pub use crate::api::ApiConfig;
pub use crate::embedded::EmbeddedBrokerConfig;
pub use crate::ingest::{BrokerConfig, IngestConfig};
pub use crate::store::{RetentionConfig, StoreConfig, StoreKind};
pub use crate::trace::TraceConfig;
pub use crate::trust::TrustSection;

pub const EXAMPLE: &str = include_str!("../../config/central.example.toml");
/// The one-process configuration for a small site (embedded broker).
pub const EMBEDDED_EXAMPLE: &str = include_str!("../../config/central.embedded.toml");
pub const DEFAULT_PATH: &str = "/etc/checkpoint/central.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentralConfig {
    pub data_dir: PathBuf,
    /// An external broker (Mosquitto, EMQX); or else `embedded_broker`.
    #[serde(default)]
    pub broker: Option<BrokerConfig>,
    #[serde(default)]
    pub embedded_broker: Option<EmbeddedBrokerConfig>,
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub store: StoreConfig,
    pub api: ApiConfig,
    #[serde(default)]
    pub trace: TraceConfig,
    #[serde(default)]
    pub trust: TrustSection,
    #[serde(default)]
    pub retention: RetentionConfig,
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// The site's time zone.
    #[serde(default)]
    pub site: crate::site::SiteConfig,
    /// Old keys this file still uses, each with what to write instead (logged at start,
    /// printed by `check-config`).
    #[serde(skip)]
    pub deprecated: Vec<String>,
}

/// Integer durations of earlier releases, now humantime strings.
const OLD_DURATIONS: &[Renamed] = &[
    Renamed::new("broker", "keep_alive_s", "keep_alive", Unit::S),
    Renamed::new("broker", "backoff_min_ms", "backoff_min", Unit::Ms),
    Renamed::new("broker", "backoff_max_ms", "backoff_max", Unit::Ms),
    Renamed::new("ingest", "batch_wait_ms", "batch_wait", Unit::Ms),
    Renamed::new("ingest", "gap_grace_s", "gap_grace", Unit::S),
    Renamed::new("ingest", "box_silent_s", "box_silent", Unit::S),
    Renamed::new("trace", "window_s", "window", Unit::S),
    Renamed::new("trace", "max_stay_h", "max_stay", Unit::H),
    Renamed::new("trust", "republish_h", "republish_every", Unit::H),
    Renamed::new("retention", "events_days", "events", Unit::Days),
    Renamed::new("retention", "purge_every_min", "purge_every", Unit::Min),
    Renamed::new("alerts", "trust_stale_h", "trust_stale", Unit::H),
    Renamed::new("alerts", "check_every_s", "check_every", Unit::S),
    Renamed::new("alerts.webhook", "timeout_ms", "timeout", Unit::Ms),
    Renamed::new("alerts.wecom", "timeout_ms", "timeout", Unit::Ms),
    Renamed::new("alerts.email", "timeout_ms", "timeout", Unit::Ms),
];

/// Where ingest reads from.
#[derive(Debug, Clone)]
pub enum Source {
    External(BrokerConfig),
    Embedded(EmbeddedBrokerConfig),
}

impl CentralConfig {
    /// The broker to ingest from; `parse` ensures exactly one is configured.
    pub fn source(&self) -> Option<Source> {
        match (&self.broker, &self.embedded_broker) {
            (_, Some(e)) => Some(Source::Embedded(e.clone())),
            (Some(b), None) => Some(Source::External(b.clone())),
            (None, None) => None,
        }
    }
}

impl CentralConfig {
    /// How galleries would reach the boxes ([`crate::gallery::tls_only`]).
    pub fn broker_path(&self) -> crate::gallery::BrokerPath {
        use crate::gallery::BrokerPath;
        match self.source() {
            Some(Source::External(b))
                if matches!(b.transport, checkpoint_link::Transport::Plain) =>
            {
                BrokerPath::Plain
            }
            Some(_) => BrokerPath::Tls,
            None => BrokerPath::None,
        }
    }

    /// Where the SQLite store lives.
    pub fn sqlite_path(&self) -> PathBuf {
        self.store.sqlite_path(&self.data_dir)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

const MS: fn(u64) -> Duration = Duration::from_millis;
const S: fn(u64) -> Duration = Duration::from_secs;

fn span(problems: &mut Vec<String>, field: &str, d: Duration, lo: Duration, hi: Duration) {
    if let Err(e) = checkpoint_link::durations::within(field, d, lo, hi) {
        problems.push(e);
    }
}

impl CentralConfig {
    pub fn load(path: &Path) -> Result<CentralConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses and checks; every semantic problem is listed, one per line, with its field path.
    pub fn parse(text: &str) -> Result<CentralConfig, String> {
        let syntax = |e: toml::de::Error| e.to_string().trim_end().to_string();
        let mut table: toml::Table = toml::from_str(text).map_err(syntax)?;
        let migrated = checkpoint_link::durations::migrate(&mut table, OLD_DURATIONS);
        if !migrated.problems.is_empty() {
            return Err(format!(
                "{} problem(s):\n  - {}",
                migrated.problems.len(),
                migrated.problems.join("\n  - ")
            ));
        }
        // A file without old keys is parsed as written, so errors point at its lines.
        let mut cfg: CentralConfig = if migrated.deprecated.is_empty() {
            toml::from_str(text).map_err(syntax)?
        } else {
            CentralConfig::deserialize(toml::Value::Table(table))
                .map_err(|e| e.to_string().trim_end().to_string())?
        };
        cfg.deprecated = migrated.deprecated;
        if let (None, Some(e)) = (&cfg.ingest.pki_dir, &cfg.embedded_broker) {
            cfg.ingest.pki_dir = Some(e.pki_dir.clone());
        }
        let mut problems = Vec::new();
        match (&cfg.broker, &cfg.embedded_broker) {
            (Some(_), Some(_)) => {
                problems.push("broker, embedded_broker: give one of them, not both".to_string())
            }
            (None, None) => problems.push(
                "broker: missing; give [broker] (an external broker) or [embedded_broker]"
                    .to_string(),
            ),
            _ => {}
        }
        if let Some(e) = &cfg.embedded_broker {
            e.problems(&mut problems);
        }
        cfg.alerts.problems(&mut problems);
        cfg.site.problems(&mut problems);
        if !cfg.trust.keys.is_empty() && cfg.trust.signing_key.is_none() {
            problems.push(
                "trust.signing_key: required with trust.keys (boxes apply only signed trust \
                 material; `checkpoint-admin pki config-key` makes one)"
                    .to_string(),
            );
        }
        if let Some(b) = &cfg.broker {
            if b.host.trim().is_empty() {
                problems.push("broker.host: must not be empty".to_string());
            }
            if b.port == 0 {
                problems.push("broker.port: must not be 0".to_string());
            }
            if b.client_id.is_empty() || b.client_id.len() > 64 {
                problems.push("broker.client_id: must be 1 to 64 characters".to_string());
            }
            for (name, p) in b.transport.files() {
                if p.as_os_str().is_empty() {
                    problems.push(format!("broker.transport.{name}: must not be empty"));
                }
            }
            span(
                &mut problems,
                "broker.keep_alive",
                b.keep_alive,
                S(5),
                S(3600),
            );
            if b.backoff_min.is_zero() || b.backoff_min > b.backoff_max {
                problems.push(
                    "broker.backoff_min: must be at least 1ms and at most backoff_max".to_string(),
                );
            }
            span(
                &mut problems,
                "broker.backoff_max",
                b.backoff_max,
                MS(1),
                S(3600),
            );
        }
        let i = &cfg.ingest;
        if !(1..=10_000).contains(&i.batch_max) {
            problems.push(format!(
                "ingest.batch_max: {} is not in 1..=10000",
                i.batch_max
            ));
        }
        span(
            &mut problems,
            "ingest.batch_wait",
            i.batch_wait,
            S(0),
            S(10),
        );
        span(
            &mut problems,
            "ingest.gap_grace",
            i.gap_grace,
            S(1),
            S(7 * 86_400),
        );
        span(
            &mut problems,
            "ingest.box_silent",
            i.box_silent,
            S(1),
            S(86_400),
        );
        if !(1 << 20..=64 << 30).contains(&cfg.store.cache_bytes) {
            problems.push("store.cache_bytes: must be between 1 MiB and 64 GiB".to_string());
        }
        let st = &cfg.store;
        match st.kind {
            StoreKind::Sqlite => {
                for (key, set) in [
                    ("url", st.url.is_some()),
                    ("password_file", st.password_file.is_some()),
                    ("ca_file", st.ca_file.is_some()),
                ] {
                    if set {
                        problems.push(format!(
                            "store.{key}: only with kind = \"postgres\" (kind is \"sqlite\")"
                        ));
                    }
                }
            }
            StoreKind::Postgres => {
                match &st.url {
                    None => problems.push("store.url: needed with kind = \"postgres\"".into()),
                    Some(u) => {
                        if let Err(e) = u.parse::<postgres::Config>() {
                            problems.push(format!("store.url: {e}"));
                        } else if u
                            .parse::<postgres::Config>()
                            .is_ok_and(|c| c.get_password().is_some())
                        {
                            problems.push(
                                "store.url: holds a password; put it in store.password_file \
                                 (mode 0600) instead"
                                    .into(),
                            );
                        }
                    }
                }
                if st.path.is_some() {
                    problems.push("store.path: only with kind = \"sqlite\"".into());
                }
                if !(1..=256).contains(&st.pool_size) {
                    problems.push(format!(
                        "store.pool_size: {} is not in 1..=256",
                        st.pool_size
                    ));
                }
            }
        }
        if cfg.api.token_file.as_os_str().is_empty() {
            problems.push("api.token_file: must not be empty".to_string());
        }
        span(
            &mut problems,
            "trace.window",
            cfg.trace.window,
            S(1),
            S(86_400),
        );
        span(
            &mut problems,
            "trace.max_stay",
            cfg.trace.max_stay,
            S(3600),
            S(168 * 3600),
        );
        span(
            &mut problems,
            "retention.events",
            cfg.retention.events,
            S(86_400),
            S(36_500 * 86_400),
        );
        span(
            &mut problems,
            "retention.purge_every",
            cfg.retention.purge_every,
            S(60),
            S(86_400),
        );
        span(
            &mut problems,
            "trust.republish_every",
            cfg.trust.republish_every,
            S(3600),
            S(48 * 3600),
        );
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(format!(
                "{} problem(s):\n  - {}",
                problems.len(),
                problems.join("\n  - ")
            ))
        }
    }
}

#[cfg(test)]
mod tests;
