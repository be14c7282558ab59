//! Reads: events back from their typed columns, scans for tracing, the dump a backup writes.

use std::collections::HashMap;

use checkpoint_protocol::ids::{CheckpointId, SubjectId};
use checkpoint_protocol::records::{Direction, Event};
use rusqlite::{params, Connection};

use crate::roster::{Person, Place};
use crate::store::page::{self, Cursor, EventFilter, Page};
use crate::store::portable::{Item, KeptDoc, Received, Revocation, Sequence, Unhandled};
use crate::store::rows as decode;
use crate::store::{codes, Doc, Docs, StoreError, Window};
use crate::trace::{Scan, Stay};

/// `SELECT` of every event column over `events e`, then `rest`.
fn select_events(rest: &str) -> String {
    format!(
        "SELECT {} FROM events e {} {rest}",
        decode::EVENT_COLUMNS,
        decode::EVENT_JOINS
    )
}

/// `SELECT` of the scan columns over `passes p`, then `rest`.
fn select_scans(rest: &str) -> String {
    format!(
        "SELECT {} FROM passes p {} {rest}",
        decode::SCAN_COLUMNS,
        decode::SCAN_JOINS
    )
}

fn corrupt(what: &str, message: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: what.to_string(),
        message: message.to_string(),
    }
}

fn events(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Event>, StoreError> {
    let mut st = conn.prepare_cached(sql)?;
    let mut rows = st.query(params)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(decode::event_of(r)?.0);
    }
    Ok(out)
}

