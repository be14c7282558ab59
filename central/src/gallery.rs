//! Face galleries central forwards to boxes: retained on `checkpoint/v1/box/{box}/config/gallery`,
//! so a box gets its gallery when it (re)connects and replaces the one in force without a
//! restart.
//!
//! A gallery holds embeddings (biometric data), never photos or names. Central therefore
//! publishes one only to that box's own topic (the shipped broker ACL lets only that box's
//! certificate read it), only when every box connects over TLS, and does not keep a copy.
//!
//! The file format is defined with the gallery itself (`face/src/gallery.rs`, built by
//! `checkpointd enroll`); central checks its frame — magic, version, SHA-256 trailer, size —
//! so an operator learns at once that a file is not a gallery; the box checks it whole again
//! before using it.

use checkpoint_protocol::ids::BoxId;
use sha2::{Digest, Sha256};

use crate::config::{CentralConfig, Source};

/// Largest gallery central forwards; boxes accept 8 MiB (some 15,000 enrolled photos).
pub const MAX_BYTES: usize = 8 * 1024 * 1024;
const MAGIC: &[u8; 8] = b"CKPTGAL\0";
const VERSION: u32 = 1;

/// A gallery to publish, from the API to ingest (which holds the broker connection).
#[derive(Debug)]
pub struct GalleryPublish {
    pub box_id: BoxId,
    pub bytes: Vec<u8>,
    /// Whether the broker took it.
    pub done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// Whether `bytes` is framed as a gallery file boxes read.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() > MAX_BYTES {
        return Err(format!(
            "{} bytes; boxes accept galleries of at most {MAX_BYTES}",
            bytes.len()
        ));
    }
    if bytes.len() < 20 + 32 || &bytes[..8] != MAGIC {
        return Err("not a Checkpoint gallery file (make one with checkpointd enroll)".into());
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != VERSION {
        return Err(format!(
            "gallery version {version}; boxes read version {VERSION} (enrol again)"
        ));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return Err("gallery damaged: checksum mismatch (cut short or altered)".into());
    }
    Ok(())
}

/// Galleries go out only when no box can connect without TLS.
pub fn tls_only(cfg: &CentralConfig) -> Result<(), String> {
    match cfg.source() {
        Some(Source::External(b)) if matches!(b.transport, checkpoint_link::Transport::Plain) => {
            Err("central reaches its broker without TLS".into())
        }
        Some(Source::Embedded(e)) if e.plain.is_some() => {
            Err("the embedded broker has a plain (non-TLS) listener".into())
        }
        Some(_) => Ok(()),
        None => Err("no broker is configured".into()),
    }
    .map_err(|why: String| {
        format!("face galleries are biometric data and go out over TLS only: {why}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(version: u32, body_extra: &[u8]) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&version.to_le_bytes());
        b.extend_from_slice(&128u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(body_extra);
        let sum = Sha256::digest(&b);
        b.extend_from_slice(&sum);
        b
    }

    #[test]
    fn only_framed_galleries_of_the_boxes_version_pass() {
        assert_eq!(check(&framed(1, b"")), Ok(()));
        let e = check(&framed(2, b"")).unwrap_err();
        assert!(e.contains("version 2"), "{e}");
        let mut cut = framed(1, b"abc");
        cut.pop();
        assert!(check(&cut).unwrap_err().contains("damaged"));
        assert!(check(b"hello")
            .unwrap_err()
            .contains("not a Checkpoint gallery"));
        let big = vec![0u8; MAX_BYTES + 1];
        assert!(check(&big).unwrap_err().contains("at most"));
    }

    #[test]
    fn galleries_need_tls_on_every_path() {
        let base = |broker: &str| {
            format!(
                "data_dir = \"/d\"\n{broker}\n[api]\nlisten = \"127.0.0.1:1\"\ntoken_file = \"/t\"\n"
            )
        };
        let parse = |text: &str| crate::config::CentralConfig::parse(text).unwrap();
        let plain = parse(&base(
            "[broker]\nhost = \"h\"\nport = 1\ntransport = { kind = \"plain\" }",
        ));
        assert!(tls_only(&plain).unwrap_err().contains("without TLS"));
        let tls = parse(&base(
            "[broker]\nhost = \"h\"\nport = 1\ntransport = { kind = \"tls\", ca = \"/c\", cert = \"/c\", key = \"/k\" }",
        ));
        assert_eq!(tls_only(&tls), Ok(()));
        let embedded_plain = parse(&base("[embedded_broker]\nplain = \"127.0.0.1:1883\""));
        assert!(tls_only(&embedded_plain).unwrap_err().contains("plain"));
    }
}
