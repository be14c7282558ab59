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
//! # Layout on sled
//! - `events`: `box 0x00 seq(u64 BE)` → the event record (JSON, as received).
//! - `ids`: event id (16 bytes) → primary key, for deduplication on the id.
//! - `person`: `subject 0x00 ts pk` → (), `place`: `checkpoint 0x00 ts pk` → (),
//!   `time`: `ts pk` → (); `ts` is the event time in Unix milliseconds, sign bit flipped, BE,
//!   so keys sort by time.
//! - `conflicts`: event id → the conflicting record.
//! - `boxes`: box id → [`SeqState`] (JSON): what central holds of the box's sequence.
//! - `revocations`: subject → revocation cut-off (Unix seconds, u32 BE).
//! - `people`, `places`: the roster (JSON), replaced as a whole on import.
//!
//! Index entries are written before the primary record and all trees are flushed before
//! `insert` returns; after a crash in between, a dangling index entry points at nothing and is
//! skipped, and the box resends the event because it was never acked.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use checkpoint_protocol::ids::{BoxId, CheckpointId, SubjectId};
use checkpoint_protocol::records::{self, Event};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::roster::{Person, Place};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("store: corrupt record under {key}: {message}")]
    Corrupt { key: String, message: String },
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
        while self.above.remove(&(self.contiguous + 1)) {
            self.contiguous += 1;
        }
    }

    /// Missing sequence numbers as inclusive ranges, below the highest one seen.
    pub fn gaps(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut next = self.contiguous + 1;
        for &s in &self.above {
            if s > next {
                out.push((next, s - 1));
            }
            next = s + 1;
        }
        out
    }

    /// Gives up on the gap `first..=last` (below the highest sequence number seen): it is
    /// recorded as lost and the contiguous mark moves past it.
    pub fn skip(&mut self, first: u64, last: u64) {
        if first != self.contiguous + 1 || last < first {
            return;
        }
        self.lost.push((first, last));
        if self.lost.len() > 100 {
            self.lost.remove(0);
        }
        self.contiguous = last;
        while self.above.remove(&(self.contiguous + 1)) {
            self.contiguous += 1;
        }
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
    /// Events with `from_ms <= ts < to_ms`, in time order, at most `limit`.
    fn by_time(&self, from_ms: i64, to_ms: i64, limit: usize) -> Result<Vec<Event>, StoreError>;
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
    fn places(&self) -> Result<Vec<Place>, StoreError>;
    /// Records the box's gap `first..=last` as lost (see [`SeqState::skip`]).
    fn mark_lost(&self, box_id: &BoxId, first: u64, last: u64) -> Result<SeqState, StoreError>;
    fn len(&self) -> Result<u64, StoreError>;
    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
}

fn ts_key(ms: i64) -> [u8; 8] {
    ((ms as u64) ^ (1 << 63)).to_be_bytes()
}

