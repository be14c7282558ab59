//! The outbox: a crash-safe store-and-forward queue of encoded events on `sled`.
//!
//! # Durability contract
//! - [`Outbox::append`] returns only after the event and the new highest sequence number are
//!   written in one atomic batch *and* `Db::flush` has made them durable. The door loop opens the
//!   door only after that. A `kill -9` or power cut at any instant leaves either the whole batch
//!   or none of it.
//! - Sequence numbers start at 1, increase by one per attempt and are never reused, also across
//!   restarts and after everything has been acknowledged (the highest one is stored beside the
//!   events). An attempt that could not be stored still consumes its number, so central sees the
//!   loss as a gap.
//! - An event is deleted only by [`Outbox::ack`], which the uplink calls for central's end-to-end
//!   ack (central has stored it durably), never for a broker PUBACK.
//! - The queue is bounded in bytes. When an event does not fit, the configured [`WhenFull`]
//!   policy refuses it or deletes the oldest events; either way the loss is counted, logged and
//!   reported as `outbox_full` in telemetry until acks bring the queue below 90 % of its bound.
//!
//! # Layout on disk
//! One sled tree, `outbox`. Key `0x00 "last_seq"` holds the highest assigned sequence number
//! (u64 big-endian). Key `0x01` + sequence number (u64 big-endian, so sled iterates in publish
//! order) holds the event: the append time in Unix milliseconds (u64 big-endian), then the
//! encoded record.

use std::path::Path;
use std::sync::Mutex;

use checkpoint_link::sync::Recover;

const LAST_SEQ_KEY: &[u8] = b"\x00last_seq";
const EVENT_PREFIX: u8 = 0x01;
const HEADER: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox storage: {0}")]
    Sled(#[from] sled::Error),
    #[error("another process already uses the outbox {0} (is checkpointd already running?)")]
    Locked(std::path::PathBuf),
    #[error("an event of {0} bytes can never fit the outbox bound")]
    TooLarge(usize),
}

/// What became of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    /// `false` when the outbox was full and the policy refused the event.
    pub stored: bool,
    /// Sequence numbers of older events deleted to make room (`drop_oldest`).
    pub dropped: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxStats {
    pub last_seq: u64,
    pub depth: u64,
    pub bytes: u64,
    pub oldest_appended_ms: Option<u64>,
    pub full: bool,
    /// Events lost to the bound since this process opened the outbox.
    pub dropped: u64,
}

#[derive(Debug)]
struct Counters {
    last_seq: u64,
    depth: u64,
    bytes: u64,
    full: bool,
    dropped: u64,
}

#[derive(Debug)]
pub struct Outbox {
    db: sled::Db,
    tree: sled::Tree,
    max_bytes: u64,
    when_full: WhenFull,
    /// Serialises appends and acks so the counters match what is on disk.
    counters: Mutex<Counters>,
}

