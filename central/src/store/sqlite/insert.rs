//! Writes: a batch of events in one transaction, retention, the roster, documents, restore.
//!
//! Long on purpose: the batch insert is one transaction whose statements (events, passes, readings,
//! stays) only make sense read together; retention and restore sit beside it because they keep the
//! same tables consistent.

use std::collections::HashMap;

use checkpoint_protocol::ids::BoxId;
use checkpoint_protocol::records::{Decision, Event};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::{Interned, Writer};
use crate::roster::{Person, Place};
use crate::store::portable::{Item, Received};
use crate::store::{codes, Doc, Docs, Inserted, SeqState, StoreError};
use crate::store::{direction_bit, split_ts};

/// The writer's cache of interned names (a name's number never changes once committed) and of
/// the direction bits already recorded per checkpoint. Cleared when a transaction fails, since
/// what it added may be gone.
#[derive(Debug, Default)]
pub(in crate::store) struct Names {
    ids: HashMap<(Interned, String), i64>,
    directions: HashMap<i64, i64>,
}

impl Names {
    pub(in crate::store) fn clear(&mut self) {
        self.ids.clear();
        self.directions.clear();
    }

    pub(in crate::store) fn id(
        &mut self,
        tx: &Connection,
        kind: Interned,
        name: &str,
    ) -> Result<i64, StoreError> {
        if let Some(id) = self.ids.get(&(kind, name.to_string())) {
            return Ok(*id);
        }
        let table = kind.table();
        let found: Option<i64> = tx
            .prepare_cached(&format!("SELECT id FROM {table} WHERE name = ?1"))?
            .query_row([name], |r| r.get(0))
            .optional()?;
        let id = match found {
            Some(id) => id,
            None => {
                tx.prepare_cached(&format!("INSERT INTO {table} (name) VALUES (?1)"))?
                    .execute([name])?;
                tx.last_insert_rowid()
            }
        };
        self.ids.insert((kind, name.to_string()), id);
        Ok(id)
    }

    /// Records that `direction_bit` was seen at the checkpoint `cp`.
    fn direction(&mut self, tx: &Connection, cp: i64, bit: i64) -> Result<(), StoreError> {
        let known = match self.directions.get(&cp) {
            Some(d) => *d,
            None => tx
                .prepare_cached("SELECT directions FROM checkpoints WHERE id = ?1")?
                .query_row([cp], |r| r.get(0))?,
        };
        if known & bit == 0 {
            tx.prepare_cached("UPDATE checkpoints SET directions = directions | ?1 WHERE id = ?2")?
                .execute(params![bit, cp])?;
        }
        self.directions.insert(cp, known | bit);
        Ok(())
    }
}

fn seq_of(e: &Event) -> Result<i64, StoreError> {
    i64::try_from(e.seq).map_err(|_| StoreError::Refused(format!("seq {} is beyond 2^63", e.seq)))
}

fn event_json(e: &Event) -> Result<String, StoreError> {
    serde_json::to_string(e).map_err(|err| StoreError::Corrupt {
        key: format!("{}/{}", e.box_id, e.seq),
        message: err.to_string(),
    })
}

pub(in crate::store) fn put_seq_state(
    tx: &Connection,
    b: &BoxId,
    st: &SeqState,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(st).map_err(|e| StoreError::Corrupt {
        key: format!("sequences/{b}"),
        message: e.to_string(),
    })?;
    tx.prepare_cached(
        "INSERT INTO sequences (box, state) VALUES (?1, ?2) \
         ON CONFLICT (box) DO UPDATE SET state = excluded.state",
    )?
    .execute(params![b.as_str(), json])?;
    Ok(())
}

