use super::*;

const MIN: i64 = 60_000;

fn s(subject: &str, cp: &str, dir: Direction, minute: i64) -> Scan {
    Scan {
        subject: SubjectId::new(subject).unwrap(),
        checkpoint: CheckpointId::new(cp).unwrap(),
        direction: dir,
        admitted: true,
        ts_ms: minute * MIN,
    }
}

use Direction::{In, Out};

/// A little world: scans of everyone, queried like the store's indexes.
struct World(Vec<Scan>);

impl World {
    fn of(&self, who: &str) -> Vec<Scan> {
        self.0
            .iter()
            .filter(|s| s.subject.as_str() == who)
            .cloned()
            .collect()
    }

    fn contacts(&self, who: &str, window_min: i64) -> Vec<Contact> {
        self.contacts_at(who, window_min, i64::MAX)
    }

    fn contacts_at(&self, who: &str, window_min: i64, now_min: i64) -> Vec<Contact> {
        let me = self.of(who);
        let mut nearby = |cp: &CheckpointId, from: i64, to: i64| {
            self.0
                .iter()
                .filter(|s| &s.checkpoint == cp && s.ts_ms >= from && s.ts_ms <= to)
                .cloned()
                .collect()
        };
        let mut two_way = |cp: &CheckpointId| {
            let at = |d: Direction| {
                self.0
                    .iter()
                    .any(|s| &s.checkpoint == cp && s.direction == d)
            };
            at(In) && at(Out)
        };
        contacts(
            &SubjectId::new(who).unwrap(),
            &me,
            &Rules {
                window_ms: window_min * MIN,
                max_stay_ms: 120 * MIN,
                now_ms: now_min.saturating_mul(MIN),
            },
            &mut nearby,
            &mut two_way,
        )
    }
}

#[test]
fn repeat_scans_within_the_window_are_one_encounter() {
    // Alice's code is read three times in two minutes at the gate, bob's twice; later they
    // meet there again, and at another place.
    let w = World(vec![
        s("alice", "gate", In, 100),
        s("alice", "gate", In, 101),
        s("alice", "gate", In, 102),
        s("bob", "gate", In, 101),
        s("bob", "gate", In, 102),
        s("alice", "gate", In, 300),
        s("bob", "gate", In, 302),
        s("alice", "lab", In, 400),
        s("bob", "lab", In, 401),
    ]);
    let c = w.contacts("alice", 5);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].encounters, 3, "{c:#?}");
    assert_eq!(c[0].meetings.len(), 3);
}

#[test]
fn someone_still_inside_overlaps_only_until_now() {
    // Both entered the library a minute apart and are still inside; it is now 10:05.
    let w = World(vec![
        s("alice", "library", In, 600),
        s("bob", "library", In, 601),
        s("bob", "library", Out, 500), // an earlier visit makes the library two-way
        s("bob", "library", In, 490),
    ]);
    let c = w.contacts_at("alice", 0, 605);
    let bob = c.iter().find(|c| c.subject.as_str() == "bob").unwrap();
    assert_eq!(
        bob.overlap_s,
        4 * 60,
        "not the ~2 hours of the maximum stay"
    );
    // Seen later, both stays end at the maximum stay.
    let c = w.contacts_at("alice", 0, 2000);
    assert_eq!(c[0].overlap_s, 119 * 60);
}

#[test]
fn encounters_within_the_window_are_counted_once_per_scan() {
    let w = World(vec![
        s("alice", "gate", In, 100),
        s("bob", "gate", In, 103),
        s("bob", "gate", In, 104), // same scan of alice: still one encounter
        s("carol", "gate", In, 106), // outside ±5 min
        s("dave", "lab", In, 100), // another place
        s("alice", "lab", In, 200),
        s("bob", "lab", In, 198),
    ]);
    let c = w.contacts("alice", 5);
    let names: Vec<(&str, u32)> = c
        .iter()
        .map(|c| (c.subject.as_str(), c.encounters))
        .collect();
    assert_eq!(names[0], ("bob", 2), "{c:#?}");
    assert!(!names.iter().any(|(n, e)| *n == "carol" && *e > 0));
    assert!(!names.iter().any(|(n, _)| *n == "dave"));
    assert_eq!(c[0].meetings.len(), 2);
}

#[test]
fn presence_overlap_where_places_record_in_and_out() {
    // Alice in the library 10:00–11:00; erin 10:30–12:00 (never scanned near alice's scans).
    let w = World(vec![
        s("alice", "library", In, 600),
        s("alice", "library", Out, 660),
        s("erin", "library", In, 630),
        s("erin", "library", Out, 720),
        s("frank", "library", In, 700), // after alice left
        s("frank", "library", Out, 710),
    ]);
    let c = w.contacts("alice", 5);
    let erin = c.iter().find(|c| c.subject.as_str() == "erin").unwrap();
    assert_eq!(erin.encounters, 0);
    assert_eq!(erin.overlap_s, 30 * 60);
    assert!(!c.iter().any(|c| c.subject.as_str() == "frank"), "{c:#?}");
}

