//! Retention and backup/restore with the real binaries: old events purged at start, a backup
//! taken while boxes publish, restored into a new data directory and served again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use checkpoint_central::store::{SqliteStore, Store};
use checkpoint_e2e::broker::{free_port, Pki};
use checkpoint_e2e::central::{wait_until, CentralProc};
use checkpoint_e2e::TempDir;
use checkpoint_protocol::ids::SubjectId;
use checkpoint_protocol::passcode::PassStatus;
use checkpoint_protocol::records::{self, Decision, Direction, Event, Method, Reason, Schema};
use rumqttc::{Client, MqttOptions, QoS};
use time::OffsetDateTime;

const BOXES: u64 = 4;
const PER_BOX: u64 = 1500;

fn event(b: u64, seq: u64, ts: OffsetDateTime) -> Event {
    Event {
        schema: Schema,
        id: uuid::Uuid::now_v7(),
        seq,
        site: "campus".parse().unwrap(),
        box_id: format!("gate-{b}").parse().unwrap(),
        checkpoint: format!("cp-{}", b % 2).parse().unwrap(),
        direction: if seq.is_multiple_of(2) {
            Direction::Out
        } else {
            Direction::In
        },
        method: Method::Qr,
        subject: Some(SubjectId::new(format!("p-{}", seq % 40)).unwrap()),
        dependants: vec![],
        pass_status: Some(PassStatus::Green),
        decision: Decision::Admit,
        reason: Reason::Ok,
        flags: vec![],
        temperature_c: Some(36.5),
        ts,
        clock_synced: true,
    }
}

/// Asserts that `events` hold a contiguous prefix of every box's sequence (gate-9 starts at 21)
/// and more than what was stored before the load; returns how many there are.
fn contiguous_prefixes(events: &[Event], what: &str) -> usize {
    let mut per_box: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for e in events {
        per_box.entry(e.box_id.to_string()).or_default().push(e.seq);
    }
    let total: usize = per_box.values().map(Vec::len).sum();
    assert!(total > 500 + 5, "{what} holds what was stored: {total}");
    for (b, seqs) in &mut per_box {
        seqs.sort_unstable();
        let first = if b == "gate-9" { 21 } else { 1 };
        let expect: Vec<u64> = (first..first + seqs.len() as u64).collect();
        assert_eq!(seqs, &expect, "{b}: a contiguous prefix in {what}");
    }
    total
}