/// Writes one event with its passes, unless its `(box, seq)` or its id is taken.
fn store_event(
    tx: &Connection,
    names: &mut Names,
    e: &Event,
    received_ms: i64,
) -> Result<Inserted, StoreError> {
    let box_no = names.id(tx, Interned::Box, e.box_id.as_str())?;
    let seq = seq_of(e)?;
    let (ms, ns) = split_ts(e);
    let site = names.id(tx, Interned::Site, e.site.as_str())?;
    let cp = names.id(tx, Interned::Checkpoint, e.checkpoint.as_str())?;
    let subject = match &e.subject {
        Some(s) => Some(names.id(tx, Interned::Subject, s.as_str())?),
        None => None,
    };
    let dependants = if e.dependants.is_empty() {
        None
    } else {
        Some(
            e.dependants
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(","),
        )
    };
    // The unique indexes decide: a new event goes in; one whose (box, seq) or id is taken is
    // ignored, and only then is it looked at (a duplicate, or another id on its (box, seq)).
    let stored = tx
        .prepare_cached(
        "INSERT OR IGNORE INTO events (id, box, seq, ts, ts_ns, received, site, checkpoint, direction, \
         method, subject, dependants, pass_status, decision, reason, flags, temperature, \
         clock_synced) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, \
         ?15, ?16, ?17, ?18)",
    )?
    .execute(params![
        &e.id.as_bytes()[..],
        box_no,
        seq,
        ms,
        (ns != 0).then_some(ns),
        received_ms,
        site,
        cp,
        codes::direction(e.direction),
        codes::method(e.method),
        subject,
        dependants,
        e.pass_status.map(codes::status),
        codes::decision(e.decision),
        codes::reason(e.reason),
        codes::flags(&e.flags),
        e.temperature_c.map(f64::from),
        e.clock_synced,
    ])?;
    if stored == 0 {
        let held: Option<Vec<u8>> = tx
            .prepare_cached("SELECT id FROM events WHERE box = ?1 AND seq = ?2")?
            .query_row(params![box_no, seq], |r| r.get(0))
            .optional()?;
        return match held {
            Some(id) if id != e.id.as_bytes() => {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO conflicts (id, received, record) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![
                    &e.id.as_bytes()[..],
                    received_ms,
                    event_json(e)?
                ])?;
                Ok(Inserted::Conflict)
            }
            // The same event, under its (box, seq) or (sent again under another) its id.
            _ => Ok(Inserted::Duplicate),
        };
    }
    let pk = tx.last_insert_rowid();
    let admitted = e.decision == Decision::Admit;
    let mut people = Vec::with_capacity(1 + e.dependants.len());
    if let Some(s) = subject {
        people.push(s);
    }
    for d in &e.dependants {
        people.push(names.id(tx, Interned::Subject, d.as_str())?);
    }
    let direction = codes::direction(e.direction);
    for who in people {
        let until = if admitted {
            link_stay(tx, who, cp, ms, pk, direction)?
        } else {
            None
        };
        tx.prepare_cached(
            "INSERT OR IGNORE INTO passes (subject, ts, event, checkpoint, direction, admitted, \
             until) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![who, ms, pk, cp, direction, admitted, until])?;
    }
    names.direction(tx, cp, direction_bit(e.direction))?;
    if e.temperature_c.is_some() {
        tx.prepare_cached("INSERT OR IGNORE INTO readings (event) VALUES (?1)")?
            .execute([pk])?;
    }
    Ok(Inserted::New)
}

