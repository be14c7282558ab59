//! Central's configuration-signing key and serial counter: everything central publishes that
//! changes what a box admits (trust material, face galleries) is signed here
//! (`checkpoint_protocol::signed`).
//!
//! - The key is `pki/config-signing.key` (made by `pki init` or `pki config-key`, mode 0600; a
//!   key that other users can read is refused). Its public half, `config-signing.pub`, is what
//!   every box is provisioned with (`[trust] config_keys`).
//! - Serials only grow: the next one is the larger of the last one used plus one and the current
//!   time in milliseconds, and the last one is saved durably (`data_dir/config-serial`) before
//!   anything carrying it is published. A central restored from an old backup, or whose clock was
//!   wrong for a while, still publishes serials the boxes take as newer once its clock is right.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use checkpoint_link::sync::Recover;
use checkpoint_protocol::gallery::signed as signed_gallery;
use checkpoint_protocol::ids::BoxId;
use checkpoint_protocol::passcode::{IssuerKey, TrustStore};
use checkpoint_protocol::records::TrustConfig;
use time::OffsetDateTime;

use crate::issuer::{self, IssuerError};

pub const PRIVATE_FILE: &str = "config-signing.key";
pub const PUBLIC_FILE: &str = "config-signing.pub";
const SERIAL_FILE: &str = "config-serial";

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("configuration-signing key: {0}")]
    Key(#[from] IssuerError),
    #[error("configuration serial {path}: {source}")]
    Serial {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration serial {path} is damaged ({text:?}); it holds one decimal number")]
    SerialDamaged { path: PathBuf, text: String },
}

/// Creates the configuration-signing key pair in the PKI directory; refuses to replace one.
pub fn keygen(pki_dir: &Path) -> Result<IssuerKey, SigningError> {
    Ok(issuer::keygen_files(
        &pki_dir.join(PRIVATE_FILE),
        &pki_dir.join(PUBLIC_FILE),
    )?)
}

/// The key and the serial counter, shared by the trust and gallery publishers.
#[derive(Debug)]
pub struct ConfigSigner {
    key: IssuerKey,
    serial_path: PathBuf,
    last: Mutex<u64>,
}

impl ConfigSigner {
    /// Loads the key (refused when other users can read it) and the last serial used.
    pub fn load(key_path: &Path, data_dir: &Path) -> Result<ConfigSigner, SigningError> {
        let key = issuer::load_key(key_path)?;
        let serial_path = data_dir.join(SERIAL_FILE);
        let last = match std::fs::read_to_string(&serial_path) {
            Ok(text) => text
                .trim()
                .parse::<u64>()
                .map_err(|_| SigningError::SerialDamaged {
                    path: serial_path.clone(),
                    text: text.chars().take(40).collect(),
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(source) => {
                return Err(SigningError::Serial {
                    path: serial_path,
                    source,
                })
            }
        };
        Ok(ConfigSigner {
            key,
            serial_path,
            last: Mutex::new(last),
        })
    }

    /// The next serial, saved durably before it is returned. Blocking (fsync).
    pub fn next_serial(&self, now: OffsetDateTime) -> Result<u64, SigningError> {
        let mut last = self.last.lock_or_recover();
        let now_ms = checkpoint_protocol::unix_ms_unsigned(now);
        let next = last.saturating_add(1).max(now_ms);
        checkpoint_link::files::write_atomically(&self.serial_path, next.to_string().as_bytes())
            .map_err(|source| SigningError::Serial {
                path: self.serial_path.clone(),
                source,
            })?;
        *last = next;
        Ok(next)
    }

    /// The trust record for `store`, with a new serial. Blocking.
    pub fn trust(
        &self,
        store: &TrustStore,
        now: OffsetDateTime,
    ) -> Result<TrustConfig, SigningError> {
        let serial = self.next_serial(now)?;
        Ok(TrustConfig::signed(store, serial, now, &self.key))
    }

    /// A gallery file wrapped and signed for one box, with a new serial. Blocking.
    pub fn gallery(
        &self,
        box_id: &BoxId,
        gallery: &[u8],
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, SigningError> {
        let serial = self.next_serial(now)?;
        Ok(signed_gallery::wrap(
            box_id,
            serial,
            now.unix_timestamp(),
            gallery,
            &self.key,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use checkpoint_protocol::signed::ConfigKeys;

    #[test]
    fn serials_grow_across_restarts_and_clock_jumps() {
        let dir = tempfile::tempdir().unwrap();
        let key = keygen(dir.path()).unwrap();
        assert!(keygen(dir.path()).is_err(), "never replaced");
        let key_path = dir.path().join(PRIVATE_FILE);
        let s = ConfigSigner::load(&key_path, dir.path()).unwrap();
        let t = time::macros::datetime!(2026-12-01 08:00 UTC);
        let a = s.next_serial(t).unwrap();
        assert_eq!(a as i64, t.unix_timestamp() * 1000);
        let b = s.next_serial(t).unwrap();
        assert_eq!(b, a + 1, "same instant: still newer");
        // The clock goes back a day: serials keep growing.
        let c = s.next_serial(t - time::Duration::days(1)).unwrap();
        assert_eq!(c, b + 1);
        let again = ConfigSigner::load(&key_path, dir.path()).unwrap();
        assert_eq!(
            again.next_serial(t - time::Duration::days(2)).unwrap(),
            c + 1
        );

        let rec = again.trust(&TrustStore::new(), t).unwrap();
        assert_eq!(rec.serial, c + 2);
        assert_eq!(rec.verify(&ConfigKeys(vec![key.public()])), Ok(key.kid()));

        std::fs::write(dir.path().join(SERIAL_FILE), "x").unwrap();
        let err = ConfigSigner::load(&key_path, dir.path()).unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
    }

    #[test]
    fn a_key_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        keygen(dir.path()).unwrap();
        let key_path = dir.path().join(PRIVATE_FILE);
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = ConfigSigner::load(&key_path, dir.path()).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
