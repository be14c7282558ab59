//! Face galleries central forwards to boxes: retained on `checkpoint/v1/box/{box}/config/gallery`,
//! so a box gets its gallery when it (re)connects and replaces the one in force without a
//! restart.
//!
//! A gallery holds embeddings (biometric data), never photos or names. Central therefore
//! publishes one only to that box's own topic (the shipped broker ACL lets only that box's
//! certificate read it), only when every box connects over TLS, and does not keep a copy.
//!
//! The file format is the protocol's ([`checkpoint_protocol::gallery`]); central decodes it
//! whole, so an operator learns at once that a file is not a gallery, and the box checks it
//! again before using it.

use checkpoint_protocol::gallery::{self, MAX_BYTES};
use checkpoint_protocol::ids::BoxId;

use crate::config::{CentralConfig, Source};

/// A gallery to publish, from the API to ingest (which holds the broker connection).
#[derive(Debug)]
pub struct GalleryPublish {
    pub box_id: BoxId,
    pub bytes: Vec<u8>,
    /// Whether the broker took it.
    pub done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// Whether `bytes` is a gallery file boxes read, small enough for the wire.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() > MAX_BYTES {
        return Err(format!(
            "{} bytes; boxes accept galleries of at most {MAX_BYTES}",
            bytes.len()
        ));
    }
    gallery::decode(bytes)
        .map(|_| ())
        .map_err(|e| format!("{e} (make one with checkpointd enroll)"))
}

/// Galleries go out only when no box can connect without TLS.
pub fn tls_only(cfg: &CentralConfig) -> Result<(), String> {
    match cfg.source() {
        Some(Source::External(b)) if matches!(b.transport, checkpoint_link::Transport::Plain) => {
            Err("central reaches its broker without TLS".into())
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

    #[test]
    fn only_galleries_boxes_read_pass() {
        let ok = gallery::encode(2, &["p-1".to_string()], &[1.0, 0.0]);
        assert_eq!(check(&ok), Ok(()));
        let mut v2 = ok.clone();
        v2[8] = 2;
        let e = check(&v2).unwrap_err();
        assert!(e.contains("version 2"), "{e}");
        let mut cut = ok.clone();
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
        let embedded = parse(&base(
            "[embedded_broker]\nlisten = \"127.0.0.1:8883\"\npki_dir = \"/p\"",
        ));
        assert_eq!(tls_only(&embedded), Ok(()));
    }
}
