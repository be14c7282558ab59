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

/// Index reads of one contacts query, remembered: depth 2 asks for the same places' windows
/// again and again.
struct Reads<'a> {
    store: &'a dyn Store,
    places: HashMap<(CheckpointId, i64, i64), Vec<Scan>>,
    two_way: HashMap<CheckpointId, bool>,
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

    fn place(&mut self, cp: &CheckpointId, from: i64, to: i64) -> Result<Vec<Scan>, StoreError> {
        let key = (cp.clone(), from, to);
        if let Some(v) = self.places.get(&key) {
            return Ok(v.clone());
        }
        let v = self.store.scans_by_place(cp, from, to)?;
        self.places.insert(key, v.clone());
        Ok(v)
    }
}

fn first_degree(
    reads: &mut Reads<'_>,
    person: &SubjectId,
    p: &ContactParams,
) -> Result<Vec<Contact>, StoreError> {
    let mine = reads.store.scans_by_person(person, p.from_ms, p.to_ms)?;
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
    let mut reads = Reads {
        store,
        places: HashMap::new(),
        two_way: HashMap::new(),
    };
    let first = first_degree(&mut reads, person, p)?;
    if p.depth < 2 {
        return Ok(first);
    }
    let mut seen: HashSet<SubjectId> = first.iter().map(|c| c.subject.clone()).collect();
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

/// Occupancy now, and admitted flow per `step_ms` over `[now - flow_span_ms, now)`.
pub fn occupancy(
    store: &dyn Store,
    place: &CheckpointId,
    now_ms: i64,
    max_stay_ms: i64,
    flow_span_ms: i64,
    step_ms: i64,
) -> Result<(Occupancy, Vec<FlowBucket>), StoreError> {
    let span = max_stay_ms.max(flow_span_ms);
    let s = store.scans_by_place(place, now_ms - span, now_ms.saturating_add(1))?;
    let recent: Vec<Scan> = s
        .iter()
        .filter(|x| x.ts_ms >= now_ms - max_stay_ms)
        .cloned()
        .collect();
    let occ = trace::occupancy(&recent, now_ms, max_stay_ms);
    let flow = trace::flow(&s, now_ms - flow_span_ms, now_ms, step_ms);
    Ok((occ, flow))
}
