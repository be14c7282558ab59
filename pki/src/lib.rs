//! `checkpoint-pki`: a site's keys, shared by the server (`checkpoint-central`) and the
//! operators' tooling (`checkpoint-admin`), which makes them.
//!
//! - The crate root: the site CA and the certificates for mutual TLS (below), with [`crl`].
//! - [`issuer`]: the pass-code issuer key pair and code/QR generation.
//! - [`signing`]: the configuration-signing key and serials for trust material and galleries.
//! - [`sealed`]: encrypted backups (age: X25519 recipients or a passphrase).
//! - [`secrets`]: secret files, read only when private (mode 0600).
//!
//! # The PKI
//! Mutual TLS between boxes, the broker and central.
//!
//! One directory (default `/etc/checkpoint/pki`) holds:
//! - `ca.pem`, `ca.key` (mode 0600): the site CA, valid [`CA_DAYS`] days by default;
//! - `server.pem`, `server.key`: the broker's certificate for its host names and addresses;
//! - `clients/NAME.pem`, `clients/NAME.key`: `central` (ingest, acks, configuration) and
//!   `monitor` (read-only telemetry for admins);
//! - `boxes/BOX_ID.pem`, `boxes/BOX_ID.key`: one per box; the boxes central accepts events from;
//! - `revoked/BOX_ID.SERIAL.pem` and `crl.pem`: revoked box certificates and the revocation list
//!   the broker checks every connection against (see [`crl`]).
//!
//! A client certificate's common name is its identity: Mosquitto's `use_identity_as_username`
//! makes it the username the shipped ACL (`config/mosquitto/acl`) pins to that box's topics.
//! Leaf certificates are valid [`LEAF_DAYS`] days by default; a box's certificate is replaced only
//! on request (`--replace`, which revokes the old one). The configuration-signing key (`config-signing.key`/`.pub`, see
//! [`crate::signing`]) lives here too.
//! Keys are ECDSA P-256, written with mode 0600.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use checkpoint_protocol::ids::BoxId;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// Default lifetime of the CA.
pub const CA_DAYS: u32 = 3650;
/// Default lifetime of box, server and client certificates.
pub const LEAF_DAYS: u32 = 730;
/// Identities reserved for central's own clients; no box can take them.
pub const CLIENT_NAMES: [&str; 2] = ["central", "monitor"];
pub const DEFAULT_DIR: &str = "/etc/checkpoint/pki";

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("no CA in {0}: create one with `checkpoint-admin pki init --dir {0}` (or pass --dir)")]
    NoCa(String),
    #[error("{0} already holds a CA; refusing to replace it (boxes trust the old one)")]
    CaExists(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Bad { path: String, message: String },
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A certificate and its key on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub not_after: OffsetDateTime,
}

/// Validity of a new certificate: from a minute ago (clock skew) for `days`.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    pub fn days(days: u32) -> Result<Validity, PkiError> {
        if days == 0 || days > 36_500 {
            return Err(PkiError::Invalid(format!(
                "validity of {days} days is outside 1..=36500"
            )));
        }
        let now = OffsetDateTime::now_utc();
        Ok(Validity {
            not_before: now - Duration::minutes(1),
            not_after: now + Duration::days(i64::from(days)),
        })
    }
}

/// Writes `bytes` to `path` through a temporary file, with `mode`, durably.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let how = checkpoint_link::files::Replace {
        mode,
        durable: true,
    };
    checkpoint_link::files::replace(path, how, |f| f.write_all(bytes)).map_err(io(path))
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(io(path))
}

/// The CA, loaded to sign.
pub struct Ca {
    dir: PathBuf,
    cert: rcgen::Certificate,
    key: KeyPair,
    not_after: OffsetDateTime,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("dir", &self.dir).finish()
    }
}

