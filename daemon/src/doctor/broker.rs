//! Doctor's broker checks, which must never disturb a live box: the certificate names this box;
//! the TLS handshake with it succeeds (which also proves the broker accepts it: CA, expiry,
//! revocation); and only while the daemon is stopped, an MQTT session with no Last Will, no
//! subscription and nothing published. The broker makes a certificate's name the client id, so
//! a session while the daemon runs would take over the daemon's.

use std::io::ErrorKind;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet};

use super::{not_ok, pass, Check, Verdict};
use crate::config::{DaemonConfig, Transport};

/// The common name of the PEM certificate at `path`.
pub(super) fn common_name(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes)
        .map_err(|e| format!("{}: not a PEM certificate: {e}", path.display()))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("{}: not a certificate: {e}", path.display()))?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .ok_or_else(|| format!("{}: the certificate has no common name", path.display()))?;
    Ok(cn.to_string())
}

/// The certificate's box id is the configured one (the broker knows the box by it).
pub(super) fn identity(cfg: &DaemonConfig) -> Option<Check> {
    let Transport::Tls { cert, .. } = &cfg.uplink.transport else {
        return None;
    };
    let id = cfg.identity.box_id.as_str();
    Some(match common_name(cert) {
        Ok(cn) if cn == id => pass("identity", format!("certificate names box {id}")),
        Ok(cn) => not_ok(
            "identity",
            Verdict::Fail,
            format!("the certificate {} is box {cn}'s, but this box is {id}", cert.display()),
            &format!("install this box's own certificate (`checkpoint-admin pki issue-box {id}`) or correct identity.box_id"),
        ),
        Err(e) => not_ok("identity", Verdict::Fail, e, "check uplink.transport.cert"),
    })
}

/// A TLS handshake, then a short wait for the broker's verdict on our certificate (with TLS 1.3
/// a refusal arrives as an alert just after the handshake).
fn tls_probe(
    host: &str,
    port: u16,
    config: std::sync::Arc<rustls::ClientConfig>,
) -> Result<(), String> {
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    let mut sock =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    let timeout = Some(Duration::from_secs(5));
    sock.set_read_timeout(timeout).map_err(|e| e.to_string())?;
    sock.set_write_timeout(timeout).map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| format!("{host}: {e}"))?;
    let mut conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)
            .map_err(|e| format!("TLS handshake: {e}"))?;
    }
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .map_err(|e| e.to_string())?;
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        match conn.read_tls(&mut sock) {
            Ok(0) => {
                return Err(
                    "the broker closed the connection after the TLS handshake: it refused this certificate"
                        .into(),
                )
            }
            Ok(_) => {
                conn.process_new_packets()
                    .map_err(|e| format!("TLS: {e}"))?;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(format!("TLS: {e}")),
        }
    }
    conn.send_close_notify();
    let _ = conn.complete_io(&mut sock);
    Ok(())
}

/// An MQTT CONNECT and DISCONNECT as this box: no Last Will, the persistent session kept as it
/// is, nothing subscribed or published.
async fn mqtt_probe(cfg: &DaemonConfig) -> Result<(), String> {
    let mut opts = MqttOptions::new(
        cfg.identity.box_id.to_string(),
        cfg.uplink.host.clone(),
        cfg.uplink.port,
    );
    opts.set_keep_alive(Duration::from_secs(10));
    opts.set_clean_session(false);
    opts.set_transport(
        cfg.uplink
            .transport
            .to_rumqttc()
            .map_err(|e| e.to_string())?,
    );
    let (client, mut ev) = AsyncClient::new(opts, 4);
    let r = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err("no answer in 10 s".into()));
    if r.is_ok() {
        let _ = client.disconnect().await;
        // Let the DISCONNECT go out, so the broker does not see a dropped connection.
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while ev.poll().await.is_ok() {}
        })
        .await;
    }
    r
}

fn failure(target: &str, e: &str) -> Check {
    let fix = if e.contains("TLS")
        || e.contains("certificate")
        || e.contains("alert")
        || e.contains("refused this certificate")
    {
        "the broker refused the TLS handshake: check that uplink.transport.ca signed the broker's certificate, that the certificate names uplink.host, and that the box certificate is this box's, not expired and not revoked"
    } else if e.contains("refused") {
        "nothing listens there or the broker refused us: check uplink.host/port and the broker's ACL for this box"
    } else {
        "check the network path to the broker (DNS, firewall, port)"
    };
    not_ok("broker", Verdict::Fail, format!("{target}: {e}"), fix)
}

/// `live`: the daemon runs (its outbox is locked), so only the handshake is tried.
pub(super) async fn broker(cfg: &DaemonConfig, live: bool) -> Check {
    let target = format!("{}:{}", cfg.uplink.host, cfg.uplink.port);
    let tls = match &cfg.uplink.transport {
        Transport::Tls { ca, cert, key } => {
            match checkpoint_link::tls::client_config(ca, cert, key) {
                Ok(c) => Some(c),
                Err(e) => {
                    return not_ok(
                        "broker",
                        Verdict::Fail,
                        e,
                        "check uplink.transport: ca, cert and key must be readable PEM files",
                    )
                }
            }
        }
        Transport::Plain => None,
    };
    let (host, port) = (cfg.uplink.host.clone(), cfg.uplink.port);
    let probe = tokio::task::spawn_blocking(move || match tls {
        Some(c) => tls_probe(&host, port, c),
        None => {
            let addr = (host.as_str(), port)
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve {host}: {e}"))?
                .next()
                .ok_or_else(|| format!("{host} has no address"))?;
            TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    if let Err(e) = probe {
        return failure(&target, &e);
    }
    let how = if matches!(cfg.uplink.transport, Transport::Tls { .. }) {
        " over mutual TLS"
    } else {
        " (plain TCP)"
    };
    if live {
        return pass(
            "broker",
            format!("{target} accepts this box's certificate{how}; the daemon runs, so no MQTT session was opened (it would take over the daemon's)"),
        );
    }
    match mqtt_probe(cfg).await {
        Ok(()) => pass("broker", format!("connected to {target}{how}")),
        Err(e) => failure(&target, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_name_is_read_from_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "gate-7");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let path = dir.path().join("c.pem");
        std::fs::write(&path, cert.pem()).unwrap();
        assert_eq!(common_name(&path).unwrap(), "gate-7");
        std::fs::write(&path, "garbage").unwrap();
        assert!(common_name(&path).unwrap_err().contains("not a PEM"));
    }
}
