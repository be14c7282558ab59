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
//! - Stays (`passes.until`) link through `last_pass`, each person's latest admitted pass per
//!   place, so a new pass finds its predecessor by key rather than in every day partition; a
//!   pass older than one already stored there has its person's stays at that place derived
//!   again with `lead()`.
//!
//! # Durability
//! A batch is one transaction; `insert` returns after its commit (PostgreSQL's own WAL and
//! `synchronous_commit`, on by default: keep it on). Connections come from an r2d2 pool; every
//! call blocks, so async code goes through `store::blocking`.
//!
//! Long on purpose: opening, migrations and partitions, then the `Store` impl, one short method per
//! trait method (the SQL is in `read.rs`, `write.rs`, `maintenance.rs`).

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use checkpoint_link::clock::Clock;
use checkpoint_link::sync::Recover;
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
use super::{codes, page, Doc, Docs, Inserted, SeqState, Store, StoreError, Window};
use crate::roster::{Person, Place};
use crate::trace::{Scan, Stay};

mod maintenance;
mod read;
mod write;

use read::*;
use write::*;

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
        let readers = std::mem::take(&mut *self.readers.lock_or_recover());
        let writer = self.writer.lock_or_recover().take();
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
        store.ensure_partitions(checkpoint_link::clock::SystemClock.now_ms())?;
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
            let cache = self.names.lock_or_recover();
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

    fn scans_at(&self, windows: &[Window]) -> Result<Vec<Vec<Scan>>, StoreError> {
        self.scans_in_windows(windows)
    }

    fn stays_at(&self, windows: &[Window]) -> Result<Vec<Vec<Stay>>, StoreError> {
        self.stays_in_windows(windows)
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
        self.ensure_partitions(checkpoint_link::clock::SystemClock.now_ms())?;
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
        self.backup_to(out)
    }

    fn restore_from(&self, input: &mut dyn std::io::Read) -> Result<BackupSummary, StoreError> {
        self.restore_into(input)
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn()?
            .query_one("SELECT pg_database_size(current_database())", &[])?
            .get(0);
        Ok(n.max(0) as u64)
    }
}
