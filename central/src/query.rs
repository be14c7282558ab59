//! The operators' questions, answered from the store through its indexes with the pure logic of
//! [`crate::trace`]: trajectory, close contacts (depth 1 or 2), occupancy and flow.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use checkpoint_protocol::ids::{CheckpointId, SubjectId};
use checkpoint_protocol::records::Event;

use crate::store::{Store, StoreError, Window};
use crate::trace::{self, Contact, FlowBucket, Occupancy, Scan, Stay};

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

/// Reads of one contacts query, remembered, and made in batches: before a person's contacts
/// are worked out, every window they will ask about (±window around each of their scans, and
/// the maximum stay before each of their stays) is merged per place and read in one call for
/// scans ([`Store::scans_at`]) and one for stays ([`Store::stays_at`]). Depth 2 does the same
/// for all first-degree contacts at once.
struct Reads<'a> {
    store: &'a dyn Store,
    /// Per place: windows `[from, to)` read, each with its scans in time order.
    scans: HashMap<CheckpointId, Vec<(i64, i64, Vec<Scan>)>>,
    /// Per place: windows `[from, to)` read, each with the stays that began in it.
    stays: HashMap<CheckpointId, Vec<(i64, i64, Vec<Stay>)>>,
    people: HashMap<SubjectId, Vec<Scan>>,
    two_way: HashMap<CheckpointId, bool>,
}

/// Windows closer than this are read as one.
const MERGE_GAP_MS: i64 = 60_000;

/// The part of a window already read, if one covers `[from, to)`.
fn covered<T: Clone>(
    reads: Option<&Vec<(i64, i64, Vec<T>)>>,
    from: i64,
    to: i64,
    at: impl Fn(&T) -> i64,
) -> Option<Vec<T>> {
    let (_, _, items) = reads?.iter().find(|(f, t, _)| *f <= from && to <= *t)?;
    let lo = items.partition_point(|x| at(x) < from);
    let hi = items.partition_point(|x| at(x) < to);
    Some(items[lo..hi].to_vec())
}

fn read_before<T>(reads: Option<&Vec<(i64, i64, Vec<T>)>>, w: &Window) -> bool {
    reads.is_some_and(|ws| ws.iter().any(|(f, t, _)| *f <= w.1 && w.2 <= *t))
}

