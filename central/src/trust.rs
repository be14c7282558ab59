//! The trust material central publishes to every box, retained on
//! `checkpoint/v1/shared/config/trust`: the issuer public keys from the configuration and the
//! revocation list from the store. Republished on every connect, after each revocation and
//! periodically, so its `published_at` stays younger than the boxes' staleness limit.

use std::path::PathBuf;

use checkpoint_protocol::passcode::{Revocation, TrustStore, TrustedKey};
use checkpoint_protocol::records::TrustConfig;
use time::OffsetDateTime;

use crate::store::{Store, StoreError};
use checkpoint_pki::signing::{ConfigSigner, SigningError};

mod config;
pub use config::TrustSection;

/// Codes live at most 31 days, so a revocation older than this cannot matter any more.
const REVOCATION_HORIZON_S: i64 = 32 * 86_400;

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("issuer public key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Signing(#[from] SigningError),
}

/// Reads the issuer public keys (PEM files, or key directories holding `passcode.pub`).
pub fn load_keys(paths: &[PathBuf]) -> Result<Vec<TrustedKey>, TrustError> {
    paths
        .iter()
        .map(|p| {
            let err = |message: String| TrustError::Key {
                path: p.clone(),
                message,
            };
            let file = if p.is_dir() {
                p.join("passcode.pub")
            } else {
                p.clone()
            };
            let pem = std::fs::read_to_string(&file).map_err(|e| err(e.to_string()))?;
            TrustedKey::from_pem(&pem).map_err(|e| err(e.to_string()))
        })
        .collect()
}

/// The record to publish now, signed, with a new serial. Blocking (the serial is saved).
pub fn current(
    keys: &[TrustedKey],
    store: &dyn Store,
    signer: &ConfigSigner,
    now: OffsetDateTime,
) -> Result<TrustConfig, TrustError> {
    let mut t = TrustStore::new();
    for k in keys {
        t.add_key(k.clone());
    }
    let horizon = now.unix_timestamp() - REVOCATION_HORIZON_S;
    for (subject, issued_before) in store.revocations()? {
        if i64::from(issued_before) >= horizon {
            t.revoke(Revocation {
                subject,
                issued_before,
            });
        }
    }
    Ok(signer.trust(&t, now)?)
}
