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
