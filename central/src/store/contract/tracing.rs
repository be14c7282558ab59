//! Tracing from the store against the pure reference: the stays kept at ingest equal
//! [`trace::stays`] of every scan, and contacts at depth 1 and 2 equal [`trace::contacts`] over
//! the same scans, however the events arrived (two boxes at each place, one catching up late,
//! batches resent).

use std::collections::HashMap;

use checkpoint_protocol::ids::{CheckpointId, SubjectId};
use checkpoint_protocol::records::{Decision, Direction, Event, Reason};
use time::OffsetDateTime;

use super::{ev, Fixture, T0};
use crate::query::{self, ContactParams};
use crate::trace::{self, Contact, Scan, Stay};

/// A small campus where people meet often: 90 people, 6 places (one that records only `in`),
/// two boxes per place, some passes denied, some codes with a dependant.
fn campus() -> Vec<Event> {
    let mut rng = 0x5eed_u64;
    let mut next = move |n: u64| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) % n
    };
    let mut seqs: HashMap<String, u64> = HashMap::new();
    let mut out = Vec::new();
    for i in 0..1500i64 {
        let place = next(6);
        let lane = if next(2) == 0 { "a" } else { "b" };
        let b = format!("box{place}{lane}");
        let seq = seqs.entry(b.clone()).or_insert(0);
        *seq += 1;
        let who = format!("p{}", next(90));
        let mut e = ev(&b, *seq, Some(&who), &format!("cp{place}"), 0);
        // Distinct times, a few seconds apart: ten hours in all.
        e.ts = OffsetDateTime::from_unix_timestamp(T0 / 1000 + i * 24 + next(20) as i64).unwrap();
        if place != 5 && next(2) == 0 {
            e.direction = Direction::Out;
        }
        if next(10) == 0 {
            e.decision = Decision::Deny;
            e.reason = Reason::Revoked;
        }
        if next(20) == 0 {
            e.dependants = vec![SubjectId::new(format!("k{}", next(5))).unwrap()];
        }
        out.push(e);
    }
    out.sort_by_key(|e| e.ts);
    out
}

fn scans_of(events: &[Event]) -> Vec<Scan> {
    let mut out = Vec::new();
    for e in events {
        let Some(s) = Scan::of(e) else { continue };
        for d in &e.dependants {
            out.push(Scan {
                subject: d.clone(),
                ..s.clone()
            });
        }
        out.push(s);
    }
    out.sort_by_key(|s| s.ts_ms);
    out
}

/// The order boxes deliver in: lane `a` of every place live, lane `b` of half the places only
/// after everything else (an outage), in batches of 50, and one batch sent twice.
fn deliveries(events: &[Event]) -> Vec<Vec<Event>> {
    let late = |e: &Event| e.box_id.as_str().ends_with('b') && e.checkpoint.as_str() < "cp3";
    let mut order: Vec<Event> = events.iter().filter(|e| !late(e)).cloned().collect();
    order.extend(events.iter().filter(|e| late(e)).cloned());
    let mut batches: Vec<Vec<Event>> = order.chunks(50).map(|c| c.to_vec()).collect();
    if let Some(again) = batches.get(3).cloned() {
        batches.push(again);
    }
    batches
}

pub fn stays_and_contacts_equal_the_reference(f: &dyn Fixture) {
    let events = campus();
    let s = f.open();
    for batch in deliveries(&events) {
        s.insert(&batch).unwrap();
    }
    let scans = scans_of(&events);
    // The stays kept at ingest, place by place.
    let mut expect: HashMap<CheckpointId, Vec<Stay>> = HashMap::new();
    for (cp, st) in trace::stays(&scans) {
        expect.entry(cp).or_default().push(st);
    }
    let places: Vec<CheckpointId> = (0..6)
        .map(|p| CheckpointId::new(format!("cp{p}")).unwrap())
        .collect();
    let windows: Vec<_> = places
        .iter()
        .map(|cp| (cp.clone(), T0 - 1, T0 + 86_400_000))
        .collect();
    let sort = |v: &mut Vec<Stay>| {
        v.sort_by(|a, b| (a.start_ms, &a.subject).cmp(&(b.start_ms, &b.subject)))
    };
    for (cp, mut got) in places.iter().zip(s.stays_at(&windows).unwrap()) {
        let mut want = expect.remove(cp).unwrap_or_default();
        sort(&mut got);
        sort(&mut want);
        assert!(!want.is_empty(), "{cp}: the campus has stays there");
        assert_eq!(got, want, "stays at {cp}");
    }
    // Contacts: the store's batched reads against the reference over every scan.
    let two_way = |cp: &CheckpointId| {
        let at = |d| {
            events
                .iter()
                .any(|e| &e.checkpoint == cp && e.direction == d)
        };
        at(Direction::In) && at(Direction::Out)
    };
    assert!(!two_way(&places[5]) && two_way(&places[0]));
    for (cp, _, _) in &windows {
        assert_eq!(s.two_way(cp).unwrap(), two_way(cp), "{cp}");
    }
    let p = ContactParams {
        from_ms: T0 - 1,
        to_ms: T0 + 86_400_000,
        window_ms: 60_000,
        max_stay_ms: 45 * 60_000,
        now_ms: T0 + 86_400_000,
        depth: 1,
    };
    let rules = trace::Rules {
        window_ms: p.window_ms,
        max_stay_ms: p.max_stay_ms,
        now_ms: p.now_ms,
    };
    let reference = |who: &SubjectId| -> Result<Vec<Contact>, ()> {
        let mine: Vec<Scan> = scans
            .iter()
            .filter(|s| &s.subject == who)
            .cloned()
            .collect();
        let mut nearby = |cp: &CheckpointId, from: i64, to: i64| -> Vec<Scan> {
            scans
                .iter()
                .filter(|s| &s.checkpoint == cp && s.ts_ms >= from && s.ts_ms <= to)
                .cloned()
                .collect()
        };
        Ok(trace::contacts(
            who,
            &mine,
            &rules,
            &mut nearby,
            &mut |cp| two_way(cp),
        ))
    };
    let (mut overlapped, mut second) = (0, 0);
    for who in ["p0", "p1", "p17", "p89", "k2"] {
        let who = SubjectId::new(who).unwrap();
        let want = reference(&who).unwrap();
        let got = query::contacts(s.as_ref(), &who, &p).unwrap();
        assert!(!want.is_empty(), "{who} met someone");
        assert_eq!(got, want, "depth 1 of {who}");
        overlapped += want.iter().filter(|c| c.overlap_s > 0).count();
        let deep = query::contacts(s.as_ref(), &who, &ContactParams { depth: 2, ..p }).unwrap();
        let want2 = query::second_degree(&who, want, &mut |c| reference(c)).unwrap();
        second += deep.iter().filter(|c| c.degree == 2).count();
        assert_eq!(deep, want2, "depth 2 of {who}");
    }
    assert!(overlapped > 0, "some contacts overlapped in a stay");
    assert!(second > 0, "someone has second-degree contacts");
}
