//! The shipped Mosquitto configuration (`config/mosquitto/`), run for real: mutual TLS with
//! certificates from `checkpoint-admin pki`, and the ACL pinning each box to its own topics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use checkpoint_e2e::broker::{Identity, Listener, Mosquitto, Pki};
use checkpoint_e2e::TempDir;
use rumqttc::{MqttOptions, QoS, TlsConfiguration, Transport};

/// A client with id `id` and TLS configuration `tls`, or why it could not connect.
fn connect(
    broker: &Mosquitto,
    id: &str,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Listener, String> {
    let mut o = MqttOptions::new(id, "127.0.0.1", broker.port);
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    Listener::connect(o, &[])
}

fn with_cert(pki: &Pki, id: &Identity) -> Arc<rustls::ClientConfig> {
    checkpoint_link::tls::client_config(&pki.ca(), &id.cert, &id.key).unwrap()
}

/// Trusts the CA but presents no certificate.
fn without_cert(pki: &Pki) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(pki.ca()).unwrap();
    for c in rustls_pemfile_certs(&pem) {
        roots.add(c).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .map(|c| c.unwrap())
        .collect()
}

#[test]
fn a_box_reaches_only_its_own_topics() {
    let dir = TempDir::new("acl");
    let pki = Pki::new(&dir.path().join("pki"));
    let broker = Mosquitto::start(&dir.path().join("broker"), Some(&pki));
    let central = connect(&broker, "central", with_cert(&pki, &pki.client("central"))).unwrap();
    central
        .client
        .subscribe("checkpoint/v1/box/+/event", QoS::AtLeastOnce)
        .unwrap();
    let monitor = connect(&broker, "monitor", with_cert(&pki, &pki.client("monitor"))).unwrap();
    monitor
        .client
        .subscribe("checkpoint/v1/box/+/telemetry", QoS::AtLeastOnce)
        .unwrap();
    monitor
        .client
        .subscribe("checkpoint/v1/box/+/event", QoS::AtLeastOnce)
        .unwrap();
    let a = connect(&broker, "gate-a", with_cert(&pki, &pki.client("gate-a"))).unwrap();
    // gate-a listens on gate-b's acks and configuration: it must get nothing of them.
    for t in [
        "checkpoint/v1/box/gate-b/ack",
        "checkpoint/v1/box/gate-b/config/+",
    ] {
        a.client.subscribe(t, QoS::AtLeastOnce).unwrap();
    }
    a.client
        .subscribe("checkpoint/v1/box/gate-a/ack", QoS::AtLeastOnce)
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    let publish = |c: &Listener, topic: &str, body: &str| {
        c.client
            .publish(topic, QoS::AtLeastOnce, false, body.as_bytes().to_vec())
            .unwrap();
    };
    publish(&a, "checkpoint/v1/box/gate-a/event", "own");
    publish(&a, "checkpoint/v1/box/gate-b/event", "forged");
    publish(&a, "checkpoint/v1/box/gate-a/telemetry", "health");
    publish(&a, "checkpoint/v1/box/gate-a/ack", "self-ack");
    publish(&central, "checkpoint/v1/box/gate-b/ack", "for b");
    publish(&central, "checkpoint/v1/box/gate-b/config/trust", "for b");
    publish(&central, "checkpoint/v1/box/gate-a/ack", "for a");

    let got_central = central.received(Duration::from_secs(2));
    let got_a = a.received(Duration::from_millis(500));
    let got_monitor = monitor.received(Duration::from_millis(500));
    let bodies = |v: &[(String, Vec<u8>)]| -> Vec<String> {
        v.iter()
            .map(|(t, b)| format!("{t}={}", String::from_utf8_lossy(b)))
            .collect()
    };
    assert_eq!(
        bodies(&got_central),
        ["checkpoint/v1/box/gate-a/event=own"],
        "central gets the box's own event, never the forged one"
    );
    // The box's own ack from central arrives; its self-ack and b's topics do not.
    assert_eq!(bodies(&got_a), ["checkpoint/v1/box/gate-a/ack=for a"]);
    // The monitor sees health, never events.
    assert_eq!(
        bodies(&got_monitor),
        ["checkpoint/v1/box/gate-a/telemetry=health"]
    );
    let log = broker.log();
    assert!(
        log.contains("Denied PUBLISH from gate-a")
            && log.contains("checkpoint/v1/box/gate-b/event"),
        "Mosquitto logs the refusal:\n{log}"
    );
}

#[test]
fn no_certificate_an_expired_one_or_a_foreign_ca_cannot_connect() {
    let dir = TempDir::new("acl-tls");
    let pki = Pki::new(&dir.path().join("pki"));
    let foreign = Pki::new(&dir.path().join("foreign"));
    let broker = Mosquitto::start(&dir.path().join("broker"), Some(&pki));
    // Control: the same box with a good certificate connects.
    assert!(connect(&broker, "gate-a", with_cert(&pki, &pki.client("gate-a"))).is_ok());
    // The broker ends the TLS handshake with an alert naming the reason.
    let refused = [
        ("no certificate", "CertificateRequired", without_cert(&pki)),
        (
            "expired",
            "CertificateExpired",
            with_cert(&pki, &pki.expired_box("gate-a")),
        ),
        (
            "foreign CA",
            // Both test CAs share a name, so the broker finds "its" issuer and the signature
            // does not verify.
            "DecryptError",
            checkpoint_link::tls::client_config(
                &pki.ca(),
                &foreign.client("gate-a").cert,
                &foreign.client("gate-a").key,
            )
            .unwrap(),
        ),
    ];
    for (what, alert, tls) in refused {
        match connect(&broker, "gate-a", tls) {
            Ok(_) => panic!("{what}: connected"),
            Err(e) => assert!(e.contains(alert), "{what}: {e}"),
        }
    }
}
