//! An attacker holding one box's real certificate, against the shipped broker rules on both
//! brokers (Mosquitto with `config/mosquitto/`, and central's embedded one, which is the same
//! configuration): forged trust and galleries, forged and retained acks, events as another or an
//! unregistered box, central's client id, the monitor identity reading events, and a revoked
//! certificate. Then the box's own checks, on a broker with no rules at all: trust signed by a
//! wrong key, unsigned, replayed or far-future is refused and counted; forged acks delete
//! nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use checkpoint_e2e::broker::{free_port, Listener, Mosquitto, Pki};
use checkpoint_e2e::central::{wait_until, CentralProc, TestCentral};
use checkpoint_e2e::kiosk::{self, BoxSpec, Kiosk};
use checkpoint_e2e::TempDir;
use checkpoint_protocol::gallery::signed::wrap;
use checkpoint_protocol::ids::SubjectId;
use checkpoint_protocol::passcode::{IssuerKey, PassStatus, TrustStore, TrustedKey};
use checkpoint_protocol::records::{
    self, Decision, Direction, Event, Method, Reason, Schema, TrustConfig,
};
use checkpoint_protocol::signed::ConfigKeys;
use checkpoint_protocol::topic::{ConfigKind, Topic};
use rumqttc::{Client, Event as MqttEvent, Packet};
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

/// Galleries for gate-w: rogue-signed, an unsigned gallery file, an old serial and a far-future
/// time (both signed with central's real key, as a replay and a wrong clock would be).
fn gallery_forgeries(central_key: &IssuerKey, rogue: &Path) -> Vec<Vec<u8>> {
    let gallery = checkpoint_protocol::gallery::encode(4, &["p-1001".to_string()], &[0.5; 4]);
    let b: checkpoint_protocol::ids::BoxId = "gate-w".parse().unwrap();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let rogue_signer = signing_key(&rogue.join("config-signing.key"));
    vec![
        wrap(&b, u64::MAX / 2, now, &gallery, &rogue_signer),
        gallery.clone(),
        wrap(&b, 1, now, &gallery, central_key),
        wrap(
            &b,
            u64::MAX / 2,
            now + 70 * 365 * 86_400,
            &gallery,
            central_key,
        ),
    ]
}

/// A fever reading for `who` as box `box_id` claims it.
fn fake_event(box_id: &str, seq: u64, who: &str) -> Vec<u8> {
    records::encode(&Event {
        schema: Schema,
        id: uuid::Uuid::now_v7(),
        seq,
        site: "campus".parse().unwrap(),
        box_id: box_id.parse().unwrap(),
        checkpoint: "library".parse().unwrap(),
        direction: Direction::In,
        method: Method::Qr,
        subject: Some(SubjectId::new(who).unwrap()),
        dependants: vec![],
        pass_status: Some(PassStatus::Green),
        decision: Decision::Deny,
        reason: Reason::Fever,
        flags: vec![],
        temperature_c: Some(39.9),
        ts: OffsetDateTime::now_utc(),
        clock_synced: true,
    })
}

