//! The store on PostgreSQL, for large sites and several central workers (`[store] kind =
//! "postgres"`).
//!
//! # Layout
//! The schema is `migrations/postgres/V*.sql`, applied at open by refinery; a database whose
//! schema is newer than this binary knows is refused. Like SQLite's, with these differences:
//! - `events` and `passes` are partitioned by the day central received them (Unix ms ranges,
//!   `events_dYYYYMMDD`), created ahead by central; anything outside lands in `*_default`.
//!   Retention drops whole days and deletes rows only in the day it cuts through.
//! - Deduplication reads the `(box, seq)` and `id` indexes of every partition, under a
//!   transaction-scoped advisory lock per box, so workers sharing the database cannot both store
//!   one box's event.
//! - A batch is a handful of set-based statements (arrays, `unnest`), not one per event.
//!
//! # Durability
//! A batch is one transaction; `insert` returns after its commit (PostgreSQL's own WAL and
//! `synchronous_commit`, on by default: keep it on). Connections come from an r2d2 pool; every
//! call blocks, so async code goes through `store::blocking`.

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use checkpoint_protocol::ids::{BoxId, CheckpointId, SubjectId};
use checkpoint_protocol::records::{Decision, Event};
use postgres::types::{ToSql, Type};
use postgres::{GenericClient, IsolationLevel};
use r2d2_postgres::PostgresConnectionManager;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::page::{Cursor, EventFilter, Page};
use super::portable::{
    self, BackupSummary, Item, KeptDoc, Received, Revocation, Sequence, Unhandled,
};
use super::rows::{self as decode, Cols};
use super::{codes, page, Doc, Docs, Inserted, SeqState, Store, StoreError};
use crate::roster::{Person, Place};
use crate::trace::Scan;

mod migrations {
    refinery::embed_migrations!("migrations/postgres");
}

const DAY_MS: i64 = 86_400_000;

type Pool = r2d2::Pool<PostgresConnectionManager<MakeRustlsConnect>>;
type Conn = r2d2::PooledConnection<PostgresConnectionManager<MakeRustlsConnect>>;

/// A pooled connection kept for reads, with the statements prepared on it.
struct Reader {
    conn: Conn,
    statements: HashMap<String, postgres::Statement>,
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        StoreError::Postgres(e.to_string())
    }
}

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// `postgresql://user@host:port/db?sslmode=…` or `host=… user=… dbname=…`.
    pub url: String,
    /// The password, when not in the URL (read from a private file by the caller).
    pub password: Option<String>,
    /// The CA that signed the server's certificate: TLS is used with it (`sslmode=require`
    /// unless the URL says otherwise), and not without it.
    pub ca_pem: Option<Vec<u8>>,
    pub pool_size: u32,
}

