use checkpoint_protocol::passcode::PassStatus;
use checkpoint_protocol::records::{Decision, Direction, Method, Reason, Schema};
use time::OffsetDateTime;

use std::path::Path;

use super::on_sled::primary;
use super::*;

pub(crate) fn ev(b: &str, seq: u64, who: Option<&str>, cp: &str, minute: i64) -> Event {
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

const T0: i64 = 1_800_000_000_000;
const MIN: i64 = 60_000;

fn open(dir: &Path) -> SledStore {
    for _ in 0..200 {
        match SledStore::open(dir, 1 << 20) {
            Ok(s) => return s,
            Err(StoreError::Locked(_)) => std::thread::sleep(std::time::Duration::from_millis(10)),
            Err(e) => panic!("{e}"),
        }
    }
    panic!("store stays locked")
}

#[test]
fn insert_is_idempotent_and_keeps_conflicts_apart() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
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
    assert_eq!(s.insert(&[reused]).unwrap(), [Inserted::Conflict]);
    assert_eq!(s.len().unwrap(), 2);
    assert_eq!(s.conflicts().unwrap(), 1);
    // The same id arriving under another box key is the same event.
    let mut moved = a.clone();
    moved.seq = 9;
    assert_eq!(s.insert(&[moved]).unwrap(), [Inserted::Duplicate]);
    drop(s);
    let s = open(dir.path());
    assert_eq!(s.len().unwrap(), 2, "durable");
    assert_eq!(
        s.by_person(&SubjectId::new("bob").unwrap(), T0, T0 + 10 * MIN)
            .unwrap(),
        vec![b]
    );
}

#[test]
fn a_crash_before_the_primary_write_is_completed_by_the_resent_event() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = ev("b1", 1, Some("alice"), "lib", 0);
    assert_eq!(s.insert(std::slice::from_ref(&a)).unwrap(), [Inserted::New]);
    // What a crash between the index writes and the primary write leaves on disk.
    s.events.remove(primary(&a.box_id, a.seq)).unwrap();
    s.flush().unwrap();
    assert_eq!(s.len().unwrap(), 0);
    assert_eq!(s.insert(std::slice::from_ref(&a)).unwrap(), [Inserted::New]);
    assert_eq!(s.len().unwrap(), 1);
    let mut seen = Vec::new();
    s.scan_time(T0 - MIN, T0 + MIN, &mut |e| {
        seen.push(e);
        true
    })
    .unwrap();
    assert_eq!(seen, vec![a.clone()]);
    assert_eq!(
        s.insert(std::slice::from_ref(&a)).unwrap(),
        [Inserted::Duplicate]
    );
}

#[test]
fn readings_wait_for_the_engine_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut warm = ev("b1", 1, Some("alice"), "lib", 0);
    warm.temperature_c = Some(38.2);
    let plain = ev("b1", 2, Some("bob"), "lib", 1);
    s.insert(&[warm.clone(), plain]).unwrap();
    assert_eq!(
        s.insert(std::slice::from_ref(&warm)).unwrap(),
        [Inserted::Duplicate]
    );
    assert_eq!(s.unhandled_readings(10).unwrap(), vec![warm.clone()]);
    s.reading_handled(&warm.box_id, warm.seq).unwrap();
    assert!(s.unhandled_readings(10).unwrap().is_empty());
    // A duplicate does not bring a handled reading back.
    s.insert(std::slice::from_ref(&warm)).unwrap();
    assert!(s.unhandled_readings(10).unwrap().is_empty());
}

