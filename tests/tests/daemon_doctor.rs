//! `checkpointd doctor`: a readable checklist that passes on a healthy box and names the fix for
//! what fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use checkpoint_e2e::broker::{Mosquitto, Pki};
use checkpoint_e2e::kiosk::{self, BoxSpec};
use checkpoint_e2e::TempDir;

fn doctor(spec: &BoxSpec) -> (Option<i32>, String) {
    let cfg = spec.write();
    let out = checkpoint_e2e::run(
        "checkpointd",
        &["doctor", "--config", cfg.to_str().unwrap()],
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

fn line<'a>(report: &'a str, name: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no {name} line in:\n{report}"))
}

#[test]
fn doctor_passes_a_healthy_box_and_explains_failures() {
    let dir = TempDir::new("doctor");
    let pki = Pki::new(&dir.path().join("pki"));
    let mut broker = Mosquitto::start(&dir.path().join("broker"), Some(&pki));
    let keys = kiosk::keygen(&dir.path().join("keys"));
    let mut spec = BoxSpec {
        readings: vec![36.4],
        bootstrap_key: Some(keys.join("passcode.pub")),
        ..BoxSpec::new("gate-d", dir.path(), &broker, Some(&pki))
    };
    std::fs::create_dir_all(&spec.frames).unwrap();
    kiosk::blank_frame(&spec.frames.join("0.png"));

    let (code, report) = doctor(&spec);
    assert_eq!(code, Some(0), "{report}");
    for name in ["camera", "thermometer", "gate", "broker", "outbox", "trust"] {
        assert!(line(&report, name).starts_with("PASS"), "{name}:\n{report}");
    }
    assert!(line(&report, "broker").contains("mutual TLS"));
    assert!(line(&report, "thermometer").contains("36.4"));
    // This machine's clock may or may not be synchronised; either way it is a line, not a failure.
    assert!(!line(&report, "clock").starts_with("FAIL"));

    // A certificate from another CA: the broker refuses the handshake.
    let foreign = Pki::new(&dir.path().join("foreign"));
    spec.tls = Some((pki.ca(), foreign.client("gate-d")));
    let (code, report) = doctor(&spec);
    assert_eq!(code, Some(1), "{report}");
    assert!(line(&report, "broker").starts_with("FAIL"), "{report}");
    assert!(report.contains("fix:"), "{report}");

    // Broker down, camera folder empty, bootstrap key missing: each says what to do.
    spec.tls = Some((pki.ca(), pki.client("gate-d")));
    broker.stop();
    std::fs::remove_file(spec.frames.join("0.png")).unwrap();
    spec.bootstrap_key = Some(dir.path().join("missing.pub"));
    let (code, report) = doctor(&spec);
    assert_eq!(code, Some(1), "{report}");
    for name in ["camera", "broker", "trust"] {
        assert!(line(&report, name).starts_with("FAIL"), "{name}:\n{report}");
    }
    assert!(report.matches("fix:").count() >= 3, "{report}");
}

/// Doctor beside a running box on central's embedded broker: it opens no MQTT session (the
/// broker makes the certificate's name the client id, so one would take over the daemon's) and
/// sets no Last Will, so the box stays online and central raises no alert. With another box's
/// certificate it fails and says whose it is.
#[test]
fn doctor_beside_a_live_box_disturbs_nothing_and_checks_the_certificate_is_this_boxs() {
    let dir = TempDir::new("doctor-live");
    let pki = Pki::new(&dir.path().join("pki"));
    let keys = kiosk::keygen(&dir.path().join("keys"));
    let port = checkpoint_e2e::broker::free_port();
    let central = checkpoint_e2e::central::CentralProc::start_embedded_tls(
        &dir.path().join("central"),
        &pki,
        port,
        "[alerts]\ncheck_every = \"1s\"\n",
    );
    central.command(&["boxes"]);
    let mut spec = BoxSpec {
        bootstrap_key: Some(keys.join("passcode.pub")),
        ..BoxSpec::tls_to("gate-l", &dir.path().join("box"), port, &pki)
    };
    std::fs::create_dir_all(&spec.frames).unwrap();
    kiosk::blank_frame(&spec.frames.join("0.png"));
    let k = kiosk::Kiosk::start(&spec);
    let online = || {
        central
            .box_row("gate-l")
            .is_some_and(|b| b["state"] == "online")
    };
    checkpoint_e2e::central::wait_until(
        std::time::Duration::from_secs(30),
        "gate-l online",
        online,
    );

    let (code, report) = doctor(&spec);
    assert_eq!(code, Some(0), "{report}");
    assert!(line(&report, "identity").starts_with("PASS"), "{report}");
    let broker = line(&report, "broker");
    assert!(
        broker.starts_with("PASS") && broker.contains("no MQTT session"),
        "{report}"
    );
    // The outbox as the running daemon last saw it, read from its saved telemetry.
    let outbox = line(&report, "outbox");
    assert!(
        outbox.contains("unacknowledged event(s)") && outbox.contains("running daemon's figures"),
        "{report}"
    );
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(online(), "gate-l still online");
    assert_eq!(
        k.log_text().matches("Connected to the broker.").count(),
        1,
        "the daemon kept its session: {}",
        k.log_text()
    );
    let log = central.log_text();
    assert!(!log.contains("box_offline"), "no alert: {log}");

    // Another box's certificate: the broker would accept it, doctor does not.
    spec.tls = Some((pki.ca(), pki.client("gate-other")));
    let (code, report) = doctor(&spec);
    assert_eq!(code, Some(1), "{report}");
    let identity = line(&report, "identity");
    assert!(
        identity.starts_with("FAIL")
            && identity.contains("gate-other")
            && identity.contains("gate-l"),
        "{report}"
    );
    assert!(report.contains("pki issue-box gate-l"), "{report}");
}
