//! Retention and backup for the sled store.
//!
//! # Backup format (version 1)
//! The line `checkpoint-central backup 1\n`, then for each tree `T`, u32 BE name length, name,
//! and its entries as `K`, u32 BE key length, key, u32 BE value length, value; then `E`, the
//! entry count as u64 BE and the SHA-256 of every byte before it. A restore checks the trailer
//! before the restored store is moved into place, so a truncated or altered file restores
//! nothing.

use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{index_key, ts_key, SledStore};
use crate::store::{event_ms, StoreError};

const MAGIC: &[u8] = b"checkpoint-central backup 1\n";
/// Longest key or value a backup may hold (a sanity bound on a corrupt length).
const MAX_ITEM: u32 = 64 << 20;

/// What a backup or restore moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackupSummary {
    pub entries: u64,
    pub events: u64,
}

fn bad(message: impl Into<String>) -> StoreError {
    StoreError::Backup(message.into())
}

/// A writer that hashes what passes through.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Hashing<W> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.hash.update(bytes);
        self.inner.write_all(bytes).map_err(StoreError::Io)
    }

    fn item(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let len = u32::try_from(bytes.len()).map_err(|_| bad("item over 4 GiB"))?;
        self.put(&len.to_be_bytes())?;
        self.put(bytes)
    }
}

/// A reader that hashes what it reads.
struct Checked<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Checked<R> {
    fn take(&mut self, n: usize) -> Result<Vec<u8>, StoreError> {
        let mut buf = vec![0u8; n];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| bad(format!("the backup ends early ({e})")))?;
        self.hash.update(&buf);
        Ok(buf)
    }

    fn item(&mut self) -> Result<Vec<u8>, StoreError> {
        let len = u32::from_be_bytes(self.take(4)?.try_into().map_err(|_| bad("length"))?);
        if len > MAX_ITEM {
            return Err(bad(format!("an item of {len} bytes: the file is corrupt")));
        }
        self.take(len as usize)
    }
}

