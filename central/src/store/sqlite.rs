//! The embedded store on SQLite (`data_dir/central.sqlite`).
//!
//! # Layout
//! The schema is `migrations/sqlite/V*.sql`, applied at open by refinery; a database whose
//! schema is newer than this binary knows is refused. In short:
//! - `events`: one row per event, typed columns, names interned in `sites`, `boxes`,
//!   `checkpoints`, `subjects`; unique `(box, seq)` and unique `id`; indexes by time and by place
//!   and time. `received` (central's clock) is what retention reads.
//! - `passes`: one row per person an event names, the holder and each dependant, keyed
//!   `(subject, ts, event)` with an index `(checkpoint, ts, …)` covering what tracing reads.
//!   An admitted `in` carries `until`, the time of the same person's next admitted pass at
//!   that place (its stay ends there): set on the earlier pass when the next one is written,
//!   found forward when a pass arrives after its successor (a backlog).
//! - `checkpoints.directions`: bit 0 once an `in` is stored there, bit 1 an `out`.
//! - `conflicts`, `sequences`, `readings`, `revocations`, `people`, `places`, `docs`.
//!
//! # Durability
//! WAL with `synchronous = FULL`: a committed insert is on disk before `insert` returns. One
//! writer connection (inserts, purge, roster) behind a mutex; readers come from a small pool and
//! read a consistent snapshot per call. The process holds `central.sqlite.lock` (an advisory
//! lock), so a second central, or a restore, on the same file is refused with a clear message.
//!
//! Long on purpose: opening, locking and migrations, then the `Store` impl, one method per trait
//! method, kept beside the layout it documents (writes are in `insert.rs`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use checkpoint_link::sync::Recover;
use checkpoint_protocol::ids::{BoxId, CheckpointId, SubjectId};
use checkpoint_protocol::records::Event;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::portable::{self, BackupSummary, Item};

/// Builds a new store at `path` (which must not exist) through `build` on `path.restoring`,
/// moved into place only when `build` succeeded; the staging files are removed either way.
fn staged(
    path: &Path,
    build: impl FnOnce(&Path) -> Result<BackupSummary, StoreError>,
) -> Result<BackupSummary, StoreError> {
    if path.exists() {
        return Err(StoreError::Backup(format!(
            "{} is not empty: restore into a new data directory",
            path.display()
        )));
    }
    let mut staging = path.as_os_str().to_owned();
    staging.push(".restoring");
    let staging = PathBuf::from(staging);
    let remove_staging = || {
        for suffix in ["", "-wal", "-shm", ".lock"] {
            let mut p = staging.as_os_str().to_owned();
            p.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(p));
        }
    };
    remove_staging();
    let result = build(&staging);
    if result.is_ok() {
        std::fs::rename(&staging, path).map_err(StoreError::Io)?;
    }
    remove_staging();
    result
}

/// The first bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";

/// A new file only its owner can read (fails if it exists).
fn private_file(path: &Path) -> Result<File, StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            StoreError::Io(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", path.display()),
            ))
        })
}
use super::page::{Cursor, EventFilter, Page};
use super::{Doc, Docs, Inserted, SeqState, Store, StoreError, Window};
use crate::roster::{Person, Place};
use crate::trace::{Scan, Stay};

mod insert;
mod read;
#[cfg(test)]
mod tests;

refinery::embed_migrations!("migrations/sqlite");

/// The file name under the data directory.
pub const FILE: &str = "central.sqlite";
/// Readers kept open between calls.
const POOL: usize = 8;
/// How much of the file a reader maps (SQLite's default build caps it at 2 GiB).
const READER_MMAP: i64 = 0x7fff_0000;

/// The writer's connection with what it caches of the interned names.
#[derive(Debug)]
pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) names: insert::Names,
}

#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Writer>,
    readers: Mutex<Vec<Connection>>,
    roster_generation: AtomicU64,
    _lock: File,
}

fn lock_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