fn open_store(path: &std::path::Path) -> SqliteStore {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    let mut last = None;
    for _ in 0..300 {
        match SqliteStore::open(path, 1 << 24) {
            Ok(s) => return s,
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("store {} does not open: {last:?}", path.display())
}

/// Boxes publishing as fast as the broker takes them (each in order, QoS 1).
fn load(pki: &Pki, port: u16) -> std::thread::JoinHandle<()> {
    let options: Vec<MqttOptions> = (0..BOXES)
        .map(|b| pki.mqtt_options(&format!("gate-{b}"), port))
        .collect();
    std::thread::spawn(move || {
        let mut threads = Vec::new();
        for (b, mut o) in (0..BOXES).zip(options) {
            threads.push(std::thread::spawn(move || {
                o.set_keep_alive(Duration::from_secs(10));
                let (client, mut conn) = Client::new(o, 100);
                let topic = format!("checkpoint/v1/box/gate-{b}/event");
                let pubber = std::thread::spawn(move || {
                    let start = OffsetDateTime::now_utc() - time::Duration::hours(1);
                    for seq in 1..=PER_BOX {
                        let e = event(
                            b,
                            seq,
                            start + time::Duration::milliseconds(seq as i64 * 100),
                        );
                        client
                            .publish(&topic, QoS::AtLeastOnce, false, records::encode(&e))
                            .unwrap();
                    }
                    std::thread::sleep(Duration::from_millis(500));
                    let _ = client.disconnect();
                });
                for ev in conn.iter() {
                    if ev.is_err() {
                        break;
                    }
                }
                pubber.join().unwrap();
            }));
        }
        for t in threads {
            t.join().unwrap();
        }
    })
}

#[test]
fn old_events_are_purged_and_a_backup_under_load_restores_to_the_same_answers() {
    let dir = TempDir::new("backup");
    let central_dir = dir.path().join("central");
    // Before central starts: 20 events from 40 days ago and 5 from yesterday.
    {
        let store = open_store(&central_dir.join("data/central.sqlite"));
        let now = OffsetDateTime::now_utc();
        // Retention reads when central received them, not what the box's clock said: the
        // recent ones claim 1999 (a box without a synchronised clock).
        let old: Vec<Event> = (1..=20)
            .map(|s| event(9, s, now - time::Duration::days(40)))
            .collect();
        let ms = |t: OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
        store
            .insert_received(&old, ms(now - time::Duration::days(40)))
            .unwrap();
        let recent: Vec<Event> = (21..=25)
            .map(|s| {
                event(
                    9,
                    s,
                    OffsetDateTime::from_unix_timestamp(946_684_800).unwrap(),
                )
            })
            .collect();
        store
            .insert_received(&recent, ms(now - time::Duration::days(1)))
            .unwrap();
    }
    let pki = Pki::new(&dir.path().join("pki"));
    // gate-9 only wrote the old events; it has a certificate like every box.
    pki.client("gate-9");
    let port = free_port();
    let mut central = CentralProc::start_embedded(&central_dir, &pki, port);
    central.command(&["boxes"]);
    wait_until(Duration::from_secs(20), "the retention purge", || {
        central.log_text().contains("Retention purge.")
    });
    assert!(
        central.log_text().contains("purged=20"),
        "{}",
        central.log_text()
    );
    let left = central.query(&["events", "--from", "1999-01-01T00:00:00Z"]);
    assert_eq!(
        left.as_array().unwrap().len(),
        5,
        "only the recent events: {left}"
    );

    // A backup while four boxes publish.
    let publishers = load(&pki, port);
    wait_until(Duration::from_secs(30), "ingest under way", || {
        let b = central.query(&["boxes"]);
        b.as_array()
            .unwrap()
            .iter()
            .map(|r| r["stored_upto"].as_u64().unwrap_or(0))
            .sum::<u64>()
            > 500
    });
    let backup = dir.path().join("central.backup");
    let started = Instant::now();
    let said = central.command(&["backup", "--out", backup.to_str().unwrap()]);
    eprintln!("backup: {said} in {:?}", started.elapsed());
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&backup).unwrap().permissions());
    assert_eq!(
        mode & 0o777,
        0o600,
        "the backup holds personal data: owner only"
    );
    // The same, encrypted to an age recipient whose secret key central never sees.
    let id = age::x25519::Identity::generate();
    let key_file = dir.path().join("backup-key.txt");
    std::fs::write(
        &key_file,
        age::secrecy::ExposeSecret::expose_secret(&id.to_string()),
    )
    .unwrap();
    let sealed = dir.path().join("central.backup.age");
    let said = central.command(&[
        "backup",
        "--out",
        sealed.to_str().unwrap(),
        "--recipient",
        &id.to_public().to_string(),
    ]);
    assert!(said.contains("encrypted"), "{said}");
    // And a copy of the SQLite file itself, taken online under the same load.
    let native = dir.path().join("central-copy.sqlite");
    let said = central.command(&[
        "backup",
        "--out",
        native.to_str().unwrap(),
        "--format",
        "sqlite",
    ]);
    eprintln!("native backup: {said}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&native).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the copy holds personal data");
    publishers.join().unwrap();
    wait_until(Duration::from_secs(60), "everything stored", || {
        let b = central.query(&["boxes"]);
        b.as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["box_id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with("gate-") && id != "gate-9")
            })
            .all(|r| r["stored_upto"].as_u64() == Some(PER_BOX))
            && b.as_array().unwrap().len() as u64 >= BOXES
    });
    assert!(central.terminate().unwrap().success());

    // Restore into a new data directory; a second restore there is refused.
    let restored = dir.path().join("restored");
    let out = checkpoint_e2e::run(
        "checkpoint-central",
        &[
            "restore",
            backup.to_str().unwrap(),
            "--data-dir",
            restored.join("data").to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = checkpoint_e2e::run(
        "checkpoint-central",
        &[
            "restore",
            backup.to_str().unwrap(),
            "--data-dir",
            restored.join("data").to_str().unwrap(),
        ],
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // The encrypted backup restores only with its key.
    let into = dir.path().join("restored-sealed/data");
    let restore = |extra: &[&str]| {
        let mut args = vec![
            "restore",
            sealed.to_str().unwrap(),
            "--data-dir",
            into.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        checkpoint_e2e::run("checkpoint-central", &args)
    };
    let no_key = restore(&[]);
    assert!(!no_key.status.success());
    assert!(
        String::from_utf8_lossy(&no_key.stderr).contains("--identity"),
        "{}",
        String::from_utf8_lossy(&no_key.stderr)
    );
    let ok = restore(&["--identity", key_file.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&ok.stderr).to_string();
    assert!(
        ok.status.success() && said.contains("events restored"),
        "{said}"
    );
    assert!(
        !std::fs::read(&sealed)
            .unwrap()
            .windows(6)
            .any(|w| w == b"gate-1"),
        "no box id in the clear"
    );

    // The snapshot is consistent: a contiguous prefix of every box, every index agreeing.
    let original = open_store(&central_dir.join("data/central.sqlite"));
    let copy = open_store(&restored.join("data/central.sqlite"));
    let in_copy = copy.by_time(0, i64::MAX, usize::MAX).unwrap();
    assert_eq!(in_copy.len() as u64, copy.len().unwrap());
    let total = contiguous_prefixes(&in_copy, "the backup");
    assert!(
        (total as u64) < BOXES * PER_BOX + 5,
        "taken under load, before the end"
    );
    let ids: HashSet<(String, u64)> = in_copy
        .iter()
        .map(|e| (e.box_id.to_string(), e.seq))
        .collect();
    for p in 0..40 {
        let who = SubjectId::new(format!("p-{p}")).unwrap();
        let want: Vec<Event> = original
            .by_person(&who, 0, i64::MAX)
            .unwrap()
            .into_iter()
            .filter(|e| ids.contains(&(e.box_id.to_string(), e.seq)))
            .collect();
        assert_eq!(copy.by_person(&who, 0, i64::MAX).unwrap(), want, "p-{p}");
    }
    let seq_copy = copy.seq_states().unwrap();
    drop(copy);

    // The native copy restores as it is, and is one consistent moment too.
    let native_dir = dir.path().join("restored-native/data");
    let out = checkpoint_e2e::run(
        "checkpoint-central",
        &[
            "restore",
            native.to_str().unwrap(),
            "--data-dir",
            native_dir.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stderr).contains("events restored"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_native = open_store(&native_dir.join("central.sqlite"));
    contiguous_prefixes(
        &from_native.by_time(0, i64::MAX, usize::MAX).unwrap(),
        "the native copy",
    );
    drop(from_native);
    // A damaged copy is refused and leaves no store behind.
    let mut broken = std::fs::read(&native).unwrap();
    let cut = broken.len() / 2;
    broken.truncate(cut);
    let broken_file = dir.path().join("broken-copy.sqlite");
    std::fs::write(&broken_file, &broken).unwrap();
    let broken_dir = dir.path().join("restored-broken/data");
    let out = checkpoint_e2e::run(
        "checkpoint-central",
        &[
            "restore",
            broken_file.to_str().unwrap(),
            "--data-dir",
            broken_dir.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success(), "a half copy must be refused");
    eprintln!("broken copy: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!broken_dir.join("central.sqlite").exists());
    drop(original);

    // A central on the restored data answers through its API as the store does.
    let mut second = CentralProc::start_embedded(&restored, &pki, free_port());
    second.command(&["boxes"]);
    let traj = second.query(&["trace", "--person", "p-7", "--from", "2000-01-01T00:00:00Z"]);
    let got: Vec<(String, u64)> = traj
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["box_id"].as_str().unwrap().to_string(),
                r["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut want: Vec<(String, u64)> = in_copy
        .iter()
        .filter(|e| e.subject.as_ref().is_some_and(|s| s.as_str() == "p-7"))
        .map(|e| (e.box_id.to_string(), e.seq))
        .collect();
    want.sort_by_key(|(b, s)| (*s, b.clone()));
    let mut got_sorted = got.clone();
    got_sorted.sort_by_key(|(b, s)| (*s, b.clone()));
    assert_eq!(got_sorted, want);
    let boxes = second.query(&["boxes"]);
    for (b, st) in seq_copy {
        let row = boxes
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["box_id"] == b.as_str())
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            row["stored_upto"].as_u64(),
            Some(st.contiguous),
            "{b}: {boxes}"
        );
    }
    assert!(second.terminate().unwrap().success());
}