pub fn event_ms(e: &Event) -> i64 {
    i64::try_from(e.ts.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn primary(box_id: &BoxId, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(box_id.as_str().len() + 9);
    k.extend_from_slice(box_id.as_str().as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
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
    events: sled::Tree,
    ids: sled::Tree,
    person: sled::Tree,
    place: sled::Tree,
    time: sled::Tree,
    conflicts: sled::Tree,
    boxes: sled::Tree,
    revocations: sled::Tree,
    people: sled::Tree,
    places: sled::Tree,
    /// Serialises inserts so duplicate checks and sequence states stay consistent.
    write: std::sync::Mutex<()>,
}

impl SledStore {
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .open()?;
        Ok(SledStore {
            events: db.open_tree("events")?,
            ids: db.open_tree("ids")?,
            person: db.open_tree("person")?,
            place: db.open_tree("place")?,
            time: db.open_tree("time")?,
            conflicts: db.open_tree("conflicts")?,
            boxes: db.open_tree("boxes")?,
            revocations: db.open_tree("revocations")?,
            people: db.open_tree("people")?,
            places: db.open_tree("places")?,
            db,
            write: std::sync::Mutex::new(()),
        })
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
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let mut out = Vec::new();
        for item in tree.range(from..to) {
            if out.len() >= limit {
                break;
            }
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

    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

impl Store for SledStore {
    fn insert(&self, events: &[Event]) -> Result<Vec<Inserted>, StoreError> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(events.len());
        let (mut primary_b, mut ids_b, mut person_b, mut place_b, mut time_b, mut conflict_b) = (
            sled::Batch::default(),
            sled::Batch::default(),
            sled::Batch::default(),
            sled::Batch::default(),
            sled::Batch::default(),
            sled::Batch::default(),
        );
        let mut states: std::collections::HashMap<BoxId, SeqState> =
            std::collections::HashMap::new();
        let mut in_batch: HashSet<Vec<u8>> = HashSet::new();
        let mut ids_in_batch: HashSet<uuid::Uuid> = HashSet::new();
        for e in events {
            let pk = primary(&e.box_id, e.seq);
            let id = *e.id.as_bytes();
            let taken_by = match self.events.get(&pk)? {
                Some(v) => Some(self.decode(&pk, &v)?.id),
                None => None,
            };
            let outcome = match taken_by {
                Some(existing) if existing == e.id => Inserted::Duplicate,
                Some(_) => Inserted::Conflict,
                None if in_batch.contains(&pk) => {
                    if ids_in_batch.contains(&e.id) {
                        Inserted::Duplicate
                    } else {
                        Inserted::Conflict
                    }
                }
                None if self.ids.contains_key(id)? => Inserted::Duplicate,
                None => Inserted::New,
            };
            match outcome {
                Inserted::New => {
                    let ms = event_ms(e);
                    let bytes = records::encode(e);
                    if let Some(s) = &e.subject {
                        person_b.insert(index_key(s.as_str().as_bytes(), ms, &pk), &[] as &[u8]);
                    }
                    place_b.insert(
                        index_key(e.checkpoint.as_str().as_bytes(), ms, &pk),
                        &[] as &[u8],
                    );
                    let mut tk = ts_key(ms).to_vec();
                    tk.extend_from_slice(&pk);
                    time_b.insert(tk, &[] as &[u8]);
                    ids_b.insert(&id, pk.clone());
                    primary_b.insert(pk.clone(), bytes);
                    in_batch.insert(pk);
                    ids_in_batch.insert(e.id);
                    let st = match states.get_mut(&e.box_id) {
                        Some(st) => st,
                        None => {
                            let loaded = self.seq_state(&e.box_id)?;
                            states.entry(e.box_id.clone()).or_insert(loaded)
                        }
                    };
                    st.add(e.seq);
                }
                Inserted::Conflict => {
                    conflict_b.insert(&id, records::encode(e));
                }
                Inserted::Duplicate => {}
            }
            out.push(outcome);
        }
        let mut boxes_b = sled::Batch::default();
        for (b, st) in &states {
            let json = serde_json::to_vec(st).map_err(|e| StoreError::Corrupt {
                key: b.to_string(),
                message: e.to_string(),
            })?;
            boxes_b.insert(b.as_str().as_bytes(), json);
        }
        // Indexes first, the primary records last: see the module documentation.
        self.person.apply_batch(person_b)?;
        self.place.apply_batch(place_b)?;
        self.time.apply_batch(time_b)?;
        self.ids.apply_batch(ids_b)?;
        self.conflicts.apply_batch(conflict_b)?;
        self.boxes.apply_batch(boxes_b)?;
        self.events.apply_batch(primary_b)?;
        self.db.flush()?;
        Ok(out)
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
            usize::MAX,
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
            usize::MAX,
        )
    }

    fn by_time(&self, from_ms: i64, to_ms: i64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.through(
            &self.time,
            ts_key(from_ms).to_vec(),
            ts_key(to_ms).to_vec(),
            8,
            limit,
        )
    }

    fn seq_states(&self) -> Result<Vec<(BoxId, SeqState)>, StoreError> {
        let mut out = Vec::new();
        for item in self.boxes.iter() {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let corrupt = |message: String| StoreError::Corrupt {
                key: key.clone(),
                message,
            };
            let b = BoxId::new(key.clone()).map_err(|e| corrupt(e.to_string()))?;
            let st: SeqState = serde_json::from_slice(&v).map_err(|e| corrupt(e.to_string()))?;
            out.push((b, st));
        }
        Ok(out)
    }

    fn revoke(&self, subject: &SubjectId, issued_before: u32) -> Result<(), StoreError> {
        self.revocations
            .insert(subject.as_str().as_bytes(), &issued_before.to_be_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    fn revocations(&self) -> Result<Vec<(SubjectId, u32)>, StoreError> {
        let mut out = Vec::new();
        for item in self.revocations.iter() {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let subject = SubjectId::new(key.clone()).map_err(|e| StoreError::Corrupt {
                key: key.clone(),
                message: e.to_string(),
            })?;
            let cut = <[u8; 4]>::try_from(v.as_ref()).map_err(|_| StoreError::Corrupt {
                key,
                message: "revocation is not 4 bytes".into(),
            })?;
            out.push((subject, u32::from_be_bytes(cut)));
        }
        Ok(out)
    }

    fn replace_people(&self, people: &[Person]) -> Result<(), StoreError> {
        self.replace_all(&self.people, people.iter().map(|p| (p.id.as_str(), p)))
    }

    fn replace_places(&self, places: &[Place]) -> Result<(), StoreError> {
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
}

impl SledStore {
    /// Replaces a tree's whole content with one atomic batch.
    fn replace_all<'a, T: Serialize + 'a>(
        &self,
        tree: &sled::Tree,
        items: impl Iterator<Item = (&'a str, &'a T)>,
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        let mut keep = HashSet::new();
        for (k, v) in items {
            let json = serde_json::to_vec(v).map_err(|e| StoreError::Corrupt {
                key: k.to_string(),
                message: e.to_string(),
            })?;
            batch.insert(k.as_bytes(), json);
            keep.insert(k.as_bytes().to_vec());
        }
        for item in tree.iter() {
            let (k, _) = item?;
            if !keep.contains(k.as_ref()) {
                batch.remove(k);
            }
        }
        tree.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    fn all<T: DeserializeOwned>(tree: &sled::Tree) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        for item in tree.iter() {
            let (k, v) = item?;
            out.push(serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                message: e.to_string(),
            })?);
        }
        Ok(out)
    }

    fn seq_state(&self, b: &BoxId) -> Result<SeqState, StoreError> {
        match self.boxes.get(b.as_str().as_bytes())? {
            Some(v) => serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                key: b.to_string(),
                message: e.to_string(),
            }),
            None => Ok(SeqState::default()),
        }
    }
}

#[cfg(test)]
mod tests;
