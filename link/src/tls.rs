//! The rustls client configuration for mutual TLS: the broker's CA, and the box's certificate
//! chain and private key, all PEM files. The `ring` provider is passed explicitly, so no
//! process-wide default provider is needed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    /// A private key others can read (the message names the file and the fix).
    #[error("{0}")]
    Private(String),
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

fn file_err(path: &Path, message: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, e))?;
    if certs.is_empty() {
        return Err(file_err(path, "holds no PEM certificate"));
    }
    Ok(certs)
}

pub fn client_config(ca: &Path, cert: &Path, key: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certificates(ca)? {
        roots.add(c).map_err(|e| file_err(ca, e))?;
    }
    let chain = certificates(cert)?;
    private(key)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_err(key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key_der)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => file_err(
                key,
                format!(
                    "is not the private key of the certificate {}",
                    cert.display()
                ),
            ),
            e => TlsError::Config(e),
        })?;
    Ok(Arc::new(config))
}

/// A private key that group or others can read is refused, with the fix.
fn private(key: &Path) -> Result<(), TlsError> {
    crate::files::ensure_private(key).map_err(TlsError::Private)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_garbage_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("ca.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let err = client_config(&junk, &junk, &junk).unwrap_err();
        assert!(err.to_string().contains("ca.pem"), "{err}");
        let missing = dir.path().join("missing.pem");
        let err = client_config(&missing, &junk, &junk).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }

    #[test]
    fn a_readable_key_or_another_certificates_key_is_refused_with_the_reason() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String, mode: u32| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        };
        let (k1, k2) = (
            rcgen::KeyPair::generate().unwrap(),
            rcgen::KeyPair::generate().unwrap(),
        );
        let params = rcgen::CertificateParams::new(vec!["box".to_string()]).unwrap();
        let cert = params.self_signed(&k1).unwrap();
        let ca = write("ca.pem", cert.pem(), 0o644);
        let good = write("k1.key", k1.serialize_pem(), 0o600);
        let other = write("k2.key", k2.serialize_pem(), 0o600);
        let loose = write("k1-loose.key", k1.serialize_pem(), 0o640);
        client_config(&ca, &ca, &good).unwrap();
        let e = client_config(&ca, &ca, &loose).unwrap_err().to_string();
        assert!(e.contains("chmod 600") && e.contains("k1-loose.key"), "{e}");
        let e = client_config(&ca, &ca, &other).unwrap_err().to_string();
        assert!(
            e.contains("is not the private key of the certificate"),
            "{e}"
        );
        assert_eq!(e.matches("k2.key").count(), 1, "said once: {e}");
    }
}