fn connection(path: &Path, flags: OpenFlags, cache_kib: i64) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::Refused(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

/// The highest schema version this binary knows.
fn known_version() -> i64 {
    migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

/// Refuses a database a newer central wrote, then applies what is missing.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let has_history: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' \
         AND name = 'refinery_schema_history'",
        [],
        |r| r.get(0),
    )?;
    if has_history {
        let found: Option<i64> = conn.query_row(
            "SELECT max(version) FROM refinery_schema_history",
            [],
            |r| r.get(0),
        )?;
        let known = known_version();
        if let Some(found) = found.filter(|f| *f > known) {
            return Err(StoreError::Schema(format!(
                "{} has schema version {found}, newer than this checkpoint-central knows \
                 ({known}): run the release that wrote it, or restore a backup into an empty \
                 data directory",
                path.display()
            )));
        }
    }
    migrations::runner()
        .set_abort_divergent(true)
        .set_abort_missing(true)
        .run(conn)
        .map_err(|e| StoreError::Schema(format!("{}: {e}", path.display())))?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating it if missing) the store at `path`, with a page cache of `cache_bytes`
    /// for the writer.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<SqliteStore, StoreError> {
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_path(path))
            .map_err(|e| StoreError::Refused(format!("cannot open {}: {e}", path.display())))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked(path.to_path_buf()))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::Io(e)),
        }
        let cache_kib = i64::try_from(cache_bytes / 1024).unwrap_or(i64::MAX);
        let mut conn = connection(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            cache_kib,
        )?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Refused(format!(
                "{}: the file system does not allow SQLite's write-ahead log (journal mode \
                 {mode})",
                path.display()
            )));
        }
        migrate(&mut conn, path)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: Mutex::new(Writer {
                conn,
                names: insert::Names::default(),
            }),
            readers: Mutex::new(Vec::new()),
            roster_generation: AtomicU64::new(0),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the writer (inserts and every other change go through here, one at a time).
    pub(super) fn write<T>(
        &self,
        f: impl FnOnce(&mut Writer) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut w = self.writer.lock_or_recover();
        f(&mut w)
    }

    /// Runs `f` in a read transaction on a pooled reader: one consistent snapshot.
    pub(super) fn read<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let taken = self.readers.lock_or_recover().pop();
        let mut conn = match taken {
            Some(c) => c,
            None => {
                let c = connection(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    16 << 10,
                )?;
                c.pragma_update(None, "query_only", true)?;
                // Readers read the file through a mapping (up to SQLite's 2 GiB limit): the
                // rows of a trajectory lie on as many pages as it has events, and a mapped page
                // costs no system call. Measured in BENCHMARKS.md.
                c.pragma_update(None, "mmap_size", READER_MMAP)?;
                c
            }
        };
        let out = {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let out = f(&tx);
            // A read transaction has nothing to commit; ending it frees the snapshot.
            drop(tx);
            out
        };
        let mut pool = self.readers.lock_or_recover();
        if pool.len() < POOL {
            pool.push(conn);
        }
        out
    }

    fn restore_into(&self, input: &mut dyn std::io::Read) -> Result<BackupSummary, StoreError> {
        if !self.is_empty()? || self.conflicts()? > 0 || !self.people()?.is_empty() {
            return Err(StoreError::Backup(format!(
                "{} is not empty: restore into a new data directory",
                self.path.display()
            )));
        }
        self.write(|w| {
            let tx = w
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut restore = insert::Restore::new(&tx);
            let result = portable::read(input, &mut |item| restore.apply(&mut w.names, item));
            match result {
                Ok(summary) => {
                    restore.finish()?;
                    tx.commit()?;
                    Ok(summary)
                }
                Err(e) => {
                    drop(restore);
                    drop(tx);
                    w.names.clear();
                    Err(e)
                }
            }
        })
    }

    /// Restores a portable backup into a new store at `path` (which must not exist): written to
    /// `path.restoring` and moved into place only when the whole file checked out.
    pub fn restore(
        path: &Path,
        input: &mut dyn std::io::Read,
    ) -> Result<BackupSummary, StoreError> {
        staged(path, |staging| {
            let store = SqliteStore::open(staging, 64 << 20)?;
            let summary = store.restore_into(input)?;
            store.checkpoint()?;
            Ok(summary)
        })
    }

    /// Whether `head` (a file's first bytes) is a SQLite database file.
    pub fn is_database_file(head: &[u8]) -> bool {
        head.starts_with(SQLITE_MAGIC)
    }

    /// Restores a native copy ([`Store::snapshot_file`]) as `path`, which must not exist: the
    /// copy is staged beside it, opened (so a damaged file or a newer schema is refused) and
    /// moved into place only when whole.
    pub fn restore_copy(
        path: &Path,
        input: &mut dyn std::io::Read,
    ) -> Result<BackupSummary, StoreError> {
        staged(path, |staging| {
            {
                let mut f = private_file(staging)?;
                std::io::copy(input, &mut f).map_err(StoreError::Io)?;
                f.sync_all().map_err(StoreError::Io)?;
            }
            let store = SqliteStore::open(staging, 64 << 20)?;
            let ok: String =
                store.read(|tx| Ok(tx.query_row("PRAGMA quick_check", [], |r| r.get(0))?))?;
            if ok != "ok" {
                return Err(StoreError::Backup(format!(
                    "the copy is damaged (quick_check: {ok})"
                )));
            }
            let events = store.len()?;
            store.checkpoint()?;
            Ok(BackupSummary {
                events,
                ..BackupSummary::default()
            })
        })
    }

    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.write(|w| {
            w.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(StoreError::from)
        })
    }

    fn seq_state_of(conn: &Connection, b: &BoxId) -> Result<SeqState, StoreError> {
        let json: Option<String> = conn
            .query_row(
                "SELECT state FROM sequences WHERE box = ?1",
                [b.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        match json {
            None => Ok(SeqState::default()),
            Some(j) => serde_json::from_str(&j).map_err(|e| StoreError::Corrupt {
                key: format!("sequences/{b}"),
                message: e.to_string(),
            }),
        }
    }
}

fn sql_i64(v: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Refused(format!("{what} {v} is beyond 2^63")))
}