/// Keeps the stays true for a new admitted pass `(who, ms, pk)` at `cp`, before it is written:
/// the same person's previous admitted pass there, if an `in`, now ends here; returns when this
/// one ends if it is an `in` (the next admitted pass there, when one arrived earlier: a backlog).
/// Order is `(ts, event)`, as the reads give it.
fn link_stay(
    tx: &Connection,
    who: i64,
    cp: i64,
    ms: i64,
    pk: i64,
    direction: i64,
) -> Result<Option<i64>, StoreError> {
    let before: Option<(i64, i64, i64, Option<i64>)> = tx
        .prepare_cached(
            "SELECT ts, event, direction, until FROM passes WHERE subject = ?1 AND ts <= ?3 \
             AND (ts < ?3 OR event < ?4) AND checkpoint = ?2 AND admitted \
             ORDER BY ts DESC, event DESC LIMIT 1",
        )?
        .query_row(params![who, cp, ms, pk], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let in_code = codes::direction(checkpoint_protocol::records::Direction::In);
    let mut next = None;
    let mut next_known = false;
    if let Some((ts, event, d, until)) = before {
        if d == in_code {
            tx.prepare_cached(
                "UPDATE passes SET until = ?4 WHERE subject = ?1 AND ts = ?2 AND event = ?3",
            )?
            .execute(params![who, ts, event, ms])?;
            // What ended that stay, if anything did, comes after this pass.
            next = until;
            next_known = true;
        }
    }
    if direction != in_code {
        return Ok(None);
    }
    if !next_known {
        next = tx
            .prepare_cached(
                "SELECT ts FROM passes WHERE subject = ?1 AND ts >= ?3 AND (ts > ?3 OR event > ?4) \
                 AND checkpoint = ?2 AND admitted ORDER BY ts, event LIMIT 1",
            )?
            .query_row(params![who, cp, ms, pk], |r| r.get(0))
            .optional()?;
    }
    Ok(next)
}

/// One batch, one transaction, committed durably before it returns.
pub(super) fn insert(
    w: &mut Writer,
    events: &[Event],
    received_ms: i64,
) -> Result<Vec<Inserted>, StoreError> {
    let result = (|| {
        // Durable before the ack, whatever a lighter write before set.
        w.conn.pragma_update(None, "synchronous", "FULL")?;
        let tx = w
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut out = Vec::with_capacity(events.len());
        let mut states: HashMap<BoxId, SeqState> = HashMap::new();
        for e in events {
            let r = store_event(&tx, &mut w.names, e, received_ms)?;
            if r == Inserted::New {
                let st = match states.entry(e.box_id.clone()) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(super::SqliteStore::seq_state_of(&tx, &e.box_id)?)
                    }
                };
                st.add(e.seq);
            }
            out.push(r);
        }
        for (b, st) in &states {
            put_seq_state(&tx, b, st)?;
        }
        tx.commit()?;
        Ok(out)
    })();
    if result.is_err() {
        w.names.clear();
    }
    result
}

pub(in crate::store) fn people(tx: &Connection, people: &[Person]) -> Result<(), StoreError> {
    let mut st = tx.prepare_cached(
        "INSERT OR REPLACE INTO people (id, number, name, department, class, counsellor, \
         department_head, wecom_id, email) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for p in people {
        st.execute(params![
            p.id,
            p.number,
            p.name,
            p.department,
            p.class,
            p.counsellor,
            p.department_head,
            p.wecom_id,
            p.email
        ])?;
    }
    Ok(())
}

pub(in crate::store) fn places(tx: &Connection, places: &[Place]) -> Result<(), StoreError> {
    let mut st = tx.prepare_cached(
        "INSERT OR REPLACE INTO places (checkpoint, name, building, capacity, manager) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for p in places {
        st.execute(params![
            p.checkpoint,
            p.name,
            p.building,
            p.capacity,
            p.manager
        ])?;
    }
    Ok(())
}

pub(in crate::store) fn put_doc(tx: &Connection, kind: Docs, d: &Doc) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO docs (kind, key, ord, time_ms, record) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![kind.code(), d.key, d.ord, d.time_ms, d.json])?;
    Ok(())
}

/// A stored event as purge sees it.
struct Victim {
    pk: i64,
    ts: i64,
    subject: Option<i64>,
    dependants: Option<String>,
}

