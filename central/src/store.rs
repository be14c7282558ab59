//! Central's store behind the [`Store`] trait; the embedded default is SQLite ([`SqliteStore`]).
//!
//! # Contract
//! - [`Store::insert`] is idempotent: an event already stored (same box and sequence number, same
//!   id) is reported as a duplicate and not stored again. An event whose `(box, seq)` is taken by
//!   a *different* id (a box that lost its outbox and started counting again) is kept apart as a
//!   conflict, never overwriting or dropping either.
//! - When `insert` returns, everything it reported as stored is durable: central may then ack it
//!   to the box, which deletes it.
//! - An event names its holder and the dependants admitted on the holder's code: each of them
//!   has the event in their trajectory and their scans at the place.
//! - Retention keys on when central received an event, never on the box's clock.
//! - Queries read only the index range they need: by person and time, by place and time, by time.
//! - Calls block: async code calls them on a blocking thread (`spawn_blocking`).
//!
//! The other modules' records the store keeps without knowing their types are [`Docs`]: JSON
//! documents the alert engine owns (see `alerts::log`).
//!
//! The SQLite layout is documented in [`sqlite`]; the portable backup format in [`portable`].
//!
//! Long on purpose: the `Store` trait is the contract both backends implement, documented method by
//! method.

use std::collections::BTreeSet;

use checkpoint_link::clock::Clock;
use checkpoint_protocol::ids::{BoxId, CheckpointId, SubjectId};
use checkpoint_protocol::records::Event;
use serde::{Deserialize, Serialize};

use crate::roster::{Person, Place};
use crate::trace::{Scan, Stay};

/// A place and a time range `[from_ms, to_ms)`.
pub type Window = (CheckpointId, i64, i64);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
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
    #[error("store schema: {0}")]
    Schema(String),
    #[error("store: {0}")]
    Refused(String),
    #[error("store: {0}")]
    Postgres(String),
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

/// Documents kept for other modules, as JSON they own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Docs {
    /// The notification log; `ord` is the record id (time-ordered), purged with the events.
    Notifications,
    /// Deliveries waiting for a retry; `ord` is the record id.
    Pending,
    /// Active alerts, replaced as a set.
    Alerts,
}

impl Docs {
    pub(crate) const ALL: [Docs; 3] = [Docs::Notifications, Docs::Pending, Docs::Alerts];

    pub(crate) fn code(self) -> i64 {
        match self {
            Docs::Notifications => 0,
            Docs::Pending => 1,
            Docs::Alerts => 2,
        }
    }
}

/// One document: its key, its order among its kind, its time (Unix ms) and its JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Doc {
    pub key: String,
    pub ord: i64,
    pub time_ms: i64,
    pub json: String,
}

