//! Events and scans back from the SQL backends' rows: the column order both backends select
//! ([`EVENT_COLUMNS`], [`SCAN_COLUMNS`]) and one decoder over either row type.

use checkpoint_protocol::ids::{CheckpointId, SubjectId};
use checkpoint_protocol::records::{Event, Schema};
use time::OffsetDateTime;

use super::{codes, StoreError};
use crate::trace::Scan;

/// What [`event_of`] reads, in its order, over `events e` joined with its names as `b` (boxes),
/// `s` (sites), `c` (checkpoints) and `u` (subjects, a left join).
pub const EVENT_COLUMNS: &str = "e.id, b.name, e.seq, e.ts, e.ts_ns, s.name, c.name, \
     e.direction, e.method, u.name, e.dependants, e.pass_status, e.decision, e.reason, e.flags, \
     e.temperature, e.clock_synced, e.received";
/// The joins [`EVENT_COLUMNS`] needs.
pub const EVENT_JOINS: &str = "JOIN boxes b ON b.id = e.box JOIN sites s ON s.id = e.site \
     JOIN checkpoints c ON c.id = e.checkpoint LEFT JOIN subjects u ON u.id = e.subject";
/// What [`scan_of`] reads over `passes p` joined with `u` (subjects) and `c` (checkpoints).
pub const SCAN_COLUMNS: &str = "u.name, c.name, p.direction, p.admitted, p.ts";
pub const SCAN_JOINS: &str =
    "JOIN subjects u ON u.id = p.subject JOIN checkpoints c ON c.id = p.checkpoint";

/// A result row of either backend, by column index.
pub trait Cols {
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    fn text(&self, i: usize) -> Result<Option<String>, StoreError>;
    fn bytes(&self, i: usize) -> Result<Vec<u8>, StoreError>;
    fn real(&self, i: usize) -> Result<Option<f64>, StoreError>;
    fn flag(&self, i: usize) -> Result<bool, StoreError>;
}

fn corrupt(what: &str, message: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: what.to_string(),
        message: message.to_string(),
    }
}

fn need<T>(v: Option<T>, what: &str) -> Result<T, StoreError> {
    v.ok_or_else(|| corrupt(what, "NULL where a value belongs"))
}

/// One row of [`EVENT_COLUMNS`] as the event the box sent, and when central received it.
pub fn event_of(r: &impl Cols) -> Result<(Event, i64), StoreError> {
    let box_name = need(r.text(1)?, "events.box")?;
    let seq = need(r.int(2)?, "events.seq")?;
    let key = format!("events/{box_name}/{seq}");
    let ms = need(r.int(3)?, &key)?;
    let nanos = i128::from(ms) * 1_000_000 + i128::from(r.int(4)?.unwrap_or(0));
    let code = |i: usize| -> Result<i64, StoreError> { need(r.int(i)?, &key) };
    let event = Event {
        schema: Schema,
        id: uuid::Uuid::from_slice(&r.bytes(0)?).map_err(|e| corrupt(&key, e))?,
        seq: u64::try_from(seq).map_err(|e| corrupt(&key, e))?,
        site: need(r.text(5)?, &key)?
            .parse()
            .map_err(|e| corrupt(&key, e))?,
        box_id: box_name.parse().map_err(|e| corrupt(&key, e))?,
        checkpoint: CheckpointId::new(need(r.text(6)?, &key)?).map_err(|e| corrupt(&key, e))?,
        direction: codes::to_direction(code(7)?)?,
        method: codes::to_method(code(8)?)?,
        subject: r
            .text(9)?
            .map(SubjectId::new)
            .transpose()
            .map_err(|e| corrupt(&key, e))?,
        dependants: r
            .text(10)?
            .iter()
            .flat_map(|d| d.split(','))
            .map(|d| SubjectId::new(d).map_err(|e| corrupt(&key, e)))
            .collect::<Result<_, _>>()?,
        pass_status: r.int(11)?.map(codes::to_status).transpose()?,
        decision: codes::to_decision(code(12)?)?,
        reason: codes::to_reason(code(13)?)?,
        flags: codes::to_flags(code(14)?)?,
        temperature_c: r.real(15)?.map(|t| t as f32),
        ts: OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|e| corrupt(&key, e))?,
        clock_synced: r.flag(16)?,
    };
    Ok((event, need(r.int(17)?, &key)?))
}

/// One row of [`SCAN_COLUMNS`].
pub fn scan_of(r: &impl Cols) -> Result<Scan, StoreError> {
    Ok(Scan {
        subject: SubjectId::new(need(r.text(0)?, "passes.subject")?)
            .map_err(|e| corrupt("subjects", e))?,
        checkpoint: CheckpointId::new(need(r.text(1)?, "passes.checkpoint")?)
            .map_err(|e| corrupt("checkpoints", e))?,
        direction: codes::to_direction(need(r.int(2)?, "passes.direction")?)?,
        admitted: r.flag(3)?,
        ts_ms: need(r.int(4)?, "passes.ts")?,
    })
}

impl Cols for rusqlite::Row<'_> {
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.get(i)?)
    }
    fn text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.get(i)?)
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        Ok(self.get(i)?)
    }
    fn real(&self, i: usize) -> Result<Option<f64>, StoreError> {
        Ok(self.get(i)?)
    }
    fn flag(&self, i: usize) -> Result<bool, StoreError> {
        Ok(self.get(i)?)
    }
}
