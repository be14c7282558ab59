//! `checkpoint-central serve` end to end: two real boxes with sim hardware, a real Mosquitto over
//! mutual TLS, central killed and the broker restarted mid-stream. Every event is stored exactly
//! once and acknowledged, and the store's indexes answer what the events say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use checkpoint_central::trace::{self, Scan};
use checkpoint_e2e::broker::{Mosquitto, Pki};
use checkpoint_e2e::central::{wait_until, CentralProc, TestCentral};
use checkpoint_e2e::kiosk::{self, BoxSpec, Kiosk};
use checkpoint_e2e::postgres::Cluster;
use checkpoint_e2e::TempDir;
use checkpoint_protocol::ids::SubjectId;
use checkpoint_protocol::records::{Direction, Event};

fn frames(spec: &BoxSpec, keys: &std::path::Path, people: &[&str]) {
    std::fs::create_dir_all(&spec.frames).unwrap();
    kiosk::blank_frame(&spec.frames.join("000.png"));
    for (i, p) in people.iter().enumerate() {
        let code = kiosk::issue(keys, p, "green", "1h", None);
        kiosk::qr_frame(&code, &spec.frames.join(format!("{:03}.png", i + 1)));
    }
}

/// The start of the current hour in Asia/Kolkata (UTC+05:30 all year), as RFC 3339.
fn kolkata_hour_now() -> String {
    let offset = time::UtcOffset::from_hms(5, 30, 0).unwrap();
    let t = time::OffsetDateTime::now_utc().to_offset(offset);
    format!(
        "{:04}-{:02}-{:02}T{:02}:00:00+05:30",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour()
    )
}

fn drained(observer: &TestCentral, box_id: &str, last_seq: u64) -> bool {
    observer
        .telemetry()
        .iter()
        .rev()
        .find(|t| t.box_id.as_str() == box_id)
        .is_some_and(|t| t.outbox_depth == 0 && t.last_seq == last_seq)
}

#[test]
fn two_boxes_stored_exactly_once_through_central_crash_and_broker_restart() {
    two_boxes_through_crash_and_restart();
}

/// The same on PostgreSQL.
#[test]
fn two_boxes_stored_exactly_once_through_central_crash_and_broker_restart_on_postgres() {
    let pg = Cluster::start();
    let _store = checkpoint_e2e::central::use_postgres(&pg.database());
    two_boxes_through_crash_and_restart();
}

