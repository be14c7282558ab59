//! Tracing and occupancy: pure functions over scans. No store, no clock: the caller reads the
//! index ranges it needs and passes time in.
//!
//! - **Encounter**: another person scanned at the same checkpoint within ±`window` of one of the
//!   person's scans. Repeat scans count once: meeting the same person at the same place again
//!   within `window` of the encounter's first scan is the same encounter.
//! - **Presence**: where a place records both directions, an `in` followed by the same person's
//!   `out` there is an interval of presence. A stay without an `out` ends at the earlier of
//!   `max_stay` after it began and now (someone still inside has been there only until now).
//!   Overlapping presence of two people is contact time.
//! - **Occupancy**: admitted `in` minus `out` per place, where an `in` older than `max_stay`
//!   without an `out` counts as checked out, so counts do not drift.

use std::collections::{BTreeMap, HashMap};

use checkpoint_protocol::ids::{CheckpointId, SubjectId};
use checkpoint_protocol::records::{Decision, Direction, Event};

/// One admitted or denied pass of a known person, reduced to what tracing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub subject: SubjectId,
    pub checkpoint: CheckpointId,
    pub direction: Direction,
    pub admitted: bool,
    /// Unix milliseconds.
    pub ts_ms: i64,
}

impl Scan {
    /// `None` for events without a subject (unreadable codes, unknown faces).
    pub fn of(e: &Event) -> Option<Scan> {
        Some(Scan {
            subject: e.subject.clone()?,
            checkpoint: e.checkpoint.clone(),
            direction: e.direction,
            admitted: e.decision == Decision::Admit,
            ts_ms: e.ts_ms(),
        })
    }
}

/// How scans become contacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Scans at the same place within ± this are an encounter.
    pub window_ms: i64,
    /// A stay without an `out` ends after this at the latest.
    pub max_stay_ms: i64,
    /// Stays still open end now.
    pub now_ms: i64,
}

/// Where and when two people met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meeting {
    pub checkpoint: CheckpointId,
    pub ts_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub subject: SubjectId,
    /// 1: met the person; 2: met a first-degree contact.
    pub degree: u8,
    /// For degree 2: the first-degree contact they met.
    pub via: Option<SubjectId>,
    pub encounters: u32,
    /// Overlapping presence at places that record in and out, in seconds.
    pub overlap_s: i64,
    pub meetings: Vec<Meeting>,
}

/// Presence intervals `[start, end)` in ms, per checkpoint, from one person's scans in time order,
/// at the places that record both directions (`two_way`); elsewhere an `in` says nothing about
/// how long someone stayed. A stay still open ends at `now_ms` at the latest.
pub fn presence(
    scans: &[Scan],
    max_stay_ms: i64,
    now_ms: i64,
    two_way: &mut dyn FnMut(&CheckpointId) -> bool,
) -> Vec<(CheckpointId, i64, i64)> {
    let mut open: HashMap<&CheckpointId, i64> = HashMap::new();
    let mut out = Vec::new();
    for s in scans
        .iter()
        .filter(|s| s.admitted && two_way(&s.checkpoint))
    {
        match s.direction {
            Direction::In => {
                if let Some(start) = open.insert(&s.checkpoint, s.ts_ms) {
                    // Entered again without leaving: the earlier stay ends here at the latest.
                    out.push((
                        s.checkpoint.clone(),
                        start,
                        s.ts_ms.min(start + max_stay_ms),
                    ));
                }
            }
            Direction::Out => {
                if let Some(start) = open.remove(&s.checkpoint) {
                    out.push((
                        s.checkpoint.clone(),
                        start,
                        s.ts_ms.min(start + max_stay_ms),
                    ));
                }
            }
        }
    }
    for (cp, start) in open {
        let end = start.saturating_add(max_stay_ms).min(now_ms).max(start);
        out.push((cp.clone(), start, end));
    }
    out
}

/// A stay as the store keeps it: an admitted `in` at a two-way place, and when the same
/// person's next admitted pass there happened (`None`: none yet). Kept at ingest (see
/// [`stays`]); what it overlaps is computed at query time ([`Stay::end`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stay {
    pub subject: SubjectId,
    pub start_ms: i64,
    pub until_ms: Option<i64>,
}

impl Stay {
    /// Where the stay ends: at the next pass, at `max_stay` after it began at the latest, and
    /// one still open now (the same as [`presence`]).
    pub fn end(&self, max_stay_ms: i64, now_ms: i64) -> i64 {
        let longest = self.start_ms.saturating_add(max_stay_ms);
        match self.until_ms {
            Some(u) => u.min(longest),
            None => longest.min(now_ms).max(self.start_ms),
        }
    }
}

