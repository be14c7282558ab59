//! The store's contract as tests every backend runs: [`run_all`] with a [`Fixture`] of the
//! backend. SQLite runs them as unit tests (`store/tests.rs`); PostgreSQL in the end-to-end
//! crate against a real server (cargo feature `contract`).
//!
//! Long on purpose: one function per rule of the contract, all in one place, so both backends are
//! held to the same list.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use checkpoint_protocol::ids::{BoxId, CheckpointId, SubjectId};
use checkpoint_protocol::passcode::PassStatus;
use checkpoint_protocol::records::{Decision, Direction, Event, Flag, Method, Reason, Schema};
use time::OffsetDateTime;

use super::{Doc, Docs, Inserted, Store};
use crate::roster::{Person, Place};
use crate::trace::Scan;

mod tracing;

/// Where a backend keeps the data under test.
pub trait Fixture {
    /// The store under test. Called again after the previous one is dropped, it opens the same
    /// data (what durability means).
    fn open(&self) -> Box<dyn Store>;
    /// Another, empty store: a restore's target.
    fn other(&self) -> Box<dyn Store>;
}

pub const T0: i64 = 1_800_000_000_000;
pub const MIN: i64 = 60_000;

/// An admitted `in` event of box `b` at minute `minute` after T0.
pub fn ev(b: &str, seq: u64, who: Option<&str>, cp: &str, minute: i64) -> Event {
    Event {
        schema: Schema,
        id: uuid::Uuid::new_v4(),
        seq,
        site: "s".parse().unwrap(),
        box_id: b.parse().unwrap(),
        checkpoint: cp.parse().unwrap(),
        direction: Direction::In,
        method: Method::Qr,
        subject: who.map(|w| SubjectId::new(w).unwrap()),
        dependants: vec![],
        pass_status: who.map(|_| PassStatus::Green),
        decision: Decision::Admit,
        reason: Reason::Ok,
        flags: vec![],
        temperature_c: None,
        ts: OffsetDateTime::from_unix_timestamp(1_800_000_000 + minute * 60).unwrap(),
        clock_synced: true,
    }
}

/// Alice in, Bob in, Alice out, Alice in, Bob out at `lib`: three stays, one still open (what
/// the stays migrations are tested with).
pub fn three_stays_at_lib() -> Vec<Event> {
    [
        ("alice", Direction::In),
        ("bob", Direction::In),
        ("alice", Direction::Out),
        ("alice", Direction::In),
        ("bob", Direction::Out),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (who, dir))| Event {
        direction: dir,
        ..ev("b1", i as u64 + 1, Some(who), "lib", i as i64 * 10)
    })
    .collect()
}

fn sid(s: &str) -> SubjectId {
    SubjectId::new(s).unwrap()
}

fn cid(s: &str) -> CheckpointId {
    CheckpointId::new(s).unwrap()
}

fn seqs(v: &[Event]) -> Vec<(String, u64)> {
    v.iter().map(|e| (e.box_id.to_string(), e.seq)).collect()
}

/// Every contract test, in order, each on fresh data.
pub fn run_all(make: &dyn Fn() -> Box<dyn Fixture>) {
    type Test = fn(&dyn Fixture);
    let tests: [(&str, Test); 15] = [
        (
            "idempotent insert and conflicts",
            insert_is_idempotent_and_keeps_conflicts_apart,
        ),
        ("events come back exactly", events_come_back_exactly),
        (
            "ranges by person, place, time",
            ranges_are_by_person_place_and_time,
        ),
        (
            "dependants are people too",
            dependants_have_trajectories_and_scans,
        ),
        ("scans match the events", scans_match_the_events),
        (
            "stays and contacts equal the reference",
            tracing::stays_and_contacts_equal_the_reference,
        ),
        (
            "events table: filters, pages, counts",
            the_events_table_filters_pages_and_counts_exactly,
        ),
        (
            "readings wait for the engine",
            readings_wait_for_the_engine_once_each,
        ),
        (
            "sequence state and lost gaps",
            sequence_state_is_kept_with_lost_gaps,
        ),
        (
            "revocations",
            revocations_persist_and_a_later_cutoff_replaces_an_earlier_one,
        ),
        (
            "two-way places",
            a_checkpoint_is_two_way_once_both_directions_are_stored,
        ),
        ("purge by receive time", purge_keys_on_when_central_received),
        ("roster", the_roster_is_replaced_whole_or_merged_by_id),
        ("documents", documents_are_kept_replaced_and_ordered),
        (
            "backup and restore",
            a_backup_restores_the_same_answers_and_a_damaged_one_nothing,
        ),
    ];
    for (name, test) in tests {
        eprintln!("store contract: {name}");
        let f = make();
        test(f.as_ref());
    }
}