/// Storage of events and everything central keeps. Implementations keep the contract in the
/// module documentation.
pub trait Store: Send + Sync {
    /// Stores events received at `received_ms` (Unix ms).
    fn insert_received(
        &self,
        events: &[Event],
        received_ms: i64,
    ) -> Result<Vec<Inserted>, StoreError>;
    fn insert(&self, events: &[Event]) -> Result<Vec<Inserted>, StoreError> {
        self.insert_received(events, checkpoint_link::clock::SystemClock.now_ms())
    }
    /// A person's events with `from_ms <= ts < to_ms`, in time order: those they held the code
    /// of and those they were admitted on as a dependant.
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
    /// The person's scans (holder or dependant) in `[from_ms, to_ms)`, in time order.
    fn scans_by_person(
        &self,
        subject: &SubjectId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Scan>, StoreError>;
    /// Scans of people (holders and dependants) at `checkpoint` in `[from_ms, to_ms)`, in time
    /// order.
    fn scans_by_place(
        &self,
        checkpoint: &CheckpointId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Scan>, StoreError>;
    /// [`Store::scans_by_place`] for each window `(checkpoint, from_ms, to_ms)`, answered in
    /// the windows' order: the reads of one contacts query in one call.
    fn scans_at(&self, windows: &[Window]) -> Result<Vec<Vec<Scan>>, StoreError> {
        windows
            .iter()
            .map(|(cp, from, to)| self.scans_by_place(cp, *from, *to))
            .collect()
    }
    /// The stays (kept at ingest: admitted `in` passes with the time of the same person's next
    /// admitted pass there) that began at each window's checkpoint in `[from_ms, to_ms)`, in
    /// time order per window, answered in the windows' order.
    fn stays_at(&self, windows: &[Window]) -> Result<Vec<Vec<Stay>>, StoreError>;
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
    /// One page of the events table: at most `limit` (up to [`page::PAGE_MAX`]) events the
    /// filter selects, in time order, after `after` (the `next` of the page before).
    fn events_page(
        &self,
        filter: &EventFilter,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<Page, StoreError>;
    /// How many events the filter selects, exactly.
    fn events_count(&self, filter: &EventFilter) -> Result<u64, StoreError>;
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
    /// Adds people and updates them by id, in one step; nobody is removed.
    fn upsert_people(&self, people: &[Person]) -> Result<(), StoreError>;
    /// Adds places and updates them by checkpoint, in one step; none is removed.
    fn upsert_places(&self, places: &[Place]) -> Result<(), StoreError>;
    fn people(&self) -> Result<Vec<Person>, StoreError>;
    /// Changes whenever the roster is replaced (within this process), so readers know when to
    /// reload it.
    fn roster_generation(&self) -> u64;
    fn places(&self) -> Result<Vec<Place>, StoreError>;
    /// Records the box's gap `first..=last` as lost (see [`SeqState::skip`]).
    fn mark_lost(&self, box_id: &BoxId, first: u64, last: u64) -> Result<SeqState, StoreError>;
    fn len(&self) -> Result<u64, StoreError>;
    /// Events kept apart because their `(box, seq)` was taken by another id.
    fn conflicts(&self) -> Result<u64, StoreError>;
    /// Whether `checkpoint` has recorded both directions (someone went in and someone went
    /// out through it), so its scans make stays: one point read, whatever the data size.
    fn two_way(&self, checkpoint: &CheckpointId) -> Result<bool, StoreError>;
    /// Deletes up to `max` events received before `cutoff_ms`, with everything derived from them,
    /// and notification records as old; returns how many went (call again until 0).
    fn purge_before(&self, cutoff_ms: i64, max: usize) -> Result<u64, StoreError>;
    /// Adds or replaces (by key) a document.
    fn put_doc(&self, kind: Docs, doc: &Doc) -> Result<(), StoreError>;
    fn remove_doc(&self, kind: Docs, key: &str) -> Result<(), StoreError>;
    /// Replaces every document of `kind` in one step.
    fn replace_docs(&self, kind: Docs, docs: &[Doc]) -> Result<(), StoreError>;
    /// Documents of `kind` by `ord`, at most `limit`; the newest (highest `ord`) first when
    /// `newest_first`.
    fn docs(&self, kind: Docs, newest_first: bool, limit: usize) -> Result<Vec<Doc>, StoreError>;
    /// Stored events with a temperature whose alerts the engine has not handled, in the order
    /// they were stored, at most `limit`.
    fn unhandled_readings(&self, limit: usize) -> Result<Vec<Event>, StoreError>;
    /// The engine has handled the alerts of these events (`(box, seq)`), in one write.
    fn readings_handled(&self, readings: &[(BoxId, u64)]) -> Result<(), StoreError>;
    /// Writes a consistent snapshot of everything in the portable format ([`portable`]).
    fn backup(&self, out: &mut dyn std::io::Write) -> Result<BackupSummary, StoreError>;
    /// Writes a consistent copy of the whole store to `path` (a new file) in the backend's own
    /// format, while ingest goes on: a SQLite database file. PostgreSQL has none here; its
    /// path is `pg_dump` or point-in-time recovery (README), or the portable [`Store::backup`].
    fn snapshot_file(&self, path: &std::path::Path) -> Result<(), StoreError> {
        let _ = path;
        Err(StoreError::Refused(
            "this store has no native copy here: use pg_dump or the portable backup".into(),
        ))
    }
    /// Loads a portable backup into this store, which must be empty; in one transaction, so a
    /// damaged or incomplete file leaves it empty.
    fn restore_from(&self, input: &mut dyn std::io::Read) -> Result<BackupSummary, StoreError>;
    /// Bytes the store takes on disk (the database and its log).
    fn size_on_disk(&self) -> Result<u64, StoreError>;
    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
}

/// Runs `f` on the store on a blocking thread, so the async runtime never waits for the disk or
/// the database (and a client that runs its own runtime, as PostgreSQL's does, may block).
pub async fn blocking<T, F>(store: &std::sync::Arc<dyn Store>, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
{
    let s = store.clone();
    tokio::task::spawn_blocking(move || f(s.as_ref()))
        .await
        .map_err(|e| StoreError::Refused(format!("store task: {e}")))?
}

/// Event time as the SQL stores keep it: Unix ms and the nanoseconds within that ms.
pub(crate) fn split_ts(e: &Event) -> (i64, i64) {
    (
        e.ts_ms(),
        e.ts.unix_timestamp_nanos().rem_euclid(1_000_000) as i64,
    )
}

/// The bit a direction sets in `checkpoints.directions` (two-way places have both).
pub(crate) fn direction_bit(d: checkpoint_protocol::records::Direction) -> i64 {
    match d {
        checkpoint_protocol::records::Direction::In => 1,
        checkpoint_protocol::records::Direction::Out => 2,
    }
}

/// Opens the store `[store]` names; a SQLite store lives in `data_dir` unless `path` says where.
pub fn open(
    cfg: &StoreConfig,
    data_dir: &std::path::Path,
) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    match cfg.kind {
        StoreKind::Sqlite => {
            let old = data_dir.join("store").join("conf");
            if old.exists() {
                return Err(StoreError::Refused(format!(
                    "{} holds the sled store of an earlier release, which this release does not \
                     read: move it away (central then starts with an empty store)",
                    data_dir.join("store").display()
                )));
            }
            Ok(std::sync::Arc::new(SqliteStore::open(
                &cfg.sqlite_path(data_dir),
                cfg.cache_bytes,
            )?))
        }
        StoreKind::Postgres => Ok(std::sync::Arc::new(PostgresStore::open(
            &postgres_options(cfg)?,
        )?)),
    }
}

/// The PostgreSQL connection `[store]` describes, with its secrets read from their files.
pub fn postgres_options(cfg: &StoreConfig) -> Result<PostgresOptions, StoreError> {
    let url = cfg
        .url
        .clone()
        .ok_or_else(|| StoreError::Refused("store.url: needed with kind = \"postgres\"".into()))?;
    let password = match &cfg.password_file {
        Some(p) => {
            let bytes = checkpoint_pki::secrets::read_private(p)
                .map_err(|m| StoreError::Refused(format!("store.password_file: {m}")))?;
            Some(
                String::from_utf8(bytes)
                    .map_err(|_| StoreError::Refused(format!("{}: not UTF-8 text", p.display())))?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            )
        }
        None => None,
    };
    let ca_pem = match &cfg.ca_file {
        Some(p) => Some(
            std::fs::read(p)
                .map_err(|e| StoreError::Refused(format!("store.ca_file {}: {e}", p.display())))?,
        ),
        None => None,
    };
    Ok(PostgresOptions {
        url,
        password,
        ca_pem,
        pool_size: cfg.pool_size,
    })
}

mod config;
pub use config::{RetentionConfig, StoreConfig, StoreKind};
pub mod codes;
pub mod page;
pub mod portable;
pub mod postgres;
mod rows;
pub mod sqlite;
pub use self::page::{Cursor, EventFilter, Page};
pub use self::portable::BackupSummary;
pub use self::postgres::{PostgresOptions, PostgresStore};
pub use self::sqlite::SqliteStore;

#[cfg(any(test, feature = "contract"))]
pub mod contract;
#[cfg(test)]
pub(crate) mod tests;