fn two_boxes_through_crash_and_restart() {
    let dir = TempDir::new("central");
    let pki = Pki::new(&dir.path().join("pki"));
    let mut broker = Mosquitto::start(&dir.path().join("broker"), Some(&pki));
    let keys = kiosk::keygen(&dir.path().join("keys"));
    let observer = TestCentral::connect_as("observer", &broker, Some(&pki), false);
    // A zone half an hour off UTC: local hours start at :30 UTC.
    let mut central = CentralProc::start_with(
        &dir.path().join("central"),
        &broker,
        Some(&pki),
        600,
        "[site]\ntime_zone = \"Asia/Kolkata\"\n",
    );

    let people_in = [
        "alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank",
    ];
    let people_out = ["alice", "bob", "carol", "dave"];
    let spec_in = BoxSpec {
        bootstrap_key: Some(keys.join("passcode.pub")),
        fps: 3.0,
        ..BoxSpec::new("lib-in", &dir.path().join("in"), &broker, Some(&pki))
    };
    let spec_out = BoxSpec {
        bootstrap_key: Some(keys.join("passcode.pub")),
        direction: "out",
        fps: 2.0,
        ..BoxSpec::new("lib-out", &dir.path().join("out"), &broker, Some(&pki))
    };
    frames(&spec_in, &keys, &people_in);
    frames(&spec_out, &keys, &people_out);
    let _box_in = Kiosk::start(&spec_in);
    let _box_out = Kiosk::start(&spec_out);

    // Mid-stream: central killed, then the broker restarted.
    wait_until(Duration::from_secs(30), "first events", || {
        observer.unique_events().len() >= 3
    });
    central.kill9();
    std::thread::sleep(Duration::from_millis(700));
    central.restart();
    wait_until(Duration::from_secs(30), "more events", || {
        observer.unique_events().len() >= 7
    });
    broker.stop();
    std::thread::sleep(Duration::from_millis(700));
    broker.restart();

    wait_until(
        Duration::from_secs(60),
        "both outboxes drained by central's acks",
        || drained(&observer, "lib-in", 8) && drained(&observer, "lib-out", 4),
    );
    // The roster: a bad file imports nothing and names its lines; good files replace the roster.
    let people = dir.path().join("people.csv");
    let places = dir.path().join("places.csv");
    std::fs::write(
        &people,
        "id,name,department\nalice,Alice A,Physics\nbad id,X,Y\nbob,,Physics\n",
    )
    .unwrap();
    let bad = checkpoint_e2e::run(
        "checkpoint-admin",
        &[
            "roster",
            "import",
            "--people",
            people.to_str().unwrap(),
            "--api",
            &central.api,
            "--token-file",
            central.token_file.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(
        err.contains("line 3") && err.contains("line 4") && err.contains("nothing imported"),
        "{err}"
    );
    let mut rows = String::from("id,name,department,class\n");
    for (i, p) in people_in.iter().enumerate() {
        let dept = if i % 2 == 0 { "Physics" } else { "History" };
        rows += &format!("{p},Name {i},{dept},C{}\n", i % 3);
    }
    std::fs::write(&people, rows).unwrap();
    std::fs::write(
        &places,
        "checkpoint,name,building,capacity\nlibrary,Main Library,B1,300\n",
    )
    .unwrap();
    let said = central.command(&[
        "roster",
        "import",
        "--people",
        people.to_str().unwrap(),
        "--places",
        places.to_str().unwrap(),
    ]);
    assert!(
        said.contains("8 people rows; 8 added") && said.contains("1 places rows; 1 added"),
        "{said}"
    );
    // A dry run of a smaller file says who would go and changes nothing; an empty file is
    // refused; an upsert adds and updates and removes nobody.
    let fewer = dir.path().join("fewer.csv");
    std::fs::write(
        &fewer,
        "id,name,department
alice,Alice Renamed,Physics
zoe,Zoe,Art
",
    )
    .unwrap();
    let said = central.command(&[
        "roster",
        "import",
        "--people",
        fewer.to_str().unwrap(),
        "--dry-run",
    ]);
    assert!(
        said.contains("1 added (zoe)")
            && said.contains("1 changed (alice)")
            && said.contains("7 removed")
            && said.contains("dry run"),
        "{said}"
    );
    let empty = dir.path().join("empty.csv");
    std::fs::write(
        &empty,
        "id,name,department
",
    )
    .unwrap();
    let wiped = checkpoint_e2e::run(
        "checkpoint-admin",
        &[
            "roster",
            "import",
            "--people",
            empty.to_str().unwrap(),
            "--api",
            &central.api,
            "--token-file",
            central.token_file.to_str().unwrap(),
        ],
    );
    assert!(!wiped.status.success());
    assert!(
        String::from_utf8_lossy(&wiped.stderr).contains("remove all 8"),
        "{}",
        String::from_utf8_lossy(&wiped.stderr)
    );
    let said = central.command(&[
        "roster",
        "import",
        "--people",
        fewer.to_str().unwrap(),
        "--upsert",
    ]);
    assert!(
        said.contains("1 added (zoe)") && said.contains("0 removed"),
        "{said}"
    );
    let zoe = central.query(&["events", "--person", "zoe"]);
    assert!(zoe.as_array().unwrap().is_empty());

    // The operators' questions through the real CLI and HTTP API.
    let traj = central.query(&["trace", "--person", "alice"]);
    assert!(
        traj.as_array()
            .unwrap()
            .iter()
            .all(|r| r["place"] == "Main Library"),
        "{traj}"
    );
    let dirs: Vec<&str> = traj
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["direction"].as_str().unwrap())
        .collect();
    assert_eq!(dirs, ["in", "out"], "{traj}");
    let contacts = central.query(&["contacts", "--person", "alice", "--depth", "2"]);
    let met: HashSet<&str> = contacts
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["subject"].as_str().unwrap())
        .collect();
    let everyone_else: HashSet<&str> = people_in
        .iter()
        .copied()
        .filter(|p| *p != "alice")
        .collect();
    assert_eq!(met, everyone_else, "{contacts}");
    let hour_before = kolkata_hour_now();
    let occ = central.query(&["occupancy", "--place", "library"]);
    let hour_after = kolkata_hour_now();
    // Eight went in, four of them came out again.
    assert_eq!(
        (
            occ["inside"].as_u64(),
            occ["ins"].as_u64(),
            occ["outs"].as_u64()
        ),
        (Some(4), Some(8), Some(4)),
        "{occ}"
    );
    // Flow: the last 12 of the site's hours, each named by the instant its clocks read hh:00,
    // the current hour last; all eight entries and four exits are in them.
    let flow = occ["flow"].as_array().unwrap();
    assert_eq!(flow.len(), 12, "{occ}");
    for b in flow {
        let start = b[0].as_str().unwrap();
        assert!(start.ends_with(":00:00+05:30"), "{start} in {occ}");
    }
    let sum = |i: usize| flow.iter().map(|b| b[i].as_u64().unwrap()).sum::<u64>();
    assert_eq!((sum(1), sum(2)), (8, 4), "{occ}");
    let current = flow[11][0].as_str().unwrap();
    assert!(
        current == hour_before || current == hour_after,
        "{current}: {hour_before}"
    );
    assert!(
        traj.as_array()
            .unwrap()
            .iter()
            .all(|r| r["ts"].as_str().is_some_and(|t| t.ends_with("+05:30"))),
        "{traj}"
    );
    let physics_in = central.query(&["events", "--department", "Physics", "--direction", "in"]);
    let who: HashSet<&str> = physics_in
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        who,
        HashSet::from(["alice", "carol", "erin", "gina"]),
        "{physics_in}"
    );
    let outs = central.query(&["events", "--place", "library", "--direction", "out"]);
    assert_eq!(outs.as_array().unwrap().len(), 4);
    let csv = checkpoint_e2e::run(
        "checkpoint-admin",
        &[
            "events",
            "--person",
            "bob",
            "--csv",
            "--api",
            &central.api,
            "--token-file",
            central.token_file.to_str().unwrap(),
        ],
    );
    let csv = String::from_utf8_lossy(&csv.stdout);
    assert!(
        csv.starts_with("time,person,checkpoint,place,direction,decision,reason,temp\n"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let boxes = central.query(&["boxes"]);
    let rows = boxes.as_array().unwrap();
    let names: HashSet<&str> = rows.iter().map(|b| b["box_id"].as_str().unwrap()).collect();
    assert_eq!(names, HashSet::from(["lib-in", "lib-out"]));
    assert!(
        rows.iter().all(|b| b["state"] == "online"
            && b["outbox_depth"] == 0
            && b["lost_events"] == 0
            && b["gaps"].as_array().is_some_and(|g| g.is_empty())
            && b["stored_upto"].as_u64().is_some_and(|s| s >= 4)),
        "{boxes}"
    );
    let denied = checkpoint_e2e::run(
        "checkpoint-admin",
        &["boxes", "--api", &central.api, "--token-file", "/dev/null"],
    );
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("401"),
        "{denied:?}"
    );
    // Without the token nothing of a request is looked at: not a bad query string, not a body
    // far over the limit (its length alone would be 413), not a wrong token of the right length.
    for request in [
        "GET /api/v1/trajectory?person=%ZZ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_string(),
        "POST /api/v1/roster/people HTTP/1.1\r\nHost: x\r\nContent-Length: 900000000\r\nConnection: close\r\n\r\nperson_id".to_string(),
        format!(
            "GET /api/v1/boxes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            "x".repeat(std::fs::read_to_string(&central.token_file).unwrap().trim().len())
        ),
    ] {
        let status = raw_status(&central.api, &request);
        assert_eq!(status, 401, "{request}");
    }

    assert!(
        central.terminate().unwrap().success(),
        "{}",
        central.log_text()
    );

    let store = central.open_store();
    assert_eq!(store.len().unwrap(), 12, "every event exactly once");
    assert_eq!(store.conflicts().unwrap(), 0);
    let all = store.by_time(0, i64::MAX, usize::MAX).unwrap();
    let keys_seen: HashSet<(String, u64)> =
        all.iter().map(|e| (e.box_id.to_string(), e.seq)).collect();
    assert_eq!(keys_seen.len(), 12);
    // What the observer saw on the wire is what central stored, field for field.
    let wire: HashMap<(String, u64), Event> = observer
        .unique_events()
        .into_iter()
        .map(|e| ((e.box_id.to_string(), e.seq), e))
        .collect();
    for e in &all {
        if let Some(w) = wire.get(&(e.box_id.to_string(), e.seq)) {
            assert_eq!(w, e);
        }
    }
    for st in store.seq_states().unwrap() {
        assert!(st.1.gaps().is_empty() && st.1.lost.is_empty(), "{st:?}");
    }

    // The indexes answer what the events say: alice's trajectory, and her contacts.
    let alice = SubjectId::new("alice").unwrap();
    let traj = store.by_person(&alice, 0, i64::MAX).unwrap();
    let mut expect: Vec<&Event> = all
        .iter()
        .filter(|e| e.subject.as_ref() == Some(&alice))
        .collect();
    expect.sort_by_key(|e| (e.ts, e.box_id.to_string()));
    assert_eq!(traj.len(), 2);
    assert_eq!(
        traj.iter().map(|e| e.direction).collect::<Vec<_>>(),
        [Direction::In, Direction::Out]
    );
    assert_eq!(traj.iter().collect::<Vec<_>>(), expect);
    let scans: Vec<Scan> = traj.iter().filter_map(Scan::of).collect();
    let mut nearby = |cp: &checkpoint_protocol::ids::CheckpointId, from: i64, to: i64| {
        store
            .by_place(cp, from, to + 1)
            .unwrap()
            .iter()
            .filter_map(Scan::of)
            .collect()
    };
    let mut two_way = |cp: &checkpoint_protocol::ids::CheckpointId| store.two_way(cp).unwrap();
    let contacts = trace::contacts(
        &alice,
        &scans,
        &trace::Rules {
            window_ms: 5 * 60_000,
            max_stay_ms: 2 * 3_600_000,
            now_ms: i64::MAX,
        },
        &mut nearby,
        &mut two_way,
    );
    let names: HashSet<&str> = contacts.iter().map(|c| c.subject.as_str()).collect();
    // Everyone passed the same place within a few seconds of alice.
    let expected: HashSet<&str> = people_in
        .iter()
        .copied()
        .filter(|p| *p != "alice")
        .collect();
    assert_eq!(names, expected, "{contacts:#?}");
}