pub fn insert_is_idempotent_and_keeps_conflicts_apart(f: &dyn Fixture) {
    let s = f.open();
    let a = ev("b1", 1, Some("alice"), "lib", 0);
    let b = ev("b1", 2, Some("bob"), "lib", 1);
    assert_eq!(
        s.insert(&[a.clone(), b.clone(), a.clone()]).unwrap(),
        [Inserted::New, Inserted::New, Inserted::Duplicate]
    );
    assert_eq!(
        s.insert(std::slice::from_ref(&b)).unwrap(),
        [Inserted::Duplicate]
    );
    let reused = ev("b1", 2, Some("carol"), "lib", 2);
    assert_eq!(
        s.insert(std::slice::from_ref(&reused)).unwrap(),
        [Inserted::Conflict]
    );
    assert_eq!(s.insert(&[reused]).unwrap(), [Inserted::Conflict]);
    assert_eq!(s.len().unwrap(), 2);
    assert_eq!(s.conflicts().unwrap(), 1);
    // The same id arriving under another box key is the same event.
    let mut moved = a.clone();
    moved.seq = 9;
    assert_eq!(s.insert(&[moved]).unwrap(), [Inserted::Duplicate]);
    drop(s);
    let s = f.open();
    assert_eq!(s.len().unwrap(), 2, "durable");
    assert_eq!(s.conflicts().unwrap(), 1, "durable");
    assert_eq!(
        s.by_person(&sid("bob"), T0, T0 + 10 * MIN).unwrap(),
        vec![b]
    );
    assert!(s.by_person(&sid("carol"), 0, i64::MAX).unwrap().is_empty());
}

pub fn events_come_back_exactly(f: &dyn Fixture) {
    let s = f.open();
    let mut e = ev("gate-7", 41, Some("alice"), "lab-west", 3);
    e.site = "north-campus".parse().unwrap();
    e.direction = Direction::Out;
    e.method = Method::Face;
    e.pass_status = None;
    e.decision = Decision::Deny;
    e.reason = Reason::Fever;
    e.flags = vec![Flag::TrustStale, Flag::NoTemperature, Flag::Fever];
    e.temperature_c = Some(38.25);
    e.dependants = vec![sid("kid-2"), sid("kid-1")];
    e.ts = OffsetDateTime::from_unix_timestamp_nanos(1_800_000_123_456_789_012).unwrap();
    e.clock_synced = false;
    let mut before_1970 = ev("gate-7", 42, None, "lab-west", 0);
    before_1970.ts = OffsetDateTime::from_unix_timestamp_nanos(-1_500_000).unwrap();
    before_1970.pass_status = Some(PassStatus::Red);
    s.insert(&[e.clone(), before_1970.clone()]).unwrap();
    drop(s);
    let s = f.open();
    assert_eq!(
        s.by_person(&sid("alice"), 0, i64::MAX).unwrap(),
        vec![e.clone()]
    );
    assert_eq!(
        s.by_time(i64::MIN, i64::MAX, 10).unwrap(),
        vec![before_1970.clone(), e]
    );
    assert_eq!(
        s.by_time(before_1970.ts_ms(), before_1970.ts_ms() + 1, 10)
            .unwrap()
            .len(),
        1,
        "an event before 1970 is where Event::ts_ms says"
    );
}

