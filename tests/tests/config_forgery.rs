//! Forged configuration changes nothing at a box: trust material signed by a wrong key,
//! unsigned, replayed with an older serial or dated far in the future is refused (counted,
//! logged) and the box keeps verifying with central's genuine material; central's next genuine
//! publication still gets through. Acks that are retained or name events the box never sent
//! delete nothing. Run on Mosquitto with the shipped ACL (forgeries from a client that holds
//! central's certificate but not its signing key) and on the embedded broker (forgeries from a
//! box's certificate).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use checkpoint_e2e::broker::{free_port, Mosquitto, Pki};
use checkpoint_e2e::central::{wait_until, CentralProc, TestCentral};
use checkpoint_e2e::kiosk::{self, BoxSpec, Kiosk};
use checkpoint_e2e::TempDir;
use checkpoint_protocol::passcode::{IssuerKey, TrustStore, TrustedKey};
use checkpoint_protocol::records::{self, Decision, Reason, TrustConfig};
use checkpoint_protocol::topic::{ConfigKind, Topic};
use time::OffsetDateTime;

fn issuer_pub(keys: &Path) -> TrustedKey {
    TrustedKey::from_pem(&std::fs::read_to_string(keys.join("passcode.pub")).unwrap()).unwrap()
}

fn signing_key(path: &Path) -> IssuerKey {
    IssuerKey::from_pem(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn store_of(key: TrustedKey) -> TrustStore {
    let mut s = TrustStore::new();
    s.add_key(key);
    s
}

/// A looping box that trusts only what central publishes (no bootstrap key): alice's genuine
/// code and a code from a rogue issuer, over and over.
fn spec(id: &str, dir: &Path, keys: &Path, rogue: &Path) -> BoxSpec {
    let mut spec = BoxSpec {
        fps: 4.0,
        looping: true,
        ..BoxSpec::new_plain(id, dir)
    };
    std::fs::create_dir_all(&spec.frames).unwrap();
    kiosk::blank_frame(&spec.frames.join("0.png"));
    let alice = kiosk::issue(keys, "alice", "green", "1h", None);
    kiosk::qr_frame(&alice, &spec.frames.join("1.png"));
    kiosk::blank_frame(&spec.frames.join("2.png"));
    let mallory = kiosk::issue(rogue, "mallory", "green", "1h", None);
    kiosk::qr_frame(&mallory, &spec.frames.join("3.png"));
    spec.uplink.push_str("resend_after_s = 2\n");
    spec
}

/// The forgeries: rogue-signed, unsigned, a replayed older serial and a far-future record
/// (signed with central's real key, as a central with a wrong clock would).
fn forgeries(genuine_serial: u64, central_key: &IssuerKey, rogue: &Path) -> Vec<Vec<u8>> {
    let now = OffsetDateTime::now_utc();
    let rogue_store = store_of(issuer_pub(rogue));
    let rogue_signer = signing_key(&rogue.join("config-signing.key"));
    let far = now + time::Duration::days(365 * 70);
    vec![
        records::encode(&TrustConfig::signed(
            &rogue_store,
            genuine_serial + 1_000_000,
            now,
            &rogue_signer,
        )),
        records::encode(&TrustConfig::unsigned(
            &rogue_store,
            genuine_serial + 1_000_000,
            now,
        )),
        records::encode(&TrustConfig::signed(
            &rogue_store,
            genuine_serial - 1,
            now,
            central_key,
        )),
        records::encode(&TrustConfig::signed(
            &rogue_store,
            genuine_serial + 2_000_000,
            far,
            central_key,
        )),
    ]
}

fn refusals(k: &Kiosk) -> usize {
    k.log_text().matches("Trust configuration refused").count()
}

fn admitted(obs: &TestCentral, who: &str) -> usize {
    obs.unique_events()
        .iter()
        .filter(|e| {
            e.subject.as_ref().is_some_and(|s| s.as_str() == who) && e.decision == Decision::Admit
        })
        .count()
}

/// What every test checks after the forgeries: the saved copy, the keys in force (alice still
/// admitted, mallory still unknown) and the count in telemetry.
fn box_unchanged(k: &Kiosk, obs: &TestCentral, state: &Path, saved: &[u8], forged: usize) {
    wait_until(Duration::from_secs(30), "every forgery refused", || {
        refusals(k) >= forged
    });
    assert_eq!(std::fs::read(state.join("trust.json")).unwrap(), saved);
    let before = admitted(obs, "alice");
    wait_until(Duration::from_secs(30), "alice still admitted", || {
        admitted(obs, "alice") > before
    });
    let events = obs.unique_events();
    assert!(
        events
            .iter()
            .filter(|e| e.reason == Reason::UnknownKey)
            .count()
            > 0,
        "mallory's rogue code is refused"
    );
    assert!(
        !events
            .iter()
            .any(|e| e.subject.as_ref().is_some_and(|s| s.as_str() == "mallory")),
        "mallory never named"
    );
    wait_until(Duration::from_secs(10), "refusals in telemetry", || {
        obs.telemetry()
            .iter()
            .any(|t| t.config_refused >= forged as u64)
    });
}

#[test]
fn forged_trust_changes_nothing_at_a_box_behind_mosquitto() {
    let dir = TempDir::new("forgery-mosquitto");
    let pki = Pki::new(&dir.path().join("pki"));
    let broker = Mosquitto::start(&dir.path().join("broker"), Some(&pki));
    let keys = kiosk::keygen(&dir.path().join("keys"));
    let rogue = kiosk::config_keygen(&kiosk::keygen(&dir.path().join("rogue")));
    let extra = format!(
        "[trust]\nkeys = [\"{}\"]\nsigning_key = \"{}\"\n",
        keys.join("passcode.pub").display(),
        pki.config_key().display()
    );
    let mut central = CentralProc::start_with(
        &dir.path().join("central"),
        &broker,
        Some(&pki),
        600,
        &extra,
    );
    let obs = TestCentral::connect_as("observer", &broker, Some(&pki), false);
    let s = BoxSpec {
        port: broker.port,
        tls: Some((pki.ca(), pki.client("gate-m"))),
        config_key: Some(pki.config_pub()),
        ..spec("gate-m", &dir.path().join("box"), &keys, &rogue)
    };
    let k = Kiosk::start(&s);
    wait_until(
        Duration::from_secs(60),
        "alice admitted with central's keys",
        || admitted(&obs, "alice") > 0,
    );
    let saved = std::fs::read(s.state_dir.join("trust.json")).unwrap();
    let genuine: TrustConfig = records::decode(&saved).unwrap();

    // A client with central's certificate (the ACL lets it write trust) but not its key.
    let topic = Topic::SharedConfig(ConfigKind::Trust).to_string();
    let forged = forgeries(genuine.serial, &signing_key(&pki.config_key()), &rogue);
    for f in &forged {
        obs.publish_retained(&topic, f);
        std::thread::sleep(Duration::from_millis(300));
    }
    box_unchanged(&k, &obs, &s.state_dir, &saved, forged.len());

    // Central's own republishing (after a restart, a new serial) still gets through.
    central.restart();
    wait_until(
        Duration::from_secs(60),
        "central's next publication applied",
        || {
            let now: TrustConfig =
                records::decode(&std::fs::read(s.state_dir.join("trust.json")).unwrap()).unwrap();
            let store = now.to_trust_store().unwrap();
            now.serial > genuine.serial && store.key(&issuer_pub(&keys).kid()).is_some()
        },
    );
}

#[test]
fn forged_trust_and_acks_from_a_box_certificate_change_nothing_on_the_embedded_broker() {
    let dir = TempDir::new("forgery-embedded");
    let pki = Pki::new(&dir.path().join("pki"));
    let keys = kiosk::keygen(&dir.path().join("keys"));
    let rogue = kiosk::config_keygen(&kiosk::keygen(&dir.path().join("rogue")));
    let tls = free_port();
    let extra = format!(
        "[trust]\nkeys = [\"{}\"]\nsigning_key = \"{}\"\n",
        keys.join("passcode.pub").display(),
        pki.config_key().display()
    );
    let central = CentralProc::start_embedded_tls(&dir.path().join("central"), &pki, tls, &extra);
    central.command(&["boxes"]);
    // An observer of everything, through the same broker (with central's certificate).
    let obs = TestCentral::connect_identity(
        "observer",
        tls,
        Some((pki.ca(), pki.client("central"))),
        false,
    );
    let s = BoxSpec {
        port: tls,
        tls: Some((pki.ca(), pki.client("gate-e"))),
        config_key: Some(pki.config_pub()),
        ..spec("gate-e", &dir.path().join("box"), &keys, &rogue)
    };
    let k = Kiosk::start(&s);
    wait_until(
        Duration::from_secs(60),
        "alice admitted with central's keys",
        || admitted(&obs, "alice") > 0,
    );
    let saved = std::fs::read(s.state_dir.join("trust.json")).unwrap();
    let genuine: TrustConfig = records::decode(&saved).unwrap();

    // Another box's real certificate: the embedded broker lets it publish anywhere, so the
    // box's own checks are what stop it.
    let attacker =
        TestCentral::connect_identity("gate-x", tls, Some((pki.ca(), pki.client("gate-x"))), false);
    let topic = Topic::SharedConfig(ConfigKind::Trust).to_string();
    let forged = forgeries(genuine.serial, &signing_key(&pki.config_key()), &rogue);
    for f in &forged {
        attacker.publish_retained(&topic, f);
        std::thread::sleep(Duration::from_millis(300));
    }
    // Acks that would delete events central never stored: retained, and for events not sent.
    let ack_topic = Topic::Ack("gate-e".parse().unwrap()).to_string();
    let ack = |first: u64, last: u64| {
        format!(r#"{{"schema":1,"box":"gate-e","ranges":[{{"first":{first},"last":{last}}}]}}"#)
    };
    attacker.publish_retained(&ack_topic, ack(1, 1_000_000).as_bytes());
    attacker.publish_raw(&ack_topic, ack(1_000, 1_000_000).as_bytes());
    wait_until(
        Duration::from_secs(30),
        "forged acks seen and ignored",
        || {
            let log = k.log_text();
            log.contains("Retained ack ignored.") && log.contains("has not sent")
        },
    );
    box_unchanged(&k, &obs, &s.state_dir, &saved, forged.len());

    // Everything the box produced after the forged acks still reached central: no gap.
    wait_until(
        Duration::from_secs(60),
        "no events lost to the forged acks",
        || {
            let boxes = central.query(&["boxes"]);
            boxes.as_array().unwrap().iter().any(|b| {
                b["box_id"] == "gate-e"
                    && b["gaps"].as_array().is_some_and(Vec::is_empty)
                    && b["lost_events"] == 0
                    && b["outbox_depth"] == 0
                    && b["stored_upto"].as_u64().unwrap_or(0) >= 8
            })
        },
    );
}
