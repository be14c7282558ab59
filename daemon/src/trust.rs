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
    pub max_age_h: u64,
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
        let max_age_h = setup.max_age_h;
        Ok(Trust {
            path,
            max_age_s: (max_age_h > 0).then(|| max_age_h.saturating_mul(3600)),
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

#[cfg(test)]
mod tests {
    use checkpoint_protocol::ids::SubjectId;
    use checkpoint_protocol::passcode::{IssuerKey, Revocation};
    use time::Duration;

    use super::*;

    /// Central's configuration key in these tests.
    fn central() -> IssuerKey {
        IssuerKey::from_seed([42; 32])
    }

    fn store(seed: u8, revoke: bool) -> TrustStore {
        let mut store = TrustStore::new();
        store.add_key(IssuerKey::from_seed([seed; 32]).public());
        if revoke {
            store.revoke(Revocation {
                subject: SubjectId::new("p-1").unwrap(),
                issued_before: 2_000_000_000,
            });
        }
        store
    }

    fn record(seed: u8, serial: u64, at: OffsetDateTime, revoke: bool) -> Vec<u8> {
        let cfg = TrustConfig::signed(&store(seed, revoke), serial, at, &central());
        records::encode(&cfg)
    }

    struct Files {
        dir: tempfile::TempDir,
        bootstrap: PathBuf,
        config_key: PathBuf,
    }

    fn files() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let bootstrap = dir.path().join("passcode.pub");
        std::fs::write(
            &bootstrap,
            IssuerKey::from_seed([1; 32]).public().to_pem().unwrap(),
        )
        .unwrap();
        let config_key = dir.path().join("config-signing.pub");
        std::fs::write(&config_key, central().public().to_pem().unwrap()).unwrap();
        Files {
            dir,
            bootstrap,
            config_key,
        }
    }

    fn load(f: &Files, max_age_h: u64, now: OffsetDateTime) -> Trust {
        Trust::load(
            &TrustSetup {
                state_dir: f.dir.path(),
                bootstrap: std::slice::from_ref(&f.bootstrap),
                config_keys: std::slice::from_ref(&f.config_key),
                max_age_h,
                max_skew_s: 300,
            },
            now,
        )
        .unwrap()
    }

    #[test]
    fn bootstrap_then_update_then_reload_last_good_copy() {
        let f = files();
        let now = OffsetDateTime::now_utc();
        let t = load(&f, 1, now);
        assert_eq!(t.current().store.keys().count(), 1);
        assert_eq!(t.age_s(now), None);
        assert!(!t.stale(now));

        let v1 = record(2, 10, now - Duration::hours(2), true);
        assert_eq!(t.apply(&v1, now).unwrap(), Applied::Updated);
        assert_eq!(t.apply(&v1, now).unwrap(), Applied::Unchanged);
        assert!(t.stale(now), "two hours old, max one");
        assert_eq!(t.current().store.revocations().count(), 1);
        // A later serial wins even with an older publication time (central's clock went back).
        let v2 = record(3, 11, now - Duration::hours(3), true);
        assert_eq!(t.apply(&v2, now).unwrap(), Applied::Updated);
        assert_eq!(t.refused(), 0);

        let reloaded = load(&f, 1, now);
        let kid = IssuerKey::from_seed([3; 32]).kid();
        assert!(reloaded.current().store.key(&kid).is_some());
        assert_eq!(reloaded.current().serial, Some(11));
        assert!(reloaded.age_s(now).is_some_and(|a| a >= 10_800));
    }

    /// Every way of forging or replaying trust material is refused, counted, and changes
    /// neither the keys in force nor the saved copy.
    #[test]
    fn forged_unsigned_replayed_and_future_material_changes_nothing() {
        let f = files();
        let now = OffsetDateTime::now_utc();
        let t = load(&f, 0, now);
        let good = record(2, 100, now, true);
        assert_eq!(t.apply(&good, now).unwrap(), Applied::Updated);
        let saved = std::fs::read(f.dir.path().join(FILE_NAME)).unwrap();

        let rogue = IssuerKey::from_seed([66; 32]);
        let forged = records::encode(&TrustConfig::signed(&store(9, false), 101, now, &rogue));
        let unsigned = records::encode(&TrustConfig::unsigned(&store(9, false), 101, now));
        let mut altered: TrustConfig = records::decode(&record(2, 101, now, true)).unwrap();
        altered.revocations.clear();
        let altered = records::encode(&altered);
        let replayed = record(9, 99, now, false);
        // The 2098 record with an all-zero issuer key of the report, now properly signed by
        // central's key (a central with a wrong clock): refused as from the future.
        let far = now + Duration::days(365 * 70);
        let future = record(0, 200, far, false);
        let cases: [(&str, &[u8], &str); 7] = [
            ("rogue key", &forged, "does not trust"),
            ("unsigned", &unsigned, "unsigned"),
            ("altered after signing", &altered, "does not verify"),
            ("older serial", &replayed, "replay"),
            ("far future", &future, "future"),
            ("garbage", b"{not json", "not JSON"),
            ("wrong shape", br#"{"schema":1}"#, "schema"),
        ];
        for (i, (what, bytes, says)) in cases.iter().enumerate() {
            let err = t.apply(bytes, now).unwrap_err();
            assert!(err.to_string().contains(says), "{what}: {err}");
            assert_eq!(t.refused(), i as u64 + 1, "{what} counted");
            assert_eq!(t.current().serial, Some(100), "{what} not in force");
            assert_eq!(t.current().store.revocations().count(), 1, "{what}");
        }
        assert_eq!(
            std::fs::read(f.dir.path().join(FILE_NAME)).unwrap(),
            saved,
            "the saved copy is untouched"
        );
        // Central's next genuine publication still gets through.
        assert_eq!(
            t.apply(&record(2, 101, now, false), now).unwrap(),
            Applied::Updated
        );
    }

    #[test]
    fn a_box_without_configuration_keys_applies_nothing_from_the_network() {
        let f = files();
        let now = OffsetDateTime::now_utc();
        let t = Trust::load(
            &TrustSetup {
                state_dir: f.dir.path(),
                bootstrap: std::slice::from_ref(&f.bootstrap),
                config_keys: &[],
                max_age_h: 0,
                max_skew_s: 300,
            },
            now,
        )
        .unwrap();
        assert!(t.apply(&record(2, 1, now, false), now).is_err());
        assert_eq!(t.current().serial, None);
    }

    #[test]
    fn saved_copies_that_no_longer_verify_fall_back_to_bootstrap() {
        let f = files();
        let now = OffsetDateTime::now_utc();
        // A torn copy, an unsigned one of an older release, and a future one: all fall back.
        let rogue = IssuerKey::from_seed([66; 32]);
        for saved in [
            b"{\"schema\":1,".to_vec(),
            records::encode(&TrustConfig::unsigned(&store(9, false), 5, now)),
            records::encode(&TrustConfig::signed(&store(9, false), 5, now, &rogue)),
            record(9, 5, now + Duration::days(30), false),
        ] {
            std::fs::write(f.dir.path().join(FILE_NAME), &saved).unwrap();
            let t = load(&f, 0, now);
            assert_eq!(t.current().serial, None);
            let kid = IssuerKey::from_seed([1; 32]).kid();
            assert!(t.current().store.key(&kid).is_some(), "bootstrap key");
        }
        let missing = Trust::load(
            &TrustSetup {
                state_dir: f.dir.path(),
                bootstrap: &[f.dir.path().join("nope.pub")],
                config_keys: &[],
                max_age_h: 0,
                max_skew_s: 300,
            },
            now,
        )
        .unwrap_err();
        assert!(missing.to_string().contains("nope.pub"), "{missing}");
    }
}
