//! `checkpointd run` end to end: sim camera replaying issued pass codes, a real Mosquitto over
//! mutual TLS, and a recording stand-in for central.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use checkpoint_e2e::broker::{Mosquitto, Pki};
use checkpoint_e2e::central::{wait_until, TestCentral};
use checkpoint_e2e::kiosk::{self, BoxSpec, Kiosk};
use checkpoint_e2e::TempDir;
use checkpoint_protocol::ids::{BoxId, SubjectId};
use checkpoint_protocol::passcode::{Revocation, TrustStore, TrustedKey};
use checkpoint_protocol::records::{BoxState, Decision, HealthState, Reason, TrustConfig};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

fn trusted(keys: &std::path::Path) -> TrustedKey {
    TrustedKey::from_pem(&std::fs::read_to_string(keys.join("passcode.pub")).unwrap()).unwrap()
}

#[test]
fn every_attempt_becomes_one_event_with_its_reason_over_mutual_tls() {
    let dir = TempDir::new("pipeline");
    let pki = Pki::new(&dir.path().join("pki"));
    let broker = Mosquitto::start(&dir.path().join("broker"), Some(&pki));
    let keys = kiosk::keygen(&dir.path().join("keys"));
    let other = kiosk::keygen(&dir.path().join("other-keys"));

    // Central's trust material, retained: the issuer key and a revocation of carol's codes.
    let central = TestCentral::connect(&broker, Some(&pki), true);
    let now = OffsetDateTime::now_utc();
    let mut store = TrustStore::new();
    store.add_key(trusted(&keys));
    store.revoke(Revocation {
        subject: SubjectId::new("carol").unwrap(),
        issued_before: u32::try_from(now.unix_timestamp() + 3600).unwrap(),
    });
    let signing = checkpoint_protocol::passcode::IssuerKey::from_pem(
        &std::fs::read_to_string(pki.config_key()).unwrap(),
    )
    .unwrap();
    central.publish_trust(&TrustConfig::signed(&store, 1, now, &signing));

    let spec = BoxSpec {
        readings: vec![36.6, 36.6, 36.6, 36.6, 36.6, 36.6, 36.6, 38.5],
        ..BoxSpec::new("gate-1", dir.path(), &broker, Some(&pki))
    };
    std::fs::create_dir_all(&spec.frames).unwrap();
    // Three seconds without codes while the box connects and receives the trust material.
    for i in 0..15 {
        kiosk::blank_frame(&spec.frames.join(format!("{i:02}.png")));
    }
    let two_hours_ago = (now - time::Duration::hours(2)).format(&Rfc3339).unwrap();
    let alice = kiosk::issue(&keys, "alice", "green", "1h", None);
    let codes = [
        alice.clone(),
        kiosk::issue(&keys, "bob", "yellow", "1h", None),
        kiosk::issue(&keys, "carol", "green", "1h", None),
        kiosk::issue(&keys, "dave", "green", "1h", Some(&two_hours_ago)),
        kiosk::issue(&other, "mallory", "green", "1h", None),
        kiosk::forge(&alice),
        "HELLO CHECKPOINT".to_string(),
        kiosk::issue(&keys, "erin", "green", "1h", None),
    ];
    for (i, code) in codes.iter().enumerate() {
        kiosk::qr_frame(code, &spec.frames.join(format!("{:02}.png", 15 + i)));
    }
    let mut k = Kiosk::start(&spec);

    let events = central.wait_events(8, Duration::from_secs(40));
    let expect: [(Decision, Reason, Option<&str>); 8] = [
        (Decision::Admit, Reason::Ok, Some("alice")),
        (Decision::Deny, Reason::StatusNotAllowed, Some("bob")),
        (Decision::Deny, Reason::Revoked, Some("carol")),
        (Decision::Deny, Reason::Expired, Some("dave")),
        (Decision::Deny, Reason::UnknownKey, None),
        (Decision::Deny, Reason::BadSignature, None),
        (Decision::Deny, Reason::NotAPassCode, None),
        (Decision::Deny, Reason::Fever, Some("erin")),
    ];
    assert_eq!(events.len(), 8, "one event per attempt: {events:#?}");
    for (i, (e, (decision, reason, subject))) in events.iter().zip(expect).enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
        assert_eq!(
            (e.decision, e.reason),
            (decision, reason),
            "attempt {}",
            i + 1
        );
        assert_eq!(
            e.subject.as_ref().map(|s| s.as_str()),
            subject,
            "attempt {}",
            i + 1
        );
        assert_eq!(e.box_id, BoxId::new("gate-1").unwrap());
        assert_eq!(e.checkpoint.as_str(), "library");
        assert!(e.clock_synced);
    }
    assert_eq!(events[0].temperature_c, Some(36.6));
    assert_eq!(events[7].temperature_c, Some(38.5));
    assert!(central.bad().is_empty(), "{:?}", central.bad());

    // Acks drain the outbox; telemetry says so, and the door acted on every decision.
    wait_until(Duration::from_secs(20), "outbox drained", || {
        central
            .telemetry()
            .last()
            .is_some_and(|t| t.outbox_depth == 0 && t.last_seq == 8)
    });
    let t = central.telemetry().pop().unwrap();
    assert_eq!(t.camera.state, HealthState::Ok);
    assert_eq!(t.thermometer.state, HealthState::Ok);
    assert!(
        t.trust_age_s.is_some(),
        "central's trust material is in force"
    );
    let signals = spec.gate_signals();
    assert_eq!(signals.len(), 8);
    assert_eq!(signals[0], "admit");
    assert!(signals[1..].iter().all(|s| s == "deny"), "{signals:?}");

    // A clean stop says goodbye with the retained offline status.
    let status = k.terminate().unwrap();
    assert!(status.success(), "exit {status:?}: {}", k.log_text());
    wait_until(Duration::from_secs(5), "offline status", || {
        central
            .status()
            .last()
            .is_some_and(|s| s.state == BoxState::Offline)
    });
    assert!(central.status().iter().any(|s| s.state == BoxState::Online));
    let log = k.log_text();
    assert!(
        !log.contains("alice") && !log.contains(&alice),
        "no names or codes in logs"
    );
    assert!(
        spec.state_dir.join("trust.json").exists(),
        "last good trust copy saved"
    );
}