pub fn ranges_are_by_person_place_and_time(f: &dyn Fixture) {
    let s = f.open();
    let evs = vec![
        ev("b1", 1, Some("alice"), "lib", 0),
        ev("b2", 1, Some("alice"), "lab", 10),
        ev("b1", 2, Some("bob"), "lib", 5),
        ev("b1", 3, None, "lib", 6),
        ev("b1", 4, Some("alice"), "lib", 30),
    ];
    s.insert(&evs).unwrap();
    let alice = sid("alice");
    assert_eq!(
        seqs(&s.by_person(&alice, T0, T0 + 20 * MIN).unwrap()),
        [("b1".to_string(), 1), ("b2".to_string(), 1)]
    );
    assert_eq!(
        seqs(&s.by_place(&cid("lib"), T0 + MIN, T0 + 7 * MIN).unwrap()),
        [("b1".to_string(), 2), ("b1".to_string(), 3)]
    );
    assert_eq!(s.by_time(T0, T0 + 60 * MIN, 3).unwrap().len(), 3);
    assert_eq!(s.by_time(T0 + 6 * MIN, T0 + 11 * MIN, 10).unwrap().len(), 2);
    // Half-open ranges: the end is excluded.
    assert_eq!(s.by_person(&alice, T0, T0 + 10 * MIN).unwrap().len(), 1);
    // A subject that is a prefix of another does not leak into its range.
    s.insert(&[ev("b1", 5, Some("alice2"), "lib", 1)]).unwrap();
    assert_eq!(s.by_person(&alice, T0, T0 + 20 * MIN).unwrap().len(), 2);
    assert!(s.by_person(&sid("nobody"), 0, i64::MAX).unwrap().is_empty());
    assert!(s.by_place(&cid("nowhere"), 0, i64::MAX).unwrap().is_empty());
    // scan_time stops when asked to.
    let mut seen = 0;
    s.scan_time(0, i64::MAX, &mut |_| {
        seen += 1;
        seen < 2
    })
    .unwrap();
    assert_eq!(seen, 2);
}

/// A child admitted on a parent's code has the event in their trajectory and is at the place.
pub fn dependants_have_trajectories_and_scans(f: &dyn Fixture) {
    let s = f.open();
    let mut family = ev("b1", 1, Some("parent"), "gate", 0);
    family.dependants = vec![sid("child")];
    s.insert(&[family.clone(), ev("b1", 2, Some("stranger"), "gate", 1)])
        .unwrap();
    assert_eq!(
        s.by_person(&sid("child"), 0, i64::MAX).unwrap(),
        vec![family]
    );
    let mut at_gate: Vec<String> = s
        .scans_by_place(&cid("gate"), 0, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|x| x.subject.to_string())
        .collect();
    assert_eq!(at_gate.pop().as_deref(), Some("stranger"), "time order");
    at_gate.sort();
    assert_eq!(at_gate, ["child", "parent"]);
    let child = s.scans_by_person(&sid("child"), 0, i64::MAX).unwrap();
    assert_eq!(child.len(), 1);
    assert!(child[0].admitted);
    assert_eq!(child[0].checkpoint, cid("gate"));
}

