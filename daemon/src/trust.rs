//! The trust material in force: issuer public keys and the revocation list.
//!
//! Central publishes it as a retained [`TrustConfig`] record signed with its configuration key
//! (`checkpoint_protocol::signed`). The box applies a copy only when the signature verifies
//! against one of its provisioned configuration keys (`[trust] config_keys`), its serial is newer
//! than the copy in force and its publication time is not in the future beyond the allowed skew;
//! anything else is refused, counted and logged, and never replaces what is in force. An
//! accepted copy is put in force without a restart and kept on disk as the last good copy
//! (`trust.json` in the state directory, replaced atomically); a saved copy is checked the same
//! way at start. Until the first copy arrives the box verifies with the bootstrap keys from its
//! configuration; they have no publication time, so they are never "stale", but they carry no
//! revocations either.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use checkpoint_link::sync::RecoverRw;
use checkpoint_protocol::passcode::{TrustStore, TrustedKey};
use checkpoint_protocol::records::{self, TrustConfig};
use checkpoint_protocol::signed::{self, ConfigKeys, Fresh, Refused};
use time::OffsetDateTime;

pub const FILE_NAME: &str = "trust.json";

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("bootstrap key {path}: {message}")]
    Bootstrap { path: PathBuf, message: String },
    #[error("configuration key {path}: {message}")]
    ConfigKey { path: PathBuf, message: String },
    #[error("trust configuration: {0}")]
    Invalid(String),
    #[error("trust configuration refused: {0}")]
    Refused(#[from] Refused),
    #[error("cannot save trust configuration to {path}: {source}")]
    Save {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl TrustError {
    /// Whether this is material refused for its signature, serial or time (counted as such).
    pub fn is_refusal(&self) -> bool {
        matches!(self, TrustError::Refused(_) | TrustError::Invalid(_))
    }
}

#[derive(Debug)]
pub struct TrustState {
    pub store: TrustStore,
    /// When central published this material; `None` for bootstrap keys.
    pub published_at: Option<OffsetDateTime>,
    /// Its serial; `None` for bootstrap keys.
    pub serial: Option<u64>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Updated,
    /// The copy in force seen again (a retained copy after a reconnect).
    Unchanged,
}

/// What the trust stage is given from the configuration.
#[derive(Debug, Clone)]
pub struct TrustSetup<'a> {
    pub state_dir: &'a Path,
    pub bootstrap: &'a [PathBuf],
    pub config_keys: &'a [PathBuf],
    /// Zero: never stale.
    pub max_age: std::time::Duration,
    pub max_skew_s: i64,
}

#[derive(Debug)]
pub struct Trust {
    path: PathBuf,
    max_age_s: Option<u64>,
    max_skew_s: i64,
    config_keys: ConfigKeys,
    current: RwLock<Arc<TrustState>>,
    /// Material refused since start (forged, unsigned, replayed, from the future, garbage).
    refused: AtomicU64,
}

fn read_keys(
    paths: &[PathBuf],
    err: impl Fn(&Path, String) -> TrustError,
) -> Result<Vec<TrustedKey>, TrustError> {
    paths
        .iter()
        .map(|p| {
            let pem = std::fs::read_to_string(p).map_err(|e| err(p, e.to_string()))?;
            TrustedKey::from_pem(&pem).map_err(|e| err(p, e.to_string()))
        })
        .collect()
}

impl Trust {
    /// The last good copy from `state_dir` if there is one that still verifies, else the
    /// bootstrap keys. `now` is the box's clock.
    pub fn load(setup: &TrustSetup<'_>, now: OffsetDateTime) -> Result<Trust, TrustError> {
        let config_keys = ConfigKeys(read_keys(setup.config_keys, |path, message| {
            TrustError::ConfigKey {
                path: path.to_path_buf(),
                message,
            }
        })?);
        if config_keys.0.is_empty() {
            tracing::warn!(
                message = "No configuration keys ([trust] config_keys): trust and gallery updates from central are refused."
            );
        }
        let path = setup.state_dir.join(FILE_NAME);
        let saved = match std::fs::read(&path) {
            Ok(bytes) => match parse(&bytes, &config_keys, None, now, setup.max_skew_s) {
                Ok((state, _)) => Some(state),
                Err(error) => {
                    tracing::error!(
                        message = "Saved trust configuration is unusable; using bootstrap keys.",
                        path = %path.display(),
                        %error,
                    );
                    None
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                tracing::error!(message = "Cannot read saved trust configuration.", path = %path.display(), %error);
                None
            }
        };
        let state = match saved {
            Some(s) => s,
            None => {
                let mut store = TrustStore::new();
                let keys = read_keys(setup.bootstrap, |path, message| TrustError::Bootstrap {
                    path: path.to_path_buf(),
                    message,
                })?;
                for k in keys {
                    store.add_key(k);
                }
                TrustState {
                    store,
                    published_at: None,
                    serial: None,
                }
            }
        };
        if state.store.keys().next().is_none() {
            tracing::warn!(
                message = "No trusted pass-code keys yet; every code is refused until central publishes them."
            );
        }
        let max_age = setup.max_age;
        Ok(Trust {
            path,
            max_age_s: (!max_age.is_zero()).then(|| max_age.as_secs().max(1)),
            max_skew_s: setup.max_skew_s,
            config_keys,
            current: RwLock::new(Arc::new(state)),
            refused: AtomicU64::new(0),
        })
    }

    pub fn current(&self) -> Arc<TrustState> {
        self.current.read_or_recover().clone()
    }

    /// The configuration keys this box trusts (also for galleries).
    pub fn config_keys(&self) -> &ConfigKeys {
        &self.config_keys
    }

    /// Most clock skew allowed on a publication time.
    pub fn max_skew_s(&self) -> i64 {
        self.max_skew_s
    }

    /// Counts refused configuration material (trust here, galleries from the face stage).
    pub fn count_refusal(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Refused configuration material since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Applies a trust record received from central: verified, checked for freshness, saved,
    /// then put in force. A refusal is counted.
    pub fn apply(&self, bytes: &[u8], now: OffsetDateTime) -> Result<Applied, TrustError> {
        let current = self.current();
        let result = parse(
            bytes,
            &self.config_keys,
            current.serial,
            now,
            self.max_skew_s,
        );
        let (state, fresh) = match result {
            Ok(ok) => ok,
            Err(e) => {
                if e.is_refusal() {
                    self.count_refusal();
                }
                return Err(e);
            }
        };
        if fresh == Fresh::Same {
            return Ok(Applied::Unchanged);
        }
        checkpoint_link::files::write_atomically(&self.path, bytes).map_err(|source| {
            TrustError::Save {
                path: self.path.clone(),
                source,
            }
        })?;
        *self.current.write_or_recover() = Arc::new(state);
        Ok(Applied::Updated)
    }

    /// Seconds since central published the material in force.
    pub fn age_s(&self, now: OffsetDateTime) -> Option<u64> {
        let published = self.current().published_at?;
        Some(u64::try_from((now - published).whole_seconds()).unwrap_or(0))
    }

    pub fn stale(&self, now: OffsetDateTime) -> bool {
        match (self.max_age_s, self.age_s(now)) {
            (Some(max), Some(age)) => age > max,
            _ => false,
        }
    }
}

/// Decodes, verifies and checks freshness against the serial in force.
fn parse(
    bytes: &[u8],
    keys: &ConfigKeys,
    in_force: Option<u64>,
    now: OffsetDateTime,
    max_skew_s: i64,
) -> Result<(TrustState, Fresh), TrustError> {
    let cfg: TrustConfig =
        records::decode(bytes).map_err(|e| TrustError::Invalid(e.to_string()))?;
    cfg.verify(keys)?;
    let fresh = signed::admit(
        in_force,
        cfg.serial,
        cfg.published_at.unix_timestamp(),
        now.unix_timestamp(),
        max_skew_s,
    )?;
    let store = cfg.to_trust_store().map_err(TrustError::Invalid)?;
    Ok((
        TrustState {
            store,
            published_at: Some(cfg.published_at),
            serial: Some(cfg.serial),
        },
        fresh,
    ))
}

mod config;
pub use config::TrustConfigSection;

#[cfg(test)]
mod tests;