/// Windows per place, sorted and merged where they touch (or nearly).
fn merged(wanted: HashMap<CheckpointId, Vec<(i64, i64)>>) -> Vec<Window> {
    let mut out = Vec::new();
    for (cp, mut ws) in wanted {
        ws.sort_unstable();
        let mut run: Vec<(i64, i64)> = Vec::new();
        for (f, t) in ws {
            match run.last_mut() {
                Some(last) if f <= last.1.saturating_add(MERGE_GAP_MS) => last.1 = last.1.max(t),
                _ => run.push((f, t)),
            }
        }
        out.extend(run.into_iter().map(|(f, t)| (cp.clone(), f, t)));
    }
    out
}

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

    /// The person's stays (their own scans, at two-way places).
    fn presence(
        &mut self,
        scans: &[Scan],
        p: &ContactParams,
    ) -> Result<Vec<(CheckpointId, i64, i64)>, StoreError> {
        let mut places: Vec<&CheckpointId> = scans.iter().map(|s| &s.checkpoint).collect();
        places.sort_unstable();
        places.dedup();
        let mut two_way: HashMap<CheckpointId, bool> = HashMap::new();
        for cp in places {
            two_way.insert(cp.clone(), self.two_way(cp)?);
        }
        Ok(trace::presence(scans, p.max_stay_ms, p.now_ms, &mut |cp| {
            two_way.get(cp).copied().unwrap_or(false)
        }))
    }

    fn scans_in(&mut self, cp: &CheckpointId, from: i64, to: i64) -> Result<Vec<Scan>, StoreError> {
        if let Some(v) = covered(self.scans.get(cp), from, to, |s: &Scan| s.ts_ms) {
            return Ok(v);
        }
        let v = self.store.scans_by_place(cp, from, to)?;
        self.scans
            .entry(cp.clone())
            .or_default()
            .push((from, to, v.clone()));
        Ok(v)
    }

    fn stays_in(&mut self, cp: &CheckpointId, from: i64, to: i64) -> Result<Vec<Stay>, StoreError> {
        if let Some(v) = covered(self.stays.get(cp), from, to, |s: &Stay| s.start_ms) {
            return Ok(v);
        }
        let window = [(cp.clone(), from, to)];
        let v = self.store.stays_at(&window)?.pop().unwrap_or_default();
        self.stays
            .entry(cp.clone())
            .or_default()
            .push((from, to, v.clone()));
        Ok(v)
    }

    /// Reads in two calls every window the contacts of `who` will ask about.
    fn prefetch(&mut self, who: &[SubjectId], p: &ContactParams) -> Result<(), StoreError> {
        let mut near: HashMap<CheckpointId, Vec<(i64, i64)>> = HashMap::new();
        let mut stayed: HashMap<CheckpointId, Vec<(i64, i64)>> = HashMap::new();
        for w in who {
            let scans = self.person(w, p)?;
            for s in &scans {
                near.entry(s.checkpoint.clone()).or_default().push((
                    s.ts_ms - p.window_ms,
                    s.ts_ms.saturating_add(p.window_ms).saturating_add(1),
                ));
            }
            for (cp, a0, a1) in self.presence(&scans, p)? {
                stayed
                    .entry(cp)
                    .or_default()
                    .push((a0.saturating_sub(p.max_stay_ms), a1));
            }
        }
        let near: Vec<Window> = merged(near)
            .into_iter()
            .filter(|w| !read_before(self.scans.get(&w.0), w))
            .collect();
        if !near.is_empty() {
            for ((cp, f, t), v) in near.iter().zip(self.store.scans_at(&near)?) {
                self.scans.entry(cp.clone()).or_default().push((*f, *t, v));
            }
        }
        let stayed: Vec<Window> = merged(stayed)
            .into_iter()
            .filter(|w| !read_before(self.stays.get(&w.0), w))
            .collect();
        if !stayed.is_empty() {
            for ((cp, f, t), v) in stayed.iter().zip(self.store.stays_at(&stayed)?) {
                self.stays.entry(cp.clone()).or_default().push((*f, *t, v));
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
    reads.prefetch(std::slice::from_ref(person), p)?;
    let mine = reads.person(person, p)?;
    let stays = reads.presence(&mine, p)?;
    let failure: RefCell<Option<StoreError>> = RefCell::new(None);
    let reads = RefCell::new(reads);
    let fail = |e: StoreError| {
        failure.borrow_mut().get_or_insert(e);
    };
    let found = trace::encounters(person, &mine, p.window_ms, &mut |cp, from, to| {
        reads
            .borrow_mut()
            .scans_in(cp, from, to.saturating_add(1))
            .unwrap_or_else(|e| {
                fail(e);
                Vec::new()
            })
    });
    let rules = trace::Rules {
        window_ms: p.window_ms,
        max_stay_ms: p.max_stay_ms,
        now_ms: p.now_ms,
    };
    let overlap = trace::overlaps(person, &stays, &rules, &mut |cp, from, to| {
        reads
            .borrow_mut()
            .stays_in(cp, from, to)
            .unwrap_or_else(|e| {
                fail(e);
                Vec::new()
            })
    });
    match failure.into_inner() {
        Some(e) => Err(e),
        None => Ok(trace::merge(found, overlap)),
    }
}

/// Contacts of `person`, ranked; with depth 2, contacts of each first-degree contact who are
/// not already first-degree follow, each with the contact they met (`via`).
pub fn contacts(
    store: &dyn Store,
    person: &SubjectId,
    p: &ContactParams,
) -> Result<Vec<Contact>, StoreError> {
    let mut reads = Reads {
        store,
        scans: HashMap::new(),
        stays: HashMap::new(),
        people: HashMap::new(),
        two_way: HashMap::new(),
    };
    let first = first_degree(&mut reads, person, p)?;
    if p.depth < 2 {
        return Ok(first);
    }
    let firsts: Vec<SubjectId> = first.iter().map(|c| c.subject.clone()).collect();
    reads.prefetch(&firsts, p)?;
    second_degree(person, first, &mut |who| first_degree(&mut reads, who, p))
}

/// Adds to `first` (the person's first-degree contacts) the contacts of each that are neither
/// the person nor first-degree, as degree 2 with the contact they met, and ranks them all.
pub fn second_degree<E>(
    person: &SubjectId,
    first: Vec<Contact>,
    first_degree: &mut dyn FnMut(&SubjectId) -> Result<Vec<Contact>, E>,
) -> Result<Vec<Contact>, E> {
    let mut seen: HashSet<SubjectId> = first.iter().map(|c| c.subject.clone()).collect();
    seen.insert(person.clone());
    let mut second: Vec<Contact> = Vec::new();
    for c in &first {
        for mut cc in first_degree(&c.subject)? {
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