/// The stays of `scans` (any people, any places, in time order): each admitted `in` lasts until
/// the same person's next admitted pass at that place. What the store derives at ingest, as a
/// pure function; [`presence`] of one person's scans is the same intervals with their ends.
pub fn stays(scans: &[Scan]) -> Vec<(CheckpointId, Stay)> {
    let mut open: HashMap<(&SubjectId, &CheckpointId), usize> = HashMap::new();
    let mut out: Vec<(CheckpointId, Stay)> = Vec::new();
    for s in scans.iter().filter(|s| s.admitted) {
        if let Some(k) = open.remove(&(&s.subject, &s.checkpoint)) {
            out[k].1.until_ms = Some(s.ts_ms);
        }
        if s.direction == Direction::In {
            open.insert((&s.subject, &s.checkpoint), out.len());
            out.push((
                s.checkpoint.clone(),
                Stay {
                    subject: s.subject.clone(),
                    start_ms: s.ts_ms,
                    until_ms: None,
                },
            ));
        }
    }
    out
}

/// Encounters of `person` (first half of [`contacts`]): for each of the person's scans, everyone
/// else `nearby(checkpoint, from_ms, to_ms)` (both ends included) within ±`window_ms`; repeat
/// scans of the same person there within the window are one encounter.
pub fn encounters(
    person: &SubjectId,
    scans: &[Scan],
    window_ms: i64,
    nearby: &mut dyn FnMut(&CheckpointId, i64, i64) -> Vec<Scan>,
) -> BTreeMap<SubjectId, Contact> {
    let mut found: BTreeMap<SubjectId, Contact> = BTreeMap::new();
    // When the encounter with someone at a place began (the person's scan time).
    let mut began: HashMap<(SubjectId, CheckpointId), i64> = HashMap::new();
    for s in scans {
        let mut seen_here: Vec<&SubjectId> = Vec::new();
        let others = nearby(&s.checkpoint, s.ts_ms - window_ms, s.ts_ms + window_ms);
        for o in &others {
            if &o.subject == person || seen_here.contains(&&o.subject) {
                continue;
            }
            seen_here.push(&o.subject);
            let key = (o.subject.clone(), s.checkpoint.clone());
            match began.get(&key) {
                Some(t0) if s.ts_ms - t0 <= window_ms => continue,
                _ => {
                    began.insert(key, s.ts_ms);
                }
            }
            let c = found
                .entry(o.subject.clone())
                .or_insert_with(|| contact(o.subject.clone(), Vec::new()));
            c.encounters += 1;
            c.meetings.push(Meeting {
                checkpoint: s.checkpoint.clone(),
                ts_ms: o.ts_ms,
            });
        }
    }
    found
}

/// Presence overlap (second half of [`contacts`]): for each of the person's stays `mine`
/// (`(checkpoint, start, end)` from [`presence`]), everyone else's stays there that began in
/// `[start - max_stay, end)` (`theirs(checkpoint, from_ms, to_ms)`, the only ones that can
/// overlap), summed per person with where and when they first overlapped.
pub fn overlaps(
    person: &SubjectId,
    mine: &[(CheckpointId, i64, i64)],
    rules: &Rules,
    theirs: &mut dyn FnMut(&CheckpointId, i64, i64) -> Vec<Stay>,
) -> BTreeMap<SubjectId, (i64, Meeting)> {
    let mut mine = mine.to_vec();
    mine.sort_by_key(|(_, a0, _)| *a0);
    let mut overlap: BTreeMap<SubjectId, (i64, Meeting)> = BTreeMap::new();
    for (cp, a0, a1) in &mine {
        let mut stays = theirs(cp, a0.saturating_sub(rules.max_stay_ms), *a1);
        stays.sort_by_key(|st| st.start_ms);
        for st in stays.iter().filter(|st| &st.subject != person) {
            let b1 = st.end(rules.max_stay_ms, rules.now_ms);
            let (lo, hi) = ((*a0).max(st.start_ms), (*a1).min(b1));
            if hi > lo {
                let e = overlap.entry(st.subject.clone()).or_insert((
                    0,
                    Meeting {
                        checkpoint: cp.clone(),
                        ts_ms: lo,
                    },
                ));
                e.0 += hi - lo;
            }
        }
    }
    overlap
}

fn contact(subject: SubjectId, meetings: Vec<Meeting>) -> Contact {
    Contact {
        subject,
        degree: 1,
        via: None,
        encounters: 0,
        overlap_s: 0,
        meetings,
    }
}

