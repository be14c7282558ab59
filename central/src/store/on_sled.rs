//! The embedded event store on sled.
//!
//! # Layout
//! - `events`: `box 0x00 seq(u64 BE)` → the event record (JSON, as received).
//! - `ids`: event id (16 bytes) → primary key, for deduplication on the id.
//! - `person`: `subject 0x00 ts pk` → scan, `place`: `checkpoint 0x00 ts pk` → scan (what
//!   tracing needs of the event, see `scans`), `time`: `ts pk` → (); `ts` is the event time in
//!   Unix milliseconds, sign bit flipped, BE, so keys sort by time.
//! - `conflicts`: event id → the conflicting record.
//! - `boxes`: box id → [`SeqState`] (JSON): what central holds of the box's sequence.
//! - `directions`: checkpoint → one byte, bit 0 set once an `in` is stored there, bit 1 an
//!   `out`; derived, rebuilt from `events` on open if missing.
//! - `notifications`: id (u64 BE, time-ordered) → notification record (JSON); `alerts`: alert
//!   key → the active alert (JSON); `readings`: primary key → () for every stored event with a
//!   temperature whose alerts the engine has not handled yet (written with the event, removed
//!   by the engine; what a crash leaves is handled at the next start); `pending`: notification id (u64 BE) → a delivery waiting
//!   for its retry (JSON).
//! - `revocations`: subject → revocation cut-off (Unix seconds, u32 BE).
//! - `people`, `places`: the roster (JSON), replaced as a whole on import.
//!
//! Index entries are written before the primary record and all trees are flushed before
//! `insert` returns; after a crash in between, a dangling index entry points at nothing and is
//! skipped, and the box resends the event because it was never acked. The resent event is
//! stored as new (deduplication asks the primary record, not the id index) and rewrites the
//! same index entries.

use std::path::Path;

use checkpoint_protocol::ids::{BoxId, CheckpointId, SubjectId};
use checkpoint_protocol::records::{self, Direction, Event};

use super::{Inserted, SeqState, Store, StoreError};
use crate::alerts::log::{NotificationRecord, PendingDelivery};
use crate::alerts::rules::Alert;
use crate::roster::{Person, Place};
use crate::trace::Scan;

mod insert;
mod maintenance;
mod meta;
mod scans;
pub use maintenance::BackupSummary;

fn ts_key(ms: i64) -> [u8; 8] {
    ((ms as u64) ^ (1 << 63)).to_be_bytes()
}

pub(super) fn primary(box_id: &BoxId, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(box_id.as_str().len() + 9);
    k.extend_from_slice(box_id.as_str().as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn direction_bit(d: Direction) -> u8 {
    match d {
        Direction::In => 1,
        Direction::Out => 2,
    }
}

fn index_key(prefix: &[u8], ms: i64, pk: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 9 + pk.len());
    k.extend_from_slice(prefix);
    k.push(0);
    k.extend_from_slice(&ts_key(ms));
    k.extend_from_slice(pk);
    k
}

#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    pub(super) events: sled::Tree,
    pub(super) ids: sled::Tree,
    pub(super) person: sled::Tree,
    pub(super) place: sled::Tree,
    pub(super) time: sled::Tree,
    conflicts: sled::Tree,
    pub(super) directions: sled::Tree,
    notifications: sled::Tree,
    alerts: sled::Tree,
    pending: sled::Tree,
    pub(super) readings: sled::Tree,
    boxes: sled::Tree,
    revocations: sled::Tree,
    people: sled::Tree,
    places: sled::Tree,
    roster_generation: std::sync::atomic::AtomicU64,
    /// Serialises inserts so duplicate checks and sequence states stay consistent.
    write: std::sync::Mutex<()>,
}

