//! The operators' questions, answered from the store through its indexes with the pure logic of
//! [`crate::trace`]: trajectory, close contacts (depth 1 or 2), occupancy and flow.

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

fn scans(events: Vec<Event>) -> Vec<Scan> {
    events.iter().filter_map(Scan::of).collect()
}

fn first_degree(
    store: &dyn Store,
    person: &SubjectId,
    p: &ContactParams,
) -> Result<Vec<Contact>, StoreError> {
    let mine = scans(store.by_person(person, p.from_ms, p.to_ms)?);
    let mut failure: Option<StoreError> = None;
    let mut nearby = |cp: &CheckpointId, from: i64, to: i64| -> Vec<Scan> {
        match store.by_place(cp, from, to.saturating_add(1)) {
            Ok(e) => scans(e),
            Err(e) => {
                failure.get_or_insert(e);
                Vec::new()
            }
        }
    };
    // Presence needs the other person's stays around the period, not only inside it.
    let (lo, hi) = (
        p.from_ms.saturating_sub(p.max_stay_ms),
        p.to_ms.saturating_add(p.max_stay_ms),
    );
    let mut failure2: Option<StoreError> = None;
    let mut presence_of = |s: &SubjectId| -> Vec<Scan> {
        match store.by_person(s, lo, hi) {
            Ok(e) => scans(e),
            Err(e) => {
                failure2.get_or_insert(e);
                Vec::new()
            }
        }
    };
    let list = trace::contacts(
        person,
        &mine,
        p.window_ms,
        p.max_stay_ms,
        &mut nearby,
        &mut presence_of,
    );
    if let Some(e) = failure.or(failure2) {
        return Err(e);
    }
    Ok(list)
}

/// Contacts of `person`, ranked; with depth 2, contacts of each first-degree contact who are
/// not already first-degree follow, each with the contact they met (`via`).
pub fn contacts(
    store: &dyn Store,
    person: &SubjectId,
    p: &ContactParams,
) -> Result<Vec<Contact>, StoreError> {
    let first = first_degree(store, person, p)?;
    if p.depth < 2 {
        return Ok(first);
    }
    let mut second: Vec<Contact> = Vec::new();
    for c in &first {
        for mut cc in first_degree(store, &c.subject, p)? {
            let known = &cc.subject == person
                || first.iter().any(|f| f.subject == cc.subject)
                || second.iter().any(|s| s.subject == cc.subject);
            if !known {
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
    let s = scans(store.by_place(place, now_ms - span, now_ms.saturating_add(1))?);
    let recent: Vec<Scan> = s
        .iter()
        .filter(|x| x.ts_ms >= now_ms - max_stay_ms)
        .cloned()
        .collect();
    let occ = trace::occupancy(&recent, now_ms, max_stay_ms);
    let flow = trace::flow(&s, now_ms - flow_span_ms, now_ms, step_ms);
    Ok((occ, flow))
}