#[test]
fn malformed_config_lists_every_problem_and_exits_2() {
    let dir = TempDir::new("badconfig");
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "state_dir = \"/tmp/x\"\n[identity]\nsite = \"s\"\nbox_id = \"b\"\ncheckpoint = \"c\"\ndirection = \"in\"\n\
         [camera]\nkind = \"sim\"\ndir = \"/f\"\nfps = 0.0\n[gate]\nkind = \"sim\"\n\
         [uplink]\nhost = \"\"\nport = 8883\ntransport = { kind = \"plain\" }\nkeep_alive = \"1s\"\n",
    )
    .unwrap();
    for args in [
        vec!["check-config", cfg.to_str().unwrap()],
        vec!["run", "--config", cfg.to_str().unwrap()],
    ] {
        let out = checkpoint_e2e::run("checkpointd", &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        for path in ["camera.fps", "uplink.host", "uplink.keep_alive"] {
            assert!(err.contains(path), "{path} missing in: {err}");
        }
    }
    std::fs::write(&cfg, "[identity\n").unwrap();
    let out = checkpoint_e2e::run("checkpointd", &["check-config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid TOML"));
    let out = checkpoint_e2e::run("checkpointd", &["check-config", "/nonexistent.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.toml"));
}

#[test]
fn full_outbox_dead_sensor_and_garbage_messages_are_survived_and_reported() {
    let dir = TempDir::new("faults");
    let broker = Mosquitto::start(&dir.path().join("broker"), None);
    let keys = kiosk::keygen(&dir.path().join("keys"));
    let central = TestCentral::connect(&broker, None, false);
    let spec = BoxSpec {
        readings: vec![36.6],
        fail_after: Some(2),
        fps: 30.0,
        looping: true,
        bootstrap_key: Some(keys.join("passcode.pub")),
        // Every sighting counts, so two frames fill the smallest outbox in seconds.
        policy: "duplicate_cooldown = \"0s\"\n".to_string(),
        outbox: "max_bytes = 65536\nwhen_full = \"refuse_new\"\n".to_string(),
        ..BoxSpec::new("gate-2", dir.path(), &broker, None)
    };
    std::fs::create_dir_all(&spec.frames).unwrap();
    for (i, who) in ["alice", "bob"].iter().enumerate() {
        let code = kiosk::issue(&keys, who, "green", "1h", None);
        kiosk::qr_frame(&code, &spec.frames.join(format!("{i}.png")));
    }
    let mut k = Kiosk::start(&spec);

    // Garbage on the topics the box listens to changes nothing.
    wait_until(Duration::from_secs(20), "box online", || {
        !central.telemetry().is_empty()
    });
    central.publish_raw("checkpoint/v1/box/gate-2/ack", b"\xff\x00 not json");
    central.publish_raw(
        "checkpoint/v1/box/gate-2/ack",
        br#"{"schema":1,"box":"gate-2","ranges":[{"first":5,"last":1}]}"#,
    );
    central.publish_raw("checkpoint/v1/shared/config/trust", b"{\"schema\":99}");
    central.publish_raw("checkpoint/v1/box/gate-2/command", &[0u8; 10_000]);

    wait_until(
        Duration::from_secs(40),
        "outbox full alarm and sensor fault",
        || {
            central.telemetry().last().is_some_and(|t| {
                t.outbox_full && t.dropped_events > 0 && t.thermometer.state == HealthState::Fault
            })
        },
    );
    assert!(k.alive(), "the daemon keeps running: {}", k.log_text());
    let events = central.unique_events();
    assert!(events.iter().take(2).all(|e| e.decision == Decision::Admit));
    assert!(
        events
            .iter()
            .skip(2)
            .all(|e| e.reason == Reason::NoTemperature),
        "a dead sensor denies under the hard temperature policy"
    );
    let t = central.telemetry().pop().unwrap();
    assert!(t.outbox_bytes <= 65536);
    assert!(
        t.last_seq > t.outbox_depth,
        "refused events consumed sequence numbers"
    );
    let log = k.log_text();
    assert!(log.contains("Malformed ack ignored"), "{log}");
    assert!(log.contains("Trust configuration refused"), "{log}");
    assert!(log.contains("Outbox full"), "{log}");
    assert!(k.terminate().unwrap().success());
}