#[test]
fn bad_messages_are_counted_and_ingest_goes_on() {
    let dir = TempDir::new("central-bad");
    let broker = Mosquitto::start(&dir.path().join("broker"), None);
    let mut central = CentralProc::start(&dir.path().join("central"), &broker, None);
    let observer = TestCentral::connect_as("observer", &broker, None, false);
    std::thread::sleep(Duration::from_secs(1));
    let keys = kiosk::keygen(&dir.path().join("keys"));
    let spec = BoxSpec {
        bootstrap_key: Some(keys.join("passcode.pub")),
        ..BoxSpec::new("gate-x", dir.path(), &broker, None)
    };
    frames(&spec, &keys, &["p1", "p2"]);
    let _k = Kiosk::start(&spec);
    wait_until(Duration::from_secs(30), "first event", || {
        !observer.unique_events().is_empty()
    });

    // A real event replayed under another box's topic, and garbage of every kind.
    let stolen = serde_json::to_vec(&observer.unique_events()[0]).unwrap();
    observer.publish_raw("checkpoint/v1/box/other-box/event", &stolen);
    observer.publish_raw("checkpoint/v1/box/gate-x/event", b"not json at all");
    observer.publish_raw("checkpoint/v1/box/gate-x/event", &vec![b' '; 100_000]);
    observer.publish_raw("checkpoint/v1/box/gate-x/event", br#"{"schema":2}"#);
    observer.publish_raw(
        "checkpoint/v1/box/gate-x/event",
        br#"{"schema":1,"id":"x"}"#,
    );
    observer.publish_raw("checkpoint/v1/box/gate-x/telemetry", b"\xff\xfe");

    wait_until(Duration::from_secs(30), "box drained", || {
        drained(&observer, "gate-x", 2)
    });
    assert!(central.terminate().unwrap().success());
    let log = central.log_text();
    for reason in ["box_mismatch", "syntax", "too_large", "version", "schema"] {
        assert!(
            log.contains(&format!("reason=\"{reason}\""))
                || log.contains(&format!("reason={reason}")),
            "{reason} not counted:\n{log}"
        );
    }
    let store = central.open_store();
    assert_eq!(store.len().unwrap(), 2, "only the box's own two events");
}

#[test]
fn revocations_reach_the_boxes_through_central() {
    let dir = TempDir::new("central-trust");
    let broker = Mosquitto::start(&dir.path().join("broker"), None);
    let keys = kiosk::config_keygen(&kiosk::keygen(&dir.path().join("keys")));
    let extra = format!(
        "[trust]\nkeys = [\"{}\"]\nsigning_key = \"{}\"\n",
        keys.join("passcode.pub").display(),
        keys.join("config-signing.key").display()
    );
    let mut central =
        CentralProc::start_with(&dir.path().join("central"), &broker, None, 600, &extra);
    let observer = TestCentral::connect_as("observer", &broker, None, false);

    // The box has no keys of its own: everything it trusts comes from central, signed.
    let spec = BoxSpec {
        config_key: Some(keys.join("config-signing.pub")),
        ..BoxSpec::new("gate-t", dir.path(), &broker, None)
    };
    std::fs::create_dir_all(&spec.frames).unwrap();
    for i in 0..15 {
        kiosk::blank_frame(&spec.frames.join(format!("{i:02}.png")));
    }
    let alice = kiosk::issue(&keys, "alice", "green", "1h", None);
    let carol = kiosk::issue(&keys, "carol", "green", "1h", None);
    // Revoked after her code was issued (the cut-off is "now", in whole seconds).
    std::thread::sleep(Duration::from_millis(1100));
    let said = central.command(&["passcode", "revoke", "carol"]);
    assert!(said.contains("revoked codes of carol"), "{said}");
    kiosk::qr_frame(&alice, &spec.frames.join("20.png"));
    kiosk::qr_frame(&carol, &spec.frames.join("21.png"));
    let _k = Kiosk::start(&spec);
    let events = observer.wait_events(2, Duration::from_secs(30));
    let got: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e.subject
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                format!("{:?}", e.reason),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("alice".to_string(), "Ok".to_string()),
            ("carol".to_string(), "Revoked".to_string())
        ]
    );
    assert!(
        central.terminate().unwrap().success(),
        "{}",
        central.log_text()
    );
}