pub(super) fn by_person(
    conn: &Connection,
    subject: &SubjectId,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Event>, StoreError> {
    events(
        conn,
        &select_events(
            "JOIN passes p ON p.event = e.pk \
             WHERE p.subject = (SELECT id FROM subjects WHERE name = ?1) \
             AND p.ts >= ?2 AND p.ts < ?3 ORDER BY p.ts, p.event",
        ),
        params![subject.as_str(), from_ms, to_ms],
    )
}

pub(super) fn by_place(
    conn: &Connection,
    checkpoint: &CheckpointId,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Event>, StoreError> {
    events(
        conn,
        &select_events(
            "WHERE e.checkpoint = (SELECT id FROM checkpoints WHERE name = ?1) \
             AND e.ts >= ?2 AND e.ts < ?3 ORDER BY e.ts, e.pk",
        ),
        params![checkpoint.as_str(), from_ms, to_ms],
    )
}

fn scans(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Scan>, StoreError> {
    let mut st = conn.prepare_cached(sql)?;
    let mut rows = st.query(params)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(decode::scan_of(r)?);
    }
    Ok(out)
}

pub(super) fn events_page(
    conn: &Connection,
    f: &EventFilter,
    after: Option<Cursor>,
    limit: usize,
) -> Result<Page, StoreError> {
    let st = page::page_statement(f, after, limit, page::Dialect::Sqlite);
    let mut stmt = conn.prepare_cached(&st.sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(st.args.iter().map(value)))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(page::page_row(r)?);
    }
    Ok(page::page_of(out, limit))
}

pub(super) fn events_count(conn: &Connection, f: &EventFilter) -> Result<u64, StoreError> {
    let st = page::count_statement(f, page::Dialect::Sqlite);
    let mut stmt = conn.prepare_cached(&st.sql)?;
    let n: i64 = stmt.query_row(rusqlite::params_from_iter(st.args.iter().map(value)), |r| {
        r.get(0)
    })?;
    Ok(n.max(0) as u64)
}

fn value(a: &page::Arg) -> rusqlite::types::Value {
    match a {
        page::Arg::Int(i) => rusqlite::types::Value::Integer(*i),
        page::Arg::Text(t) => rusqlite::types::Value::Text(t.clone()),
    }
}

pub(super) fn scans_by_person(
    conn: &Connection,
    subject: &SubjectId,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Scan>, StoreError> {
    scans(
        conn,
        &select_scans(
            "WHERE p.subject = (SELECT id FROM subjects WHERE name = ?1) \
         AND p.ts >= ?2 AND p.ts < ?3 ORDER BY p.ts, p.event",
        ),
        params![subject.as_str(), from_ms, to_ms],
    )
}

pub(super) fn scans_by_place(
    conn: &Connection,
    checkpoint: &CheckpointId,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Scan>, StoreError> {
    scans(
        conn,
        &select_scans(
            "WHERE p.checkpoint = (SELECT id FROM checkpoints WHERE name = ?1) \
         AND p.ts >= ?2 AND p.ts < ?3 ORDER BY p.ts, p.event, p.subject",
        ),
        params![checkpoint.as_str(), from_ms, to_ms],
    )
}

/// The stays that began in each window: one range of the place index each, the people's names
/// looked up once per person at the end.
pub(super) fn stays_at(
    conn: &Connection,
    windows: &[Window],
) -> Result<Vec<Vec<Stay>>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT p.subject, p.ts, p.until FROM passes p \
         WHERE p.checkpoint = (SELECT id FROM checkpoints WHERE name = ?1) \
         AND p.ts >= ?2 AND p.ts < ?3 AND p.direction = ?4 AND p.admitted \
         ORDER BY p.ts, p.subject",
    )?;
    let in_code = codes::direction(Direction::In);
    let mut raw: Vec<Vec<(i64, i64, Option<i64>)>> = Vec::with_capacity(windows.len());
    for (cp, from, to) in windows {
        let mut rows = st.query(params![cp.as_str(), from, to, in_code])?;
        let mut w = Vec::new();
        while let Some(r) = rows.next()? {
            w.push((r.get(0)?, r.get(1)?, r.get(2)?));
        }
        raw.push(w);
    }
    let mut names: HashMap<i64, SubjectId> = HashMap::new();
    let mut name_of = conn.prepare_cached("SELECT name FROM subjects WHERE id = ?1")?;
    let mut out = Vec::with_capacity(raw.len());
    for w in raw {
        let mut stays = Vec::with_capacity(w.len());
        for (sid, start_ms, until_ms) in w {
            let subject = match names.get(&sid) {
                Some(s) => s.clone(),
                None => {
                    let n: String = name_of.query_row([sid], |r| r.get(0))?;
                    let s = SubjectId::new(n).map_err(|e| corrupt("subjects", e))?;
                    names.insert(sid, s.clone());
                    s
                }
            };
            stays.push(Stay {
                subject,
                start_ms,
                until_ms,
            });
        }
        out.push(stays);
    }
    Ok(out)
}

pub(super) fn scan_time(
    conn: &Connection,
    from_ms: i64,
    to_ms: i64,
    visit: &mut dyn FnMut(Event) -> bool,
) -> Result<(), StoreError> {
    let mut st = conn.prepare_cached(&select_events(
        "WHERE e.ts >= ?1 AND e.ts < ?2 ORDER BY e.ts, e.pk",
    ))?;
    let mut rows = st.query(params![from_ms, to_ms])?;
    while let Some(r) = rows.next()? {
        if !visit(decode::event_of(r)?.0) {
            break;
        }
    }
    Ok(())
}

pub(super) fn revocations(conn: &Connection) -> Result<Vec<(SubjectId, u32)>, StoreError> {
    let mut st =
        conn.prepare_cached("SELECT subject, issued_before FROM revocations ORDER BY subject")?;
    let mut rows = st.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let s: String = r.get(0)?;
        out.push((
            SubjectId::new(s).map_err(|e| corrupt("revocations", e))?,
            r.get(1)?,
        ));
    }
    Ok(out)
}

