//! `[embedded_broker]`: central runs its own MQTT broker (rumqttd) for a small site.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedBrokerConfig {
    /// Plain MQTT: for boxes on this machine or a segment you trust, nothing else.
    #[serde(default)]
    pub plain: Option<SocketAddr>,
    /// Mutual TLS: boxes present certificates from `checkpoint-central pki`.
    #[serde(default)]
    pub tls: Option<EmbeddedTls>,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    #[serde(default = "default_max_payload")]
    pub max_payload_bytes: usize,
    #[serde(default = "default_max_inflight")]
    pub max_inflight: usize,
    #[serde(default = "default_connection_timeout")]
    pub connection_timeout_ms: u16,
    /// The router keeps messages in memory in segments of this size, at most `segments` of
    /// them per topic filter; boxes hold their events until acked, so this bounds memory only.
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: usize,
    #[serde(default = "default_segments")]
    pub segments: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedTls {
    pub listen: SocketAddr,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn default_max_connections() -> usize {
    5000
}
fn default_max_payload() -> usize {
    256 * 1024
}
fn default_max_inflight() -> usize {
    100
}
fn default_connection_timeout() -> u16 {
    5000
}
fn default_segment_bytes() -> usize {
    16 << 20
}
fn default_segments() -> usize {
    8
}

impl EmbeddedBrokerConfig {
    pub(super) fn problems(&self, out: &mut Vec<String>) {
        let p = "embedded_broker";
        if self.plain.is_none() && self.tls.is_none() {
            out.push(format!("{p}: give `plain`, `tls` or both"));
        }
        if let (Some(a), Some(t)) = (&self.plain, &self.tls) {
            if a.port() == t.listen.port() && a.port() != 0 {
                out.push(format!("{p}: plain and tls listen on the same port"));
            }
        }
        if let Some(t) = &self.tls {
            for (name, f) in [("ca", &t.ca), ("cert", &t.cert), ("key", &t.key)] {
                if f.as_os_str().is_empty() {
                    out.push(format!("{p}.tls.{name}: must not be empty"));
                }
            }
        }
        let ranges: [(&str, usize, usize, usize); 5] = [
            ("max_connections", self.max_connections, 1, 1_000_000),
            ("max_payload_bytes", self.max_payload_bytes, 1024, 16 << 20),
            ("max_inflight", self.max_inflight, 1, 65_535),
            ("segment_bytes", self.segment_bytes, 1 << 20, 1 << 30),
            ("segments", self.segments, 1, 1000),
        ];
        for (name, v, lo, hi) in ranges {
            if !(lo..=hi).contains(&v) {
                out.push(format!("{p}.{name}: {v} is not in {lo}..={hi}"));
            }
        }
        if self.connection_timeout_ms < 100 {
            out.push(format!(
                "{p}.connection_timeout_ms: {} is under 100",
                self.connection_timeout_ms
            ));
        }
    }
}
