//! Box certificates that must no longer connect: `revoked/` keeps each revoked certificate
//! (`BOX_ID.SERIAL.pem`), and `crl.pem` is the revocation list signed by the CA that the broker
//! (Mosquitto's `crlfile`) checks at every TLS handshake. Central also stops accepting a box
//! whose certificate is no longer in `boxes/` ([`registered`]).
//!
//! Mosquitto reads its `crlfile` only when it starts (a SIGHUP does not reload it): after a
//! revocation, central's embedded broker restarts itself; an external one must be restarted.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use checkpoint_protocol::ids::BoxId;
use rcgen::{
    CertificateParams, CertificateRevocationListParams, KeyIdMethod, RevocationReason,
    RevokedCertParams, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::{io, read, write_file, Ca, PkiError};

/// The revocation list's file name in the PKI directory.
pub const CRL_FILE: &str = "crl.pem";

/// A revoked box certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub box_id: BoxId,
    /// The certificate's serial number, hex.
    pub serial: String,
    /// Where the revoked certificate is kept.
    pub kept: PathBuf,
}

fn serial_of(path: &Path) -> Result<SerialNumber, PkiError> {
    let params = CertificateParams::from_ca_cert_pem(&read(path)?).map_err(|e| PkiError::Bad {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    params.serial_number.ok_or_else(|| PkiError::Bad {
        path: path.display().to_string(),
        message: "the certificate has no serial number".into(),
    })
}

fn hex(serial: &SerialNumber) -> String {
    serial.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The boxes with a current certificate in `dir/boxes`: the ones central accepts.
pub fn registered(dir: &Path) -> Result<BTreeSet<BoxId>, PkiError> {
    let boxes = dir.join("boxes");
    let mut out = BTreeSet::new();
    let entries = match std::fs::read_dir(&boxes) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(&boxes)(e)),
    };
    for entry in entries {
        let path = entry.map_err(io(&boxes))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("pem") {
            continue;
        }
        if let Some(id) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<BoxId>().ok())
        {
            out.insert(id);
        }
    }
    Ok(out)
}

impl Ca {
    /// Revokes the current certificate of box `id`: keeps it in `revoked/`, removes it and its
    /// key from `boxes/`, and rewrites the revocation list.
    pub fn revoke_box(&self, id: &BoxId) -> Result<Revoked, PkiError> {
        let cert = self.dir.join("boxes").join(format!("{id}.pem"));
        if !cert.exists() {
            return Err(PkiError::Invalid(format!(
                "box {id} has no certificate in {} (already revoked, or never issued)",
                self.dir.join("boxes").display()
            )));
        }
        let serial = hex(&serial_of(&cert)?);
        let kept = self.dir.join("revoked").join(format!("{id}.{serial}.pem"));
        // Kept first, then the list, then removed: a crash in between leaves the box revoked
        // and at worst its files in place.
        write_file(&kept, read(&cert)?.as_bytes(), 0o644)?;
        self.write_crl()?;
        std::fs::remove_file(&cert).map_err(io(&cert))?;
        let key = cert.with_extension("key");
        match std::fs::remove_file(&key) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&key)(e)),
        }
        Ok(Revoked {
            box_id: id.clone(),
            serial,
            kept,
        })
    }

    /// Every revoked certificate on record, oldest name first.
    pub fn revoked(&self) -> Result<Vec<(PathBuf, SerialNumber, OffsetDateTime)>, PkiError> {
        let dir = self.dir.join("revoked");
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&dir)(e)),
        };
        for entry in entries {
            let path = entry.map_err(io(&dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("pem") {
                continue;
            }
            let when = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .map(OffsetDateTime::from)
                .map_err(io(&path))?;
            out.push((path.clone(), serial_of(&path)?, when));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Writes `crl.pem` from `revoked/`, valid until the CA expires (OpenSSL refuses every
    /// client once a CRL's next update has passed).
    pub fn write_crl(&self) -> Result<PathBuf, PkiError> {
        let now = OffsetDateTime::now_utc();
        let revoked_certs = self
            .revoked()?
            .into_iter()
            .map(|(_, serial_number, when)| RevokedCertParams {
                serial_number,
                revocation_time: when,
                reason_code: Some(RevocationReason::Unspecified),
                invalidity_date: None,
            })
            .collect();
        let number = checkpoint_protocol::unix_ms_unsigned(now);
        let params = CertificateRevocationListParams {
            this_update: now - Duration::minutes(1),
            next_update: self.not_after.max(now + Duration::days(1)),
            crl_number: SerialNumber::from(number.to_be_bytes().to_vec()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.cert, &self.key)?;
        let path = self.dir.join(CRL_FILE);
        write_file(&path, crl.pem()?.as_bytes(), 0o644)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{init, Validity};
    use super::*;

    #[test]
    fn a_revoked_box_leaves_the_register_and_enters_the_list() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), "Test CA", Validity::days(10).unwrap()).unwrap();
        let empty = std::fs::read_to_string(dir.path().join(CRL_FILE)).unwrap();
        assert!(empty.contains("BEGIN X509 CRL"), "{empty}");
        let ca = Ca::load(dir.path()).unwrap();
        let (a, b): (BoxId, BoxId) = ("gate-a".parse().unwrap(), "gate-b".parse().unwrap());
        ca.issue_box(&a, Validity::days(5).unwrap(), false).unwrap();
        ca.issue_box(&b, Validity::days(5).unwrap(), false).unwrap();
        assert_eq!(
            registered(dir.path()).unwrap(),
            [a.clone(), b.clone()].into()
        );
        let serial = hex(&serial_of(&dir.path().join("boxes/gate-a.pem")).unwrap());
        let r = ca.revoke_box(&a).unwrap();
        assert_eq!(r.serial, serial);
        assert!(r.kept.exists());
        assert!(!dir.path().join("boxes/gate-a.key").exists());
        assert_eq!(registered(dir.path()).unwrap(), [b.clone()].into());
        let list = std::fs::read_to_string(dir.path().join(CRL_FILE)).unwrap();
        assert_ne!(list, empty);
        // Twice is an error that says why; a new certificate for the same id is fine.
        let again = ca.revoke_box(&a).unwrap_err().to_string();
        assert!(again.contains("already revoked"), "{again}");
        ca.issue_box(&a, Validity::days(5).unwrap(), false).unwrap();
        assert_eq!(registered(dir.path()).unwrap(), [a.clone(), b].into());
        // Replacing a certificate revokes the old one.
        ca.issue_box(&a, Validity::days(5).unwrap(), true).unwrap();
        assert_eq!(ca.revoked().unwrap().len(), 2);
    }
}
