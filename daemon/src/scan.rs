//! `checkpointd scan`: decode the QR codes in image files and verify them as pass codes, without
//! any hardware. The installer's and the support desk's tool: "why was this code refused?".

use std::fs;
use std::path::{Path, PathBuf};

use checkpoint_protocol::passcode::{self, PassClaims, TrustStore, TrustedKey};
use checkpoint_protocol::records::{self, TrustConfig};
use image::{GrayImage, ImageReader, Limits};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::qr::{self, QrConfig};

/// Largest image dimension accepted from a file; larger ones are refused before decoding.
pub const MAX_IMAGE_SIDE: u32 = 8192;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a readable image: {message}")]
    Image { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Trust { path: PathBuf, message: String },
}

/// Reads a file as a luma image, refusing anything over [`MAX_IMAGE_SIDE`] or 256 MiB decoded.
pub fn load_luma(path: &Path) -> Result<GrayImage, ScanError> {
    load_image(path).map(|img| img.to_luma8())
}

/// Reads an image file, refusing anything over [`MAX_IMAGE_SIDE`] or 256 MiB decoded.
pub fn load_image(path: &Path) -> Result<image::DynamicImage, ScanError> {
    let image_err = |message: String| ScanError::Image {
        path: path.to_path_buf(),
        message,
    };
    let mut reader = ImageReader::open(path)
        .map_err(|source| ScanError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .with_guessed_format()
        .map_err(|e| image_err(e.to_string()))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(256 * 1024 * 1024);
    reader.limits(limits);
    reader.decode().map_err(|e| image_err(e.to_string()))
}

/// Builds a trust store from files: PEM public keys (`passcode.pub`, or a directory holding
/// one) and trust configuration records (JSON, as boxes receive them, with revocations).
pub fn load_trust(paths: &[PathBuf]) -> Result<TrustStore, ScanError> {
    let mut store = TrustStore::new();
    for path in paths {
        let file = if path.is_dir() {
            path.join("passcode.pub")
        } else {
            path.clone()
        };
        let trust_err = |message: String| ScanError::Trust {
            path: file.clone(),
            message,
        };
        let text = fs::read_to_string(&file).map_err(|source| ScanError::Io {
            path: file.clone(),
            source,
        })?;
        if text.trim_start().starts_with('{') {
            let config: TrustConfig =
                records::decode(text.as_bytes()).map_err(|e| trust_err(e.to_string()))?;
            let other = config.to_trust_store().map_err(trust_err)?;
            for key in other.keys() {
                store.add_key(key.clone());
            }
            for revocation in other.revocations() {
                store.revoke(revocation);
            }
        } else {
            store.add_key(TrustedKey::from_pem(&text).map_err(|e| trust_err(e.to_string()))?);
        }
    }
    Ok(store)
}

/// Verification settings for `scan`.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub trust: TrustStore,
    /// The instant codes are checked at, Unix seconds.
    pub at: i64,
    pub skew_secs: u32,
    pub qr: QrConfig,
}

/// One decoded code and its verdict: one JSON line of `scan`'s output.
#[derive(Debug, Serialize)]
pub struct CodeReport {
    pub image: String,
    /// The payload's text, or `hex:` and its bytes for a binary payload.
    pub payload: String,
    /// `zxing-cpp` or `rqrr`.
    pub decoder: &'static str,
    /// `valid`, or the rejection reason.
    pub verdict: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<PassReport>,
}

/// The claims of a code, when it decoded. For codes whose signature failed they are untrusted.
#[derive(Debug, Serialize)]
pub struct PassReport {
    pub kid: String,
    pub status: &'static str,
    pub subject: String,
    pub dependants: Vec<String>,
    pub issued_at: String,
    pub expires_at: String,
}

fn rfc3339(unix: u32) -> String {
    OffsetDateTime::from_unix_timestamp(i64::from(unix))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

impl From<&PassClaims> for PassReport {
    fn from(c: &PassClaims) -> Self {
        PassReport {
            kid: c.kid.to_string(),
            status: c.status.as_str(),
            subject: c.subject.to_string(),
            dependants: c.dependants.iter().map(ToString::to_string).collect(),
            issued_at: rfc3339(c.issued_at),
            expires_at: rfc3339(c.expires_at),
        }
    }
}

/// Verifies one decoded code.
pub fn report(image: &Path, code: &qr::Code, opts: &ScanOptions) -> CodeReport {
    let image = image.display().to_string();
    let payload = code.payload().into_owned();
    let decoder = match code.engine {
        qr::Engine::Zxing => "zxing-cpp",
        qr::Engine::Rqrr => "rqrr",
    };
    match passcode::verify(&payload, &opts.trust, opts.at, opts.skew_secs) {
        Ok(claims) => CodeReport {
            image,
            payload,
            decoder,
            verdict: "valid".to_string(),
            detail: None,
            pass: Some(PassReport::from(&claims)),
        },
        Err(rejection) => CodeReport {
            image,
            payload,
            decoder,
            verdict: rejection.reason.as_str().to_string(),
            detail: Some(rejection.detail),
            pass: rejection.claims.as_ref().map(PassReport::from),
        },
    }
}

/// Decodes every code in one image file.
pub fn decode_file(path: &Path, cfg: &QrConfig) -> Result<qr::Decoded, ScanError> {
    let img = load_luma(path)?;
    Ok(qr::decode(&img, cfg))
}
