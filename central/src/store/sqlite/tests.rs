//! What only the SQLite backend does: the lock, schema versions, restoring into place.

use super::*;
use crate::store::contract::ev;

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, 1 << 20).unwrap()
}

#[test]
fn a_store_in_use_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    let first = open(&path);
    match SqliteStore::open(&path, 1 << 20) {
        Err(e @ StoreError::Locked(_)) => {
            assert!(
                e.to_string().contains("another process already uses"),
                "{e}"
            )
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened twice"),
    }
    drop(first);
    open(&path);
}

#[test]
fn writes_are_durable_by_the_write_ahead_log_with_full_sync() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join(FILE));
    s.write(|w| {
        let mode: String = w.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        let sync: i64 = w.conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
        assert_eq!((mode.as_str(), sync), ("wal", 2), "WAL and FULL");
        Ok(())
    })
    .unwrap();
}

#[test]
fn a_database_from_a_newer_release_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    let s = open(&path);
    s.insert(&[ev("b1", 1, Some("alice"), "lib", 0)]).unwrap();
    s.write(|w| {
        w.conn.execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
             VALUES (99, 'future', '2030-01-01T00:00:00Z', '0')",
            [],
        )?;
        Ok(())
    })
    .unwrap();
    drop(s);
    let e = SqliteStore::open(&path, 1 << 20).unwrap_err().to_string();
    assert!(
        e.contains("schema version 99") && e.contains("newer"),
        "{e}"
    );
    // Nothing was changed: the row is still there for the newer release.
    let conn = Connection::open(&path).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn a_restore_goes_into_place_only_whole() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("a.sqlite"));
    s.insert(&[
        ev("b1", 1, Some("alice"), "lib", 0),
        ev("b1", 2, None, "lib", 1),
    ])
    .unwrap();
    let mut file = Vec::new();
    s.backup(&mut file).unwrap();
    let target = dir.path().join("b.sqlite");
    let e = SqliteStore::restore(&target, &mut &file[..file.len() - 1]).unwrap_err();
    assert!(e.to_string().contains("ends early"), "{e}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("b."))
        .collect();
    assert!(names.is_empty(), "left behind: {names:?}");
    assert_eq!(
        SqliteStore::restore(&target, &mut file.as_slice())
            .unwrap()
            .events,
        2
    );
    assert_eq!(open(&target).len().unwrap(), 2);
    let e = SqliteStore::restore(&target, &mut file.as_slice()).unwrap_err();
    assert!(e.to_string().contains("not empty"), "{e}");
    // A backup of the sled store (format 1) says what to do.
    let e = SqliteStore::restore(
        &dir.path().join("c.sqlite"),
        &mut &b"checkpoint-admin backup 1\nrest"[..],
    )
    .unwrap_err();
    assert!(e.to_string().contains("sled store"), "{e}");
}

#[test]
fn purge_leaves_no_pass_or_reading_behind() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join(FILE));
    let mut e = ev("b1", 1, Some("alice"), "lib", 0);
    e.dependants = vec![SubjectId::new("kid").unwrap()];
    e.temperature_c = Some(36.0);
    s.insert_received(&[e, ev("b1", 2, Some("bob"), "lib", 1)], 1000)
        .unwrap();
    assert_eq!(s.purge_before(2000, 100).unwrap(), 2);
    s.read(|tx| {
        for table in ["events", "passes", "readings"] {
            let n: i64 =
                tx.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
            assert_eq!(n, 0, "{table}");
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn a_store_that_cannot_be_opened_names_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join(FILE);
    let e = SqliteStore::open(&path, 1 << 20).unwrap_err().to_string();
    assert!(e.contains("missing-dir"), "{e}");
}

/// A database of the first schema (passes without stays) gets its stays derived on open.
#[test]
fn the_stays_migration_derives_the_stays_of_a_version_1_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    let s = open(&path);
    s.insert(&crate::store::contract::three_stays_at_lib())
        .unwrap();
    let lib: CheckpointId = "lib".parse().unwrap();
    let window = [(lib, 0, i64::MAX)];
    let before = s.stays_at(&window).unwrap();
    assert_eq!(before[0].len(), 3, "{before:?}");
    s.write(|w| {
        w.conn.execute_batch(
            "DROP INDEX passes_place; ALTER TABLE passes DROP COLUMN until; \
             CREATE INDEX passes_place ON passes (checkpoint, ts, subject, direction, admitted); \
             DELETE FROM refinery_schema_history WHERE version = 2;",
        )?;
        Ok(())
    })
    .unwrap();
    drop(s);
    let s = open(&path);
    assert_eq!(s.stays_at(&window).unwrap(), before);
}
