//! The operators' questions, answered from the store through its indexes with the pure logic of
//! [`crate::trace`]: trajectory, close contacts (depth 1 or 2), occupancy and flow.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use checkpoint_protocol::ids::{CheckpointId, SubjectId};
use checkpoint_protocol::records::Event;

use crate::store::{Store, StoreError};
use crate::trace::{self, Contact, FlowBucket, Occupancy, Scan};

/// How contacts are searched.
#[derive(Debug, Clone, Copy)]
pub struct ContactParams {
    pub from_ms: i64,
    pub to_ms: i64,
    pub window_ms: i64,
    pub max_stay_ms: i64,
    /// Stays still open end now (Unix ms).
    pub now_ms: i64,
    /// 1: people who met the person; 2: also people who met those.
    pub depth: u8,
}

pub fn trajectory(
    store: &dyn Store,
    person: &SubjectId,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Event>, StoreError> {
    store.by_person(person, from_ms, to_ms)
}

/// Index reads of one contacts query, remembered. A place's scans are kept per window read;
/// a later ask inside a window already read is answered from it. Depth 2 reads each first-degree
/// contact's windows merged per place first ([`Reads::prefetch`]), so the many overlapping asks
/// of one query cost one read per merged window instead of one each.
struct Reads<'a> {
    store: &'a dyn Store,
    /// Per place: windows `[from, to)` read, each with its scans in time order.
    places: HashMap<CheckpointId, Vec<(i64, i64, Vec<Scan>)>>,
    people: HashMap<SubjectId, Vec<Scan>>,
    two_way: HashMap<CheckpointId, bool>,
}

/// Windows closer than this are read as one.
const MERGE_GAP_MS: i64 = 60_000;

impl Reads<'_> {
    fn two_way(&mut self, cp: &CheckpointId) -> Result<bool, StoreError> {
        if let Some(b) = self.two_way.get(cp) {
            return Ok(*b);
        }
        let b = self.store.two_way(cp)?;
        self.two_way.insert(cp.clone(), b);
        Ok(b)
    }

    fn person(&mut self, who: &SubjectId, p: &ContactParams) -> Result<Vec<Scan>, StoreError> {
        if let Some(v) = self.people.get(who) {
            return Ok(v.clone());
        }
        let v = self.store.scans_by_person(who, p.from_ms, p.to_ms)?;
        self.people.insert(who.clone(), v.clone());
        Ok(v)
    }

    fn place(&mut self, cp: &CheckpointId, from: i64, to: i64) -> Result<Vec<Scan>, StoreError> {
        if let Some(read) = self
            .places
            .get(cp)
            .and_then(|ws| ws.iter().find(|(f, t, _)| *f <= from && to <= *t))
        {
            let scans = &read.2;
            let lo = scans.partition_point(|s| s.ts_ms < from);
            let hi = scans.partition_point(|s| s.ts_ms < to);
            return Ok(scans[lo..hi].to_vec());
        }
        let v = self.store.scans_by_place(cp, from, to)?;
        self.places
            .entry(cp.clone())
            .or_default()
            .push((from, to, v.clone()));
        Ok(v)
    }

    /// Reads, merged per place, every window the first-degree contacts `who` will ask about:
    /// ±window around each of their scans and their stays widened by the maximum stay.
    fn prefetch(&mut self, who: &[SubjectId], p: &ContactParams) -> Result<(), StoreError> {
        let mut wanted: HashMap<CheckpointId, Vec<(i64, i64)>> = HashMap::new();
        for w in who {
            let scans = self.person(w, p)?;
            for s in &scans {
                wanted.entry(s.checkpoint.clone()).or_default().push((
                    s.ts_ms - p.window_ms,
                    s.ts_ms.saturating_add(p.window_ms).saturating_add(1),
                ));
            }
            let mut failure = None;
            let stays = {
                let mut two_way = |cp: &CheckpointId| -> bool {
                    self.two_way(cp).unwrap_or_else(|e| {
                        failure.get_or_insert(e);
                        false
                    })
                };
                trace::presence(&scans, p.max_stay_ms, p.now_ms, &mut two_way)
            };
            if let Some(e) = failure {
                return Err(e);
            }
            for (cp, a0, a1) in stays {
                wanted.entry(cp).or_default().push((
                    a0 - p.max_stay_ms,
                    a1.saturating_add(p.max_stay_ms).saturating_add(1),
                ));
            }
        }
        for (cp, mut ws) in wanted {
            ws.sort_unstable();
            let mut merged: Vec<(i64, i64)> = Vec::new();
            for (f, t) in ws {
                match merged.last_mut() {
                    Some(last) if f <= last.1.saturating_add(MERGE_GAP_MS) => {
                        last.1 = last.1.max(t)
                    }
                    _ => merged.push((f, t)),
                }
            }
            for (f, t) in merged {
                self.place(&cp, f, t)?;
            }
        }
        Ok(())
    }
}

