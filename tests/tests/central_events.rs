//! The events table through the real CLI and API: filters answered in SQL with exact counts,
//! pages by cursor, and exports that give every row or say where they stopped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use checkpoint_central::roster::Person;
use checkpoint_central::store::{SqliteStore, Store};
use checkpoint_e2e::broker::{free_port, Pki};
use checkpoint_e2e::central::CentralProc;
use checkpoint_e2e::TempDir;
use checkpoint_protocol::ids::SubjectId;
use checkpoint_protocol::passcode::PassStatus;
use checkpoint_protocol::records::{Decision, Direction, Event, Method, Reason, Schema};
use time::OffsetDateTime;

/// More than two full pages of the API (10,000 rows each).
const EVENTS: u64 = 25_000;
const BOXES: u64 = 5;

fn person(i: u64) -> Person {
    Person {
        id: format!("p-{i}"),
        number: format!("n-{i}"),
        name: format!("Person {i}"),
        department: ["Physics", "Law", "Art"][(i % 3) as usize].into(),
        class: format!("k{}", i % 5),
        counsellor: String::new(),
        department_head: String::new(),
        wecom_id: String::new(),
        email: String::new(),
    }
}

/// Event `i`: box `i % BOXES`, one every 2 s from `start`, some in the same second.
fn event(i: u64, start: OffsetDateTime) -> Event {
    let who = (i * 7919) % 300;
    Event {
        schema: Schema,
        id: uuid::Uuid::now_v7(),
        seq: i / BOXES + 1,
        site: "campus".parse().unwrap(),
        box_id: format!("gate-{}", i % BOXES).parse().unwrap(),
        checkpoint: format!("cp-{}", i % 7).parse().unwrap(),
        direction: if i.is_multiple_of(3) {
            Direction::Out
        } else {
            Direction::In
        },
        method: Method::Qr,
        subject: Some(SubjectId::new(format!("p-{who}")).unwrap()),
        dependants: vec![],
        pass_status: Some(PassStatus::Green),
        decision: if i.is_multiple_of(11) {
            Decision::Deny
        } else {
            Decision::Admit
        },
        reason: if i.is_multiple_of(11) {
            Reason::Expired
        } else {
            Reason::Ok
        },
        flags: vec![],
        temperature_c: None,
        ts: start + time::Duration::seconds((i / 2) as i64 * 2),
        clock_synced: true,
    }
}

fn run(central: &CentralProc, args: &[&str]) -> (String, String, bool) {
    let token = central.token_file.to_str().unwrap();
    let mut all = args.to_vec();
    all.extend(["--api", &central.api, "--token-file", token]);
    let out = checkpoint_e2e::run("checkpoint-admin", &all);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

fn keys(rows: &serde_json::Value) -> Vec<(String, u64)> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["box_id"].as_str().unwrap().to_string(),
                r["seq"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn exports_give_every_row_once_and_a_stopped_listing_says_where() {
    let dir = TempDir::new("events");
    let central_dir = dir.path().join("central");
    let start = OffsetDateTime::now_utc() - time::Duration::hours(20);
    let all: Vec<Event> = (0..EVENTS).map(|i| event(i, start)).collect();
    {
        std::fs::create_dir_all(central_dir.join("data")).unwrap();
        let store = SqliteStore::open(&central_dir.join("data/central.sqlite"), 1 << 24).unwrap();
        store
            .replace_people(&(0..300).map(person).collect::<Vec<_>>())
            .unwrap();
        for chunk in all.chunks(1000) {
            store.insert(chunk).unwrap();
        }
    }
    let pki = Pki::new(&dir.path().join("pki"));
    let central = CentralProc::start_embedded(&central_dir, &pki, free_port());
    central.command(&["boxes"]);
    let from = (start - time::Duration::minutes(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();

    // Everything, in time order, each event once: three pages of the API behind one export.
    let everything = central.query(&["events", "--from", &from]);
    let got = keys(&everything);
    assert_eq!(got.len() as u64, EVENTS);
    assert_eq!(got.iter().collect::<HashSet<_>>().len() as u64, EVENTS);
    let times: Vec<&str> = everything
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ts"].as_str().unwrap())
        .collect();
    let parsed: Vec<OffsetDateTime> = times
        .iter()
        .map(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap())
        .collect();
    assert!(parsed.windows(2).all(|w| w[0] <= w[1]), "time order");
    let (csv, err, ok) = run(&central, &["events", "--from", &from, "--csv"]);
    assert!(ok, "{err}");
    assert_eq!(
        csv.lines().count() as u64,
        EVENTS + 1,
        "header and every row"
    );
    assert!(err.is_empty(), "a whole export says nothing more: {err}");

    // A table shows one page and says how many there are and how to go on.
    let (table, err, ok) = run(&central, &["events", "--from", &from]);
    assert!(ok, "{err}");
    assert_eq!(table.lines().count(), 101, "header and 100 rows");
    assert!(
        err.contains(&format!("100 of {EVENTS} events shown")),
        "{err}"
    );
    let cursor = err.rsplit("--after ").next().unwrap().trim().to_string();
    let (page, err, ok) = run(
        &central,
        &[
            "events", "--from", &from, "--after", &cursor, "--limit", "50", "--json",
        ],
    );
    assert!(ok, "{err}");
    let page: serde_json::Value = serde_json::from_str(&page).unwrap();
    assert_eq!(
        keys(&page),
        got[100..150],
        "the next page goes on where the table stopped"
    );
    assert!(
        err.contains("50 events shown; the next ones: --after"),
        "{err}"
    );

    // An export cut short by --limit says so, and where to go on.
    let (csv, err, ok) = run(
        &central,
        &["events", "--from", &from, "--csv", "--limit", "12345"],
    );
    assert!(ok, "{err}");
    assert_eq!(csv.lines().count(), 12_346);
    assert!(
        err.contains(&format!("12345 of {EVENTS} events shown")),
        "{err}"
    );

    // Filters answer in SQL what filtering here gives.
    let law_denied = central.query(&[
        "events",
        "--from",
        &from,
        "--department",
        "Law",
        "--decision",
        "deny",
    ]);
    let want: Vec<(String, u64)> = everything
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["decision"] == "deny"
                && r["subject"].as_str().is_some_and(|s| {
                    s.strip_prefix("p-")
                        .and_then(|n| n.parse::<u64>().ok())
                        .is_some_and(|n| n % 3 == 1)
                })
        })
        .map(|r| {
            (
                r["box_id"].as_str().unwrap().to_string(),
                r["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(!want.is_empty());
    assert_eq!(keys(&law_denied), want);

    // A cursor that is not one is refused with a clear message.
    let (_, err, ok) = run(&central, &["events", "--after", "yesterday"]);
    assert!(!ok && err.contains("not a page cursor"), "{err}");
}