#[test]
fn overlap_from_stays_that_began_long_before_is_exact() {
    // Max stay 2 h. Alice 10:00–11:00 in the library.
    let w = World(vec![
        s("alice", "library", In, 600),
        s("alice", "library", Out, 660),
        // Gus entered at 06:00 and left at 10:30: his stay ended at 08:00 (max stay).
        s("gus", "library", In, 360),
        s("gus", "library", Out, 630),
        // Hana entered 09:15, left 12:30: capped at 11:15, overlaps all of alice's hour.
        s("hana", "library", In, 555),
        s("hana", "library", Out, 750),
        // Ivan entered 09:00 and again 10:10 without leaving, then left 10:20.
        s("ivan", "library", In, 540),
        s("ivan", "library", In, 610),
        s("ivan", "library", Out, 620),
    ]);
    let c = w.contacts("alice", 1);
    let overlap = |who: &str| {
        c.iter()
            .find(|c| c.subject.as_str() == who)
            .map(|c| c.overlap_s)
    };
    assert_eq!(overlap("gus"), None, "{c:#?}");
    assert_eq!(overlap("hana"), Some(60 * 60));
    // 10:00–10:10 of the first stay, 10:10–10:20 of the second.
    assert_eq!(overlap("ivan"), Some(20 * 60));
}

#[test]
fn ranking_is_by_encounters_then_overlap() {
    let w = World(vec![
        s("alice", "a", In, 0),
        s("alice", "b", In, 100),
        s("bob", "a", In, 1),
        s("bob", "b", In, 101),
        s("carol", "a", In, 2),
    ]);
    let c = w.contacts("alice", 5);
    let order: Vec<&str> = c.iter().map(|c| c.subject.as_str()).collect();
    assert_eq!(order, ["bob", "carol"]);
}

#[test]
fn presence_closes_at_max_stay_and_on_reentry() {
    let p = presence(
        &[
            s("a", "x", In, 0),
            s("a", "x", In, 10),
            s("a", "y", In, 20),
            s("a", "y", Out, 500),
        ],
        120 * MIN,
        i64::MAX,
        &mut |_| true,
    );
    let spans: Vec<(&str, i64, i64)> = p
        .iter()
        .map(|(c, a, b)| (c.as_str(), a / MIN, b / MIN))
        .collect();
    assert!(spans.contains(&("x", 0, 10)), "{spans:?}");
    assert!(spans.contains(&("x", 10, 130)), "{spans:?}");
    assert!(spans.contains(&("y", 20, 140)), "{spans:?}");
}

#[test]
fn occupancy_counts_in_minus_out_and_checks_out_after_max_stay() {
    let mut denied = s("zed", "lib", In, 50);
    denied.admitted = false;
    let scans = vec![
        s("a", "lib", In, 0),   // never left, older than max stay: checked out
        s("b", "lib", In, 100), // inside
        s("c", "lib", In, 110),
        s("c", "lib", Out, 120), // left
        s("d", "lib", In, 130),  // inside
        denied,                  // never entered
    ];
    let o = occupancy(&scans, 150 * MIN, 120 * MIN);
    assert_eq!(
        o,
        Occupancy {
            inside: 2,
            ins: 4,
            outs: 1,
            auto_checked_out: 1
        }
    );
}

#[test]
fn flow_buckets() {
    let scans = vec![
        s("a", "x", In, 0),
        s("b", "x", In, 5),
        s("a", "x", Out, 15),
        s("c", "x", In, 31),
    ];
    let f = flow(&scans, &[0, 10 * MIN, 20 * MIN, 30 * MIN]);
    assert_eq!(f, vec![(0, 2, 0), (10 * MIN, 0, 1), (20 * MIN, 0, 0)]);
    // Buckets of other lengths (an hour where the clocks changed) and scans outside them.
    let f = flow(&scans, &[MIN, 15 * MIN, 31 * MIN]);
    assert_eq!(f, vec![(MIN, 1, 0), (15 * MIN, 0, 1)]);
    assert!(flow(&scans, &[0]).is_empty());
    assert!(flow(&scans, &[]).is_empty());
}

/// The stays the store keeps (`stays`, ended by `Stay::end`) are the intervals `presence`
/// computes from the same scans, for any order of ins and outs.
#[test]
fn stays_end_where_presence_does() {
    let mut rng = 3u64;
    let mut next = |n: u64| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) % n
    };
    for round in 0..200 {
        let mut scans: Vec<Scan> = (0..next(12) as i64)
            .map(|i| {
                let mut x = s(
                    "alice",
                    ["a", "b", "c"][next(3) as usize],
                    if next(2) == 0 { In } else { Out },
                    i * 40 + next(30) as i64,
                );
                x.admitted = next(5) != 0;
                x
            })
            .collect();
        scans.sort_by_key(|x| x.ts_ms);
        let (max, now) = (120 * MIN, (300 + next(300) as i64) * MIN);
        let mut want = presence(&scans, max, now, &mut |_| true);
        let mut got: Vec<(CheckpointId, i64, i64)> = stays(&scans)
            .into_iter()
            .map(|(cp, st)| (cp, st.start_ms, st.end(max, now)))
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "round {round}: {scans:?}");
    }
}