/// Every filter of the events table, alone and combined, paged in small pages: the rows and the
/// count are exactly what filtering all events here gives, in time order, none twice.
pub fn the_events_table_filters_pages_and_counts_exactly(f: &dyn Fixture) {
    use super::page::{EventFilter, PAGE_MAX};
    let s = f.open();
    let departments = ["Physics", "Law", "Art"];
    let people: Vec<Person> = (0..30)
        .map(|i| Person {
            class: format!("k{}", i % 4),
            ..person(&format!("p{i}"), departments[i % 3])
        })
        .collect();
    s.replace_people(&people).unwrap();
    let mut rng = 11u64;
    let mut next = |n: u64| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) % n
    };
    let mut all = Vec::new();
    for i in 0..600u64 {
        // Several events share a minute (and so a millisecond): pages must split them right.
        let who = match next(10) {
            0 => None,
            _ => Some(format!("p{}", next(32))),
        };
        let mut e = ev(
            &format!("b{}", i % 3),
            i / 3 + 1,
            who.as_deref(),
            &format!("cp{}", next(4)),
            (next(120)) as i64,
        );
        if next(2) == 0 {
            e.direction = Direction::Out;
        }
        if next(5) == 0 {
            e.decision = Decision::Deny;
            e.reason = Reason::Expired;
        }
        if e.subject.is_some() && next(6) == 0 {
            e.dependants = vec![sid(&format!("p{}", next(30)))];
        }
        all.push(e);
    }
    for chunk in all.chunks(100) {
        s.insert(chunk).unwrap();
    }
    // The expected order: time, then the order of storing.
    let mut by_time: Vec<(usize, &Event)> = all.iter().enumerate().collect();
    by_time.sort_by_key(|(i, e)| (e.ts_ms(), *i));
    let dept = |e: &Event| {
        e.subject
            .as_ref()
            .and_then(|w| people.iter().find(|p| p.id == w.as_str()))
    };
    let base = EventFilter {
        from_ms: T0 + 10 * MIN,
        to_ms: T0 + 100 * MIN,
        ..EventFilter::default()
    };
    let filters = [
        base.clone(),
        EventFilter {
            person: Some(sid("p3")),
            ..base.clone()
        },
        EventFilter {
            place: Some(cid("cp2")),
            direction: Some(Direction::Out),
            ..base.clone()
        },
        EventFilter {
            department: Some("Law".into()),
            decision: Some(Decision::Deny),
            ..base.clone()
        },
        EventFilter {
            class: Some("k1".into()),
            place: Some(cid("cp0")),
            ..base.clone()
        },
        EventFilter {
            person: Some(sid("p5")),
            direction: Some(Direction::In),
            department: Some(departments[5 % 3].into()),
            ..base.clone()
        },
        EventFilter {
            place: Some(cid("nowhere")),
            ..base.clone()
        },
    ];
    let mut nonempty = 0;
    for filter in &filters {
        let want: Vec<(String, u64)> = by_time
            .iter()
            .map(|(_, e)| *e)
            .filter(|e| {
                let t = e.ts_ms();
                let named =
                    |w: &SubjectId| e.subject.as_ref() == Some(w) || e.dependants.contains(w);
                t >= filter.from_ms
                    && t < filter.to_ms
                    && filter.person.as_ref().is_none_or(named)
                    && filter.place.as_ref().is_none_or(|c| &e.checkpoint == c)
                    && filter.direction.is_none_or(|d| e.direction == d)
                    && filter.decision.is_none_or(|d| e.decision == d)
                    && filter
                        .department
                        .as_ref()
                        .is_none_or(|d| dept(e).is_some_and(|p| &p.department == d))
                    && filter
                        .class
                        .as_ref()
                        .is_none_or(|c| dept(e).is_some_and(|p| &p.class == c))
            })
            .map(|e| (e.box_id.to_string(), e.seq))
            .collect();
        assert_eq!(
            s.events_count(filter).unwrap(),
            want.len() as u64,
            "{filter:?}"
        );
        let mut got = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let page = s.events_page(filter, after, 7).unwrap();
            assert!(page.events.len() <= 7);
            got.extend(seqs(&page.events));
            pages += 1;
            assert!(pages <= 200, "paging ends");
            match page.next {
                Some(c) => after = Some(c),
                None => break,
            }
        }
        assert_eq!(got, want, "{filter:?}");
        nonempty += usize::from(!want.is_empty());
        // One page that holds exactly everything says nothing follows.
        let whole = s.events_page(filter, None, want.len().max(1)).unwrap();
        assert_eq!(seqs(&whole.events), want);
        assert_eq!(whole.next, None, "{filter:?}");
    }
    assert!(
        s.events_count(&filters[0]).unwrap() > 300 && nonempty >= 5,
        "the test covers a real range"
    );
    // A page never holds more than the most one may, however many are asked for.
    let wide = EventFilter {
        from_ms: i64::MIN,
        to_ms: i64::MAX,
        ..EventFilter::default()
    };
    let page = s.events_page(&wide, None, usize::MAX).unwrap();
    assert_eq!(page.events.len(), all.len().min(PAGE_MAX));
}