impl SledStore {
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                    StoreError::Locked(dir.to_path_buf())
                }
                e => StoreError::Sled(e),
            })?;
        let store = SledStore {
            events: db.open_tree("events")?,
            ids: db.open_tree("ids")?,
            person: db.open_tree("person")?,
            place: db.open_tree("place")?,
            time: db.open_tree("time")?,
            conflicts: db.open_tree("conflicts")?,
            directions: db.open_tree("directions")?,
            notifications: db.open_tree("notifications")?,
            alerts: db.open_tree("alerts")?,
            pending: db.open_tree("pending")?,
            readings: db.open_tree("readings")?,
            boxes: db.open_tree("boxes")?,
            revocations: db.open_tree("revocations")?,
            people: db.open_tree("people")?,
            places: db.open_tree("places")?,
            db,
            write: std::sync::Mutex::new(()),
            roster_generation: std::sync::atomic::AtomicU64::new(0),
        };
        if store.directions.is_empty() && !store.events.is_empty() {
            store.rebuild_directions()?;
        }
        Ok(store)
    }

    fn decode(&self, key: &[u8], bytes: &[u8]) -> Result<Event, StoreError> {
        records::decode(bytes).map_err(|e| StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            message: e.to_string(),
        })
    }

    /// Events through an index: the primary key is the index key's tail after `skip` bytes.
    fn through(
        &self,
        tree: &sled::Tree,
        from: Vec<u8>,
        to: Vec<u8>,
        skip: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let mut out = Vec::new();
        for item in tree.range(from..to) {
            let (k, _) = item?;
            let pk = k.get(skip..).unwrap_or_default();
            if let Some(v) = self.events.get(pk)? {
                out.push(self.decode(pk, &v)?);
            }
        }
        Ok(out)
    }

    pub fn conflicts(&self) -> Result<u64, StoreError> {
        Ok(self.conflicts.len() as u64)
    }

    /// Bytes the store takes on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

impl Store for SledStore {
    fn insert(&self, events: &[Event]) -> Result<Vec<Inserted>, StoreError> {
        self.insert_events(events)
    }