fn ack(box_id: &str, first: u64, last: u64) -> Vec<u8> {
    format!(r#"{{"schema":1,"box":"{box_id}","ranges":[{{"first":{first},"last":{last}}}]}}"#)
        .into_bytes()
}

/// A client with identity `name` that subscribes to `filters`, or why it could not connect.
fn listen(pki: &Pki, name: &str, port: u16, filters: &[&str]) -> Result<Listener, String> {
    Listener::connect(pki.mqtt_options(name, port), filters)
}

/// Stored events of every box, through the real CLI: (box, seq, subject, temperature).
fn stored(central: &CentralProc) -> Vec<(String, u64, String, Option<f64>)> {
    central
        .stored_events()
        .iter()
        .map(|r| {
            (
                r["box_id"].as_str().unwrap().to_string(),
                r["seq"].as_u64().unwrap(),
                r["subject"].as_str().unwrap_or_default().to_string(),
                r["temperature_c"].as_f64(),
            )
        })
        .collect()
}

/// The attacks of a box certificate against a broker with the shipped rules on `port`, and
/// what must hold after them. `restart_broker` makes the broker read the revocation list.
fn box_certificate_changes_nothing(
    dir: &Path,
    pki: &Pki,
    port: u16,
    central: &CentralProc,
    keys: &Path,
    restart_broker: &mut dyn FnMut(),
) {
    let rogue = kiosk::config_keygen(&kiosk::keygen(&dir.join("rogue")));
    // The admins' monitor, there from before the box starts.
    let monitor = listen(pki, "monitor", port, &["#"]).unwrap();

    let spec = BoxSpec {
        bootstrap_key: Some(keys.join("passcode.pub")),
        fps: 4.0,
        ..BoxSpec::tls_to("gate-v", &dir.join("box"), port, pki)
    };
    std::fs::create_dir_all(&spec.frames).unwrap();
    let people = ["alice", "bob", "carol"];
    for (i, who) in people.iter().enumerate() {
        kiosk::blank_frame(&spec.frames.join(format!("{i}0.png")));
        let code = kiosk::issue(keys, who, "green", "1h", None);
        kiosk::qr_frame(&code, &spec.frames.join(format!("{i}1.png")));
    }
    let k = Kiosk::start(&spec);
    let trust_file = spec.state_dir.join("trust.json");
    wait_until(
        Duration::from_secs(30),
        "central's trust at the box",
        || trust_file.exists(),
    );
    wait_until(Duration::from_secs(60), "the box's events stored", || {
        stored(central).len() >= people.len()
    });
    let saved = std::fs::read(&trust_file).unwrap();
    let genuine: TrustConfig = records::decode(&saved).unwrap();
    let connects = central
        .log_text()
        .matches("Connected to the broker.")
        .count();

    // gate-x: a real, registered box; gate-w: a registered box that is not running.
    let attacker = TestCentral::connect_identity(
        "gate-x",
        port,
        Some((pki.ca(), pki.client("gate-x"))),
        false,
    );
    pki.client("gate-w");
    let trust_topic = Topic::SharedConfig(ConfigKind::Trust).to_string();
    for f in forgeries(genuine.serial, &signing_key(&pki.config_key()), &rogue) {
        attacker.publish_retained(&trust_topic, &f);
    }
    let gallery_w = Topic::BoxConfig("gate-w".parse().unwrap(), ConfigKind::Gallery).to_string();
    for g in gallery_forgeries(&signing_key(&pki.config_key()), &rogue) {
        attacker.publish_retained(&gallery_w, &g);
    }
    let ack_v = Topic::Ack("gate-v".parse().unwrap()).to_string();
    attacker.publish_retained(&ack_v, &ack("gate-v", 1, 1_000_000));
    attacker.publish_raw(&ack_v, &ack("gate-v", 1, 1_000_000));
    // Events as gate-v (its topic, its sequence numbers) and as gate-v on gate-x's own topic.
    let event_v = Topic::Event("gate-v".parse().unwrap()).to_string();
    for seq in 1..=50 {
        attacker.publish_raw(&event_v, &fake_event("gate-v", seq, "dave"));
    }
    let event_x = Topic::Event("gate-x".parse().unwrap()).to_string();
    attacker.publish_raw(&event_x, &fake_event("gate-v", 1000, "erin"));
    // A certificate from the site CA that central's register does not list (its file gone).
    let ghost = TestCentral::connect_identity(
        "gate-ghost",
        port,
        Some((pki.ca(), pki.client("gate-ghost"))),
        false,
    );
    std::fs::remove_file(pki.dir.join("boxes/gate-ghost.pem")).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let event_ghost = Topic::Event("gate-ghost".parse().unwrap()).to_string();
    for seq in 1..=3 {
        ghost.publish_raw(&event_ghost, &fake_event("gate-ghost", seq, "frank"));
    }
    // Central's client id, presented with a box's certificate.
    for id in ["central", "checkpoint-central"] {
        let _thief =
            TestCentral::connect_identity(id, port, Some((pki.ca(), pki.client("gate-x"))), false);
        std::thread::sleep(Duration::from_secs(1));
    }

    // Central kept ingesting: gate-v's telemetry still arrives.
    wait_until(
        Duration::from_secs(10),
        "gate-v heard from just now",
        || {
            central
                .box_row("gate-v")
                .is_some_and(|b| b["last_seen_s"].as_u64().is_some_and(|s| s <= 1))
        },
    );

    // What a box would receive now: central's genuine trust, and no gallery for gate-w.
    let fresh = listen(pki, "gate-w", port, &[&trust_topic, &gallery_w]).unwrap();
    let got = fresh.received(Duration::from_secs(3));
    assert!(
        got.iter().all(|(t, _)| t == &trust_topic),
        "no retained gallery: {:?}",
        got.iter().map(|(t, _)| t).collect::<Vec<_>>()
    );
    let retained: Vec<TrustConfig> = got
        .iter()
        .map(|(_, p)| records::decode::<TrustConfig>(p).unwrap())
        .collect();
    assert_eq!(retained.len(), 1, "one retained trust record");
    let config_keys = config_keys(pki);
    retained[0].verify(&config_keys).unwrap();
    assert_eq!(retained[0].serial, genuine.serial);
    drop(fresh);
    assert_eq!(
        std::fs::read(&trust_file).unwrap(),
        saved,
        "the box's trust"
    );

    // The box's real events are all stored, once, and nothing of the attacker's.
    wait_until(Duration::from_secs(30), "the box drained", || {
        central
            .box_row("gate-v")
            .is_some_and(|b| b["outbox_depth"] == 0 && b["lost_events"] == 0)
    });
    let rows = stored(central);
    let boxes: BTreeSet<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(boxes, ["gate-v"].into(), "{rows:?}");
    let seqs: Vec<u64> = rows.iter().map(|r| r.1).collect();
    assert_eq!(
        seqs,
        (1..=rows.len() as u64).collect::<Vec<_>>(),
        "{rows:?}"
    );
    let subjects: BTreeSet<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(subjects, people.into(), "{rows:?}");
    assert!(rows.iter().all(|r| r.3 != Some(39.9)), "{rows:?}");
    let log = central.log_text();
    assert!(log.contains("unregistered_box"), "{log}");
    assert!(
        !log.lines()
            .any(|l| l.contains("Alert.") && l.contains("fever")),
        "{log}"
    );
    // Central kept its one session throughout.
    assert_eq!(
        log.matches("Connected to the broker.").count(),
        connects,
        "{log}"
    );
    // The monitor saw telemetry and not one event.
    let seen = monitor.received(Duration::from_millis(1500));
    let topics: Vec<&String> = seen.iter().map(|(t, _)| t).collect();
    assert!(
        topics.iter().any(|t| t.ends_with("/telemetry")),
        "{topics:?}"
    );
    assert!(!topics.iter().any(|t| t.contains("/event")), "{topics:?}");
    assert!(!topics.iter().any(|t| t.contains("/ack")), "{topics:?}");
    drop(monitor);
    drop(attacker);
    drop(ghost);

    // A revoked certificate cannot connect once the broker has read the list.
    let r = pki.client("gate-r");
    let copy = dir.join("gate-r-copy");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(&r.cert, copy.join("gate-r.pem")).unwrap();
    std::fs::copy(&r.key, copy.join("gate-r.key")).unwrap();
    connect_with(pki, &copy, port).expect("gate-r before its revocation");
    let out = checkpoint_e2e::run(
        "checkpoint-admin",
        &[
            "pki",
            "revoke-box",
            "gate-r",
            "--dir",
            pki.dir.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    restart_broker();
    wait_until(Duration::from_secs(30), "the revoked box refused", || {
        connect_with(pki, &copy, port).is_err()
    });
    // The running box came back after the broker's restart and is still served.
    wait_until(Duration::from_secs(30), "gate-v online again", || {
        k.log_text().matches("Connected to the broker.").count() >= 2
    });
}

fn config_keys(pki: &Pki) -> ConfigKeys {
    ConfigKeys(vec![TrustedKey::from_pem(
        &std::fs::read_to_string(pki.config_pub()).unwrap(),
    )
    .unwrap()])
}

fn trust_extra(keys: &Path, pki: &Pki) -> String {
    format!(
        "[trust]\nkeys = [\"{}\"]\nsigning_key = \"{}\"\n",
        keys.join("passcode.pub").display(),
        pki.config_key().display()
    )
}

#[test]
fn a_box_certificate_changes_nothing_through_mosquitto() {
    let dir = TempDir::new("forgery-mosquitto");
    let pki = Pki::new(&dir.path().join("pki"));
    let mut broker = Mosquitto::start(&dir.path().join("broker"), Some(&pki));
    let keys = kiosk::keygen(&dir.path().join("keys"));
    let central = CentralProc::start_with(
        &dir.path().join("central"),
        &broker,
        Some(&pki),
        600,
        &trust_extra(&keys, &pki),
    );
    central.command(&["boxes"]);
    let port = broker.port;
    box_certificate_changes_nothing(dir.path(), &pki, port, &central, &keys, &mut || {
        // An external Mosquitto reads crl.pem when it starts.
        broker.stop();
        broker.restart();
    });
}

#[test]
fn a_box_certificate_changes_nothing_through_the_embedded_broker() {
    let dir = TempDir::new("forgery-embedded");
    let pki = Pki::new(&dir.path().join("pki"));
    let keys = kiosk::keygen(&dir.path().join("keys"));
    let port = free_port();
    let central = CentralProc::start_embedded_tls(
        &dir.path().join("central"),
        &pki,
        port,
        &trust_extra(&keys, &pki),
    );
    central.command(&["boxes"]);
    box_certificate_changes_nothing(dir.path(), &pki, port, &central, &keys, &mut || {
        // Central sees the new list and restarts its broker by itself.
        wait_until(
            Duration::from_secs(20),
            "the broker restarted for the list",
            || central.log_text().contains("Revocation list changed"),
        );
    });
    // Its log carries no rumqttd-style errors for normal disconnects.
    let log = central.log_text();
    assert!(!log.contains(" ERROR "), "{log}");
}

/// The box's own checks, with a broker that lets anyone publish anything.
#[test]
fn forged_trust_and_acks_change_nothing_at_a_box_on_a_broker_without_rules() {
    let dir = TempDir::new("forgery-open");
    let pki = Pki::new(&dir.path().join("pki"));
    let broker = Mosquitto::start(&dir.path().join("broker"), None);
    let keys = kiosk::keygen(&dir.path().join("keys"));
    let rogue = kiosk::config_keygen(&kiosk::keygen(&dir.path().join("rogue")));
    let mut central = CentralProc::start_with(
        &dir.path().join("central"),
        &broker,
        None,
        600,
        &trust_extra(&keys, &pki),
    );
    let obs = TestCentral::connect_as("observer", &broker, None, false);
    let spec = BoxSpec {
        bootstrap_key: Some(keys.join("passcode.pub")),
        config_key: Some(pki.config_pub()),
        fps: 2.0,
        ..BoxSpec::new("gate-o", &dir.path().join("box"), &broker, None)
    };
    std::fs::create_dir_all(&spec.frames).unwrap();
    // Ten seconds of nobody (the forgeries arrive then), then a rogue issuer's code and alice's.
    for i in 0..20 {
        kiosk::blank_frame(&spec.frames.join(format!("{i:02}.png")));
    }
    let mallory = kiosk::issue(&rogue, "mallory", "green", "1h", None);
    kiosk::qr_frame(&mallory, &spec.frames.join("20.png"));
    kiosk::blank_frame(&spec.frames.join("21.png"));
    let alice = kiosk::issue(&keys, "alice", "green", "1h", None);
    kiosk::qr_frame(&alice, &spec.frames.join("22.png"));
    let k = Kiosk::start(&spec);
    let trust_file = spec.state_dir.join("trust.json");
    wait_until(
        Duration::from_secs(30),
        "central's trust at the box",
        || trust_file.exists(),
    );
    let saved = std::fs::read(&trust_file).unwrap();
    let genuine: TrustConfig = records::decode(&saved).unwrap();

    let attacker = TestCentral::connect_as("attacker", &broker, None, false);
    let topic = Topic::SharedConfig(ConfigKind::Trust).to_string();
    let forged = forgeries(genuine.serial, &signing_key(&pki.config_key()), &rogue);
    for f in &forged {
        attacker.publish_retained(&topic, f);
        std::thread::sleep(Duration::from_millis(300));
    }
    let ack_topic = Topic::Ack("gate-o".parse().unwrap()).to_string();
    attacker.publish_retained(&ack_topic, &ack("gate-o", 1, 1_000_000));
    attacker.publish_raw(&ack_topic, &ack("gate-o", 1_000, 1_000_000));
    wait_until(Duration::from_secs(30), "every forgery refused", || {
        let log = k.log_text();
        // Both acks name events the box has not sent (a retained message reaches a client
        // that is already subscribed without its retain flag).
        log.matches("Trust configuration refused").count() >= forged.len()
            && log.matches("has not sent").count() >= 2
    });
    assert_eq!(std::fs::read(&trust_file).unwrap(), saved);
    wait_until(Duration::from_secs(10), "refusals in telemetry", || {
        obs.telemetry()
            .iter()
            .any(|t| t.config_refused >= forged.len() as u64)
    });
    // After the forgeries: the rogue issuer is still unknown, alice still admitted.
    let events = obs.wait_events(2, Duration::from_secs(60));
    let got: Vec<(Option<String>, Reason)> = events
        .iter()
        .map(|e| (e.subject.as_ref().map(|s| s.to_string()), e.reason))
        .collect();
    assert_eq!(
        got,
        [
            (None, Reason::UnknownKey),
            (Some("alice".to_string()), Reason::Ok)
        ]
    );
    // Nothing the box made was lost to the forged acks.
    wait_until(
        Duration::from_secs(30),
        "both events stored, none lost",
        || {
            central.box_row("gate-o").is_some_and(|b| {
                b["outbox_depth"] == 0
                    && b["lost_events"] == 0
                    && b["stored_upto"].as_u64().unwrap_or(0) >= 2
            })
        },
    );
    // Central's next genuine publication (a restart, a newer serial) still gets through.
    assert!(
        central.terminate().unwrap().success(),
        "{}",
        central.log_text()
    );
    central.restart();
    wait_until(
        Duration::from_secs(60),
        "central's next publication applied",
        || {
            let now: TrustConfig = records::decode(&std::fs::read(&trust_file).unwrap()).unwrap();
            now.serial > genuine.serial && now.verify(&config_keys(&pki)).is_ok()
        },
    );
}

/// Connects with a copy of gate-r's certificate and key: `Ok` on the broker's CONNACK.
fn connect_with(pki: &Pki, copy: &Path, port: u16) -> Result<(), String> {
    let (cert, key) = (copy.join("gate-r.pem"), copy.join("gate-r.key"));
    let tls = checkpoint_link::tls::client_config(&pki.ca(), &cert, &key).unwrap();
    let mut o = rumqttc::MqttOptions::new("gate-r", "127.0.0.1", port);
    o.set_transport(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::Rustls(tls),
    ));
    let (client, mut conn) = Client::new(o, 8);
    let mut result = Err("no answer".to_string());
    for ev in conn.iter().take(5) {
        match ev {
            Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                result = Ok(());
                break;
            }
            Ok(_) => {}
            Err(e) => {
                result = Err(e.to_string());
                break;
            }
        }
    }
    let _ = client.disconnect();
    result
}