fn first_degree(
    reads: &mut Reads<'_>,
    person: &SubjectId,
    p: &ContactParams,
) -> Result<Vec<Contact>, StoreError> {
    let mine = reads.person(person, p)?;
    let failure: RefCell<Option<StoreError>> = RefCell::new(None);
    let reads = RefCell::new(reads);
    let fail = |e: StoreError| {
        failure.borrow_mut().get_or_insert(e);
        Vec::new()
    };
    let mut nearby = |cp: &CheckpointId, from: i64, to: i64| -> Vec<Scan> {
        reads
            .borrow_mut()
            .place(cp, from, to.saturating_add(1))
            .unwrap_or_else(fail)
    };
    let mut two_way = |cp: &CheckpointId| -> bool {
        reads.borrow_mut().two_way(cp).unwrap_or_else(|e| {
            failure.borrow_mut().get_or_insert(e);
            false
        })
    };
    let list = trace::contacts(
        person,
        &mine,
        &trace::Rules {
            window_ms: p.window_ms,
            max_stay_ms: p.max_stay_ms,
            now_ms: p.now_ms,
        },
        &mut nearby,
        &mut two_way,
    );
    match failure.into_inner() {
        Some(e) => Err(e),
        None => Ok(list),
    }
}

/// Contacts of `person`, ranked; with depth 2, contacts of each first-degree contact who are
/// not already first-degree follow, each with the contact they met (`via`).
pub fn contacts(
    store: &dyn Store,
    person: &SubjectId,
    p: &ContactParams,
) -> Result<Vec<Contact>, StoreError> {
    contacts_reading(store, person, p, true)
}

/// [`contacts`], with or without reading depth 2's windows merged first (the answer is the same;
/// a test holds them to it).
fn contacts_reading(
    store: &dyn Store,
    person: &SubjectId,
    p: &ContactParams,
    prefetch: bool,
) -> Result<Vec<Contact>, StoreError> {
    let mut reads = Reads {
        store,
        places: HashMap::new(),
        people: HashMap::new(),
        two_way: HashMap::new(),
    };
    let first = first_degree(&mut reads, person, p)?;
    if p.depth < 2 {
        return Ok(first);
    }
    let firsts: Vec<SubjectId> = first.iter().map(|c| c.subject.clone()).collect();
    if prefetch {
        reads.prefetch(&firsts, p)?;
    }
    let mut seen: HashSet<SubjectId> = firsts.iter().cloned().collect();
    seen.insert(person.clone());
    let mut second: Vec<Contact> = Vec::new();
    for c in &first {
        for mut cc in first_degree(&mut reads, &c.subject, p)? {
            if seen.insert(cc.subject.clone()) {
                cc.degree = 2;
                cc.via = Some(c.subject.clone());
                second.push(cc);
            }
        }
    }
    let mut all = first;
    all.extend(second);
    trace::rank(&mut all);
    Ok(all)
}

/// Occupancy now, and admitted flow in the buckets `flow_edges` delimit (see [`trace::flow`];
/// none when empty).
pub fn occupancy(
    store: &dyn Store,
    place: &CheckpointId,
    now_ms: i64,
    max_stay_ms: i64,
    flow_edges: &[i64],
) -> Result<(Occupancy, Vec<FlowBucket>), StoreError> {
    let from = flow_edges
        .first()
        .map_or(now_ms, |&f| f.min(now_ms))
        .min(now_ms - max_stay_ms);
    let s = store.scans_by_place(place, from, now_ms.saturating_add(1))?;
    let recent: Vec<Scan> = s
        .iter()
        .filter(|x| x.ts_ms >= now_ms - max_stay_ms)
        .cloned()
        .collect();
    let occ = trace::occupancy(&recent, now_ms, max_stay_ms);
    let upto_now: Vec<Scan> = s.into_iter().filter(|x| x.ts_ms < now_ms).collect();
    let flow = trace::flow(&upto_now, flow_edges);
    Ok((occ, flow))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contract::{ev, MIN, T0};
    use checkpoint_protocol::records::Direction;

    /// Depth 2 with merged reads answers exactly what one read per ask does.
    #[test]
    fn merged_reads_answer_the_same_as_one_read_per_ask() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::SqliteStore::open(&dir.path().join("c.sqlite"), 1 << 20).unwrap();
        let mut rng = 7u64;
        let mut next = |n: u64| {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (rng >> 33) % n
        };
        let mut evs = Vec::new();
        for i in 0..3000u64 {
            let who = format!("p{}", next(300));
            let cp = format!("cp{}", next(20));
            let mut e = ev("b1", i + 1, Some(&who), &cp, (i / 2) as i64);
            if next(2) == 0 {
                e.direction = Direction::Out;
            }
            evs.push(e);
        }
        store.insert(&evs).unwrap();
        let p = ContactParams {
            from_ms: T0,
            to_ms: T0 + 2000 * MIN,
            window_ms: 5 * MIN,
            max_stay_ms: 120 * MIN,
            now_ms: T0 + 1000 * MIN,
            depth: 2,
        };
        for who in ["p0", "p7", "p33"] {
            let person = SubjectId::new(who).unwrap();
            let merged = contacts_reading(&store, &person, &p, true).unwrap();
            let plain = contacts_reading(&store, &person, &p, false).unwrap();
            assert!(
                merged.iter().any(|c| c.degree == 2),
                "{who}: depth 2 found someone"
            );
            assert_eq!(merged, plain, "{who}");
        }
    }
}
