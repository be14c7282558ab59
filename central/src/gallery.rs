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

/// How central reaches the boxes' broker, as far as galleries care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerPath {
    /// No broker configured.
    None,
    /// An external broker over plain MQTT.
    Plain,
    /// An external broker over TLS, or the embedded one (TLS only, mutual).
    Tls,
}

/// Galleries go out only when no box can connect without TLS.
pub fn tls_only(path: BrokerPath) -> Result<(), String> {
    match path {
        BrokerPath::Plain => Err("central reaches its broker without TLS".to_string()),
        BrokerPath::Tls => Ok(()),
        BrokerPath::None => Err("no broker is configured".to_string()),
    }
    .map_err(|why| format!("face galleries are biometric data and go out over TLS only: {why}"))
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
    fn galleries_go_out_over_tls_only() {
        assert_eq!(tls_only(BrokerPath::Tls), Ok(()));
        assert!(tls_only(BrokerPath::Plain)
            .unwrap_err()
            .contains("without TLS"));
        assert!(tls_only(BrokerPath::None)
            .unwrap_err()
            .contains("no broker"));
    }
}