pub fn scans_match_the_events(f: &dyn Fixture) {
    let s = f.open();
    let mut denied = ev("b1", 2, Some("alice"), "lib", 2);
    denied.decision = Decision::Deny;
    denied.reason = Reason::Fever;
    denied.direction = Direction::Out;
    s.insert(&[
        ev("b1", 1, Some("alice"), "lib", 1),
        denied,
        ev("b1", 3, None, "lib", 3), // an unreadable code: no subject, no scan
        ev("b2", 1, Some("bob"), "lib", 4),
    ])
    .unwrap();
    let from_events = |v: Vec<Event>| -> Vec<Scan> { v.iter().filter_map(Scan::of).collect() };
    let want_person = from_events(s.by_person(&sid("alice"), 0, i64::MAX).unwrap());
    let want_place = from_events(s.by_place(&cid("lib"), 0, i64::MAX).unwrap());
    assert_eq!(want_place.len(), 3);
    assert_eq!(
        s.scans_by_person(&sid("alice"), 0, i64::MAX).unwrap(),
        want_person
    );
    assert_eq!(
        s.scans_by_place(&cid("lib"), 0, i64::MAX).unwrap(),
        want_place
    );
}

pub fn readings_wait_for_the_engine_once_each(f: &dyn Fixture) {
    let s = f.open();
    let mut warm = ev("b1", 1, Some("alice"), "lib", 0);
    warm.temperature_c = Some(38.2);
    let plain = ev("b1", 2, Some("bob"), "lib", 1);
    let mut later = ev("b1", 3, Some("carol"), "lib", 2);
    later.temperature_c = Some(36.5);
    s.insert(&[warm.clone(), plain, later.clone()]).unwrap();
    assert_eq!(
        s.insert(std::slice::from_ref(&warm)).unwrap(),
        [Inserted::Duplicate]
    );
    assert_eq!(
        s.unhandled_readings(10).unwrap(),
        vec![warm.clone(), later.clone()]
    );
    assert_eq!(s.unhandled_readings(1).unwrap(), vec![warm.clone()]);
    s.readings_handled(&[(warm.box_id.clone(), warm.seq)])
        .unwrap();
    assert_eq!(s.unhandled_readings(10).unwrap(), vec![later.clone()]);
    // A duplicate does not bring a handled reading back.
    s.insert(std::slice::from_ref(&warm)).unwrap();
    drop(s);
    let s = f.open();
    assert_eq!(s.unhandled_readings(10).unwrap(), vec![later]);
}

pub fn sequence_state_is_kept_with_lost_gaps(f: &dyn Fixture) {
    let s = f.open();
    s.insert(&[ev("b1", 1, None, "x", 0), ev("b1", 4, None, "x", 0)])
        .unwrap();
    s.insert(&[ev("b2", 1, None, "x", 0)]).unwrap();
    let b1: BoxId = "b1".parse().unwrap();
    let states = s.seq_states().unwrap();
    assert_eq!(states.len(), 2);
    assert_eq!(states[0].1.gaps(), [(2, 3)]);
    let st = s.mark_lost(&b1, 2, 3).unwrap();
    assert_eq!(st.contiguous, 4);
    drop(s);
    let s = f.open();
    let states = s.seq_states().unwrap();
    assert_eq!(states[0].0, b1);
    assert_eq!(states[0].1.lost, [(2, 3)]);
    assert_eq!(states[0].1.contiguous, 4);
    assert_eq!(states[1].1.contiguous, 1);
}