fn event_key(seq: u64) -> [u8; 9] {
    let mut k = [EVENT_PREFIX; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn key_seq(key: &[u8]) -> Option<u64> {
    match key {
        [EVENT_PREFIX, rest @ ..] => Some(u64::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

fn stored_size(value: &[u8]) -> u64 {
    value.len() as u64
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir`.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        when_full: WhenFull,
        cache_bytes: u64,
    ) -> Result<Outbox, OutboxError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                    OutboxError::Locked(dir.to_path_buf())
                }
                e => OutboxError::Sled(e),
            })?;
        let tree = db.open_tree("outbox")?;
        let mut last_seq = match tree.get(LAST_SEQ_KEY)? {
            Some(v) => v
                .as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or_default(),
            None => 0,
        };
        let (mut depth, mut bytes) = (0, 0);
        let mut broken = Vec::new();
        for item in tree.range(event_key(0)..) {
            let (k, v) = item?;
            match key_seq(&k) {
                Some(seq) if v.len() >= HEADER => {
                    depth += 1;
                    bytes += stored_size(&v);
                    last_seq = last_seq.max(seq);
                }
                _ => broken.push(k),
            }
        }
        for k in broken {
            tracing::error!(message = "Outbox entry is malformed; removing it.", key = ?k);
            tree.remove(k)?;
        }
        Ok(Outbox {
            db,
            tree,
            max_bytes,
            when_full,
            counters: Mutex::new(Counters {
                last_seq,
                depth,
                bytes,
                full: bytes > max_bytes,
                dropped: 0,
            }),
        })
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        // A panic while holding the lock cannot leave the counters half-updated in a way that
        // matters more than losing the daemon, so recover the guard.
        self.counters.lock_or_recover()
    }

    /// Assigns the next sequence number, builds the record with it and stores it durably.
    pub fn append(
        &self,
        now_ms: u64,
        build: impl FnOnce(u64) -> Vec<u8>,
    ) -> Result<Appended, OutboxError> {
        let mut c = self.counters();
        let seq = c.last_seq + 1;
        let payload = build(seq);
        let mut value = Vec::with_capacity(HEADER + payload.len());
        value.extend_from_slice(&now_ms.to_be_bytes());
        value.extend_from_slice(&payload);
        let size = stored_size(&value);
        if size > self.max_bytes {
            return Err(OutboxError::TooLarge(value.len()));
        }
        let mut batch = sled::Batch::default();
        batch.insert(LAST_SEQ_KEY, &seq.to_be_bytes());
        let mut dropped = Vec::new();
        let mut freed = 0;
        let mut stored = true;
        if c.bytes + size > self.max_bytes {
            match self.when_full {
                WhenFull::RefuseNew => stored = false,
                WhenFull::DropOldest => {
                    for item in self.tree.range(event_key(0)..) {
                        if c.bytes - freed + size <= self.max_bytes {
                            break;
                        }
                        let (k, v) = item?;
                        if let Some(old) = key_seq(&k) {
                            batch.remove(k);
                            freed += stored_size(&v);
                            dropped.push(old);
                        }
                    }
                }
            }
        }
        if stored {
            batch.insert(&event_key(seq), value);
        }
        self.tree.apply_batch(batch)?;
        self.db.flush()?;
        c.last_seq = seq;
        c.bytes = c.bytes - freed + if stored { size } else { 0 };
        c.depth = c.depth - dropped.len() as u64 + u64::from(stored);
        let lost = dropped.len() as u64 + u64::from(!stored);
        if lost > 0 {
            c.full = true;
            c.dropped += lost;
            tracing::warn!(
                message = "Outbox full; events lost.",
                seq,
                policy = ?self.when_full,
                lost,
                total_dropped = c.dropped,
            );
        }
        Ok(Appended {
            seq,
            stored,
            dropped,
        })
    }

    /// Deletes the events central acknowledged (inclusive ranges). Sequence numbers not in the
    /// outbox are ignored: acks repeat and may cross with resends. Returns how many were deleted.
    pub fn ack(&self, ranges: &[(u64, u64)]) -> Result<u64, OutboxError> {
        let mut c = self.counters();
        let mut batch = sled::Batch::default();
        let (mut removed, mut freed) = (0u64, 0u64);
        for &(first, last) in ranges {
            if first > last {
                continue;
            }
            for item in self.tree.range(event_key(first)..=event_key(last)) {
                let (k, v) = item?;
                batch.remove(k);
                removed += 1;
                freed += stored_size(&v);
            }
        }
        if removed == 0 {
            return Ok(0);
        }
        self.tree.apply_batch(batch)?;
        self.db.flush()?;
        c.depth -= removed;
        c.bytes -= freed;
        if c.full && c.bytes * 10 < self.max_bytes * 9 {
            c.full = false;
        }
        Ok(removed)
    }

    /// Up to `limit` stored events with sequence number ≥ `from`, in order: `(seq, record)`.
    pub fn pending(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, OutboxError> {
        let mut out = Vec::new();
        for item in self.tree.range(event_key(from)..).take(limit) {
            let (k, v) = item?;
            if let Some(seq) = key_seq(&k) {
                out.push((seq, v.get(HEADER..).unwrap_or_default().to_vec()));
            }
        }
        Ok(out)
    }

    /// The stored record with this sequence number.
    pub fn get(&self, seq: u64) -> Result<Option<Vec<u8>>, OutboxError> {
        Ok(self
            .tree
            .get(event_key(seq))?
            .map(|v| v.get(HEADER..).unwrap_or_default().to_vec()))
    }

    pub fn stats(&self) -> OutboxStats {
        let c = self.counters();
        let oldest_appended_ms = self
            .tree
            .range(event_key(0)..)
            .next()
            .and_then(|r| r.ok())
            .and_then(|(_, v)| v.get(..HEADER)?.try_into().ok().map(u64::from_be_bytes));
        OutboxStats {
            last_seq: c.last_seq,
            depth: c.depth,
            bytes: c.bytes,
            oldest_appended_ms,
            full: c.full,
            dropped: c.dropped,
        }
    }

    /// Makes everything written so far durable (appends and acks already do).
    pub fn flush(&self) -> Result<(), OutboxError> {
        self.db.flush()?;
        Ok(())
    }
}

mod config;
pub use config::{OutboxConfig, WhenFull};

#[cfg(test)]
mod tests;
