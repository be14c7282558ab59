//! Storing a batch of events: deduplication on the primary key and the event id, index entries
//! first and the primary records last (see the module documentation of `on_sled`).

use std::collections::{HashMap, HashSet};

use checkpoint_protocol::ids::BoxId;
use checkpoint_protocol::records::{self, Event};

use super::{direction_bit, index_key, primary, scans, ts_key, SledStore};
use crate::store::{event_ms, Inserted, SeqState, StoreError};

impl SledStore {
    pub(super) fn insert_events(&self, events: &[Event]) -> Result<Vec<Inserted>, StoreError> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(events.len());
        let mut readings_b = sled::Batch::default();
        let (mut primary_b, mut ids_b, mut person_b, mut place_b, mut time_b, mut conflict_b) = (
            sled::Batch::default(),
            sled::Batch::default(),
            sled::Batch::default(),
            sled::Batch::default(),
            sled::Batch::default(),
            sled::Batch::default(),
        );
        let mut states: HashMap<BoxId, SeqState> = HashMap::new();
        let mut in_batch: HashSet<Vec<u8>> = HashSet::new();
        let mut ids_in_batch: HashSet<uuid::Uuid> = HashSet::new();
        let mut directions: HashMap<&[u8], u8> = HashMap::new();
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
                // An id entry whose primary record is missing is what a crash between the
                // index writes and the primary write leaves: the resent event completes it.
                None => match self.ids.get(id)? {
                    Some(other) if other.as_ref() != pk.as_slice() => {
                        if self.events.contains_key(&other)? {
                            Inserted::Duplicate
                        } else {
                            Inserted::New
                        }
                    }
                    _ => Inserted::New,
                },
            };
            match outcome {
                Inserted::New => {
                    let ms = event_ms(e);
                    let bytes = records::encode(e);
                    if let Some(s) = &e.subject {
                        person_b.insert(index_key(s.as_str().as_bytes(), ms, &pk), scans::value(e));
                    }
                    place_b.insert(
                        index_key(e.checkpoint.as_str().as_bytes(), ms, &pk),
                        scans::value(e),
                    );
                    let mut tk = ts_key(ms).to_vec();
                    tk.extend_from_slice(&pk);
                    time_b.insert(tk, &[] as &[u8]);
                    if e.temperature_c.is_some() {
                        readings_b.insert(pk.clone(), &[] as &[u8]);
                    }
                    ids_b.insert(&id, pk.clone());
                    primary_b.insert(pk.clone(), bytes);
                    in_batch.insert(pk);
                    ids_in_batch.insert(e.id);
                    *directions
                        .entry(e.checkpoint.as_str().as_bytes())
                        .or_default() |= direction_bit(e.direction);
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
        let mut directions_b = sled::Batch::default();
        for (cp, bits) in directions {
            let old = self
                .directions
                .get(cp)?
                .and_then(|v| v.first().copied())
                .unwrap_or(0);
            if old | bits != old {
                directions_b.insert(cp, &[old | bits]);
            }
        }
        // Indexes first, the primary records last: see the module documentation.
        self.directions.apply_batch(directions_b)?;
        self.person.apply_batch(person_b)?;
        self.place.apply_batch(place_b)?;
        self.time.apply_batch(time_b)?;
        self.readings.apply_batch(readings_b)?;
        self.ids.apply_batch(ids_b)?;
        self.conflicts.apply_batch(conflict_b)?;
        self.boxes.apply_batch(boxes_b)?;
        self.events.apply_batch(primary_b)?;
        self.db.flush()?;
        Ok(out)
    }
}