#[test]
fn index_ranges_are_by_person_place_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let evs = vec![
        ev("b1", 1, Some("alice"), "lib", 0),
        ev("b2", 1, Some("alice"), "lab", 10),
        ev("b1", 2, Some("bob"), "lib", 5),
        ev("b1", 3, None, "lib", 6),
        ev("b1", 4, Some("alice"), "lib", 30),
    ];
    s.insert(&evs).unwrap();
    let alice = SubjectId::new("alice").unwrap();
    let seqs = |v: Vec<Event>| {
        v.iter()
            .map(|e| (e.box_id.to_string(), e.seq))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        seqs(s.by_person(&alice, T0, T0 + 20 * MIN).unwrap()),
        [("b1".to_string(), 1), ("b2".to_string(), 1)]
    );
    let lib = CheckpointId::new("lib").unwrap();
    assert_eq!(
        seqs(s.by_place(&lib, T0 + MIN, T0 + 7 * MIN).unwrap()).len(),
        2
    );
    assert_eq!(s.by_time(T0, T0 + 60 * MIN, 3).unwrap().len(), 3);
    assert_eq!(s.by_time(T0 + 6 * MIN, T0 + 11 * MIN, 10).unwrap().len(), 2);
    // A subject that is a prefix of another does not leak into its range.
    s.insert(&[ev("b1", 5, Some("alice2"), "lib", 1)]).unwrap();
    assert_eq!(s.by_person(&alice, T0, T0 + 20 * MIN).unwrap().len(), 2);
}

/// A state saved with numbers at the edge of u64 (decoding refuses them now, but a store may hold
/// one from before) neither panics nor wraps, in debug and release.
#[test]
fn sequence_state_at_the_edges_of_u64_does_not_panic() {
    let mut st = SeqState::default();
    for s in [1, u64::MAX - 1, u64::MAX] {
        st.add(s);
    }
    assert_eq!(st.gaps(), [(2, u64::MAX - 2)]);
    st.skip(2, u64::MAX - 2);
    assert_eq!(st.contiguous, u64::MAX);
    st.add(u64::MAX);
    st.skip(u64::MAX, u64::MAX);
    assert!(st.gaps().is_empty());
    assert_eq!(st.highest(), u64::MAX);
}

#[test]
fn sequence_state_tracks_gaps_and_gives_up_on_lost_ones() {
    let mut st = SeqState::default();
    for s in [1, 2, 5, 6, 9] {
        st.add(s);
    }
    assert_eq!(st.contiguous, 2);
    assert_eq!(st.gaps(), [(3, 4), (7, 8)]);
    st.add(3);
    st.add(4);
    assert_eq!((st.contiguous, st.gaps()), (6, vec![(7, 8)]));
    st.skip(7, 8);
    assert_eq!(
        (st.contiguous, st.gaps(), st.lost.clone()),
        (9, vec![], vec![(7, 8)])
    );
    assert_eq!(st.highest(), 9);

    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.insert(&[ev("b1", 1, None, "x", 0), ev("b1", 4, None, "x", 0)])
        .unwrap();
    let b1: BoxId = "b1".parse().unwrap();
    assert_eq!(s.seq_states().unwrap()[0].1.gaps(), [(2, 3)]);
    let st = s.mark_lost(&b1, 2, 3).unwrap();
    assert_eq!(st.contiguous, 4);
    assert_eq!(s.seq_states().unwrap()[0].1.lost, [(2, 3)]);
}

#[test]
fn revocations_persist_and_a_later_cutoff_replaces_an_earlier_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let carol = SubjectId::new("carol").unwrap();
    s.revoke(&carol, 100).unwrap();
    s.revoke(&carol, 200).unwrap();
    s.revoke(&SubjectId::new("dave").unwrap(), 50).unwrap();
    drop(s);
    let s = open(dir.path());
    let mut r = s.revocations().unwrap();
    r.sort();
    assert_eq!(r, vec![(carol, 200), (SubjectId::new("dave").unwrap(), 50)]);
}

