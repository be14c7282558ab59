//! The box registry: every box's last status (online/offline, from the retained status and the
//! Last Will) and last telemetry, as received. Queries (a box silent too long counts as offline)
//! take the current time as a value.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use checkpoint_link::clock::SharedClock;
use checkpoint_link::sync::Recover;
use checkpoint_protocol::ids::BoxId;
use checkpoint_protocol::records::{BoxState, Status, Telemetry};

#[derive(Debug, Clone)]
pub struct BoxEntry {
    pub state: Option<BoxState>,
    pub version: Option<String>,
    pub telemetry: Option<Telemetry>,
    /// When central last heard anything from the box.
    pub last_seen: Instant,
    /// Highest sequence number stored with nothing missing below it.
    pub contiguous: u64,
    /// Missing sequence numbers not yet given up on.
    pub gaps: Vec<(u64, u64)>,
    /// Events given up on as lost.
    pub lost: u64,
}

/// What central knows of each box now; `last_seen` is by the registry's clock.
#[derive(Debug)]
pub struct Registry {
    boxes: Mutex<BTreeMap<BoxId, BoxEntry>>,
    clock: SharedClock,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new(checkpoint_link::clock::system())
    }
}

impl Registry {
    pub fn new(clock: SharedClock) -> Self {
        Registry {
            boxes: Mutex::default(),
            clock,
        }
    }

    fn with<R>(&self, b: &BoxId, f: impl FnOnce(&mut BoxEntry) -> R) -> R {
        let mut boxes = self.boxes.lock_or_recover();
        let entry = boxes.entry(b.clone()).or_insert_with(|| BoxEntry {
            state: None,
            version: None,
            telemetry: None,
            last_seen: self.clock.instant(),
            contiguous: 0,
            gaps: Vec::new(),
            lost: 0,
        });
        entry.last_seen = self.clock.instant();
        f(entry)
    }

    pub fn status(&self, s: Status) {
        let changed = self.with(&s.box_id, |e| {
            let changed = e.state != Some(s.state);
            e.state = Some(s.state);
            if s.version.is_some() {
                e.version = s.version.clone();
            }
            changed
        });
        if changed {
            tracing::info!(message = "Box status.", box_id = %s.box_id, state = ?s.state);
        }
    }

    pub fn telemetry(&self, t: Telemetry) {
        if t.outbox_full {
            tracing::warn!(message = "Box outbox full: events are being lost.", box_id = %t.box_id, dropped = t.dropped_events);
        }
        let b = t.box_id.clone();
        self.with(&b, |e| e.telemetry = Some(t));
    }

    /// What central holds of the box's sequence (from ingest).
    pub fn sequence(&self, b: &BoxId, st: &crate::store::SeqState) {
        let mut boxes = self.boxes.lock_or_recover();
        if let Some(e) = boxes.get_mut(b) {
            e.contiguous = st.contiguous;
            e.gaps = st.gaps();
            e.lost = st.lost.iter().map(|(a, z)| z - a + 1).sum();
        } else {
            boxes.insert(
                b.clone(),
                BoxEntry {
                    state: None,
                    version: None,
                    telemetry: None,
                    last_seen: self.clock.instant(),
                    contiguous: st.contiguous,
                    gaps: st.gaps(),
                    lost: st.lost.iter().map(|(a, z)| z - a + 1).sum(),
                },
            );
        }
    }

    pub fn snapshot(&self) -> BTreeMap<BoxId, BoxEntry> {
        self.boxes.lock_or_recover().clone()
    }
}
