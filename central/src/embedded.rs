//! The embedded MQTT broker (rumqttd) for a site that runs one process: boxes connect to it as
//! to any broker; ingest reads through an in-process link instead of a network client.
//!
//! Every router and connection limit is set here from `[embedded_broker]` (rumqttd's defaults
//! are zeros). rumqttd has no ACLs: mutual TLS proves a box is one of the site's, but does not
//! pin it to its own topics as Mosquitto with `config/mosquitto/checkpoint.acl` does. Central
//! still rejects an event whose payload names another box than its topic.
//!
//! rumqttd keeps messages in memory: what it holds for a box that is away is lost if central
//! stops, but boxes keep every event until central acks it, so nothing stored is lost; acks
//! and configuration are sent again (boxes resend, trust is republished on start).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};

use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings, TlsConfig};

use crate::config::EmbeddedBrokerConfig;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("embedded broker cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("embedded broker TLS file {path}: {source}")]
    TlsFile {
        path: String,
        source: std::io::Error,
    },
    #[error("embedded broker: {0}")]
    Start(String),
}

/// The client id of ingest's in-process link: a prefix and 16 random bytes drawn at every
/// start. rumqttd replaces a connection whose client id another client presents, so a guessable
/// id would let any client cut central off its own broker; nobody can present this one.
fn link_id() -> Result<String, EmbeddedError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| EmbeddedError::Start(format!("randomness: {e}")))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("checkpoint-central-{hex}"))
}

fn settings(
    name: &str,
    listen: SocketAddr,
    tls: Option<TlsConfig>,
    cfg: &EmbeddedBrokerConfig,
) -> ServerSettings {
    ServerSettings {
        name: name.to_string(),
        listen,
        tls,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: cfg.connection_timeout_ms,
            max_payload_size: cfg.max_payload_bytes,
            max_inflight_count: cfg.max_inflight,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    }
}

/// Checks what rumqttd would only report from its own threads: the ports are free and the TLS
/// files readable.
fn preflight(cfg: &EmbeddedBrokerConfig) -> Result<(), EmbeddedError> {
    let addrs = cfg.plain.iter().chain(cfg.tls.iter().map(|t| &t.listen));
    for addr in addrs {
        TcpListener::bind(addr).map_err(|source| EmbeddedError::Listen {
            addr: *addr,
            source,
        })?;
    }
    if let Some(t) = &cfg.tls {
        for f in [&t.ca, &t.cert, &t.key] {
            std::fs::File::open(f).map_err(|source| EmbeddedError::TlsFile {
                path: f.display().to_string(),
                source,
            })?;
        }
        // A readable but wrong file fails at the first handshake; say so now.
        checkpoint_link::tls::client_config(&t.ca, &t.cert, &t.key)
            .map_err(|e| EmbeddedError::Start(format!("TLS material: {e}")))?;
    }
    Ok(())
}

/// rumqttd's configuration from ours, every limit explicit.
pub fn rumqttd_config(cfg: &EmbeddedBrokerConfig) -> Config {
    let mut v4 = HashMap::new();
    if let Some(addr) = cfg.plain {
        v4.insert("plain".to_string(), settings("plain", addr, None, cfg));
    }
    if let Some(t) = &cfg.tls {
        let tls = TlsConfig::Rustls {
            capath: Some(t.ca.display().to_string()),
            certpath: t.cert.display().to_string(),
            keypath: t.key.display().to_string(),
        };
        v4.insert("tls".to_string(), settings("tls", t.listen, Some(tls), cfg));
    }
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: cfg.max_connections,
            max_outgoing_packet_count: 1024,
            max_segment_size: cfg.segment_bytes,
            max_segment_count: cfg.segments,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(v4),
        ..Config::default()
    }
}

/// Starts the broker on its own threads and returns ingest's link to it.
pub fn start(cfg: &EmbeddedBrokerConfig) -> Result<(LinkTx, LinkRx), EmbeddedError> {
    preflight(cfg)?;
    let mut broker = Broker::new(rumqttd_config(cfg));
    let (tx, rx) = broker
        .link(&link_id()?)
        .map_err(|e| EmbeddedError::Start(e.to_string()))?;
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            // Returns only on a configuration error (the listeners run on their own threads).
            if let Err(error) = broker.start() {
                tracing::error!(message = "Embedded broker stopped.", %error);
            }
        })
        .map_err(|e| EmbeddedError::Start(e.to_string()))?;
    tracing::info!(
        message = "Embedded broker started.",
        plain = ?cfg.plain,
        tls = ?cfg.tls.as_ref().map(|t| t.listen)
    );
    Ok((tx, rx))
}