#[test]
fn a_checkpoint_is_two_way_once_both_directions_are_stored_and_this_survives_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        let mut out = ev("b2", 1, Some("bob"), "lab", 1);
        out.direction = Direction::Out;
        s.insert(&[ev("b1", 1, Some("alice"), "gate", 0)]).unwrap();
        let lab = CheckpointId::new("lab").unwrap();
        let gate = CheckpointId::new("gate").unwrap();
        assert!(!s.two_way(&gate).unwrap(), "only ins so far");
        s.insert(&[out, ev("b2", 2, Some("bob"), "lab", 2)])
            .unwrap();
        assert!(s.two_way(&lab).unwrap());
        assert!(!s.two_way(&gate).unwrap());
        assert!(!s.two_way(&CheckpointId::new("nowhere").unwrap()).unwrap());
        // A store written before the tree existed derives it on open.
        s.directions.clear().unwrap();
        s.flush().unwrap();
    }
    let s = open(dir.path());
    assert!(s.two_way(&CheckpointId::new("lab").unwrap()).unwrap());
    assert!(!s.two_way(&CheckpointId::new("gate").unwrap()).unwrap());
}

#[test]
fn purge_removes_exactly_what_is_older_with_its_index_entries() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    // Minutes 0..10 at two places; alice on even minutes, bob on odd ones.
    let evs: Vec<Event> = (0..10)
        .map(|m| {
            let who = if m % 2 == 0 { "alice" } else { "bob" };
            let cp = if m < 5 { "lib" } else { "gym" };
            ev("b1", m as u64 + 1, Some(who), cp, m)
        })
        .collect();
    s.insert(&evs).unwrap();
    // Notification records follow the same limit: one from minute 1 goes, one from minute 9 stays.
    for (id, minute) in [(1u64, 1i64), (2, 9)] {
        s.put_notification(&crate::alerts::log::NotificationRecord {
            id: (T0 + minute * MIN) as u64 * 1000 + id,
            alert_key: format!("temperature:{id}"),
            kind: crate::alerts::rules::AlertKind::Temperature,
            raised: true,
            channel: "webhook".into(),
            recipients: vec!["alice".into()],
            outcome: crate::alerts::log::Outcome::Sent,
            error: None,
            invalid_recipients: vec![],
            deferred: vec![],
            attempts: 1,
            first_ms: T0 + minute * MIN,
            last_ms: T0 + minute * MIN,
        })
        .unwrap();
    }
    let cutoff = T0 + 4 * MIN; // minutes 0..=3 go
    let mut purged = 0;
    loop {
        let n = s.purge_before(cutoff, 3).unwrap();
        if n == 0 {
            break;
        }
        purged += n;
    }
    assert_eq!(purged, 4 + 1, "four events and one notification record");
    assert_eq!(s.len().unwrap(), 6);
    let kept: Vec<String> = s
        .notifications(10)
        .unwrap()
        .into_iter()
        .map(|n| n.alert_key)
        .collect();
    assert_eq!(kept, ["temperature:2"]);
    let left = s.by_time(0, i64::MAX, usize::MAX).unwrap();
    assert!(left.iter().all(|e| event_ms(e) >= cutoff));
    assert_eq!(left.len(), 6);
    let alice = SubjectId::new("alice").unwrap();
    let lib = CheckpointId::new("lib").unwrap();
    // No index still names a purged event: counts agree through every index.
    assert_eq!(s.by_person(&alice, 0, i64::MAX).unwrap().len(), 3);
    assert_eq!(s.by_place(&lib, 0, i64::MAX).unwrap().len(), 1);
    assert_eq!(
        s.person.len() + s.place.len() + s.time.len() + s.ids.len(),
        4 * 6
    );
    // The sequence state is history, not personal data: it stays.
    assert_eq!(s.seq_states().unwrap()[0].1.contiguous, 10);
}