pub(super) fn people(conn: &Connection) -> Result<Vec<Person>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT id, number, name, department, class, counsellor, department_head, wecom_id, \
         email FROM people ORDER BY id",
    )?;
    let rows = st.query_map([], |r| {
        Ok(Person {
            id: r.get(0)?,
            number: r.get(1)?,
            name: r.get(2)?,
            department: r.get(3)?,
            class: r.get(4)?,
            counsellor: r.get(5)?,
            department_head: r.get(6)?,
            wecom_id: r.get(7)?,
            email: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn places(conn: &Connection) -> Result<Vec<Place>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT checkpoint, name, building, capacity, manager FROM places ORDER BY checkpoint",
    )?;
    let rows = st.query_map([], |r| {
        Ok(Place {
            checkpoint: r.get(0)?,
            name: r.get(1)?,
            building: r.get(2)?,
            capacity: r.get(3)?,
            manager: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn docs(
    conn: &Connection,
    kind: Docs,
    newest_first: bool,
    limit: usize,
) -> Result<Vec<Doc>, StoreError> {
    let order = if newest_first { "DESC" } else { "ASC" };
    let mut st = conn.prepare_cached(&format!(
        "SELECT key, ord, time_ms, record FROM docs WHERE kind = ?1 ORDER BY ord {order}, key \
         LIMIT ?2"
    ))?;
    let rows = st.query_map(
        params![kind.code(), i64::try_from(limit).unwrap_or(i64::MAX)],
        |r| {
            Ok(Doc {
                key: r.get(0)?,
                ord: r.get(1)?,
                time_ms: r.get(2)?,
                json: r.get(3)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn unhandled_readings(
    conn: &Connection,
    limit: usize,
) -> Result<Vec<Event>, StoreError> {
    events(
        conn,
        &select_events(
            "WHERE e.pk IN (SELECT event FROM readings ORDER BY event LIMIT ?1) \
             ORDER BY e.pk",
        ),
        [i64::try_from(limit).unwrap_or(i64::MAX)],
    )
}

/// Everything, as backup items, from one snapshot.
pub(super) fn dump(
    conn: &Connection,
    out: &mut dyn FnMut(Item) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    {
        let mut st = conn.prepare(&select_events("ORDER BY e.pk"))?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let (event, received_ms) = decode::event_of(r)?;
            out(Item::Event(Received { received_ms, event }))?;
        }
    }
    {
        let mut st = conn.prepare("SELECT received, record FROM conflicts ORDER BY rowid")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let json: String = r.get(1)?;
            let event = serde_json::from_str(&json).map_err(|e| corrupt("conflicts", e))?;
            out(Item::Conflict(Received {
                received_ms: r.get(0)?,
                event,
            }))?;
        }
    }
    {
        let mut st = conn.prepare("SELECT box, state FROM sequences ORDER BY box")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let b: String = r.get(0)?;
            let j: String = r.get(1)?;
            out(Item::Sequence(Sequence {
                box_id: b.parse().map_err(|e| corrupt("sequences", e))?,
                state: serde_json::from_str(&j).map_err(|e| corrupt("sequences", e))?,
            }))?;
        }
    }
    for (subject, issued_before) in revocations(conn)? {
        out(Item::Revocation(Revocation {
            subject,
            issued_before,
        }))?;
    }
    for p in people(conn)? {
        out(Item::Person(p))?;
    }
    for p in places(conn)? {
        out(Item::Place(p))?;
    }
    for kind in Docs::ALL {
        for doc in docs(conn, kind, false, usize::MAX)? {
            out(Item::Doc(KeptDoc { kind, doc }))?;
        }
    }
    {
        let mut st = conn.prepare(
            "SELECT b.name, e.seq FROM readings r JOIN events e ON e.pk = r.event \
             JOIN boxes b ON b.id = e.box ORDER BY r.event",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let b: String = r.get(0)?;
            let seq: i64 = r.get(1)?;
            out(Item::Unhandled(Unhandled {
                box_id: b.parse().map_err(|e| corrupt("readings", e))?,
                seq: u64::try_from(seq).map_err(|e| corrupt("readings", e))?,
            }))?;
        }
    }
    Ok(())
}
