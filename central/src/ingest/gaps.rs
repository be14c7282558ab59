//! Per-box sequence gaps, and when each was first seen.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use checkpoint_protocol::ids::BoxId;

use crate::store::SeqState;

/// Per-box sequence state with the time each gap was first seen.
#[derive(Debug)]
pub(super) struct GapWatch {
    boxes: HashMap<BoxId, SeqState>,
    /// Boxes whose state changed since the last report to the registry.
    dirty: HashSet<BoxId>,
    since: HashMap<(BoxId, u64), Instant>,
    grace: Duration,
}

impl GapWatch {
    pub(super) fn new(states: Vec<(BoxId, SeqState)>, grace: Duration) -> Self {
        GapWatch {
            dirty: states.iter().map(|(b, _)| b.clone()).collect(),
            boxes: states.into_iter().collect(),
            since: HashMap::new(),
            grace,
        }
    }

    pub(super) fn add(&mut self, b: &BoxId, seq: u64) {
        self.boxes.entry(b.clone()).or_default().add(seq);
        if !self.dirty.contains(b) {
            self.dirty.insert(b.clone());
        }
    }

    /// The sequence states of the boxes that changed since the last call, in box order.
    pub(super) fn changed(&mut self) -> Vec<(BoxId, SeqState)> {
        let mut out: Vec<(BoxId, SeqState)> = self
            .dirty
            .drain()
            .filter_map(|b| self.boxes.get(&b).map(|st| (b, st.clone())))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub(super) fn replace(&mut self, b: &BoxId, st: SeqState) {
        self.boxes.insert(b.clone(), st);
    }

    /// Gaps older than the grace period (the lowest one of each box; the next is seen after).
    pub(super) fn expired(&mut self, now: Instant) -> Vec<(BoxId, u64, u64)> {
        let mut out = Vec::new();
        let mut live = HashMap::new();
        for (b, st) in &self.boxes {
            if let Some(&(first, last)) = st.gaps().first() {
                let key = (b.clone(), first);
                let seen = *self.since.get(&key).unwrap_or(&now);
                live.insert(key, seen);
                if now.duration_since(seen) >= self.grace {
                    out.push((b.clone(), first, last));
                }
            }
        }
        self.since = live;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_expire_after_the_grace_period() {
        let b: BoxId = "b".parse().unwrap();
        let mut g = GapWatch::new(vec![], Duration::from_secs(10));
        for s in [1, 2, 5] {
            g.add(&b, s);
        }
        let t0 = Instant::now();
        assert!(g.expired(t0).is_empty(), "first seen now");
        assert!(g.expired(t0 + Duration::from_secs(5)).is_empty());
        g.add(&b, 3);
        // The gap changed (now 4..4): its clock starts again.
        assert!(g.expired(t0 + Duration::from_secs(11)).is_empty());
        assert_eq!(
            g.expired(t0 + Duration::from_secs(22)),
            vec![(b.clone(), 4, 4)]
        );
        g.add(&b, 4);
        assert!(g.expired(t0 + Duration::from_secs(40)).is_empty());
    }
}