/// Deletes up to `max` of the oldest stored events if central received them before `cutoff_ms`
/// (in the order stored, stopping at the first one received later), with their passes and
/// readings; conflicts and notification records as old; one transaction.
pub(super) fn purge(conn: &mut Connection, cutoff_ms: i64, max: usize) -> Result<u64, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let limit = i64::try_from(max).unwrap_or(i64::MAX);
    let victims: Vec<Victim> = {
        let mut st = tx.prepare_cached(
            "SELECT pk, ts, subject, dependants, received FROM events ORDER BY pk LIMIT ?1",
        )?;
        let rows = st.query_map([limit], |r| {
            Ok((
                Victim {
                    pk: r.get(0)?,
                    ts: r.get(1)?,
                    subject: r.get(2)?,
                    dependants: r.get(3)?,
                },
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut v = Vec::new();
        for row in rows {
            let (victim, received) = row?;
            if received >= cutoff_ms {
                break;
            }
            v.push(victim);
        }
        v
    };
    let mut n = 0u64;
    for Victim {
        pk,
        ts,
        subject,
        dependants,
    } in &victims
    {
        let mut who: Vec<i64> = subject.iter().copied().collect();
        for d in dependants.iter().flat_map(|d| d.split(',')) {
            let id: Option<i64> = tx
                .prepare_cached("SELECT id FROM subjects WHERE name = ?1")?
                .query_row([d], |r| r.get(0))
                .optional()?;
            who.extend(id);
        }
        for s in who {
            tx.prepare_cached("DELETE FROM passes WHERE subject = ?1 AND ts = ?2 AND event = ?3")?
                .execute(params![s, ts, pk])?;
        }
        tx.prepare_cached("DELETE FROM readings WHERE event = ?1")?
            .execute([pk])?;
        tx.prepare_cached("DELETE FROM events WHERE pk = ?1")?
            .execute([pk])?;
        n += 1;
    }
    let remaining = limit - victims.len() as i64;
    if remaining > 0 {
        n += tx.execute(
            "DELETE FROM conflicts WHERE rowid IN \
             (SELECT rowid FROM conflicts WHERE received < ?1 LIMIT ?2)",
            params![cutoff_ms, remaining],
        )? as u64;
        n += tx.execute(
            "DELETE FROM docs WHERE kind = ?1 AND key IN \
             (SELECT key FROM docs WHERE kind = ?1 AND time_ms < ?2 LIMIT ?3)",
            params![Docs::Notifications.code(), cutoff_ms, remaining],
        )? as u64;
    }
    tx.commit()?;
    Ok(n)
}

/// Applies a backup's items inside the caller's transaction.
pub(in crate::store) struct Restore<'t> {
    tx: &'t Transaction<'t>,
    unhandled: Vec<(BoxId, u64)>,
}

impl std::fmt::Debug for Restore<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restore").finish_non_exhaustive()
    }
}

impl<'t> Restore<'t> {
    pub(in crate::store) fn new(tx: &'t Transaction<'t>) -> Restore<'t> {
        Restore {
            tx,
            unhandled: Vec::new(),
        }
    }

    pub(in crate::store) fn apply(
        &mut self,
        names: &mut Names,
        item: Item,
    ) -> Result<(), StoreError> {
        let tx = self.tx;
        match item {
            Item::Event(Received { received_ms, event }) => {
                let r = store_event(tx, names, &event, received_ms)?;
                if r != Inserted::New {
                    return Err(StoreError::Backup(format!(
                        "event {}/{} appears twice",
                        event.box_id, event.seq
                    )));
                }
                // The backup says which readings were handled: only its `H` items stay.
                tx.prepare_cached(
                    "DELETE FROM readings WHERE event = (SELECT pk FROM events WHERE id = ?1)",
                )?
                .execute([&event.id.as_bytes()[..]])?;
            }
            Item::Conflict(Received { received_ms, event }) => {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO conflicts (id, received, record) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![
                    &event.id.as_bytes()[..],
                    received_ms,
                    event_json(&event)?
                ])?;
            }
            Item::Sequence(s) => put_seq_state(tx, &s.box_id, &s.state)?,
            Item::Revocation(r) => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO revocations (subject, issued_before) VALUES (?1, ?2)",
                )?
                .execute(params![r.subject.as_str(), r.issued_before])?;
            }
            Item::Person(p) => people(tx, std::slice::from_ref(&p))?,
            Item::Place(p) => places(tx, std::slice::from_ref(&p))?,
            Item::Doc(d) => put_doc(tx, d.kind, &d.doc)?,
            Item::Unhandled(u) => self.unhandled.push((u.box_id, u.seq)),
        }
        Ok(())
    }

    /// The readings still unhandled, once every event is in.
    pub(in crate::store) fn finish(self) -> Result<(), StoreError> {
        for (b, seq) in &self.unhandled {
            let seq = i64::try_from(*seq).unwrap_or(i64::MAX);
            self.tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO readings (event) SELECT e.pk FROM events e \
                     JOIN boxes b ON b.id = e.box WHERE b.name = ?1 AND e.seq = ?2",
                )?
                .execute(params![b.as_str(), seq])?;
        }
        Ok(())
    }
}
