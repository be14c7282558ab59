//! Covering index values: each `person` and `place` entry carries what tracing needs of its
//! event (a [`Scan`]), so contact and occupancy queries read index ranges only, never the
//! events themselves.
//!
//! Value: `1`, direction (0 in, 1 out), admitted (0/1), subject length, subject, checkpoint
//! length, checkpoint. An empty value (a store written before values existed) falls back to
//! reading the event.

use checkpoint_protocol::ids::{CheckpointId, SubjectId};
use checkpoint_protocol::records::{Decision, Direction, Event};

use super::SledStore;
use crate::store::StoreError;
use crate::trace::Scan;

const VERSION: u8 = 1;

/// The index value of `e`.
pub(super) fn value(e: &Event) -> Vec<u8> {
    let subject = e.subject.as_ref().map(|s| s.as_str()).unwrap_or_default();
    let cp = e.checkpoint.as_str();
    let mut v = Vec::with_capacity(5 + subject.len() + cp.len());
    v.push(VERSION);
    v.push(u8::from(e.direction == Direction::Out));
    v.push(u8::from(e.decision == Decision::Admit));
    // Ids are at most 64 bytes (validated), so a length fits a byte.
    v.push(subject.len() as u8);
    v.extend_from_slice(subject.as_bytes());
    v.push(cp.len() as u8);
    v.extend_from_slice(cp.as_bytes());
    v
}

/// The scan an index value describes; `Ok(None)` for an event without a subject.
fn decode(v: &[u8], ts_ms: i64) -> Result<Option<Scan>, String> {
    let [version, dir, admitted, rest @ ..] = v else {
        return Err("short index value".into());
    };
    if *version != VERSION {
        return Err(format!("index value version {version}"));
    }
    let (subject, rest) = take(rest)?;
    let (cp, _) = take(rest)?;
    if subject.is_empty() {
        return Ok(None);
    }
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|e| e.to_string());
    Ok(Some(Scan {
        subject: SubjectId::new(text(subject)?).map_err(|e| e.to_string())?,
        checkpoint: CheckpointId::new(text(cp)?).map_err(|e| e.to_string())?,
        direction: if *dir == 1 {
            Direction::Out
        } else {
            Direction::In
        },
        admitted: *admitted == 1,
        ts_ms,
    }))
}

fn take(b: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let (&n, rest) = b.split_first().ok_or("short index value")?;
    if rest.len() < n as usize {
        return Err("short index value".into());
    }
    Ok(rest.split_at(n as usize))
}

impl SledStore {
    /// Scans through an index range; `skip` is the prefix length plus the separator and the
    /// 8 time bytes, so the time is the 8 bytes before it.
    pub(super) fn scans_through(
        &self,
        tree: &sled::Tree,
        from: Vec<u8>,
        to: Vec<u8>,
        skip: usize,
    ) -> Result<Vec<Scan>, StoreError> {
        let mut out = Vec::new();
        for item in tree.range(from..to) {
            let (k, v) = item?;
            let corrupt = |message: String| StoreError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                message,
            };
            if v.is_empty() {
                let pk = k.get(skip..).unwrap_or_default();
                if let Some(ev) = self.events.get(pk)? {
                    out.extend(Scan::of(&self.decode(pk, &ev)?));
                }
                continue;
            }
            let ts: [u8; 8] = k
                .get(skip.saturating_sub(8)..skip)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| corrupt("index key too short".into()))?;
            let ts_ms = (u64::from_be_bytes(ts) ^ (1 << 63)) as i64;
            out.extend(decode(&v, ts_ms).map_err(corrupt)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_garbage_is_an_error() {
        let e: Event = serde_json::from_value(serde_json::json!({
            "schema": 1, "id": "0190a4f4-3c2a-7c3e-9d6e-2f1a3b4c5d6e", "seq": 1,
            "site": "s", "box": "b", "checkpoint": "lib", "direction": "out", "method": "qr",
            "subject": "p-1", "dependants": [], "pass_status": "green", "decision": "deny",
            "reason": "fever", "flags": [], "temperature_c": 38.0,
            "ts": "2026-11-23T08:00:00Z", "clock_synced": true
        }))
        .unwrap();
        let s = decode(&value(&e), 42).unwrap().unwrap();
        assert_eq!(
            s,
            Scan {
                ts_ms: 42,
                ..Scan::of(&e).unwrap()
            }
        );
        assert!(decode(&[1, 0], 0).is_err());
        assert!(decode(&[2, 0, 0, 0, 0], 0).is_err());
        assert!(decode(&[1, 0, 0, 9, b'a'], 0).is_err());
        assert_eq!(decode(&[1, 0, 0, 0, 3, b'l', b'i', b'b'], 0), Ok(None));
    }
}