pub fn revocations_persist_and_a_later_cutoff_replaces_an_earlier_one(f: &dyn Fixture) {
    let s = f.open();
    s.revoke(&sid("carol"), 100).unwrap();
    s.revoke(&sid("carol"), 200).unwrap();
    s.revoke(&sid("dave"), 50).unwrap();
    drop(s);
    let s = f.open();
    let mut r = s.revocations().unwrap();
    r.sort();
    assert_eq!(r, vec![(sid("carol"), 200), (sid("dave"), 50)]);
}

pub fn a_checkpoint_is_two_way_once_both_directions_are_stored(f: &dyn Fixture) {
    let s = f.open();
    let mut out = ev("b2", 1, Some("bob"), "lab", 1);
    out.direction = Direction::Out;
    s.insert(&[ev("b1", 1, Some("alice"), "gate", 0)]).unwrap();
    assert!(!s.two_way(&cid("gate")).unwrap(), "only ins so far");
    s.insert(&[out, ev("b2", 2, Some("bob"), "lab", 2)])
        .unwrap();
    assert!(s.two_way(&cid("lab")).unwrap());
    assert!(!s.two_way(&cid("gate")).unwrap());
    assert!(!s.two_way(&cid("nowhere")).unwrap());
    drop(s);
    let s = f.open();
    assert!(s.two_way(&cid("lab")).unwrap());
}

fn notification_doc(id: u64, first_ms: i64) -> Doc {
    Doc {
        key: id.to_string(),
        ord: id as i64,
        time_ms: first_ms,
        json: format!("{{\"id\":{id}}}"),
    }
}

/// Retention reads central's clock: an event from a box whose clock ran decades behind stays as
/// long as one received at the same moment with the right time.
pub fn purge_keys_on_when_central_received(f: &dyn Fixture) {
    let s = f.open();
    let now = T0 + 100 * MIN;
    // Received at minutes 0..10; event times say anything (box clocks).
    for m in 0..10i64 {
        let who = if m % 2 == 0 { "alice" } else { "bob" };
        let mut e = ev("b1", m as u64 + 1, Some(who), "lib", m);
        if m == 5 {
            e.ts = OffsetDateTime::from_unix_timestamp(0).unwrap(); // 1970
        }
        if m == 1 {
            e.ts = OffsetDateTime::from_unix_timestamp(1_800_000_000 + 86_400).unwrap();
            e.dependants = vec![sid("kid")];
        }
        s.insert_received(&[e], T0 + m * MIN).unwrap();
    }
    let mut reused = ev("b1", 2, Some("carol"), "lib", 2);
    reused.ts = OffsetDateTime::from_unix_timestamp(1_800_000_000 + 9 * 60).unwrap();
    s.insert_received(&[reused], T0 + 2 * MIN).unwrap();
    for (id, minute) in [(1u64, 1i64), (2, 9)] {
        s.put_doc(
            Docs::Notifications,
            &notification_doc((T0 + minute * MIN) as u64 * 1000 + id, T0 + minute * MIN),
        )
        .unwrap();
    }
    let cutoff = T0 + 4 * MIN; // received at minutes 0..=3 go
    let mut purged = 0;
    loop {
        let n = s.purge_before(cutoff, 2).unwrap();
        if n == 0 {
            break;
        }
        purged += n;
    }
    assert_eq!(
        purged,
        4 + 1 + 1,
        "four events, one conflict, one notification record"
    );
    assert_eq!(s.len().unwrap(), 6);
    assert_eq!(s.conflicts().unwrap(), 0);
    let kept = s.docs(Docs::Notifications, true, 10).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].time_ms, T0 + 9 * MIN);
    // The event from 1970, received at minute 5, stays.
    let left = s.by_time(i64::MIN, i64::MAX, usize::MAX).unwrap();
    assert_eq!(left.len(), 6);
    assert_eq!(left[0].seq, 6);
    // No person's index still names a purged event, dependants included.
    assert_eq!(
        s.by_person(&sid("alice"), i64::MIN, i64::MAX)
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        s.by_person(&sid("bob"), i64::MIN, i64::MAX).unwrap().len(),
        3
    );
    assert!(s
        .by_person(&sid("kid"), i64::MIN, i64::MAX)
        .unwrap()
        .is_empty());
    assert_eq!(
        s.scans_by_place(&cid("lib"), i64::MIN, i64::MAX)
            .unwrap()
            .len(),
        6
    );
    // The sequence state is history, not personal data: it stays.
    assert_eq!(s.seq_states().unwrap()[0].1.contiguous, 10);
    let _ = now;
}

