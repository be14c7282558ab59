//! Event storage behind the [`Store`] trait, with the embedded default on sled ([`SledStore`]).
//!
//! # Contract
//! - [`Store::insert`] is idempotent: an event already stored (same box and sequence number, same
//!   id) is reported as a duplicate and not stored again. An event whose `(box, seq)` is taken by
//!   a *different* id (a box that lost its outbox and started counting again) is kept apart as a
//!   conflict, never overwriting or dropping either.
//! - When `insert` returns, everything it reported as stored is durable: central may then ack it
//!   to the box, which deletes it.
//! - Queries read only the index range they need: by person and time, by place and time, by time.
//!
//! The sled layout is documented in [`on_sled`].

use std::collections::BTreeSet;

use checkpoint_protocol::ids::{BoxId, CheckpointId, SubjectId};
use checkpoint_protocol::records::Event;
use serde::{Deserialize, Serialize};

use crate::alerts::log::{NotificationRecord, PendingDelivery};
use crate::alerts::rules::Alert;
use crate::roster::{Person, Place};
use crate::trace::Scan;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error(
        "another process already uses the store {0} (is `checkpoint-central serve` running? \
         stop it first)"
    )]
    Locked(std::path::PathBuf),
    #[error("store: corrupt record under {key}: {message}")]
    Corrupt { key: String, message: String },
    #[error("store: {0}")]
    Io(std::io::Error),
    #[error("backup: {0}")]
    Backup(String),
}

/// What happened to one event on insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    New,
    Duplicate,
    /// `(box, seq)` already holds another event; this one is kept in `conflicts`.
    Conflict,
}

/// What central holds of one box's sequence: everything up to `contiguous`, plus `above`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqState {
    pub contiguous: u64,
    pub above: BTreeSet<u64>,
    /// Gaps given up on (the events were really lost), most recent last, at most 100 kept.
    #[serde(default)]
    pub lost: Vec<(u64, u64)>,
}

impl SeqState {
    pub fn add(&mut self, seq: u64) {
        if seq <= self.contiguous {
            return;
        }
        self.above.insert(seq);
        self.advance();
    }

    /// Moves the contiguous mark over what follows it. Checked: a state saved with numbers at
    /// the edge of u64 (from before decoding refused them) must not panic or wrap.
    fn advance(&mut self) {
        while let Some(next) = self.contiguous.checked_add(1) {
            if !self.above.remove(&next) {
                break;
            }
            self.contiguous = next;
        }
    }

    /// Missing sequence numbers as inclusive ranges, below the highest one seen.
    pub fn gaps(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut next = self.contiguous.saturating_add(1);
        for &s in &self.above {
            if s > next {
                out.push((next, s - 1));
            }
            next = s.saturating_add(1);
        }
        out
    }

    /// Gives up on the gap `first..=last` (below the highest sequence number seen): it is
    /// recorded as lost and the contiguous mark moves past it.
    pub fn skip(&mut self, first: u64, last: u64) {
        if Some(first) != self.contiguous.checked_add(1) || last < first {
            return;
        }
        self.lost.push((first, last));
        if self.lost.len() > 100 {
            self.lost.remove(0);
        }
        self.contiguous = last;
        self.advance();
    }

    pub fn highest(&self) -> u64 {
        self.above.last().copied().unwrap_or(self.contiguous)
    }
}