#[test]
fn gaps_are_reported_exactly_where_a_full_outbox_dropped_events() {
    gaps_exactly_where_events_were_dropped();
}

/// The same on PostgreSQL.
#[test]
fn gaps_are_reported_exactly_where_a_full_outbox_dropped_events_on_postgres() {
    let pg = Cluster::start();
    let _store = checkpoint_e2e::central::use_postgres(&pg.database());
    gaps_exactly_where_events_were_dropped();
}

fn gaps_exactly_where_events_were_dropped() {
    let dir = TempDir::new("central-gaps");
    let broker = Mosquitto::start(&dir.path().join("broker"), None);
    let keys = kiosk::keygen(&dir.path().join("keys"));
    let observer = TestCentral::connect_as("observer", &broker, None, false);
    // Central is down: the box fills its smallest outbox and refuses what does not fit.
    let spec = BoxSpec {
        bootstrap_key: Some(keys.join("passcode.pub")),
        fps: 30.0,
        looping: true,
        policy: "duplicate_cooldown = \"0s\"\n".to_string(),
        outbox: "max_bytes = 65536\nwhen_full = \"refuse_new\"\n".to_string(),
        ..BoxSpec::new("gate-g", dir.path(), &broker, None)
    };
    frames(&spec, &keys, &["p1", "p2"]);
    let mut k = Kiosk::start(&spec);
    wait_until(
        Duration::from_secs(40),
        "events refused by the full outbox",
        || {
            observer
                .telemetry()
                .last()
                .is_some_and(|t| t.dropped_events >= 5)
        },
    );
    // Central comes up and drains the box; the refused numbers are gaps that never fill.
    let mut central = CentralProc::start_with(&dir.path().join("central"), &broker, None, 2, "");
    central.command(&["boxes"]); // waits for the API
    wait_until(Duration::from_secs(60), "lost events reported", || {
        let b = central.query(&["boxes"]);
        let lost = b[0]["lost_events"].as_u64().unwrap_or(0);
        let dropped = observer.telemetry().last().map_or(0, |t| t.dropped_events);
        lost > 0 && lost == dropped
    });
    assert!(central.log_text().contains("Sequence gap: events lost."));
    // Stop the box; its log has the final count of refused events.
    assert!(k.terminate().unwrap().success());
    let dropped: u64 = k
        .log_text()
        .lines()
        .rev()
        .filter(|l| l.contains("Outbox full; events lost."))
        .filter_map(|l| l.split("total_dropped=").nth(1))
        .find_map(|v| v.split_whitespace().next()?.parse().ok())
        .expect("the box logged its drops");
    wait_until(Duration::from_secs(30), "every gap settled", || {
        let b = central.query(&["boxes"]);
        b[0]["lost_events"].as_u64() == Some(dropped)
            && b[0]["gaps"].as_array().is_some_and(|g| g.is_empty())
    });
    assert!(central.terminate().unwrap().success());
    let store = central.open_store();
    let st = &store.seq_states().unwrap()[0].1;
    let lost: u64 = st.lost.iter().map(|(a, z)| z - a + 1).sum();
    assert!(st.gaps().is_empty(), "{st:?}");
    assert_eq!(
        store.len().unwrap() + lost,
        st.highest(),
        "stored + lost = every number"
    );
}

/// Sends `request` as it is and returns the response's status code.
fn raw_status(api: &str, request: &str) -> u16 {
    use std::io::{Read, Write};
    let addr = api.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(request.as_bytes()).unwrap();
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).unwrap();
    let line = String::from_utf8_lossy(&head);
    line[9..12].parse().unwrap()
}