/// Creates the CA in `dir`; refuses when one exists.
pub fn init(dir: &Path, name: &str, validity: Validity) -> Result<Issued, PkiError> {
    let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
    if cert_path.exists() || key_path.exists() {
        return Err(PkiError::CaExists(dir.display().to_string()));
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    let cert = params.self_signed(&key)?;
    // The key first: a CA certificate without its key would block a second `init`.
    write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
    // An empty revocation list from the start, so the broker's `crlfile` always exists.
    Ca::load(dir)?.write_crl()?;
    Ok(Issued {
        cert: cert_path,
        key: key_path,
        not_after: validity.not_after,
    })
}

impl Ca {
    /// Loads the CA from `dir`, with a clear error when there is none.
    pub fn load(dir: &Path) -> Result<Ca, PkiError> {
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
        if !cert_path.exists() || !key_path.exists() {
            return Err(PkiError::NoCa(dir.display().to_string()));
        }
        let bad = |path: &Path, e: rcgen::Error| PkiError::Bad {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let key = KeyPair::from_pem(&read(&key_path)?).map_err(|e| bad(&key_path, e))?;
        let params = CertificateParams::from_ca_cert_pem(&read(&cert_path)?)
            .map_err(|e| bad(&cert_path, e))?;
        if params.not_after < OffsetDateTime::now_utc() {
            return Err(PkiError::Bad {
                path: cert_path.display().to_string(),
                message: format!("the CA expired on {}", params.not_after.date()),
            });
        }
        // Re-signing the same subject and key yields a certificate that issues exactly as the
        // one on disk (rcgen needs one to sign with).
        let not_after = params.not_after;
        let cert = params.self_signed(&key).map_err(|e| bad(&cert_path, e))?;
        Ok(Ca {
            dir: dir.to_path_buf(),
            cert,
            key,
            not_after,
        })
    }

    fn leaf(
        &self,
        cn: &str,
        sans: Vec<SanType>,
        usage: ExtendedKeyUsagePurpose,
        validity: Validity,
        stem: &Path,
    ) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = sans;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        let (cert_path, key_path) = (stem.with_extension("pem"), stem.with_extension("key"));
        write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
        write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
        Ok(Issued {
            cert: cert_path,
            key: key_path,
            not_after: validity.not_after,
        })
    }

    /// A box's client certificate: common name = the box id. An existing certificate of that
    /// box is replaced only when `replace` says so, and is then revoked.
    pub fn issue_box(
        &self,
        id: &BoxId,
        validity: Validity,
        replace: bool,
    ) -> Result<Issued, PkiError> {
        if CLIENT_NAMES.contains(&id.as_str()) {
            return Err(PkiError::Invalid(format!(
                "{id} is reserved for central's own clients; choose another box id"
            )));
        }
        let existing = self.dir.join("boxes").join(format!("{id}.pem"));
        if existing.exists() && !replace {
            return Err(PkiError::Invalid(format!(
                "box {id} already has a certificate ({}); pass --replace to issue a new one",
                existing.display()
            )));
        }
        if existing.exists() {
            self.revoke_box(id)?;
        }
        self.leaf(
            id.as_str(),
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
            validity,
            &self.dir.join("boxes").join(id.as_str()),
        )
    }

    /// One of central's clients (`central` or `monitor`, see [`CLIENT_NAMES`]).
    pub fn issue_client(&self, name: &str, validity: Validity) -> Result<Issued, PkiError> {
        if !CLIENT_NAMES.contains(&name) {
            return Err(PkiError::Invalid(format!(
                "client is one of {CLIENT_NAMES:?}; boxes get `pki issue-box`"
            )));
        }
        self.leaf(
            name,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
            validity,
            &self.dir.join("clients").join(name),
        )
    }

    /// The broker's server certificate for host names and IP addresses.
    pub fn issue_server(&self, hosts: &[String], validity: Validity) -> Result<Issued, PkiError> {
        let first = hosts
            .first()
            .ok_or_else(|| PkiError::Invalid("give at least one host name or address".into()))?;
        let mut sans = Vec::new();
        for h in hosts {
            match h.parse::<IpAddr>() {
                Ok(ip) => sans.push(SanType::IpAddress(ip)),
                Err(_) => {
                    let name = h.clone().try_into().map_err(|e: rcgen::Error| {
                        PkiError::Invalid(format!("{h:?} is not a host name: {e}"))
                    })?;
                    sans.push(SanType::DnsName(name));
                }
            }
        }
        self.leaf(
            first,
            sans,
            ExtendedKeyUsagePurpose::ServerAuth,
            validity,
            &self.dir.join("server"),
        )
    }
}

pub mod crl;
pub mod issuer;
pub mod sealed;
pub mod secrets;
pub mod signing;

#[cfg(test)]
mod tests;
