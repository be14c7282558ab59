//! Reading and replacing the store's small trees: roster, revocations, sequence states, and
//! the derived `directions`.

use std::collections::{HashMap, HashSet};

use checkpoint_protocol::ids::{BoxId, SubjectId};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{direction_bit, SledStore};
use crate::store::{SeqState, StoreError};

impl SledStore {
    /// Derives `directions` from every stored event (a store written before it existed).
    pub(super) fn rebuild_directions(&self) -> Result<(), StoreError> {
        tracing::info!(events = self.events.len(), "deriving checkpoint directions");
        let mut seen: HashMap<Vec<u8>, u8> = HashMap::new();
        for item in self.events.iter() {
            let (k, v) = item?;
            let e = self.decode(&k, &v)?;
            *seen
                .entry(e.checkpoint.as_str().as_bytes().to_vec())
                .or_default() |= direction_bit(e.direction);
        }
        let mut batch = sled::Batch::default();
        for (cp, bits) in seen {
            batch.insert(cp, &[bits]);
        }
        self.directions.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    pub(super) fn all_seq_states(&self) -> Result<Vec<(BoxId, SeqState)>, StoreError> {
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

    pub(super) fn all_revocations(&self) -> Result<Vec<(SubjectId, u32)>, StoreError> {
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

    /// Replaces a tree's whole content with one atomic batch.
    pub(super) fn replace_all<'a, T: Serialize + 'a>(
        &self,
        tree: &sled::Tree,
        items: impl Iterator<Item = (&'a str, &'a T)>,
    ) -> Result<(), StoreError> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
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

    /// Writes one JSON value under `key` and flushes.
    pub(super) fn put_json<T: Serialize>(
        &self,
        tree: &sled::Tree,
        key: &[u8],
        v: &T,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_vec(v).map_err(|e| StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            message: e.to_string(),
        })?;
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        tree.insert(key, json)?;
        self.db.flush()?;
        Ok(())
    }

    pub(super) fn all<T: DeserializeOwned>(tree: &sled::Tree) -> Result<Vec<T>, StoreError> {
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

    pub(super) fn seq_state(&self, b: &BoxId) -> Result<SeqState, StoreError> {
        match self.boxes.get(b.as_str().as_bytes())? {
            Some(v) => serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                key: b.to_string(),
                message: e.to_string(),
            }),
            None => Ok(SeqState::default()),
        }
    }

    pub(super) fn put_notification_record(
        &self,
        n: &crate::alerts::log::NotificationRecord,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_vec(n).map_err(|e| StoreError::Corrupt {
            key: n.alert_key.clone(),
            message: e.to_string(),
        })?;
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        self.notifications.insert(n.id.to_be_bytes(), json)?;
        self.db.flush()?;
        Ok(())
    }

    pub(super) fn latest_notifications(
        &self,
        limit: usize,
    ) -> Result<Vec<crate::alerts::log::NotificationRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.notifications.iter().rev().take(limit) {
            let (k, v) = item?;
            out.push(serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                key: format!("notification {k:?}"),
                message: e.to_string(),
            })?);
        }
        Ok(out)
    }
}
