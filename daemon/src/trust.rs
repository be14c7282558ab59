//! The trust material in force: issuer public keys and the revocation list.
//!
//! Central publishes it as a retained [`TrustConfig`] record. The box applies a newer copy
//! without restarting, keeps it on disk as the last good copy (`trust.json` in the state
//! directory, replaced atomically), and reports its age in telemetry. Until the first copy
//! arrives the box verifies with the bootstrap keys from its configuration; they have no
//! publication time, so they are never "stale", but they carry no revocations either.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use checkpoint_protocol::passcode::{TrustStore, TrustedKey};
use checkpoint_protocol::records::{self, TrustConfig};
use time::OffsetDateTime;

pub const FILE_NAME: &str = "trust.json";

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("bootstrap key {path}: {message}")]
    Bootstrap { path: PathBuf, message: String },
    #[error("trust configuration: {0}")]
    Invalid(String),
    #[error("cannot save trust configuration to {path}: {source}")]
    Save {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug)]
pub struct TrustState {
    pub store: TrustStore,
    /// When central published this material; `None` for bootstrap keys.
    pub published_at: Option<OffsetDateTime>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Updated,
    /// Not newer than what is in force (a retained copy seen again after a reconnect).
    Unchanged,
}

#[derive(Debug)]
pub struct Trust {
    path: PathBuf,
    max_age_s: Option<u64>,
    current: RwLock<Arc<TrustState>>,
}

impl Trust {
    /// The last good copy from `state_dir` if there is a readable one, else the bootstrap keys.
    pub fn load(
        state_dir: &Path,
        bootstrap: &[PathBuf],
        max_age_h: u64,
    ) -> Result<Trust, TrustError> {
        let path = state_dir.join(FILE_NAME);
        let saved = match std::fs::read(&path) {
            Ok(bytes) => match parse(&bytes) {
                Ok(state) => Some(state),
                Err(error) => {
                    tracing::error!(
                        message = "Saved trust configuration is unreadable; using bootstrap keys.",
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
                for p in bootstrap {
                    let err = |message: String| TrustError::Bootstrap {
                        path: p.clone(),
                        message,
                    };
                    let pem = std::fs::read_to_string(p).map_err(|e| err(e.to_string()))?;
                    store.add_key(TrustedKey::from_pem(&pem).map_err(|e| err(e.to_string()))?);
                }
                TrustState {
                    store,
                    published_at: None,
                }
            }
        };
        if state.store.keys().next().is_none() {
            tracing::warn!(
                message = "No trusted pass-code keys yet; every code is refused until central publishes them."
            );
        }
        Ok(Trust {
            path,
            max_age_s: (max_age_h > 0).then(|| max_age_h.saturating_mul(3600)),
            current: RwLock::new(Arc::new(state)),
        })
    }

    pub fn current(&self) -> Arc<TrustState> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Applies a trust record received from central: validated, saved, then put in force.
    pub fn apply(&self, bytes: &[u8]) -> Result<Applied, TrustError> {
        let state = parse(bytes)?;
        let current = self.current();
        if let (Some(old), Some(new)) = (current.published_at, state.published_at) {
            if new <= old {
                return Ok(Applied::Unchanged);
            }
        }
        save_atomically(&self.path, bytes).map_err(|source| TrustError::Save {
            path: self.path.clone(),
            source,
        })?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(state);
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

fn parse(bytes: &[u8]) -> Result<TrustState, TrustError> {
    let cfg: TrustConfig =
        records::decode(bytes).map_err(|e| TrustError::Invalid(e.to_string()))?;
    let store = cfg.to_trust_store().map_err(TrustError::Invalid)?;
    Ok(TrustState {
        store,
        published_at: Some(cfg.published_at),
    })
}

/// Write to a temporary file, fsync, rename over the old copy, fsync the directory: a crash
/// leaves either the old or the new copy, never a torn one.
pub(crate) fn save_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use checkpoint_protocol::ids::SubjectId;
    use checkpoint_protocol::passcode::{IssuerKey, Revocation};
    use time::Duration;

    use super::*;

    fn record(seed: u8, at: OffsetDateTime, revoke: bool) -> Vec<u8> {
        let mut store = TrustStore::new();
        store.add_key(IssuerKey::from_seed([seed; 32]).public());
        if revoke {
            store.revoke(Revocation {
                subject: SubjectId::new("p-1").unwrap(),
                issued_before: 2_000_000_000,
            });
        }
        records::encode(&TrustConfig::from_trust_store(&store, at))
    }

    #[test]
    fn bootstrap_then_update_then_reload_last_good_copy() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("passcode.pub");
        std::fs::write(
            &pem,
            IssuerKey::from_seed([1; 32]).public().to_pem().unwrap(),
        )
        .unwrap();
        let now = OffsetDateTime::now_utc();
        let t = Trust::load(dir.path(), std::slice::from_ref(&pem), 1).unwrap();
        assert_eq!(t.current().store.keys().count(), 1);
        assert_eq!(t.age_s(now), None);
        assert!(!t.stale(now));

        let v1 = record(2, now - Duration::hours(2), true);
        assert_eq!(t.apply(&v1).unwrap(), Applied::Updated);
        assert_eq!(t.apply(&v1).unwrap(), Applied::Unchanged);
        let older = record(3, now - Duration::hours(3), false);
        assert_eq!(t.apply(&older).unwrap(), Applied::Unchanged);
        assert!(t.stale(now), "two hours old, max one");
        assert_eq!(t.current().store.revocations().count(), 1);

        let reloaded = Trust::load(dir.path(), &[pem], 1).unwrap();
        let kid = IssuerKey::from_seed([2; 32]).kid();
        assert!(reloaded.current().store.key(&kid).is_some());
        assert!(reloaded.age_s(now).is_some_and(|a| a >= 7200));
    }

    #[test]
    fn garbage_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let t = Trust::load(dir.path(), &[], 0).unwrap();
        assert!(t.apply(b"{not json").is_err());
        assert!(t.apply(br#"{"schema":1}"#).is_err());
        assert!(!dir.path().join(FILE_NAME).exists());
        // A torn saved copy falls back to the bootstrap keys instead of failing to start.
        std::fs::write(dir.path().join(FILE_NAME), b"{\"schema\":1,").unwrap();
        let t = Trust::load(dir.path(), &[], 0).unwrap();
        assert_eq!(t.current().store.keys().count(), 0);
        let missing = Trust::load(dir.path(), &[dir.path().join("nope.pub")], 0).unwrap_err();
        assert!(missing.to_string().contains("nope.pub"), "{missing}");
    }
}