/// Storage of events. Implementations must keep the contract in the module documentation.
pub trait Store: Send + Sync {
    fn insert(&self, events: &[Event]) -> Result<Vec<Inserted>, StoreError>;
    /// A person's events with `from_ms <= ts < to_ms`, in time order.
    fn by_person(
        &self,
        subject: &SubjectId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Event>, StoreError>;
    /// A place's events with `from_ms <= ts < to_ms`, in time order.
    fn by_place(
        &self,
        checkpoint: &CheckpointId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Event>, StoreError>;
    /// The person's scans (what tracing needs of their events) in `[from_ms, to_ms)`, in time
    /// order; a store may answer from its index alone.
    fn scans_by_person(
        &self,
        subject: &SubjectId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Scan>, StoreError> {
        Ok(self
            .by_person(subject, from_ms, to_ms)?
            .iter()
            .filter_map(Scan::of)
            .collect())
    }
    /// Scans of people at `checkpoint` in `[from_ms, to_ms)`, in time order.
    fn scans_by_place(
        &self,
        checkpoint: &CheckpointId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Scan>, StoreError> {
        Ok(self
            .by_place(checkpoint, from_ms, to_ms)?
            .iter()
            .filter_map(Scan::of)
            .collect())
    }
    /// Visits events with `from_ms <= ts < to_ms` in time order until `visit` returns false,
    /// so a filtered query reads only as far as it needs.
    fn scan_time(
        &self,
        from_ms: i64,
        to_ms: i64,
        visit: &mut dyn FnMut(Event) -> bool,
    ) -> Result<(), StoreError>;
    /// Events with `from_ms <= ts < to_ms`, in time order, at most `limit`.
    fn by_time(&self, from_ms: i64, to_ms: i64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let mut out = Vec::new();
        if limit > 0 {
            self.scan_time(from_ms, to_ms, &mut |e| {
                out.push(e);
                out.len() < limit
            })?;
        }
        Ok(out)
    }
    /// Every box's sequence state.
    fn seq_states(&self) -> Result<Vec<(BoxId, SeqState)>, StoreError>;
    /// Revokes every code of `subject` issued before `issued_before` (Unix seconds). A later
    /// cut-off replaces an earlier one.
    fn revoke(&self, subject: &SubjectId, issued_before: u32) -> Result<(), StoreError>;
    /// Every revocation: `(subject, issued_before)`.
    fn revocations(&self) -> Result<Vec<(SubjectId, u32)>, StoreError>;
    /// Replaces the whole people roster in one atomic step.
    fn replace_people(&self, people: &[Person]) -> Result<(), StoreError>;
    /// Replaces the whole places roster in one atomic step.
    fn replace_places(&self, places: &[Place]) -> Result<(), StoreError>;
    fn people(&self) -> Result<Vec<Person>, StoreError>;
    /// Changes whenever the roster is replaced (within this process), so readers know when to
    /// reload it.
    fn roster_generation(&self) -> u64 {
        0
    }
    fn places(&self) -> Result<Vec<Place>, StoreError>;
    /// Records the box's gap `first..=last` as lost (see [`SeqState::skip`]).
    fn mark_lost(&self, box_id: &BoxId, first: u64, last: u64) -> Result<SeqState, StoreError>;
    fn len(&self) -> Result<u64, StoreError>;
    /// Whether `checkpoint` has recorded both directions (someone went in and someone went
    /// out through it), so its scans make stays: one point read, whatever the data size.
    fn two_way(&self, checkpoint: &CheckpointId) -> Result<bool, StoreError>;
    /// Deletes up to `max` events older than `cutoff_ms`, with everything derived from them;
    /// returns how many went (call again until 0).
    fn purge_before(&self, cutoff_ms: i64, max: usize) -> Result<u64, StoreError>;
    /// Adds or updates (by id) a notification record.
    fn put_notification(&self, n: &NotificationRecord) -> Result<(), StoreError>;
    /// The latest `limit` notification records, newest first.
    fn notifications(&self, limit: usize) -> Result<Vec<NotificationRecord>, StoreError>;
    /// Keeps a delivery waiting for a retry (replacing one with the same record id).
    fn put_pending(&self, p: &PendingDelivery) -> Result<(), StoreError>;
    /// Forgets a delivery that was sent or given up.
    fn remove_pending(&self, id: u64) -> Result<(), StoreError>;
    /// Every delivery waiting for a retry, oldest first.
    fn pending_deliveries(&self) -> Result<Vec<PendingDelivery>, StoreError>;
    /// Stored events with a temperature whose alerts the engine has not handled, oldest box and
    /// sequence first, at most `limit`.
    fn unhandled_readings(&self, limit: usize) -> Result<Vec<Event>, StoreError>;
    /// The engine has handled the alerts of this event.
    fn reading_handled(&self, box_id: &BoxId, seq: u64) -> Result<(), StoreError>;
    /// Replaces the set of active alerts (kept so a restart does not raise them again).
    fn put_active_alerts(&self, alerts: &[Alert]) -> Result<(), StoreError>;
    fn active_alerts(&self) -> Result<Vec<Alert>, StoreError>;
    /// Writes a consistent snapshot of the whole store (see `on_sled`'s backup format).
    fn backup(&self, out: &mut dyn std::io::Write) -> Result<BackupSummary, StoreError>;
    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
}

/// Event time in Unix milliseconds.
pub fn event_ms(e: &Event) -> i64 {
    i64::try_from(e.ts.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

mod on_sled;
pub use self::on_sled::{BackupSummary, SledStore};

#[cfg(test)]
pub(crate) mod tests;
