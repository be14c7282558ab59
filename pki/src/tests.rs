use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;

use super::*;

fn der(path: &Path) -> CertificateDer<'static> {
    let pem = std::fs::read(path).unwrap();
    let mut slice = pem.as_slice();
    let cert = rustls_pemfile::certs(&mut slice).next().unwrap().unwrap();
    cert.into_owned()
}

/// Verifies `leaf` as a client certificate against the CA in `dir`, at `at`.
fn client_ok(dir: &Path, leaf: &Path, at: OffsetDateTime) -> Result<(), rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der(&dir.join("ca.pem"))).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .unwrap();
    let now =
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(at.unix_timestamp() as u64));
    v.verify_client_cert(&der(leaf), &[], now).map(|_| ())
}

#[test]
fn a_ca_issues_box_certificates_that_verify_and_keys_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let ca = init(dir.path(), "Test site CA", Validity::days(10).unwrap()).unwrap();
    assert_eq!(
        std::fs::metadata(&ca.key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let loaded = Ca::load(dir.path()).unwrap();
    let id: BoxId = "gate-1".parse().unwrap();
    let b = loaded
        .issue_box(&id, Validity::days(5).unwrap(), false)
        .unwrap();
    assert_eq!(b.cert, dir.path().join("boxes/gate-1.pem"));
    // A second issue for the same box is refused unless asked for; the files stay as they were.
    let before = std::fs::read(&b.key).unwrap();
    let again = loaded
        .issue_box(&id, Validity::days(5).unwrap(), false)
        .unwrap_err();
    assert!(again.to_string().contains("--replace"), "{again}");
    assert_eq!(std::fs::read(&b.key).unwrap(), before);
    let replaced = loaded
        .issue_box(&id, Validity::days(5).unwrap(), true)
        .unwrap();
    assert_ne!(std::fs::read(&replaced.key).unwrap(), before);
    assert_eq!(
        std::fs::metadata(&b.key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let now = OffsetDateTime::now_utc();
    client_ok(dir.path(), &b.cert, now).unwrap();
    // Expired after its validity; the CN is the box id.
    assert!(client_ok(dir.path(), &b.cert, now + Duration::days(6)).is_err());
    let parsed =
        CertificateParams::from_ca_cert_pem(&std::fs::read_to_string(&b.cert).unwrap()).unwrap();
    let cn = parsed
        .distinguished_name
        .get(&DnType::CommonName)
        .cloned()
        .unwrap();
    assert_eq!(cn, rcgen::DnValue::Utf8String("gate-1".into()));
}

#[test]
fn another_ca_does_not_vouch_for_our_boxes() {
    let ours = tempfile::tempdir().unwrap();
    let theirs = tempfile::tempdir().unwrap();
    init(ours.path(), "Ours", Validity::days(10).unwrap()).unwrap();
    init(theirs.path(), "Theirs", Validity::days(10).unwrap()).unwrap();
    let foreign = Ca::load(theirs.path())
        .unwrap()
        .issue_box(
            &"gate-1".parse().unwrap(),
            Validity::days(5).unwrap(),
            false,
        )
        .unwrap();
    assert!(client_ok(ours.path(), &foreign.cert, OffsetDateTime::now_utc()).is_err());
}

#[test]
fn missing_or_existing_ca_and_reserved_names_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let e = Ca::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("no CA") && e.contains("pki init"), "{e}");
    init(dir.path(), "CA", Validity::days(10).unwrap()).unwrap();
    let e = init(dir.path(), "CA", Validity::days(10).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("already holds a CA"), "{e}");
    let ca = Ca::load(dir.path()).unwrap();
    let e = ca
        .issue_box(
            &"central".parse().unwrap(),
            Validity::days(1).unwrap(),
            false,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("reserved"), "{e}");
    assert!(ca
        .issue_client("gate-1", Validity::days(1).unwrap())
        .is_err());
    assert!(ca.issue_server(&[], Validity::days(1).unwrap()).is_err());
    assert!(Validity::days(0).is_err());
    // A corrupt key is named.
    std::fs::write(dir.path().join("ca.key"), "garbage").unwrap();
    let e = Ca::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("ca.key"), "{e}");
}

#[test]
fn a_server_certificate_names_hosts_and_addresses() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path(), "CA", Validity::days(10).unwrap()).unwrap();
    let s = Ca::load(dir.path())
        .unwrap()
        .issue_server(
            &["mqtt.example.org".into(), "127.0.0.1".into()],
            Validity::days(5).unwrap(),
        )
        .unwrap();
    let pem = std::fs::read_to_string(&s.cert).unwrap();
    let p = CertificateParams::from_ca_cert_pem(&pem).unwrap();
    assert!(p
        .subject_alt_names
        .contains(&SanType::IpAddress("127.0.0.1".parse().unwrap())));
    assert_eq!(p.subject_alt_names.len(), 2);
}