/// [`encounters`] and [`overlaps`] as one ranked list of first-degree contacts.
pub fn merge(
    mut found: BTreeMap<SubjectId, Contact>,
    overlap: BTreeMap<SubjectId, (i64, Meeting)>,
) -> Vec<Contact> {
    for (other, (overlap_ms, first_meeting)) in overlap {
        let c = found
            .entry(other.clone())
            .or_insert_with(|| contact(other, vec![first_meeting]));
        c.overlap_s = overlap_ms / 1000;
    }
    let mut list: Vec<Contact> = found.into_values().collect();
    rank(&mut list);
    list
}

/// First-degree contacts of `person`, from scans alone (the reference the store's answers are
/// held to).
///
/// `scans` are the person's scans; `nearby(checkpoint, from_ms, to_ms)` returns every scan at
/// that checkpoint in the range (both ends included); `two_way(checkpoint)` tells whether a
/// place records both directions, so that its scans make stays (presence overlap). Others'
/// stays come from the place's scans within the maximum stay of the person's.
pub fn contacts(
    person: &SubjectId,
    scans: &[Scan],
    rules: &Rules,
    nearby: &mut dyn FnMut(&CheckpointId, i64, i64) -> Vec<Scan>,
    two_way: &mut dyn FnMut(&CheckpointId) -> bool,
) -> Vec<Contact> {
    let found = encounters(person, scans, rules.window_ms, nearby);
    let mine = presence(scans, rules.max_stay_ms, rules.now_ms, two_way);
    let max_stay_ms = rules.max_stay_ms;
    let mut theirs = |cp: &CheckpointId, from: i64, to: i64| -> Vec<Stay> {
        // A stay that began by `to` ends by `to + max_stay`: its closing pass is in this read.
        let mut scans = nearby(cp, from, to.saturating_add(max_stay_ms));
        scans.sort_by_key(|s| s.ts_ms);
        stays(&scans)
            .into_iter()
            .filter(|(_, st)| st.start_ms >= from && st.start_ms < to)
            .map(|(_, st)| st)
            .collect()
    };
    merge(found, overlaps(person, &mine, rules, &mut theirs))
}

/// Most encounters first, then most overlap, then by id for a stable order.
pub fn rank(list: &mut [Contact]) {
    list.sort_by(|a, b| {
        (
            a.degree,
            std::cmp::Reverse(a.encounters),
            std::cmp::Reverse(a.overlap_s),
            &a.subject,
        )
            .cmp(&(
                b.degree,
                std::cmp::Reverse(b.encounters),
                std::cmp::Reverse(b.overlap_s),
                &b.subject,
            ))
    });
}

/// Current occupancy of one place from its admitted scans in `[now - max_stay, now]`, in time
/// order: who is inside.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Occupancy {
    pub inside: u64,
    pub ins: u64,
    pub outs: u64,
    /// People whose `in` is older than the maximum stay, with no `out`: counted as gone.
    pub auto_checked_out: u64,
}

pub fn occupancy(scans: &[Scan], now_ms: i64, max_stay_ms: i64) -> Occupancy {
    let mut last: HashMap<&SubjectId, &Scan> = HashMap::new();
    let mut occ = Occupancy::default();
    for s in scans.iter().filter(|s| s.admitted && s.ts_ms <= now_ms) {
        match s.direction {
            Direction::In => occ.ins += 1,
            Direction::Out => occ.outs += 1,
        }
        last.insert(&s.subject, s);
    }
    for s in last.values() {
        if s.direction == Direction::In {
            if now_ms - s.ts_ms <= max_stay_ms {
                occ.inside += 1;
            } else {
                occ.auto_checked_out += 1;
            }
        }
    }
    occ
}

/// One interval of flow: its start (ms), admitted ins, admitted outs.
pub type FlowBucket = (i64, u64, u64);

/// Admitted ins and outs per interval `[edges[k], edges[k + 1])` (the site's local hours,
/// [`crate::site::Site::hour_edges`]); `edges` ascend. Each bucket is named by its start.
pub fn flow(scans: &[Scan], edges: &[i64]) -> Vec<FlowBucket> {
    let mut out: Vec<FlowBucket> = edges
        .windows(2)
        .filter(|w| w[0] < w[1])
        .map(|w| (w[0], 0, 0))
        .collect();
    let Some(&end) = edges.last() else {
        return out;
    };
    for s in scans.iter().filter(|s| s.admitted && s.ts_ms < end) {
        // The last bucket that starts at or before the scan.
        let k = out.partition_point(|b| b.0 <= s.ts_ms);
        if let Some(b) = k.checked_sub(1).and_then(|k| out.get_mut(k)) {
            match s.direction {
                Direction::In => b.1 += 1,
                Direction::Out => b.2 += 1,
            }
        }
    }
    out
}

mod config;
pub use config::TraceConfig;

#[cfg(test)]
mod tests;
