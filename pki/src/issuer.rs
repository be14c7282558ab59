//! Pass-code issuing: the issuer key pair on disk, signing codes, rendering them as QR images.
//!
//! Key directory layout: `passcode.key` (PKCS#8 PEM, mode 0600, never leaves central) and
//! `passcode.pub` (SPKI PEM, given to boxes). `keygen` refuses to overwrite an existing key: losing
//! it would invalidate every code in circulation.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use checkpoint_protocol::passcode::{self, IssueError, IssuerKey, KeyError, PassRequest};
use image::Luma;
use qrcode::{EcLevel, QrCode};

pub const PRIVATE_FILE: &str = "passcode.key";
pub const PUBLIC_FILE: &str = "passcode.pub";

#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} already exists; refusing to overwrite an issuer key (move it away first)")]
    Exists { path: PathBuf },
    #[error("{path}: {source}")]
    Key { path: PathBuf, source: KeyError },
    #[error("{path} is readable by other users (mode {mode:o}); run chmod 600 on it")]
    LoosePermissions { path: PathBuf, mode: u32 },
    #[error("could not gather randomness for a key: {0}")]
    Random(String),
    #[error(transparent)]
    Issue(#[from] IssueError),
    #[error("could not encode a QR code: {0}")]
    Qr(String),
    #[error("could not write {path}: {message}")]
    Image { path: PathBuf, message: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IssuerError + '_ {
    move |source| IssuerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates a new key pair in `dir` (created with mode 0700 if missing). Returns the new key.
pub fn keygen(dir: &Path) -> Result<IssuerKey, IssuerError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))?;
    keygen_files(&dir.join(PRIVATE_FILE), &dir.join(PUBLIC_FILE))
}

/// Creates a new key pair as the files `private` (0600) and `public`; refuses to replace either.
/// The configuration-signing key (`pki config-key`) is made the same way.
pub fn keygen_files(private: &Path, public: &Path) -> Result<IssuerKey, IssuerError> {
    for path in [private, public] {
        if path.exists() {
            return Err(IssuerError::Exists {
                path: path.to_path_buf(),
            });
        }
    }
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| IssuerError::Random(e.to_string()))?;
    let key = IssuerKey::from_seed(seed);
    let key_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| IssuerError::Key { path, source }
    };
    let private_pem = key.to_pem().map_err(key_err(private))?;
    let public_pem = key.public().to_pem().map_err(key_err(public))?;
    write_new(private, private_pem.as_bytes(), 0o600)?;
    write_new(public, public_pem.as_bytes(), 0o644)?;
    Ok(key)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), IssuerError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_err(path))?;
    file.write_all(bytes).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

/// Loads the private key from a key directory (or the key file itself). Refuses a key file that
/// other users can read.
pub fn load_key(path: &Path) -> Result<IssuerKey, IssuerError> {
    let file = if path.is_dir() {
        path.join(PRIVATE_FILE)
    } else {
        path.to_path_buf()
    };
    let meta = fs::metadata(&file).map_err(io_err(&file))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(IssuerError::LoosePermissions { path: file, mode });
    }
    let pem = fs::read_to_string(&file).map_err(io_err(&file))?;
    IssuerKey::from_pem(&pem).map_err(|source| IssuerError::Key { path: file, source })
}

/// Signs a code.
pub fn issue(key: &IssuerKey, req: &PassRequest) -> Result<String, IssuerError> {
    Ok(passcode::issue(key, req)?)
}

/// Writes `text` as a QR code PNG: error correction level M, at least `min_px` wide, with the
/// standard four-module quiet zone.
pub fn write_png(text: &str, path: &Path, min_px: u32) -> Result<(), IssuerError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| IssuerError::Qr(e.to_string()))?;
    let img = code
        .render::<Luma<u8>>()
        .min_dimensions(min_px, min_px)
        .build();
    img.save(path).map_err(|e| IssuerError::Image {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use checkpoint_protocol::ids::SubjectId;
    use checkpoint_protocol::passcode::{PassStatus, TrustStore};

    fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cp-issuer-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn keygen_writes_private_key_0600_and_refuses_overwrite() {
        let dir = tempdir("keygen");
        let key = keygen(&dir).unwrap();
        let mode = fs::metadata(dir.join(PRIVATE_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_key(&dir).unwrap().kid(), key.kid());
        assert!(matches!(keygen(&dir), Err(IssuerError::Exists { .. })));

        fs::set_permissions(dir.join(PRIVATE_FILE), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_key(&dir),
            Err(IssuerError::LoosePermissions { mode: 0o644, .. })
        ));
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The docs promise standard files: OpenSSL (scripts/setup installs it) reads the private
    /// key and derives exactly the public file from it.
    #[test]
    fn openssl_reads_the_key_pair() {
        let dir = tempdir("openssl");
        keygen(&dir).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(dir.join(PRIVATE_FILE))
            .output()
            .expect("openssl (scripts/setup installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public = fs::read_to_string(dir.join(PUBLIC_FILE)).unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), public.trim());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn issued_code_verifies_with_public_file() {
        let dir = tempdir("issue");
        let key = keygen(&dir).unwrap();
        let req = PassRequest {
            status: PassStatus::Yellow,
            subject: SubjectId::new("p-7").unwrap(),
            dependants: vec![],
            issued_at: 1_000,
            expires_at: 1_300,
        };
        let code = issue(&key, &req).unwrap();
        let public = fs::read_to_string(dir.join(PUBLIC_FILE)).unwrap();
        let mut trust = TrustStore::new();
        trust.add_key(passcode::TrustedKey::from_pem(&public).unwrap());
        let claims = passcode::verify(&code, &trust, 1_100, 0).unwrap();
        assert_eq!(claims.status, PassStatus::Yellow);
        // A typical code stays a small, version 6 symbol in alphanumeric mode.
        let qr = QrCode::with_error_correction_level(code.as_bytes(), EcLevel::M).unwrap();
        assert_eq!(qr.version(), qrcode::Version::Normal(6));
        let png = dir.join("code.png");
        write_png(&code, &png, 300).unwrap();
        assert!(image::open(&png).unwrap().width() >= 300);
        fs::remove_dir_all(&dir).unwrap();
    }
}