#[test]
fn a_backup_restores_to_the_same_answers_and_a_damaged_one_restores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("a"));
    let evs: Vec<Event> = (0..50)
        .map(|m| {
            ev(
                "b1",
                m + 1,
                Some(["alice", "bob", "carol"][m as usize % 3]),
                "lib",
                m as i64,
            )
        })
        .collect();
    s.insert(&evs).unwrap();
    s.revoke(&SubjectId::new("bob").unwrap(), 1_800_000_000)
        .unwrap();
    let mut file = Vec::new();
    let summary = s.backup(&mut file).unwrap();
    assert_eq!(summary.events, 50);

    let restored_dir = dir.path().join("b");
    assert_eq!(
        SledStore::restore(&restored_dir, &mut file.as_slice()).unwrap(),
        summary
    );
    let r = open(&restored_dir);
    let alice = SubjectId::new("alice").unwrap();
    assert_eq!(
        r.by_person(&alice, 0, i64::MAX).unwrap(),
        s.by_person(&alice, 0, i64::MAX).unwrap()
    );
    assert_eq!(
        r.by_time(0, i64::MAX, 1000).unwrap(),
        s.by_time(0, i64::MAX, 1000).unwrap()
    );
    assert_eq!(r.revocations().unwrap(), s.revocations().unwrap());
    assert_eq!(r.seq_states().unwrap(), s.seq_states().unwrap());
    assert!(r.two_way(&CheckpointId::new("lib").unwrap()).is_ok());

    // Not into a store that exists; a truncated or altered file leaves nothing behind.
    let e = SledStore::restore(&restored_dir, &mut file.as_slice()).unwrap_err();
    assert!(e.to_string().contains("not empty"), "{e}");
    let fresh = dir.path().join("c");
    let e = SledStore::restore(&fresh, &mut &file[..file.len() - 10]).unwrap_err();
    assert!(e.to_string().contains("ends early"), "{e}");
    assert!(!fresh.exists() && !fresh.with_extension("restoring").exists());
    let mut altered = file.clone();
    let mid = altered.len() / 2;
    altered[mid] ^= 0x40;
    let e = SledStore::restore(&fresh, &mut altered.as_slice()).unwrap_err();
    assert!(!fresh.exists(), "{e}");
    let e = SledStore::restore(&fresh, &mut &b"hello"[..]).unwrap_err();
    assert!(
        e.to_string().contains("ends early") || e.to_string().contains("not a"),
        "{e}"
    );
}

#[test]
fn scans_come_from_the_index_and_match_the_events_also_in_an_older_store() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut denied = ev("b1", 2, Some("alice"), "lib", 2);
    denied.decision = checkpoint_protocol::records::Decision::Deny;
    denied.reason = Reason::Fever;
    denied.direction = Direction::Out;
    s.insert(&[
        ev("b1", 1, Some("alice"), "lib", 1),
        denied,
        ev("b1", 3, None, "lib", 3), // an unreadable code: no subject, no scan
        ev("b2", 1, Some("bob"), "lib", 4),
    ])
    .unwrap();
    let alice = SubjectId::new("alice").unwrap();
    let lib = CheckpointId::new("lib").unwrap();
    let from_events = |v: Vec<Event>| -> Vec<crate::trace::Scan> {
        v.iter().filter_map(crate::trace::Scan::of).collect()
    };
    let want_person = from_events(s.by_person(&alice, 0, i64::MAX).unwrap());
    let want_place = from_events(s.by_place(&lib, 0, i64::MAX).unwrap());
    assert_eq!(want_place.len(), 3);
    assert_eq!(s.scans_by_person(&alice, 0, i64::MAX).unwrap(), want_person);
    assert_eq!(s.scans_by_place(&lib, 0, i64::MAX).unwrap(), want_place);
    // Index entries without values (written before they carried scans) read the events.
    for tree in [&s.person, &s.place] {
        for item in tree.iter() {
            let (k, _) = item.unwrap();
            tree.insert(k, &[] as &[u8]).unwrap();
        }
    }
    assert_eq!(s.scans_by_person(&alice, 0, i64::MAX).unwrap(), want_person);
    assert_eq!(s.scans_by_place(&lib, 0, i64::MAX).unwrap(), want_place);
}

#[test]
fn a_store_in_use_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(dir.path());
    match SledStore::open(dir.path(), 1 << 20) {
        Err(e @ StoreError::Locked(_)) => {
            assert!(
                e.to_string().contains("another process already uses"),
                "{e}"
            )
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened twice"),
    }
}