pub struct PostgresStore {
    /// `None` only while dropping.
    pool: Option<Pool>,
    /// Connections kept for reads with their prepared statements (tracing asks the same few
    /// queries many times per request; planning each costs more than running it): at most half
    /// the pool, so writers always find a connection.
    readers: Mutex<Vec<Reader>>,
    max_readers: usize,
    /// The connection ingest's batches are written on (see [`Writer`]).
    writer: Mutex<Option<Writer>>,
    /// Interned names whose rows are committed.
    names: Mutex<HashMap<(u8, String), i32>>,
    roster_generation: AtomicU64,
    label: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("database", &self.label)
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresStore {
    /// Closing a connection blocks on the client's own runtime, which must not happen on an
    /// async runtime's thread (the last reference may go anywhere): closed on a thread of its own.
    fn drop(&mut self) {
        let readers = std::mem::take(&mut *self.readers.lock().unwrap_or_else(|e| e.into_inner()));
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(pool) = self.pool.take() {
            let _ = std::thread::Builder::new()
                .name("pg-close".into())
                .spawn(move || {
                    drop(readers);
                    drop(writer);
                    drop(pool)
                });
        }
    }
}

fn tls(ca_pem: Option<&[u8]>) -> Result<MakeRustlsConnect, StoreError> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(pem) = ca_pem {
        for cert in rustls_pemfile::certs(&mut &pem[..]) {
            let cert = cert.map_err(|e| StoreError::Refused(format!("store.ca_file: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| StoreError::Refused(format!("store.ca_file: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Refused(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// A connection's description without its password.
fn describe(c: &postgres::Config) -> String {
    let hosts: Vec<String> = c
        .get_hosts()
        .iter()
        .map(|h| match h {
            postgres::config::Host::Tcp(h) => h.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    format!(
        "postgres {}@{}:{}/{}",
        c.get_user().unwrap_or("?"),
        hosts.join(","),
        c.get_ports().first().copied().unwrap_or(5432),
        c.get_dbname().unwrap_or("?")
    )
}

fn known_version() -> i64 {
    migrations::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

fn day_name(table: &str, day_start_ms: i64) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp(day_start_ms.div_euclid(1000))
        .map(|t| t.date())
        .unwrap_or(time::Date::MIN);
    format!(
        "{table}_d{:04}{:02}{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// The day a partition name starts, from `events_dYYYYMMDD`.
fn day_of(name: &str) -> Option<i64> {
    let digits = name.rsplit_once("_d")?.1;
    if digits.len() != 8 {
        return None;
    }
    let y: i32 = digits.get(0..4)?.parse().ok()?;
    let m: u8 = digits.get(4..6)?.parse().ok()?;
    let d: u8 = digits.get(6..8)?.parse().ok()?;
    let date = time::Date::from_calendar_date(y, time::Month::try_from(m).ok()?, d).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() * 1000)
}

fn i16_code(c: i64) -> i16 {
    i16::try_from(c).unwrap_or(i16::MAX)
}

fn db_seq(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::Refused(format!("seq {seq} is beyond 2^63")))
}

impl PostgresStore {
    /// Connects, applies the migrations (refusing a newer schema) and creates the partitions
    /// around now.
    pub fn open(opts: &PostgresOptions) -> Result<PostgresStore, StoreError> {
        let mut config = postgres::Config::from_str(&opts.url)
            .map_err(|e| StoreError::Refused(format!("store.url: {e}")))?;
        if let Some(p) = &opts.password {
            config.password(p);
        }
        if opts.ca_pem.is_none() {
            if config.get_ssl_mode() == postgres::config::SslMode::Require {
                return Err(StoreError::Refused(
                    "store.url asks for sslmode=require: give store.ca_file, the CA that signed \
                     the server's certificate"
                        .into(),
                ));
            }
            config.ssl_mode(postgres::config::SslMode::Disable);
        } else if config.get_ssl_mode() == postgres::config::SslMode::Prefer {
            config.ssl_mode(postgres::config::SslMode::Require);
        }
        config.connect_timeout(Duration::from_secs(10));
        config.application_name("checkpoint-central");
        let label = describe(&config);
        let manager = PostgresConnectionManager::new(config, tls(opts.ca_pem.as_deref())?);
        let pool = r2d2::Pool::builder()
            .max_size(opts.pool_size.max(1))
            .connection_timeout(Duration::from_secs(15))
            .build(manager)
            .map_err(|e| StoreError::Postgres(format!("{label}: {e}")))?;
        let store = PostgresStore {
            pool: Some(pool),
            readers: Mutex::new(Vec::new()),
            max_readers: (opts.pool_size / 2) as usize,
            writer: Mutex::new(None),
            names: Mutex::new(HashMap::new()),
            roster_generation: AtomicU64::new(0),
            label,
        };
        store.migrate()?;
        store.ensure_partitions(super::now_ms())?;
        Ok(store)
    }

    fn conn(
        &self,
    ) -> Result<r2d2::PooledConnection<PostgresConnectionManager<MakeRustlsConnect>>, StoreError>
    {
        self.pool
            .as_ref()
            .ok_or_else(|| StoreError::Postgres("closed".into()))?
            .get()
            .map_err(|e| StoreError::Postgres(format!("{}: {e}", self.label)))
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut c = self.conn()?;
        // One central at a time migrates; the others wait here.
        c.execute("SELECT pg_advisory_lock(7070)", &[])?;
        let result = (|| {
            let has: bool = c
                .query_one(
                    "SELECT to_regclass('refinery_schema_history') IS NOT NULL",
                    &[],
                )?
                .get(0);
            if has {
                let found: Option<i32> = c
                    .query_one("SELECT max(version) FROM refinery_schema_history", &[])?
                    .get(0);
                let known = known_version();
                if let Some(found) = found.map(i64::from).filter(|f| *f > known) {
                    return Err(StoreError::Schema(format!(
                        "{} has schema version {found}, newer than this checkpoint-central knows \
                         ({known}): run the release that wrote it",
                        self.label
                    )));
                }
            }
            migrations::migrations::runner()
                .set_abort_divergent(true)
                .set_abort_missing(true)
                .run(&mut *c)
                .map_err(|e| StoreError::Schema(format!("{}: {e}", self.label)))?;
            Ok(())
        })();
        let _ = c.execute("SELECT pg_advisory_unlock(7070)", &[]);
        result
    }

    /// Creates the day partitions from today to three days ahead (central receives only now). A day the default
    /// partition already holds rows of cannot be created: those rows stay in the default
    /// partition (deleted by row at retention), and this is logged.
    pub fn ensure_partitions(&self, now_ms: i64) -> Result<(), StoreError> {
        let mut c = self.conn()?;
        let today = now_ms.div_euclid(DAY_MS) * DAY_MS;
        for k in 0..=3 {
            let from = today + k * DAY_MS;
            for table in ["events", "passes"] {
                let sql = format!(
                    "CREATE TABLE IF NOT EXISTS {} PARTITION OF {table} FOR VALUES FROM ({from}) \
                     TO ({})",
                    day_name(table, from),
                    from + DAY_MS
                );
                if let Err(error) = c.batch_execute(&sql) {
                    tracing::warn!(message = "Cannot create a day partition; its rows stay in the default partition.", table, day = day_name(table, from), %error);
                }
            }
        }
        Ok(())
    }

    /// The day partitions of `events`, by the day they start.
    fn partitions(c: &mut impl GenericClient) -> Result<Vec<(i64, String)>, StoreError> {
        let rows = c.query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'events'::regclass",
            &[],
        )?;
        let mut out: Vec<(i64, String)> = rows
            .iter()
            .filter_map(|r| {
                let name: String = r.get(0);
                day_of(&name).map(|d| (d, name))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    fn intern(
        &self,
        tx: &mut postgres::Transaction<'_>,
        kind: u8,
        names: &BTreeSet<&str>,
        fresh: &mut HashMap<(u8, String), i32>,
    ) -> Result<HashMap<String, i32>, StoreError> {
        let table = match kind {
            0 => "sites",
            1 => "boxes",
            2 => "checkpoints",
            _ => "subjects",
        };
        let mut out = HashMap::new();
        let mut missing: Vec<String> = Vec::new();
        {
            let cache = self.names.lock().unwrap_or_else(|e| e.into_inner());
            for n in names {
                match cache.get(&(kind, n.to_string())) {
                    Some(id) => {
                        out.insert(n.to_string(), *id);
                    }
                    None => missing.push(n.to_string()),
                }
            }
        }
        if !missing.is_empty() {
            tx.execute(
                &format!(
                    "INSERT INTO {table} (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO \
                     NOTHING"
                ),
                &[&missing],
            )?;
            for r in tx.query(
                &format!("SELECT id, name FROM {table} WHERE name = ANY($1)"),
                &[&missing],
            )? {
                let (id, name): (i32, String) = (r.get(0), r.get(1));
                fresh.insert((kind, name.clone()), id);
                out.insert(name, id);
            }
        }
        Ok(out)
    }

    fn insert_batch(
        &self,
        events: &[Event],
        received_ms: i64,
    ) -> Result<Vec<Inserted>, StoreError> {
        // The writer with its prepared statements: planning a statement over every partition
        // costs more than running it, so each is planned once per connection.
        let mut slot = self.writer.lock().unwrap_or_else(|e| e.into_inner());
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

    fn insert_on(
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
        self.names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(fresh);
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn write_new(
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
            let (ms, ns) = super::split_ts(e);
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
            }
            *directions.entry(cp).or_insert(0) |= super::direction_bit(e.direction) as i16;
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
        let p = &passes;
        run(
            tx,
            statements,
            "INSERT INTO passes (received, ts, event, subject, checkpoint, direction, admitted) \
             SELECT $1::bigint, * FROM unnest($2::bigint[], $3::bigint[], $4::int[], $5::int[], \
             $6::smallint[], $7::bool[])",
            &[
                &received_ms,
                &p.ts,
                &p.event,
                &p.subject,
                &p.cp,
                &p.direction,
                &p.admitted,
            ],
        )?;
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

    /// Runs a read on a kept reader, preparing `sql` on it once.
    fn read_rows(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, StoreError> {
        let taken = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut reader = match taken {
            Some(r) => r,
            None => Reader {
                conn: self.conn()?,
                statements: HashMap::new(),
            },
        };
        let result = (|| {
            let st = match reader.statements.get(sql) {
                Some(st) => st.clone(),
                None => {
                    let st = reader.conn.prepare(sql)?;
                    reader.statements.insert(sql.to_string(), st.clone());
                    st
                }
            };
            reader.conn.query(&st, params)
        })();
        match result {
            Ok(rows) => {
                let mut kept = self.readers.lock().unwrap_or_else(|e| e.into_inner());
                if kept.len() < self.max_readers {
                    kept.push(reader);
                }
                Ok(rows)
            }
            // The connection may be what failed: it goes back to the pool, not to the readers.
            Err(e) => Err(e.into()),
        }
    }

    fn events_where(
        &self,
        rest: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Event>, StoreError> {
        let sql = format!(
            "SELECT {} FROM events e {} {rest}",
            decode::EVENT_COLUMNS,
            decode::EVENT_JOINS
        );
        self.read_rows(&sql, params)?
            .iter()
            .map(|r| decode::event_of(r).map(|(e, _)| e))
            .collect()
    }

    fn scans_where(
        &self,
        rest: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Scan>, StoreError> {
        let sql = format!(
            "SELECT {} FROM passes p {} {rest}",
            decode::SCAN_COLUMNS,
            decode::SCAN_JOINS
        );
        self.read_rows(&sql, params)?
            .iter()
            .map(decode::scan_of)
            .collect()
    }

    fn purge_some(&self, cutoff_ms: i64, max: usize) -> Result<u64, StoreError> {
        let mut c = self.conn()?;
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        // Whole days received before the cut-off go at once.
        let mut n = 0u64;
        for (day, name) in PostgresStore::partitions(&mut *c)?
            .into_iter()
            .filter(|(d, _)| d + DAY_MS <= cutoff_ms)
        {
            let mut tx = c.transaction()?;
            let rows: i64 = tx
                .query_one(&format!("SELECT count(*) FROM {name}"), &[])?
                .get(0);
            tx.execute(
                &format!("DELETE FROM readings WHERE event IN (SELECT pk FROM {name})"),
                &[],
            )?;
            tx.batch_execute(&format!(
                "DROP TABLE {name}; DROP TABLE IF EXISTS {}",
                day_name("passes", day)
            ))?;
            tx.commit()?;
            tracing::info!(
                message = "Retention dropped a day.",
                partition = name,
                events = rows
            );
            n += rows.max(0) as u64;
        }
        let mut tx = c.transaction()?;
        let gone: Vec<i64> = tx
            .query(
                "DELETE FROM events WHERE received < $1 AND pk IN \
                 (SELECT pk FROM events WHERE received < $1 ORDER BY pk LIMIT $2) RETURNING pk",
                &[&cutoff_ms, &limit],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        n += gone.len() as u64;
        if !gone.is_empty() {
            tx.execute(
                "DELETE FROM passes WHERE received < $1 AND event = ANY($2)",
                &[&cutoff_ms, &gone],
            )?;
            tx.execute("DELETE FROM readings WHERE event = ANY($1)", &[&gone])?;
        }
        let remaining = limit - gone.len() as i64;
        if remaining > 0 {
            n += tx.execute(
                "DELETE FROM conflicts WHERE id IN \
                 (SELECT id FROM conflicts WHERE received < $1 LIMIT $2)",
                &[&cutoff_ms, &remaining],
            )?;
            n += tx.execute(
                "DELETE FROM docs WHERE kind = $1 AND key IN \
                 (SELECT key FROM docs WHERE kind = $1 AND time_ms < $2 LIMIT $3)",
                &[&(Docs::Notifications.code() as i16), &cutoff_ms, &remaining],
            )?;
        }
        tx.commit()?;
        Ok(n)
    }

    fn dump(
        &self,
        tx: &mut postgres::Transaction<'_>,
        out: &mut dyn FnMut(Item) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "SELECT {} FROM events e {} ORDER BY e.pk",
            decode::EVENT_COLUMNS,
            decode::EVENT_JOINS
        );
        // A portal, so the dump streams instead of holding every row.
        let portal = tx.bind(&sql, &[])?;
        loop {
            let rows = tx.query_portal(&portal, 5000)?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let (event, received_ms) = decode::event_of(r)?;
                out(Item::Event(Received { received_ms, event }))?;
            }
        }
        for r in tx.query(
            "SELECT received, record FROM conflicts ORDER BY received, id",
            &[],
        )? {
            let json: String = r.get(1);
            out(Item::Conflict(Received {
                received_ms: r.get(0),
                event: serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                    key: "conflicts".into(),
                    message: e.to_string(),
                })?,
            }))?;
        }
        for r in tx.query("SELECT box, state FROM sequences ORDER BY box", &[])? {
            let b: String = r.get(0);
            let j: String = r.get(1);
            let corrupt = |m: String| StoreError::Corrupt {
                key: format!("sequences/{b}"),
                message: m,
            };
            out(Item::Sequence(Sequence {
                box_id: b.parse().map_err(|e| corrupt(format!("{e}")))?,
                state: serde_json::from_str(&j).map_err(|e| corrupt(e.to_string()))?,
            }))?;
        }
        for (subject, issued_before) in revocations(tx)? {
            out(Item::Revocation(Revocation {
                subject,
                issued_before,
            }))?;
        }
        for p in people(tx)? {
            out(Item::Person(p))?;
        }
        for p in places(tx)? {
            out(Item::Place(p))?;
        }
        for kind in Docs::ALL {
            for doc in docs(tx, kind, false, usize::MAX)? {
                out(Item::Doc(KeptDoc { kind, doc }))?;
            }
        }
        for r in tx.query(
            "SELECT b.name, r.seq FROM readings r JOIN boxes b ON b.id = r.box ORDER BY r.event",
            &[],
        )? {
            let b: String = r.get(0);
            let seq: i64 = r.get(1);
            out(Item::Unhandled(Unhandled {
                box_id: b.parse().map_err(|e| StoreError::Corrupt {
                    key: "readings".into(),
                    message: format!("{e}"),
                })?,
                seq: u64::try_from(seq).unwrap_or(0),
            }))?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct EventColumns {
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
struct PassColumns {
    ts: Vec<i64>,
    event: Vec<i64>,
    subject: Vec<i32>,
    cp: Vec<i32>,
    direction: Vec<i16>,
    admitted: Vec<bool>,
}

/// Statements prepared on one connection, by their text.
type Statements = HashMap<&'static str, postgres::Statement>;

/// The connection batches are written on, kept with its prepared statements.
struct Writer {
    conn: r2d2::PooledConnection<PostgresConnectionManager<MakeRustlsConnect>>,
    statements: Statements,
}

fn prepared(
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
fn run(
    tx: &mut postgres::Transaction<'_>,
    statements: &mut Statements,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, StoreError> {
    let st = prepared(tx, statements, sql)?;
    Ok(tx.execute(&st, params)?)
}

/// Queries `sql`, prepared once on this connection.
fn rows(
    tx: &mut postgres::Transaction<'_>,
    statements: &mut Statements,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<postgres::Row>, StoreError> {
    let st = prepared(tx, statements, sql)?;
    Ok(tx.query(&st, params)?)
}

/// A statement's parameters as the client binds them.
fn args(list: &[page::Arg]) -> Vec<&(dyn ToSql + Sync)> {
    list.iter()
        .map(|a| match a {
            page::Arg::Int(i) => i as &(dyn ToSql + Sync),
            page::Arg::Text(t) => t as &(dyn ToSql + Sync),
        })
        .collect()
}

fn put_seq_state(c: &mut impl GenericClient, b: &str, st: &SeqState) -> Result<(), StoreError> {
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

fn seq_state_of(c: &mut impl GenericClient, b: &str) -> Result<SeqState, StoreError> {
    match c.query_opt("SELECT state FROM sequences WHERE box = $1", &[&b])? {
        None => Ok(SeqState::default()),
        Some(r) => {
            let j: String = r.get(0);
            serde_json::from_str(&j).map_err(|e| StoreError::Corrupt {
                key: format!("sequences/{b}"),
                message: e.to_string(),
            })
        }
    }
}

fn revocations(c: &mut impl GenericClient) -> Result<Vec<(SubjectId, u32)>, StoreError> {
    c.query(
        "SELECT subject, issued_before FROM revocations ORDER BY subject",
        &[],
    )?
    .iter()
    .map(|r| {
        let s: String = r.get(0);
        let before: i64 = r.get(1);
        Ok((
            SubjectId::new(s).map_err(|e| StoreError::Corrupt {
                key: "revocations".into(),
                message: e.to_string(),
            })?,
            u32::try_from(before).unwrap_or(u32::MAX),
        ))
    })
    .collect()
}

fn people(c: &mut impl GenericClient) -> Result<Vec<Person>, StoreError> {
    Ok(c.query(
        "SELECT id, number, name, department, class, counsellor, department_head, wecom_id, \
             email FROM people ORDER BY id",
        &[],
    )?
    .iter()
    .map(|r| Person {
        id: r.get(0),
        number: r.get(1),
        name: r.get(2),
        department: r.get(3),
        class: r.get(4),
        counsellor: r.get(5),
        department_head: r.get(6),
        wecom_id: r.get(7),
        email: r.get(8),
    })
    .collect())
}

fn places(c: &mut impl GenericClient) -> Result<Vec<Place>, StoreError> {
    Ok(c.query(
        "SELECT checkpoint, name, building, capacity, manager FROM places ORDER BY checkpoint",
        &[],
    )?
    .iter()
    .map(|r| {
        let cap: Option<i64> = r.get(3);
        Place {
            checkpoint: r.get(0),
            name: r.get(1),
            building: r.get(2),
            capacity: cap.and_then(|c| u32::try_from(c).ok()),
            manager: r.get(4),
        }
    })
    .collect())
}

fn put_people(c: &mut impl GenericClient, people: &[Person]) -> Result<(), StoreError> {
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

fn put_places(c: &mut impl GenericClient, places: &[Place]) -> Result<(), StoreError> {
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

fn put_doc(c: &mut impl GenericClient, kind: Docs, d: &Doc) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO docs (kind, key, ord, time_ms, record) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (kind, key) DO UPDATE SET ord = excluded.ord, time_ms = excluded.time_ms, \
         record = excluded.record",
        &[&(kind.code() as i16), &d.key, &d.ord, &d.time_ms, &d.json],
    )?;
    Ok(())
}

fn docs(
    c: &mut impl GenericClient,
    kind: Docs,
    newest_first: bool,
    limit: usize,
) -> Result<Vec<Doc>, StoreError> {
    let order = if newest_first { "DESC" } else { "ASC" };
    Ok(c.query(
        &format!(
            "SELECT key, ord, time_ms, record FROM docs WHERE kind = $1 \
                 ORDER BY ord {order}, key LIMIT $2"
        ),
        &[
            &(kind.code() as i16),
            &i64::try_from(limit).unwrap_or(i64::MAX),
        ],
    )?
    .iter()
    .map(|r| Doc {
        key: r.get(0),
        ord: r.get(1),
        time_ms: r.get(2),
        json: r.get(3),
    })
    .collect())
}

impl Cols for postgres::Row {
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        let ty = self
            .columns()
            .get(i)
            .map(|c| c.type_().clone())
            .unwrap_or(Type::INT8);
        Ok(match ty {
            Type::INT2 => self.try_get::<_, Option<i16>>(i)?.map(i64::from),
            Type::INT4 => self.try_get::<_, Option<i32>>(i)?.map(i64::from),
            _ => self.try_get::<_, Option<i64>>(i)?,
        })
    }
    fn text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn real(&self, i: usize) -> Result<Option<f64>, StoreError> {
        let ty = self
            .columns()
            .get(i)
            .map(|c| c.type_().clone())
            .unwrap_or(Type::FLOAT8);
        Ok(match ty {
            Type::FLOAT4 => self.try_get::<_, Option<f32>>(i)?.map(f64::from),
            _ => self.try_get::<_, Option<f64>>(i)?,
        })
    }
    fn flag(&self, i: usize) -> Result<bool, StoreError> {
        Ok(self.try_get(i)?)
    }
}

impl Store for PostgresStore {
    fn insert_received(
        &self,
        events: &[Event],
        received_ms: i64,
    ) -> Result<Vec<Inserted>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.insert_batch(events, received_ms)
    }

    fn by_person(
        &self,
        subject: &SubjectId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Event>, StoreError> {
        self.events_where(
            "JOIN passes p ON p.event = e.pk AND p.received = e.received \
             WHERE p.subject = (SELECT id FROM subjects WHERE name = $1) \
             AND p.ts >= $2 AND p.ts < $3 ORDER BY p.ts, p.event",
            &[&subject.as_str(), &from_ms, &to_ms],
        )
    }

    fn by_place(
        &self,
        checkpoint: &CheckpointId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Event>, StoreError> {
        self.events_where(
            "WHERE e.checkpoint = (SELECT id FROM checkpoints WHERE name = $1) \
             AND e.ts >= $2 AND e.ts < $3 ORDER BY e.ts, e.pk",
            &[&checkpoint.as_str(), &from_ms, &to_ms],
        )
    }

    fn scans_by_person(
        &self,
        subject: &SubjectId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Scan>, StoreError> {
        self.scans_where(
            "WHERE p.subject = (SELECT id FROM subjects WHERE name = $1) \
             AND p.ts >= $2 AND p.ts < $3 ORDER BY p.ts, p.event",
            &[&subject.as_str(), &from_ms, &to_ms],
        )
    }

    fn scans_by_place(
        &self,
        checkpoint: &CheckpointId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Scan>, StoreError> {
        self.scans_where(
            "WHERE p.checkpoint = (SELECT id FROM checkpoints WHERE name = $1) \
             AND p.ts >= $2 AND p.ts < $3 ORDER BY p.ts, p.event, p.subject",
            &[&checkpoint.as_str(), &from_ms, &to_ms],
        )
    }

    fn scan_time(
        &self,
        from_ms: i64,
        to_ms: i64,
        visit: &mut dyn FnMut(Event) -> bool,
    ) -> Result<(), StoreError> {
        let mut c = self.conn()?;
        let mut tx = c
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let sql = format!(
            "SELECT {} FROM events e {} WHERE e.ts >= $1 AND e.ts < $2 ORDER BY e.ts, e.pk",
            decode::EVENT_COLUMNS,
            decode::EVENT_JOINS
        );
        let portal = tx.bind(&sql, &[&from_ms, &to_ms])?;
        loop {
            let rows = tx.query_portal(&portal, 1000)?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                if !visit(decode::event_of(r)?.0) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn by_time(&self, from_ms: i64, to_ms: i64, limit: usize) -> Result<Vec<Event>, StoreError> {
        // With the limit in the query, the planner reads the time index instead of sorting the
        // whole range.
        self.events_where(
            "WHERE e.ts >= $1 AND e.ts < $2 ORDER BY e.ts, e.pk LIMIT $3",
            &[&from_ms, &to_ms, &i64::try_from(limit).unwrap_or(i64::MAX)],
        )
    }

    fn seq_states(&self) -> Result<Vec<(BoxId, SeqState)>, StoreError> {
        let mut c = self.conn()?;
        let mut out = Vec::new();
        for r in c.query("SELECT box, state FROM sequences ORDER BY box", &[])? {
            let b: String = r.get(0);
            let j: String = r.get(1);
            let corrupt = |m: String| StoreError::Corrupt {
                key: format!("sequences/{b}"),
                message: m,
            };
            out.push((
                b.parse().map_err(|e| corrupt(format!("{e}")))?,
                serde_json::from_str(&j).map_err(|e| corrupt(e.to_string()))?,
            ));
        }
        Ok(out)
    }

    fn revoke(&self, subject: &SubjectId, issued_before: u32) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT INTO revocations (subject, issued_before) VALUES ($1, $2) \
             ON CONFLICT (subject) DO UPDATE SET issued_before = excluded.issued_before",
            &[&subject.as_str(), &i64::from(issued_before)],
        )?;
        Ok(())
    }

    fn revocations(&self) -> Result<Vec<(SubjectId, u32)>, StoreError> {
        revocations(&mut *self.conn()?)
    }

    fn replace_people(&self, list: &[Person]) -> Result<(), StoreError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        tx.execute("DELETE FROM people", &[])?;
        put_people(&mut tx, list)?;
        tx.commit()?;
        self.roster_generation.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn replace_places(&self, list: &[Place]) -> Result<(), StoreError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        tx.execute("DELETE FROM places", &[])?;
        put_places(&mut tx, list)?;
        tx.commit()?;
        self.roster_generation.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn upsert_people(&self, list: &[Person]) -> Result<(), StoreError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        put_people(&mut tx, list)?;
        tx.commit()?;
        self.roster_generation.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn upsert_places(&self, list: &[Place]) -> Result<(), StoreError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        put_places(&mut tx, list)?;
        tx.commit()?;
        self.roster_generation.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn people(&self) -> Result<Vec<Person>, StoreError> {
        people(&mut *self.conn()?)
    }

    fn roster_generation(&self) -> u64 {
        self.roster_generation.load(Ordering::Relaxed)
    }

    fn places(&self) -> Result<Vec<Place>, StoreError> {
        places(&mut *self.conn()?)
    }

    fn mark_lost(&self, box_id: &BoxId, first: u64, last: u64) -> Result<SeqState, StoreError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        // The same lock as inserts of this box take.
        if let Some(r) =
            tx.query_opt("SELECT id FROM boxes WHERE name = $1", &[&box_id.as_str()])?
        {
            let id: i32 = r.get(0);
            tx.execute("SELECT pg_advisory_xact_lock(1, $1::int)", &[&id])?;
        }
        let mut st = seq_state_of(&mut tx, box_id.as_str())?;
        st.skip(first, last);
        put_seq_state(&mut tx, box_id.as_str(), &st)?;
        tx.commit()?;
        Ok(st)
    }

    fn events_page(
        &self,
        filter: &EventFilter,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let st = page::page_statement(filter, after, limit, page::Dialect::Postgres);
        let rows = self.read_rows(&st.sql, &args(&st.args))?;
        let rows = rows
            .iter()
            .map(page::page_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page::page_of(rows, limit))
    }

    fn events_count(&self, filter: &EventFilter) -> Result<u64, StoreError> {
        let st = page::count_statement(filter, page::Dialect::Postgres);
        let rows = self.read_rows(&st.sql, &args(&st.args))?;
        let n: i64 = rows.first().map_or(Ok(0), |r| r.try_get(0))?;
        Ok(n.max(0) as u64)
    }

    fn len(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn()?
            .query_one("SELECT count(*) FROM events", &[])?
            .get(0);
        Ok(n.max(0) as u64)
    }

    fn conflicts(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn()?
            .query_one("SELECT count(*) FROM conflicts", &[])?
            .get(0);
        Ok(n.max(0) as u64)
    }

    fn two_way(&self, checkpoint: &CheckpointId) -> Result<bool, StoreError> {
        let d: Option<i16> = self
            .conn()?
            .query_opt(
                "SELECT directions FROM checkpoints WHERE name = $1",
                &[&checkpoint.as_str()],
            )?
            .map(|r| r.get(0));
        Ok(d.unwrap_or(0) & 3 == 3)
    }

    fn purge_before(&self, cutoff_ms: i64, max: usize) -> Result<u64, StoreError> {
        self.ensure_partitions(super::now_ms())?;
        self.purge_some(cutoff_ms, max)
    }

    fn put_doc(&self, kind: Docs, doc: &Doc) -> Result<(), StoreError> {
        put_doc(&mut *self.conn()?, kind, doc)
    }

    fn remove_doc(&self, kind: Docs, key: &str) -> Result<(), StoreError> {
        self.conn()?.execute(
            "DELETE FROM docs WHERE kind = $1 AND key = $2",
            &[&(kind.code() as i16), &key],
        )?;
        Ok(())
    }

    fn replace_docs(&self, kind: Docs, list: &[Doc]) -> Result<(), StoreError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        tx.execute("DELETE FROM docs WHERE kind = $1", &[&(kind.code() as i16)])?;
        for d in list {
            put_doc(&mut tx, kind, d)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn docs(&self, kind: Docs, newest_first: bool, limit: usize) -> Result<Vec<Doc>, StoreError> {
        docs(&mut *self.conn()?, kind, newest_first, limit)
    }

    fn unhandled_readings(&self, limit: usize) -> Result<Vec<Event>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.events_where(
            "JOIN (SELECT event, box, seq FROM readings ORDER BY event LIMIT $1) r \
             ON e.box = r.box AND e.seq = r.seq AND e.pk = r.event ORDER BY r.event",
            &[&limit],
        )
    }

    fn readings_handled(&self, readings: &[(BoxId, u64)]) -> Result<(), StoreError> {
        if readings.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = readings.iter().map(|(b, _)| b.as_str()).collect();
        let seqs = readings
            .iter()
            .map(|(_, s)| db_seq(*s))
            .collect::<Result<Vec<i64>, _>>()?;
        // At least once: a deletion lost to a crash only routes the alert again, so this commit
        // does not wait for the WAL flush.
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        tx.batch_execute("SET LOCAL synchronous_commit = off")?;
        tx.execute(
            "DELETE FROM readings r USING boxes b, unnest($1::text[], $2::bigint[]) AS h(name, seq) \
             WHERE b.name = h.name AND r.box = b.id AND r.seq = h.seq",
            &[&names, &seqs],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn backup(&self, out: &mut dyn std::io::Write) -> Result<BackupSummary, StoreError> {
        let mut c = self.conn()?;
        let mut tx = c
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let mut w = portable::Writer::new(out)?;
        self.dump(&mut tx, &mut |item: Item| w.item(&item))?;
        let summary = w.finish()?;
        tx.commit()?;
        Ok(summary)
    }

    fn restore_from(&self, input: &mut dyn std::io::Read) -> Result<BackupSummary, StoreError> {
        if !self.is_empty()? || self.conflicts()? > 0 || !self.people()?.is_empty() {
            return Err(StoreError::Backup(format!(
                "{} is not empty: restore into a new database",
                self.label
            )));
        }
        // Events go in through the ordinary batch path (one transaction per batch would leave
        // half a restore on a damaged file), so the whole restore is one transaction here.
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        let mut fresh = HashMap::new();
        let mut pending: Vec<(Event, i64)> = Vec::new();
        let mut unhandled: Vec<(String, i64)> = Vec::new();
        let mut others: Vec<Item> = Vec::new();
        let summary = portable::read(input, &mut |item| {
            match item {
                Item::Event(Received { received_ms, event }) => pending.push((event, received_ms)),
                Item::Unhandled(u) => unhandled.push((u.box_id.to_string(), db_seq(u.seq)?)),
                other => others.push(other),
            }
            Ok(())
        })?;
        // Events in runs of one receive time, in their order.
        let mut start = 0;
        while start < pending.len() {
            let received = pending[start].1;
            let mut end = start;
            while end < pending.len() && pending[end].1 == received && end - start < 2000 {
                end += 1;
            }
            let batch: Vec<Event> = pending[start..end].iter().map(|(e, _)| e.clone()).collect();
            self.restore_batch(&mut tx, &batch, received, &mut fresh)?;
            start = end;
        }
        tx.execute("DELETE FROM readings", &[])?;
        for (b, seq) in &unhandled {
            tx.execute(
                "INSERT INTO readings (event, box, seq) SELECT e.pk, e.box, e.seq FROM events e \
                 WHERE e.box = (SELECT id FROM boxes WHERE name = $1) AND e.seq = $2 \
                 ON CONFLICT DO NOTHING",
                &[b, seq],
            )?;
        }
        tx.execute("DELETE FROM sequences", &[])?;
        for item in others {
            match item {
                Item::Conflict(Received { received_ms, event }) => {
                    let json = serde_json::to_string(&event)
                        .map_err(|e| StoreError::Backup(format!("a conflict: {e}")))?;
                    tx.execute(
                        "INSERT INTO conflicts (id, received, record) VALUES ($1, $2, $3) \
                         ON CONFLICT (id) DO NOTHING",
                        &[&event.id.as_bytes().to_vec(), &received_ms, &json],
                    )?;
                }
                Item::Sequence(Sequence { box_id, state }) => {
                    put_seq_state(&mut tx, box_id.as_str(), &state)?
                }
                Item::Revocation(r) => {
                    tx.execute(
                        "INSERT INTO revocations (subject, issued_before) VALUES ($1, $2) \
                         ON CONFLICT (subject) DO UPDATE SET issued_before = excluded.issued_before",
                        &[&r.subject.as_str(), &i64::from(r.issued_before)],
                    )?;
                }
                Item::Person(p) => put_people(&mut tx, std::slice::from_ref(&p))?,
                Item::Place(p) => put_places(&mut tx, std::slice::from_ref(&p))?,
                Item::Doc(d) => put_doc(&mut tx, d.kind, &d.doc)?,
                Item::Event(_) | Item::Unhandled(_) => {}
            }
        }
        tx.commit()?;
        self.names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(fresh);
        Ok(summary)
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn()?
            .query_one("SELECT pg_database_size(current_database())", &[])?
            .get(0);
        Ok(n.max(0) as u64)
    }
}

impl PostgresStore {
    /// One restore batch inside the restore's transaction (no advisory locks: the database is
    /// empty and the restore is its only writer).
    fn restore_batch(
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