impl SledStore {
    /// Deletes up to `max` events older than `cutoff_ms` with every index entry derived from
    /// them, and notification records as old; returns how many went. Runs under the write lock, so ingest waits for one call.
    pub(in crate::store) fn purge_some(
        &self,
        cutoff_ms: i64,
        max: usize,
    ) -> Result<u64, StoreError> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut batches: [sled::Batch; 5] = Default::default();
        let [events, ids, person, place, time] = &mut batches;
        let mut n = 0u64;
        for item in self.time.range(..ts_key(cutoff_ms)).take(max) {
            let (k, _) = item?;
            time.remove(k.clone());
            let pk = k.get(8..).unwrap_or_default();
            // A dangling entry (a crash between writes) counts too, so callers keep going.
            n += 1;
            if let Some(v) = self.events.get(pk)? {
                let e = self.decode(pk, &v)?;
                let ms = event_ms(&e);
                if let Some(s) = &e.subject {
                    person.remove(index_key(s.as_str().as_bytes(), ms, pk));
                }
                place.remove(index_key(e.checkpoint.as_str().as_bytes(), ms, pk));
                ids.remove(e.id.as_bytes().to_vec());
                events.remove(pk.to_vec());
            }
        }
        // The primary records first: an index entry left by a crash in between points at
        // nothing and is skipped (and the next purge removes it).
        let [events, ids, person, place, time] = batches;
        self.events.apply_batch(events)?;
        self.ids.apply_batch(ids)?;
        self.person.apply_batch(person)?;
        self.place.apply_batch(place)?;
        self.time.apply_batch(time)?;
        // Conflicting records are few; they follow the same limit.
        let mut stale = sled::Batch::default();
        for item in self.conflicts.iter() {
            let (k, v) = item?;
            if self.decode(&k, &v).is_ok_and(|e| event_ms(&e) < cutoff_ms) {
                stale.remove(k);
            }
        }
        self.conflicts.apply_batch(stale)?;
        // Notification records (ids are milliseconds × 1000) follow the same limit.
        let end = u64::try_from(cutoff_ms).unwrap_or(0).saturating_mul(1000);
        let mut old = sled::Batch::default();
        for item in self.notifications.range(..end.to_be_bytes()).take(max) {
            let (k, _) = item?;
            old.remove(k);
            n += 1;
        }
        self.notifications.apply_batch(old)?;
        self.db.flush()?;
        Ok(n)
    }

    pub(in crate::store) fn write_backup(
        &self,
        out: &mut dyn Write,
    ) -> Result<BackupSummary, StoreError> {
        // No insert, purge, roster or revocation change while the snapshot is read.
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut w = Hashing {
            inner: out,
            hash: Sha256::new(),
        };
        w.put(MAGIC)?;
        let mut summary = BackupSummary::default();
        for (name, tree) in self.trees() {
            w.put(b"T")?;
            w.item(name.as_bytes())?;
            for item in tree.iter() {
                let (k, v) = item?;
                w.put(b"K")?;
                w.item(&k)?;
                w.item(&v)?;
                summary.entries += 1;
                if name == "events" {
                    summary.events += 1;
                }
            }
        }
        w.put(b"E")?;
        w.put(&summary.entries.to_be_bytes())?;
        let digest = w.hash.finalize();
        w.inner.write_all(&digest).map_err(StoreError::Io)?;
        w.inner.flush().map_err(StoreError::Io)?;
        Ok(summary)
    }

    /// Restores a backup into `dir`, which must not hold a store. The store is built beside it
    /// and moved into place only once the whole file has been read and its checksum matches.
    pub fn restore(dir: &Path, input: &mut dyn Read) -> Result<BackupSummary, StoreError> {
        if dir.exists()
            && std::fs::read_dir(dir)
                .map_err(StoreError::Io)?
                .next()
                .is_some()
        {
            return Err(bad(format!(
                "{} is not empty: restore only into a new data directory",
                dir.display()
            )));
        }
        let staging = dir.with_extension("restoring");
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(StoreError::Io)?;
        }
        let summary = {
            let store = SledStore::open(&staging, 64 << 20)?;
            let r = store.read_backup(input);
            if r.is_ok() {
                store.db.flush()?;
            }
            r
        };
        let summary = match summary {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e);
            }
        };
        if dir.exists() {
            std::fs::remove_dir(dir).map_err(StoreError::Io)?;
        }
        // sled releases its lock when its flusher stops; the rename does not need it.
        std::fs::rename(&staging, dir).map_err(StoreError::Io)?;
        Ok(summary)
    }

    fn read_backup(&self, input: &mut dyn Read) -> Result<BackupSummary, StoreError> {
        let mut r = Checked {
            inner: input,
            hash: Sha256::new(),
        };
        if r.take(MAGIC.len())? != MAGIC {
            return Err(bad("not a checkpoint-central backup (or another version)"));
        }
        let trees = self.trees();
        let mut tree: Option<&sled::Tree> = None;
        let mut tree_name = String::new();
        let mut summary = BackupSummary::default();
        let mut batch = sled::Batch::default();
        let mut pending = 0usize;
        loop {
            match r.take(1)?[0] {
                b'T' => {
                    if let Some(t) = tree {
                        t.apply_batch(std::mem::take(&mut batch))?;
                        pending = 0;
                    }
                    tree_name = String::from_utf8_lossy(&r.item()?).into_owned();
                    tree = Some(
                        trees
                            .iter()
                            .find(|(n, _)| *n == tree_name)
                            .map(|(_, t)| *t)
                            .ok_or_else(|| bad(format!("unknown tree {tree_name:?}")))?,
                    );
                }
                b'K' => {
                    let t = tree.ok_or_else(|| bad("an entry before any tree"))?;
                    let (k, v) = (r.item()?, r.item()?);
                    batch.insert(k, v);
                    summary.entries += 1;
                    if tree_name == "events" {
                        summary.events += 1;
                    }
                    pending += 1;
                    if pending >= 10_000 {
                        t.apply_batch(std::mem::take(&mut batch))?;
                        pending = 0;
                    }
                }
                b'E' => {
                    if let Some(t) = tree {
                        t.apply_batch(std::mem::take(&mut batch))?;
                    }
                    let count =
                        u64::from_be_bytes(r.take(8)?.try_into().map_err(|_| bad("trailer"))?);
                    let expected = r.hash.clone().finalize();
                    let mut digest = [0u8; 32];
                    r.inner
                        .read_exact(&mut digest)
                        .map_err(|e| bad(format!("the backup ends early ({e})")))?;
                    if digest[..] != expected[..] {
                        return Err(bad("checksum mismatch: the file is damaged"));
                    }
                    if count != summary.entries {
                        return Err(bad(format!(
                            "{count} entries announced, {} read",
                            summary.entries
                        )));
                    }
                    return Ok(summary);
                }
                other => return Err(bad(format!("unexpected record type {other:#x}"))),
            }
        }
    }

    fn trees(&self) -> [(&'static str, &sled::Tree); 15] {
        [
            ("events", &self.events),
            ("ids", &self.ids),
            ("person", &self.person),
            ("place", &self.place),
            ("time", &self.time),
            ("conflicts", &self.conflicts),
            ("directions", &self.directions),
            ("boxes", &self.boxes),
            ("revocations", &self.revocations),
            ("people", &self.people),
            ("places", &self.places),
            ("notifications", &self.notifications),
            ("alerts", &self.alerts),
            ("pending", &self.pending),
            ("readings", &self.readings),
        ]
    }
}