impl Store for SqliteStore {
    fn insert_received(
        &self,
        events: &[Event],
        received_ms: i64,
    ) -> Result<Vec<Inserted>, StoreError> {
        self.write(|w| insert::insert(w, events, received_ms))
    }

    fn by_person(
        &self,
        subject: &SubjectId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Event>, StoreError> {
        self.read(|tx| read::by_person(tx, subject, from_ms, to_ms))
    }

    fn by_place(
        &self,
        checkpoint: &CheckpointId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Event>, StoreError> {
        self.read(|tx| read::by_place(tx, checkpoint, from_ms, to_ms))
    }

    fn scans_by_person(
        &self,
        subject: &SubjectId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Scan>, StoreError> {
        self.read(|tx| read::scans_by_person(tx, subject, from_ms, to_ms))
    }

    fn scans_by_place(
        &self,
        checkpoint: &CheckpointId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Scan>, StoreError> {
        self.read(|tx| read::scans_by_place(tx, checkpoint, from_ms, to_ms))
    }

    fn stays_at(&self, windows: &[Window]) -> Result<Vec<Vec<Stay>>, StoreError> {
        self.read(|tx| read::stays_at(tx, windows))
    }

    fn scan_time(
        &self,
        from_ms: i64,
        to_ms: i64,
        visit: &mut dyn FnMut(Event) -> bool,
    ) -> Result<(), StoreError> {
        self.read(|tx| read::scan_time(tx, from_ms, to_ms, visit))
    }

    fn seq_states(&self) -> Result<Vec<(BoxId, SeqState)>, StoreError> {
        self.read(|tx| {
            let mut st = tx.prepare("SELECT box, state FROM sequences ORDER BY box")?;
            let rows =
                st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            let mut out = Vec::new();
            for row in rows {
                let (b, j) = row?;
                let corrupt = |message: String| StoreError::Corrupt {
                    key: format!("sequences/{b}"),
                    message,
                };
                let id: BoxId = b.parse().map_err(|e| corrupt(format!("{e}")))?;
                let state = serde_json::from_str(&j).map_err(|e| corrupt(e.to_string()))?;
                out.push((id, state));
            }
            Ok(out)
        })
    }

    fn revoke(&self, subject: &SubjectId, issued_before: u32) -> Result<(), StoreError> {
        self.write(|w| {
            w.conn.execute(
                "INSERT INTO revocations (subject, issued_before) VALUES (?1, ?2) \
                 ON CONFLICT (subject) DO UPDATE SET issued_before = excluded.issued_before",
                params![subject.as_str(), issued_before],
            )?;
            Ok(())
        })
    }

    fn revocations(&self) -> Result<Vec<(SubjectId, u32)>, StoreError> {
        self.read(|tx| read::revocations(tx))
    }

    fn replace_people(&self, people: &[Person]) -> Result<(), StoreError> {
        self.write(|w| {
            let tx = w.conn.transaction()?;
            tx.execute("DELETE FROM people", [])?;
            insert::people(&tx, people)?;
            tx.commit()?;
            Ok(())
        })?;
        self.roster_generation.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn replace_places(&self, places: &[Place]) -> Result<(), StoreError> {
        self.write(|w| {
            let tx = w.conn.transaction()?;
            tx.execute("DELETE FROM places", [])?;
            insert::places(&tx, places)?;
            tx.commit()?;
            Ok(())
        })?;
        self.roster_generation.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn upsert_people(&self, people: &[Person]) -> Result<(), StoreError> {
        self.write(|w| {
            let tx = w.conn.transaction()?;
            insert::people(&tx, people)?;
            tx.commit()?;
            Ok(())
        })?;
        self.roster_generation.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn upsert_places(&self, places: &[Place]) -> Result<(), StoreError> {
        self.write(|w| {
            let tx = w.conn.transaction()?;
            insert::places(&tx, places)?;
            tx.commit()?;
            Ok(())
        })?;
        self.roster_generation.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn people(&self) -> Result<Vec<Person>, StoreError> {
        self.read(|tx| read::people(tx))
    }

    fn roster_generation(&self) -> u64 {
        self.roster_generation.load(Ordering::Relaxed)
    }

    fn places(&self) -> Result<Vec<Place>, StoreError> {
        self.read(|tx| read::places(tx))
    }

    fn mark_lost(&self, box_id: &BoxId, first: u64, last: u64) -> Result<SeqState, StoreError> {
        self.write(|w| {
            let tx = w.conn.transaction()?;
            let mut st = SqliteStore::seq_state_of(&tx, box_id)?;
            st.skip(first, last);
            insert::put_seq_state(&tx, box_id, &st)?;
            tx.commit()?;
            Ok(st)
        })
    }

    fn events_page(
        &self,
        filter: &EventFilter,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.read(|tx| read::events_page(tx, filter, after, limit))
    }

    fn events_count(&self, filter: &EventFilter) -> Result<u64, StoreError> {
        self.read(|tx| read::events_count(tx, filter))
    }

    fn len(&self) -> Result<u64, StoreError> {
        self.read(|tx| {
            let n: i64 = tx.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
            Ok(n.max(0) as u64)
        })
    }

    fn conflicts(&self) -> Result<u64, StoreError> {
        self.read(|tx| {
            let n: i64 = tx.query_row("SELECT count(*) FROM conflicts", [], |r| r.get(0))?;
            Ok(n.max(0) as u64)
        })
    }

    fn two_way(&self, checkpoint: &CheckpointId) -> Result<bool, StoreError> {
        self.read(|tx| {
            let d: Option<i64> = tx
                .query_row(
                    "SELECT directions FROM checkpoints WHERE name = ?1",
                    [checkpoint.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(d.unwrap_or(0) & 3 == 3)
        })
    }

    fn purge_before(&self, cutoff_ms: i64, max: usize) -> Result<u64, StoreError> {
        self.write(|w| insert::purge(&mut w.conn, cutoff_ms, max))
    }

    fn put_doc(&self, kind: Docs, doc: &Doc) -> Result<(), StoreError> {
        self.write(|w| insert::put_doc(&w.conn, kind, doc))
    }

    fn remove_doc(&self, kind: Docs, key: &str) -> Result<(), StoreError> {
        self.write(|w| {
            w.conn.execute(
                "DELETE FROM docs WHERE kind = ?1 AND key = ?2",
                params![kind.code(), key],
            )?;
            Ok(())
        })
    }

    fn replace_docs(&self, kind: Docs, docs: &[Doc]) -> Result<(), StoreError> {
        self.write(|w| {
            let tx = w.conn.transaction()?;
            tx.execute("DELETE FROM docs WHERE kind = ?1", [kind.code()])?;
            for d in docs {
                insert::put_doc(&tx, kind, d)?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn docs(&self, kind: Docs, newest_first: bool, limit: usize) -> Result<Vec<Doc>, StoreError> {
        self.read(|tx| read::docs(tx, kind, newest_first, limit))
    }

    fn unhandled_readings(&self, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.read(|tx| read::unhandled_readings(tx, limit))
    }

    fn readings_handled(&self, readings: &[(BoxId, u64)]) -> Result<(), StoreError> {
        if readings.is_empty() {
            return Ok(());
        }
        // Alerts are delivered at least once: losing these deletions to a power cut only means
        // the alerts are routed again at the next start. So they do not wait for a sync of
        // their own; the next insert's sync makes them durable.
        self.write(|w| {
            w.conn.pragma_update(None, "synchronous", "NORMAL")?;
            let deleted = (|| {
                let tx = w
                    .conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)?;
                {
                    let mut st = tx.prepare_cached(
                        "DELETE FROM readings WHERE event = (SELECT e.pk FROM events e \
                         JOIN boxes b ON b.id = e.box WHERE b.name = ?1 AND e.seq = ?2)",
                    )?;
                    for (b, seq) in readings {
                        st.execute(params![b.as_str(), sql_i64(*seq, "seq")?])?;
                    }
                }
                tx.commit()?;
                Ok::<_, StoreError>(())
            })();
            w.conn.pragma_update(None, "synchronous", "FULL")?;
            deleted
        })
    }

    fn backup(&self, out: &mut dyn std::io::Write) -> Result<BackupSummary, StoreError> {
        self.read(|tx| {
            let mut w = portable::Writer::new(out)?;
            read::dump(tx, &mut |item: Item| w.item(&item))?;
            w.finish()
        })
    }

    fn restore_from(&self, input: &mut dyn std::io::Read) -> Result<BackupSummary, StoreError> {
        self.restore_into(input)
    }

    fn snapshot_file(&self, path: &Path) -> Result<(), StoreError> {
        let taken = self.readers.lock_or_recover().pop();
        let src = match taken {
            Some(c) => c,
            None => connection(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                16 << 10,
            )?,
        };
        // Personal data: the copy is 0600 from its first byte.
        drop(private_file(path)?);
        let copied = (|| {
            let mut dst = Connection::open(path)?;
            {
                // All pages in one step: one read snapshot (WAL lets ingest write meanwhile);
                // stepping would restart whenever a batch lands.
                let b = rusqlite::backup::Backup::new(&src, &mut dst)?;
                b.step(-1)?;
            }
            dst.pragma_update(None, "journal_mode", "DELETE")?;
            Ok::<_, StoreError>(())
        })();
        self.readers.lock_or_recover().push(src);
        if copied.is_err() {
            let _ = std::fs::remove_file(path);
        }
        copied
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        for suffix in ["", "-wal"] {
            let mut p = self.path.as_os_str().to_owned();
            p.push(suffix);
            if let Ok(m) = std::fs::metadata(PathBuf::from(p)) {
                total += m.len();
            }
        }
        Ok(total)
    }
}

/// Interned-name tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Interned {
    Site,
    Box,
    Checkpoint,
    Subject,
}

impl Interned {
    pub(super) fn table(self) -> &'static str {
        match self {
            Interned::Site => "sites",
            Interned::Box => "boxes",
            Interned::Checkpoint => "checkpoints",
            Interned::Subject => "subjects",
        }
    }
}