fn person(id: &str, department: &str) -> Person {
    Person {
        id: id.into(),
        number: format!("n-{id}"),
        name: format!("Name {id}"),
        department: department.into(),
        class: "c1".into(),
        counsellor: "coun".into(),
        department_head: "head".into(),
        wecom_id: String::new(),
        email: format!("{id}@example.org"),
    }
}

pub fn the_roster_is_replaced_whole_or_merged_by_id(f: &dyn Fixture) {
    let s = f.open();
    let g0 = s.roster_generation();
    s.replace_people(&[person("a", "math"), person("b", "art")])
        .unwrap();
    assert_ne!(s.roster_generation(), g0);
    s.replace_people(&[person("c", "law")]).unwrap();
    s.replace_places(&[Place {
        checkpoint: "lib".into(),
        name: "图书馆".into(),
        building: "B1".into(),
        capacity: Some(300),
        manager: "m1".into(),
    }])
    .unwrap();
    let g1 = s.roster_generation();
    s.upsert_people(&[person("c", "art"), person("d", "law")])
        .unwrap();
    assert_ne!(s.roster_generation(), g1);
    drop(s);
    let s = f.open();
    assert_eq!(
        s.people().unwrap(),
        vec![person("c", "art"), person("d", "law")],
        "upsert updates by id and adds"
    );
    s.replace_people(&[person("c", "law")]).unwrap();
    assert_eq!(s.people().unwrap(), vec![person("c", "law")]);
    s.upsert_places(&[Place {
        checkpoint: "gym".into(),
        name: "Gym".into(),
        building: "B2".into(),
        capacity: None,
        manager: String::new(),
    }])
    .unwrap();
    let places = s.places().unwrap();
    assert_eq!(places.len(), 2);
    let lib = places.iter().find(|p| p.checkpoint == "lib").unwrap();
    assert_eq!(lib.name, "图书馆");
    assert_eq!(lib.capacity, Some(300));
}

pub fn documents_are_kept_replaced_and_ordered(f: &dyn Fixture) {
    let s = f.open();
    for id in [3u64, 1, 2] {
        s.put_doc(Docs::Notifications, &notification_doc(id, 0))
            .unwrap();
    }
    let mut updated = notification_doc(2, 0);
    updated.json = "{\"id\":2,\"sent\":true}".into();
    s.put_doc(Docs::Notifications, &updated).unwrap();
    let newest: Vec<String> = s
        .docs(Docs::Notifications, true, 2)
        .unwrap()
        .into_iter()
        .map(|d| d.key)
        .collect();
    assert_eq!(newest, ["3", "2"]);
    assert_eq!(s.docs(Docs::Notifications, false, 10).unwrap()[1], updated);
    s.put_doc(Docs::Pending, &notification_doc(7, 0)).unwrap();
    s.remove_doc(Docs::Pending, "7").unwrap();
    assert!(s.docs(Docs::Pending, false, 10).unwrap().is_empty());
    s.replace_docs(
        Docs::Alerts,
        &[notification_doc(1, 0), notification_doc(2, 0)],
    )
    .unwrap();
    s.replace_docs(Docs::Alerts, &[notification_doc(5, 0)])
        .unwrap();
    drop(s);
    let s = f.open();
    let alerts = s.docs(Docs::Alerts, false, 10).unwrap();
    assert_eq!(alerts, vec![notification_doc(5, 0)]);
    assert_eq!(s.docs(Docs::Notifications, false, 10).unwrap().len(), 3);
}

