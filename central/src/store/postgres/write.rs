//! Writing: the batch insert with its duplicate checks, the kept writer and its prepared
//! statements, and the roster, documents and sequence state.
//!
//! Long on purpose: the batch insert is one transaction of several statements (events, passes,
//! readings, stays, late relinks) that only make sense read together.

use std::collections::BTreeMap;

use checkpoint_link::sync::Recover;

use super::*;

impl PostgresStore {
    pub(super) fn insert_batch(
        &self,
        events: &[Event],
        received_ms: i64,
    ) -> Result<Vec<Inserted>, StoreError> {
        // The writer with its prepared statements: planning a statement over every partition
        // costs more than running it, so each is planned once per connection.
        let mut slot = self.writer.lock_or_recover();
        let mut w = match slot.take() {
            Some(w) => w,
            None => Writer {
                conn: self.conn()?,
                statements: HashMap::new(),
            },
        };
        let result = self.insert_on(&mut w, events, received_ms);
        // A failed connection goes back to the pool, not to the writer's slot.
        if result.is_ok() {
            *slot = Some(w);
        }
        result
    }

    pub(super) fn insert_on(
        &self,
        w: &mut Writer,
        events: &[Event],
        received_ms: i64,
    ) -> Result<Vec<Inserted>, StoreError> {
        let Writer { conn, statements } = w;
        let mut tx = conn.transaction()?;
        // Every read here is by key, and the plans are kept: one made while a partition was
        // nearly empty would scan it whole once it is full (measured: a hash join over every
        // event of the day for each batch's duplicate check). Index reads are always right.
        tx.batch_execute("SET LOCAL enable_seqscan = off")?;
        let mut fresh = HashMap::new();
        let boxes: BTreeSet<&str> = events.iter().map(|e| e.box_id.as_str()).collect();
        let box_no = self.intern(&mut tx, 1, &boxes, &mut fresh)?;
        // One writer per box at a time, in a fixed order (no deadlock between workers).
        let mut locks: Vec<i32> = box_no.values().copied().collect();
        locks.sort_unstable();
        run(
            &mut tx,
            statements,
            "SELECT pg_advisory_xact_lock(1, b) FROM unnest($1::int[]) AS l(b) ORDER BY b",
            &[&locks],
        )?;
        let bx: Vec<i32> = events
            .iter()
            .map(|e| box_no.get(e.box_id.as_str()).copied().unwrap_or(0))
            .collect();
        let sq: Vec<i64> = events
            .iter()
            .map(|e| db_seq(e.seq))
            .collect::<Result<_, _>>()?;
        let ids: Vec<Vec<u8>> = events.iter().map(|e| e.id.as_bytes().to_vec()).collect();
        let mut held: HashMap<(i32, i64), Vec<u8>> = HashMap::new();
        for r in rows(
            &mut tx,
            statements,
            "SELECT e.box, e.seq, e.id FROM events e JOIN unnest($1::int[], $2::bigint[]) \
             AS k(box, seq) ON e.box = k.box AND e.seq = k.seq",
            &[&bx, &sq],
        )? {
            held.insert((r.get(0), r.get(1)), r.get(2));
        }
        let mut known_ids: BTreeSet<Vec<u8>> = rows(
            &mut tx,
            statements,
            "SELECT id FROM events WHERE id = ANY($1)",
            &[&ids],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
        let mut out = Vec::with_capacity(events.len());
        let mut new: Vec<usize> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let key = (bx[i], sq[i]);
            let r = match held.get(&key) {
                Some(id) if id[..] == e.id.as_bytes()[..] => Inserted::Duplicate,
                Some(_) => {
                    let json = serde_json::to_string(e).map_err(|err| StoreError::Corrupt {
                        key: format!("{}/{}", e.box_id, e.seq),
                        message: err.to_string(),
                    })?;
                    run(
                        &mut tx,
                        statements,
                        "INSERT INTO conflicts (id, received, record) VALUES ($1, $2, $3) \
                         ON CONFLICT (id) DO NOTHING",
                        &[&ids[i], &received_ms, &json],
                    )?;
                    Inserted::Conflict
                }
                None if known_ids.contains(&ids[i]) => Inserted::Duplicate,
                None => {
                    held.insert(key, ids[i].clone());
                    known_ids.insert(ids[i].clone());
                    new.push(i);
                    Inserted::New
                }
            };
            out.push(r);
        }
        if !new.is_empty() {
            self.write_new(
                &mut tx,
                statements,
                events,
                &new,
                &bx,
                &sq,
                received_ms,
                &mut fresh,
            )?;
        }
        tx.commit()?;
        self.names.lock_or_recover().extend(fresh);
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn write_new(
        &self,
        tx: &mut postgres::Transaction<'_>,
        statements: &mut Statements,
        events: &[Event],
        new: &[usize],
        bx: &[i32],
        sq: &[i64],
        received_ms: i64,
        fresh: &mut HashMap<(u8, String), i32>,
    ) -> Result<(), StoreError> {
        let pick = |f: &dyn Fn(&Event) -> &str| -> BTreeSet<String> {
            new.iter().map(|&i| f(&events[i]).to_string()).collect()
        };
        let sites = pick(&|e| e.site.as_str());
        let cps = pick(&|e| e.checkpoint.as_str());
        let mut people: BTreeSet<String> = new
            .iter()
            .filter_map(|&i| events[i].subject.as_ref().map(|s| s.to_string()))
            .collect();
        people.extend(
            new.iter()
                .flat_map(|&i| events[i].dependants.iter().map(|d| d.to_string())),
        );
        let site_no = self.intern(tx, 0, &sites.iter().map(String::as_str).collect(), fresh)?;
        let cp_no = self.intern(tx, 2, &cps.iter().map(String::as_str).collect(), fresh)?;
        let who_no = self.intern(tx, 3, &people.iter().map(String::as_str).collect(), fresh)?;
        let pks: Vec<i64> = rows(
            tx,
            statements,
            "SELECT nextval('events_pk') FROM generate_series(1, $1::int)",
            &[&(new.len() as i32)],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
        let mut cols = EventColumns::default();
        let mut passes = PassColumns::default();
        let mut readings: (Vec<i64>, Vec<i32>, Vec<i64>) = Default::default();
        let mut directions: HashMap<i32, i16> = HashMap::new();
        for (k, &i) in new.iter().enumerate() {
            let e = &events[i];
            let pk = *pks
                .get(k)
                .ok_or_else(|| StoreError::Postgres("nextval".into()))?;
            let (ms, ns) = crate::store::split_ts(e);
            let cp = cp_no.get(e.checkpoint.as_str()).copied().unwrap_or(0);
            let subject = e
                .subject
                .as_ref()
                .and_then(|s| who_no.get(s.as_str()).copied());
            cols.pk.push(pk);
            cols.ts.push(ms);
            cols.seq.push(sq[i]);
            cols.bx.push(bx[i]);
            cols.site
                .push(site_no.get(e.site.as_str()).copied().unwrap_or(0));
            cols.cp.push(cp);
            cols.subject.push(subject);
            cols.ts_ns.push((ns != 0).then_some(ns as i32));
            cols.flags.push(codes::flags(&e.flags) as i32);
            cols.direction.push(i16_code(codes::direction(e.direction)));
            cols.method.push(i16_code(codes::method(e.method)));
            cols.status
                .push(e.pass_status.map(|s| i16_code(codes::status(s))));
            cols.decision.push(i16_code(codes::decision(e.decision)));
            cols.reason.push(i16_code(codes::reason(e.reason)));
            cols.synced.push(e.clock_synced);
            cols.temperature.push(e.temperature_c);
            cols.id.push(e.id.as_bytes().to_vec());
            cols.dependants.push(if e.dependants.is_empty() {
                None
            } else {
                Some(
                    e.dependants
                        .iter()
                        .map(|d| d.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                )
            });
            let mut named: Vec<i32> = subject.into_iter().collect();
            for d in &e.dependants {
                if let Some(n) = who_no.get(d.as_str()) {
                    if !named.contains(n) {
                        named.push(*n);
                    }
                }
            }
            for n in named {
                passes.ts.push(ms);
                passes.event.push(pk);
                passes.subject.push(n);
                passes.cp.push(cp);
                passes
                    .direction
                    .push(i16_code(codes::direction(e.direction)));
                passes.admitted.push(e.decision == Decision::Admit);
                passes.until.push(None);
            }
            *directions.entry(cp).or_insert(0) |= crate::store::direction_bit(e.direction) as i16;
            if e.temperature_c.is_some() {
                readings.0.push(pk);
                readings.1.push(bx[i]);
                readings.2.push(sq[i]);
            }
        }
        let c = &cols;
        let params: [&(dyn ToSql + Sync); 19] = [
            &received_ms,
            &c.pk,
            &c.ts,
            &c.seq,
            &c.bx,
            &c.site,
            &c.cp,
            &c.subject,
            &c.ts_ns,
            &c.flags,
            &c.direction,
            &c.method,
            &c.status,
            &c.decision,
            &c.reason,
            &c.synced,
            &c.temperature,
            &c.id,
            &c.dependants,
        ];
        run(
            tx,
            statements,
            "INSERT INTO events (received, pk, ts, seq, box, site, checkpoint, subject, ts_ns, \
             flags, direction, method, pass_status, decision, reason, clock_synced, temperature, \
             id, dependants) SELECT $1::bigint, * FROM unnest($2::bigint[], $3::bigint[], \
             $4::bigint[], $5::int[], $6::int[], $7::int[], $8::int[], $9::int[], $10::int[], \
             $11::smallint[], $12::smallint[], $13::smallint[], $14::smallint[], \
             $15::smallint[], $16::bool[], $17::real[], $18::bytea[], $19::text[])",
            &params,
        )?;
        let late = link_stays(tx, statements, &mut passes, received_ms)?;
        let p = &passes;
        run(
            tx,
            statements,
            "INSERT INTO passes (received, ts, event, subject, checkpoint, direction, admitted, \
             until) SELECT $1::bigint, * FROM unnest($2::bigint[], $3::bigint[], $4::int[], \
             $5::int[], $6::smallint[], $7::bool[], $8::bigint[])",
            &[
                &received_ms,
                &p.ts,
                &p.event,
                &p.subject,
                &p.cp,
                &p.direction,
                &p.admitted,
                &p.until,
            ],
        )?;
        if !late.0.is_empty() {
            // Passes that arrived after a later one of the same person at the same place (two
            // boxes at one place, one catching up): their stays are derived again whole.
            run(
                tx,
                statements,
                "WITH k AS (SELECT * FROM unnest($1::int[], $2::int[]) AS k(subject, checkpoint)), \
                 r AS (SELECT q.received, q.subject, q.ts, q.event, q.direction, q.until, \
                 lead(q.ts) OVER (PARTITION BY q.subject, q.checkpoint ORDER BY q.ts, q.event) \
                 AS next FROM passes q JOIN k ON q.subject = k.subject \
                 AND q.checkpoint = k.checkpoint WHERE q.admitted) \
                 UPDATE passes p SET until = r.next FROM r WHERE r.direction = 0 \
                 AND r.until IS DISTINCT FROM r.next AND p.received = r.received \
                 AND p.subject = r.subject AND p.ts = r.ts AND p.event = r.event",
                &[&late.0, &late.1],
            )?;
        }
        if !readings.0.is_empty() {
            run(
                tx,
                statements,
                "INSERT INTO readings (event, box, seq) SELECT * FROM unnest($1::bigint[], \
                 $2::int[], $3::bigint[]) ON CONFLICT DO NOTHING",
                &[&readings.0, &readings.1, &readings.2],
            )?;
        }
        let (dcp, dbits): (Vec<i32>, Vec<i16>) = directions.into_iter().unzip();
        run(
            tx,
            statements,
            "UPDATE checkpoints c SET directions = c.directions | v.bits \
             FROM unnest($1::int[], $2::smallint[]) AS v(id, bits) \
             WHERE c.id = v.id AND c.directions & v.bits <> v.bits",
            &[&dcp, &dbits],
        )?;
        // Sequence states of the boxes in the batch.
        let names: BTreeSet<String> = new.iter().map(|&i| events[i].box_id.to_string()).collect();
        let names: Vec<String> = names.into_iter().collect();
        let mut states: HashMap<String, SeqState> = HashMap::new();
        for r in rows(
            tx,
            statements,
            "SELECT box, state FROM sequences WHERE box = ANY($1)",
            &[&names],
        )? {
            let b: String = r.get(0);
            let j: String = r.get(1);
            let st = serde_json::from_str(&j).map_err(|e| StoreError::Corrupt {
                key: format!("sequences/{b}"),
                message: e.to_string(),
            })?;
            states.insert(b, st);
        }
        for &i in new {
            states
                .entry(events[i].box_id.to_string())
                .or_default()
                .add(events[i].seq);
        }
        let mut boxes = Vec::with_capacity(states.len());
        let mut jsons = Vec::with_capacity(states.len());
        for (b, st) in &states {
            jsons.push(serde_json::to_string(st).map_err(|e| StoreError::Corrupt {
                key: format!("sequences/{b}"),
                message: e.to_string(),
            })?);
            boxes.push(b.clone());
        }
        run(
            tx,
            statements,
            "INSERT INTO sequences (box, state) SELECT * FROM unnest($1::text[], $2::text[]) \
             ON CONFLICT (box) DO UPDATE SET state = excluded.state",
            &[&boxes, &jsons],
        )?;
        Ok(())
    }

    /// One restore batch inside the restore's transaction (no advisory locks: the database is
    /// empty and the restore is its only writer).
    pub(super) fn restore_batch(
        &self,
        tx: &mut postgres::Transaction<'_>,
        events: &[Event],
        received_ms: i64,
        fresh: &mut HashMap<(u8, String), i32>,
    ) -> Result<(), StoreError> {
        let boxes: BTreeSet<&str> = events.iter().map(|e| e.box_id.as_str()).collect();
        let box_no = self.intern(tx, 1, &boxes, fresh)?;
        let bx: Vec<i32> = events
            .iter()
            .map(|e| box_no.get(e.box_id.as_str()).copied().unwrap_or(0))
            .collect();
        let sq: Vec<i64> = events
            .iter()
            .map(|e| db_seq(e.seq))
            .collect::<Result<_, _>>()?;
        let all: Vec<usize> = (0..events.len()).collect();
        self.write_new(
            tx,
            &mut HashMap::new(),
            events,
            &all,
            &bx,
            &sq,
            received_ms,
            fresh,
        )
    }
}

#[derive(Default)]
pub(super) struct EventColumns {
    pk: Vec<i64>,
    ts: Vec<i64>,
    seq: Vec<i64>,
    bx: Vec<i32>,
    site: Vec<i32>,
    cp: Vec<i32>,
    subject: Vec<Option<i32>>,
    ts_ns: Vec<Option<i32>>,
    flags: Vec<i32>,
    direction: Vec<i16>,
    method: Vec<i16>,
    status: Vec<Option<i16>>,
    decision: Vec<i16>,
    reason: Vec<i16>,
    synced: Vec<bool>,
    temperature: Vec<Option<f32>>,
    id: Vec<Vec<u8>>,
    dependants: Vec<Option<String>>,
}

#[derive(Default)]
pub(super) struct PassColumns {
    ts: Vec<i64>,
    event: Vec<i64>,
    subject: Vec<i32>,
    cp: Vec<i32>,
    direction: Vec<i16>,
    admitted: Vec<bool>,
    until: Vec<Option<i64>>,
}

/// Stored passes whose stay now ends at one of the batch's, as columns.
#[derive(Default)]
struct Ends {
    subject: Vec<i32>,
    ts: Vec<i64>,
    event: Vec<i64>,
    received: Vec<i64>,
    until: Vec<i64>,
}

/// Each person's and place's newest pass of the batch, as columns (for `last_pass`).
#[derive(Default)]
struct Newest {
    subject: Vec<i32>,
    cp: Vec<i32>,
    ts: Vec<i64>,
    event: Vec<i64>,
    direction: Vec<i16>,
}

impl Newest {
    fn push(&mut self, subject: i32, cp: i32, p: &PassColumns, k: usize) {
        self.subject.push(subject);
        self.cp.push(cp);
        self.ts.push(p.ts[k]);
        self.event.push(p.event[k]);
        self.direction.push(p.direction[k]);
    }
}

/// Links the batch's admitted passes into stays before they are written (see
/// `migrations/postgres/V3__stays.sql`): each `in` ends at the same person's next admitted pass
/// at that place, found in the batch or, for the first of each person and place, as the next
/// one's predecessor in `last_pass`. Updates the stored predecessors and `last_pass`; returns
/// the `(subject, checkpoint)` pairs whose passes came before one already stored, for the
/// caller to derive again once written.
fn link_stays(
    tx: &mut postgres::Transaction<'_>,
    statements: &mut Statements,
    p: &mut PassColumns,
    received_ms: i64,
) -> Result<(Vec<i32>, Vec<i32>), StoreError> {
    let in_code = i16_code(codes::direction(
        checkpoint_protocol::records::Direction::In,
    ));
    // Per person and place, the batch's admitted passes in (ts, event) order.
    let mut chains: BTreeMap<(i32, i32), Vec<usize>> = BTreeMap::new();
    for k in (0..p.ts.len()).filter(|&k| p.admitted[k]) {
        chains.entry((p.subject[k], p.cp[k])).or_default().push(k);
    }
    if chains.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    for chain in chains.values_mut() {
        chain.sort_by_key(|&k| (p.ts[k], p.event[k]));
    }
    let (ks, kc): (Vec<i32>, Vec<i32>) = chains.keys().copied().unzip();
    let mut last: HashMap<(i32, i32), (i64, i64, i64, i16)> = HashMap::new();
    for r in rows(
        tx,
        statements,
        "SELECT l.subject, l.checkpoint, l.ts, l.event, l.received, l.direction FROM last_pass l \
         JOIN unnest($1::int[], $2::int[]) AS k(subject, checkpoint) \
         ON l.subject = k.subject AND l.checkpoint = k.checkpoint",
        &[&ks, &kc],
    )? {
        last.insert(
            (r.get(0), r.get(1)),
            (r.get(2), r.get(3), r.get(4), r.get(5)),
        );
    }
    let mut late = (Vec::new(), Vec::new());
    let mut ends = Ends::default();
    let mut newest = Newest::default();
    for (&(subject, cp), chain) in &chains {
        let (Some(&first), Some(&tail)) = (chain.first(), chain.last()) else {
            continue;
        };
        newest.push(subject, cp, p, tail);
        match last.get(&(subject, cp)) {
            Some(&(ts, event, _, _)) if (p.ts[first], p.event[first]) <= (ts, event) => {
                late.0.push(subject);
                late.1.push(cp);
                continue;
            }
            Some(&(ts, event, received, direction)) if direction == in_code => {
                ends.subject.push(subject);
                ends.ts.push(ts);
                ends.event.push(event);
                ends.received.push(received);
                ends.until.push(p.ts[first]);
            }
            _ => {}
        }
        for w in chain.windows(2) {
            if p.direction[w[0]] == in_code {
                p.until[w[0]] = Some(p.ts[w[1]]);
            }
        }
    }
    if !ends.subject.is_empty() {
        run(
            tx,
            statements,
            "UPDATE passes p SET until = u.until FROM unnest($1::int[], $2::bigint[], \
             $3::bigint[], $4::bigint[], $5::bigint[]) AS u(subject, ts, event, received, until) \
             WHERE p.received = u.received AND p.subject = u.subject AND p.ts = u.ts \
             AND p.event = u.event",
            &[
                &ends.subject,
                &ends.ts,
                &ends.event,
                &ends.received,
                &ends.until,
            ],
        )?;
    }
    run(
        tx,
        statements,
        "INSERT INTO last_pass (subject, checkpoint, ts, event, received, direction) \
         SELECT k.subject, k.checkpoint, k.ts, k.event, $1::bigint, k.direction \
         FROM unnest($2::int[], $3::int[], $4::bigint[], $5::bigint[], $6::smallint[]) \
         AS k(subject, checkpoint, ts, event, direction) \
         ON CONFLICT (subject, checkpoint) DO UPDATE SET ts = excluded.ts, \
         event = excluded.event, received = excluded.received, direction = excluded.direction \
         WHERE (last_pass.ts, last_pass.event) < (excluded.ts, excluded.event)",
        &[
            &received_ms,
            &newest.subject,
            &newest.cp,
            &newest.ts,
            &newest.event,
            &newest.direction,
        ],
    )?;
    Ok(late)
}

/// Statements prepared on one connection, by their text.
pub(super) type Statements = HashMap<&'static str, postgres::Statement>;

/// The connection batches are written on, kept with its prepared statements.
pub(super) struct Writer {
    conn: r2d2::PooledConnection<PostgresConnectionManager<MakeRustlsConnect>>,
    statements: Statements,
}

pub(super) fn prepared(
    tx: &mut postgres::Transaction<'_>,
    statements: &mut Statements,
    sql: &'static str,
) -> Result<postgres::Statement, StoreError> {
    if let Some(st) = statements.get(sql) {
        return Ok(st.clone());
    }
    let st = tx.prepare(sql)?;
    statements.insert(sql, st.clone());
    Ok(st)
}

/// Executes `sql`, prepared once on this connection.
pub(super) fn run(
    tx: &mut postgres::Transaction<'_>,
    statements: &mut Statements,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, StoreError> {
    let st = prepared(tx, statements, sql)?;
    Ok(tx.execute(&st, params)?)
}

/// Queries `sql`, prepared once on this connection.
pub(super) fn rows(
    tx: &mut postgres::Transaction<'_>,
    statements: &mut Statements,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<postgres::Row>, StoreError> {
    let st = prepared(tx, statements, sql)?;
    Ok(tx.query(&st, params)?)
}

pub(super) fn put_seq_state(
    c: &mut impl GenericClient,
    b: &str,
    st: &SeqState,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(st).map_err(|e| StoreError::Corrupt {
        key: format!("sequences/{b}"),
        message: e.to_string(),
    })?;
    c.execute(
        "INSERT INTO sequences (box, state) VALUES ($1, $2) \
         ON CONFLICT (box) DO UPDATE SET state = excluded.state",
        &[&b, &json],
    )?;
    Ok(())
}

pub(super) fn put_people(c: &mut impl GenericClient, people: &[Person]) -> Result<(), StoreError> {
    for p in people {
        c.execute(
            "INSERT INTO people (id, number, name, department, class, counsellor, \
             department_head, wecom_id, email) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (id) DO UPDATE SET number = excluded.number, name = excluded.name, \
             department = excluded.department, class = excluded.class, \
             counsellor = excluded.counsellor, department_head = excluded.department_head, \
             wecom_id = excluded.wecom_id, email = excluded.email",
            &[
                &p.id,
                &p.number,
                &p.name,
                &p.department,
                &p.class,
                &p.counsellor,
                &p.department_head,
                &p.wecom_id,
                &p.email,
            ],
        )?;
    }
    Ok(())
}

pub(super) fn put_places(c: &mut impl GenericClient, places: &[Place]) -> Result<(), StoreError> {
    for p in places {
        c.execute(
            "INSERT INTO places (checkpoint, name, building, capacity, manager) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (checkpoint) DO UPDATE SET \
             name = excluded.name, building = excluded.building, capacity = excluded.capacity, \
             manager = excluded.manager",
            &[
                &p.checkpoint,
                &p.name,
                &p.building,
                &p.capacity.map(i64::from),
                &p.manager,
            ],
        )?;
    }
    Ok(())
}

pub(super) fn put_doc(c: &mut impl GenericClient, kind: Docs, d: &Doc) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO docs (kind, key, ord, time_ms, record) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (kind, key) DO UPDATE SET ord = excluded.ord, time_ms = excluded.time_ms, \
         record = excluded.record",
        &[&(kind.code() as i16), &d.key, &d.ord, &d.time_ms, &d.json],
    )?;
    Ok(())
}