    fn by_person(
        &self,
        subject: &SubjectId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Event>, StoreError> {
        let p = subject.as_str().as_bytes();
        let skip = p.len() + 9;
        self.through(
            &self.person,
            index_key(p, from_ms, &[]),
            index_key(p, to_ms, &[]),
            skip,
        )
    }

    fn by_place(
        &self,
        checkpoint: &CheckpointId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Event>, StoreError> {
        let p = checkpoint.as_str().as_bytes();
        let skip = p.len() + 9;
        self.through(
            &self.place,
            index_key(p, from_ms, &[]),
            index_key(p, to_ms, &[]),
            skip,
        )
    }

    fn scans_by_person(
        &self,
        subject: &SubjectId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Scan>, StoreError> {
        let p = subject.as_str().as_bytes();
        self.scans_through(
            &self.person,
            index_key(p, from_ms, &[]),
            index_key(p, to_ms, &[]),
            p.len() + 9,
        )
    }

    fn scans_by_place(
        &self,
        checkpoint: &CheckpointId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Scan>, StoreError> {
        let p = checkpoint.as_str().as_bytes();
        self.scans_through(
            &self.place,
            index_key(p, from_ms, &[]),
            index_key(p, to_ms, &[]),
            p.len() + 9,
        )
    }

    fn scan_time(
        &self,
        from_ms: i64,
        to_ms: i64,
        visit: &mut dyn FnMut(Event) -> bool,
    ) -> Result<(), StoreError> {
        for item in self.time.range(ts_key(from_ms)..ts_key(to_ms)) {
            let (k, _) = item?;
            let pk = k.get(8..).unwrap_or_default();
            if let Some(v) = self.events.get(pk)? {
                if !visit(self.decode(pk, &v)?) {
                    break;
                }
            }
        }
        Ok(())
    }

    fn seq_states(&self) -> Result<Vec<(BoxId, SeqState)>, StoreError> {
        self.all_seq_states()
    }

    fn revoke(&self, subject: &SubjectId, issued_before: u32) -> Result<(), StoreError> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        self.revocations
            .insert(subject.as_str().as_bytes(), &issued_before.to_be_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    fn revocations(&self) -> Result<Vec<(SubjectId, u32)>, StoreError> {
        self.all_revocations()
    }

    fn roster_generation(&self) -> u64 {
        self.roster_generation
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    fn replace_people(&self, people: &[Person]) -> Result<(), StoreError> {
        self.roster_generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.replace_all(&self.people, people.iter().map(|p| (p.id.as_str(), p)))
    }

    fn replace_places(&self, places: &[Place]) -> Result<(), StoreError> {
        self.roster_generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.replace_all(
            &self.places,
            places.iter().map(|p| (p.checkpoint.as_str(), p)),
        )
    }

    fn people(&self) -> Result<Vec<Person>, StoreError> {
        Self::all(&self.people)
    }

    fn places(&self) -> Result<Vec<Place>, StoreError> {
        Self::all(&self.places)
    }

    fn mark_lost(&self, box_id: &BoxId, first: u64, last: u64) -> Result<SeqState, StoreError> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = self.seq_state(box_id)?;
        st.skip(first, last);
        let json = serde_json::to_vec(&st).map_err(|e| StoreError::Corrupt {
            key: box_id.to_string(),
            message: e.to_string(),
        })?;
        self.boxes.insert(box_id.as_str().as_bytes(), json)?;
        self.db.flush()?;
        Ok(st)
    }

    fn len(&self) -> Result<u64, StoreError> {
        Ok(self.events.len() as u64)
    }

    fn purge_before(&self, cutoff_ms: i64, max: usize) -> Result<u64, StoreError> {
        self.purge_some(cutoff_ms, max)
    }

    fn put_notification(&self, n: &NotificationRecord) -> Result<(), StoreError> {
        self.put_notification_record(n)
    }

    fn notifications(&self, limit: usize) -> Result<Vec<NotificationRecord>, StoreError> {
        self.latest_notifications(limit)
    }

    fn put_pending(&self, p: &PendingDelivery) -> Result<(), StoreError> {
        self.put_json(&self.pending, &p.record.id.to_be_bytes(), p)
    }

    fn remove_pending(&self, id: u64) -> Result<(), StoreError> {
        self.pending.remove(id.to_be_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    fn pending_deliveries(&self) -> Result<Vec<PendingDelivery>, StoreError> {
        Self::all(&self.pending)
    }

    fn unhandled_readings(&self, limit: usize) -> Result<Vec<Event>, StoreError> {
        let mut out = Vec::new();
        for item in self.readings.iter().take(limit) {
            let (pk, _) = item?;
            match self.events.get(&pk)? {
                Some(v) => out.push(self.decode(&pk, &v)?),
                // Purged, or a crash cut its write short (the box resends it): nothing to do.
                None => {
                    self.readings.remove(&pk)?;
                }
            }
        }
        Ok(out)
    }

    fn reading_handled(&self, box_id: &BoxId, seq: u64) -> Result<(), StoreError> {
        // Not flushed: after a crash the reading is handled again (alerts at least once).
        self.readings.remove(primary(box_id, seq))?;
        Ok(())
    }

    fn put_active_alerts(&self, alerts: &[Alert]) -> Result<(), StoreError> {
        self.replace_all(&self.alerts, alerts.iter().map(|a| (a.key.as_str(), a)))
    }

    fn active_alerts(&self) -> Result<Vec<Alert>, StoreError> {
        Self::all(&self.alerts)
    }

    fn backup(&self, out: &mut dyn std::io::Write) -> Result<BackupSummary, StoreError> {
        self.write_backup(out)
    }

    fn two_way(&self, checkpoint: &CheckpointId) -> Result<bool, StoreError> {
        let bits = self
            .directions
            .get(checkpoint.as_str().as_bytes())?
            .and_then(|v| v.first().copied())
            .unwrap_or(0);
        Ok(bits == 3)
    }
}