pub fn a_backup_restores_the_same_answers_and_a_damaged_one_nothing(f: &dyn Fixture) {
    let s = f.open();
    let evs: Vec<Event> = (0..50)
        .map(|m| {
            let mut e = ev(
                "b1",
                m + 1,
                Some(["alice", "bob", "carol"][m as usize % 3]),
                "lib",
                m as i64,
            );
            if m % 7 == 0 {
                e.temperature_c = Some(36.6);
                e.dependants = vec![sid("kid")];
            }
            e
        })
        .collect();
    s.insert(&evs).unwrap();
    s.insert(&[ev("b1", 3, Some("mallory"), "lib", 3)]).unwrap(); // a conflict
    s.readings_handled(&[(evs[0].box_id.clone(), evs[0].seq)])
        .unwrap();
    s.revoke(&sid("bob"), 1_800_000_000).unwrap();
    s.replace_people(&[person("alice", "math")]).unwrap();
    s.put_doc(Docs::Pending, &notification_doc(9, 0)).unwrap();
    let mut file = Vec::new();
    let summary = s.backup(&mut file).unwrap();
    assert_eq!(summary.events, 50);

    // A truncated, altered or foreign file restores nothing.
    let r = f.other();
    let e = r.restore_from(&mut &file[..file.len() - 10]).unwrap_err();
    assert!(e.to_string().contains("ends early"), "{e}");
    let mut altered = file.clone();
    let mid = altered.len() / 2;
    altered[mid] ^= 0x01;
    assert!(r.restore_from(&mut altered.as_slice()).is_err());
    let e = r.restore_from(&mut &b"hello"[..]).unwrap_err();
    assert!(
        e.to_string().contains("ends early") || e.to_string().contains("not a"),
        "{e}"
    );
    assert!(r.is_empty().unwrap() && r.people().unwrap().is_empty());

    assert_eq!(r.restore_from(&mut file.as_slice()).unwrap(), summary);
    let all = |x: &dyn Store| x.by_time(i64::MIN, i64::MAX, 1000).unwrap();
    assert_eq!(all(r.as_ref()), all(s.as_ref()));
    for who in ["alice", "kid"] {
        assert_eq!(
            r.by_person(&sid(who), 0, i64::MAX).unwrap(),
            s.by_person(&sid(who), 0, i64::MAX).unwrap()
        );
    }
    assert_eq!(
        r.scans_by_place(&cid("lib"), 0, i64::MAX).unwrap(),
        s.scans_by_place(&cid("lib"), 0, i64::MAX).unwrap()
    );
    assert_eq!(r.conflicts().unwrap(), 1);
    assert_eq!(r.revocations().unwrap(), s.revocations().unwrap());
    assert_eq!(r.seq_states().unwrap(), s.seq_states().unwrap());
    assert_eq!(r.people().unwrap(), s.people().unwrap());
    assert_eq!(
        r.docs(Docs::Pending, false, 10).unwrap(),
        s.docs(Docs::Pending, false, 10).unwrap()
    );
    assert_eq!(
        r.unhandled_readings(100).unwrap(),
        s.unhandled_readings(100).unwrap()
    );
    assert_eq!(r.unhandled_readings(100).unwrap().len(), 7);
    // Not into a store that holds something.
    let e = r.restore_from(&mut file.as_slice()).unwrap_err();
    assert!(e.to_string().contains("not empty"), "{e}");
}
