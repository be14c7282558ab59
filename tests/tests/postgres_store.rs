//! The store contract on a real PostgreSQL server (a throwaway cluster), and what only the
//! PostgreSQL backend does: day partitions dropped by retention, a newer schema refused, a site
//! moving from SQLite to PostgreSQL through the portable backup.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use checkpoint_central::store::contract::{self, ev, Fixture};
use checkpoint_central::store::{PostgresOptions, PostgresStore, SqliteStore, Store};
use checkpoint_e2e::postgres::Cluster;
use checkpoint_link::clock::Clock;
use checkpoint_protocol::ids::SubjectId;

fn options(url: &str) -> PostgresOptions {
    PostgresOptions {
        url: url.to_string(),
        password: None,
        ca_pem: None,
        pool_size: 4,
    }
}

struct PgFixture {
    cluster: Arc<Cluster>,
    url: String,
}

impl Fixture for PgFixture {
    fn open(&self) -> Box<dyn Store> {
        Box::new(PostgresStore::open(&options(&self.url)).unwrap())
    }

    fn other(&self) -> Box<dyn Store> {
        Box::new(PostgresStore::open(&options(&self.cluster.database())).unwrap())
    }
}

#[test]
fn the_store_contract_holds_on_postgres() {
    let cluster = Arc::new(Cluster::start());
    contract::run_all(&|| {
        Box::new(PgFixture {
            url: cluster.database(),
            cluster: cluster.clone(),
        })
    });
}

fn count(url: &str, sql: &str) -> i64 {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn retention_drops_whole_days_and_deletes_rows_only_in_the_day_it_cuts() {
    let cluster = Cluster::start();
    let url = cluster.database();
    let s = PostgresStore::open(&options(&url)).unwrap();
    let day = 86_400_000i64;
    let now = checkpoint_link::clock::SystemClock.now_ms();
    let today = now.div_euclid(day) * day;
    // Today's and tomorrow's partitions exist (created ahead at open): 3 events received
    // today, 2 tomorrow.
    s.insert_received(
        &[
            ev("b1", 1, Some("alice"), "lib", 0),
            ev("b1", 2, Some("bob"), "lib", 1),
            ev("b1", 3, Some("carol"), "lib", 2),
        ],
        today + 1000,
    )
    .unwrap();
    s.insert_received(
        &[
            ev("b1", 4, Some("alice"), "lib", 3),
            ev("b1", 5, None, "lib", 4),
        ],
        today + day + 1000,
    )
    .unwrap();
    let today_table: String = {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.query_one(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'events' \
             AND c.relname <> 'events_default' ORDER BY c.relname LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0)
    };
    assert_eq!(
        count(&url, &format!("SELECT count(*) FROM {today_table}")),
        3
    );
    assert_eq!(s.len().unwrap(), 5);
    // Cut at tomorrow + 1 s: today goes as a whole table, tomorrow's events by row.
    assert_eq!(s.purge_before(today + day + 1001, 1).unwrap(), 3 + 1);
    assert_eq!(
        count(
            &url,
            &format!("SELECT count(*) FROM pg_class WHERE relname = '{today_table}'")
        ),
        0,
        "the day's partition is gone"
    );
    assert_eq!(s.purge_before(today + day + 1001, 100).unwrap(), 1);
    assert_eq!(s.purge_before(today + day + 1001, 100).unwrap(), 0);
    assert_eq!(s.len().unwrap(), 0);
    assert_eq!(count(&url, "SELECT count(*) FROM passes"), 0);
    // The sequence state stays.
    assert_eq!(s.seq_states().unwrap()[0].1.contiguous, 5);
}

#[test]
fn a_database_with_a_newer_schema_is_refused() {
    let cluster = Cluster::start();
    let url = cluster.database();
    drop(PostgresStore::open(&options(&url)).unwrap());
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.batch_execute(
        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
         VALUES (99, 'future', '2030-01-01T00:00:00Z', '0')",
    )
    .unwrap();
    let e = PostgresStore::open(&options(&url)).unwrap_err().to_string();
    assert!(
        e.contains("schema version 99") && e.contains("newer"),
        "{e}"
    );
}

/// A database of schema 2 (passes without stays) gets its stays and links derived on open, and
/// new passes link to the old ones.
#[test]
fn the_stays_migration_derives_the_stays_of_a_version_2_database() {
    use checkpoint_protocol::records::Direction;
    let cluster = Cluster::start();
    let url = cluster.database();
    let s = PostgresStore::open(&options(&url)).unwrap();
    s.insert(&contract::three_stays_at_lib()).unwrap();
    let window = [("lib".parse().unwrap(), 0, i64::MAX)];
    let before = s.stays_at(&window).unwrap();
    assert_eq!(before[0].len(), 3, "{before:?}");
    drop(s);
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.batch_execute(
        "DROP TABLE last_pass; DROP INDEX passes_place; ALTER TABLE passes DROP COLUMN until; \
         CREATE INDEX passes_place ON passes (checkpoint, ts) \
         INCLUDE (subject, direction, admitted, event); \
         DELETE FROM refinery_schema_history WHERE version = 3;",
    )
    .unwrap();
    let s = PostgresStore::open(&options(&url)).unwrap();
    assert_eq!(s.stays_at(&window).unwrap(), before);
    // alice's open stay is closed by her next pass, linked through what the migration kept.
    let mut out = ev("b1", 6, Some("alice"), "lib", 60);
    out.direction = Direction::Out;
    s.insert(&[out]).unwrap();
    let after = s.stays_at(&window).unwrap();
    let alice: Vec<_> = after[0]
        .iter()
        .filter(|st| st.subject.as_str() == "alice")
        .map(|st| st.until_ms.is_some())
        .collect();
    assert_eq!(alice, [true, true], "{after:?}");
}

/// A site outgrowing SQLite: one backup file from the SQLite store restores into PostgreSQL
/// with the same answers.
#[test]
fn a_sqlite_store_moves_to_postgres_through_the_portable_backup() {
    let tmp = checkpoint_e2e::TempDir::new("pg-move");
    let dir = tmp.path().to_path_buf();
    let lite = SqliteStore::open(&dir.join("central.sqlite"), 1 << 20).unwrap();
    let mut evs = Vec::new();
    for m in 0..300u64 {
        let mut e = ev(
            &format!("b{}", m % 3),
            m / 3 + 1,
            Some(&format!("p{}", m % 17)),
            &format!("cp{}", m % 5),
            m as i64,
        );
        if m % 11 == 0 {
            e.dependants = vec![SubjectId::new("kid").unwrap()];
            e.temperature_c = Some(37.9);
        }
        evs.push(e);
    }
    for chunk in evs.chunks(64) {
        lite.insert(chunk).unwrap();
    }
    lite.revoke(&SubjectId::new("p3").unwrap(), 1_700_000_000)
        .unwrap();
    let mut file = Vec::new();
    let summary = lite.backup(&mut file).unwrap();
    assert_eq!(summary.events, 300);

    let cluster = Cluster::start();
    let pg = PostgresStore::open(&options(&cluster.database())).unwrap();
    assert_eq!(pg.restore_from(&mut file.as_slice()).unwrap(), summary);
    let all = |s: &dyn Store| s.by_time(i64::MIN, i64::MAX, usize::MAX).unwrap();
    assert_eq!(all(&pg), all(&lite));
    for who in ["p0", "p5", "kid"] {
        let p = SubjectId::new(who).unwrap();
        assert_eq!(
            pg.by_person(&p, 0, i64::MAX).unwrap(),
            lite.by_person(&p, 0, i64::MAX).unwrap()
        );
    }
    assert_eq!(pg.seq_states().unwrap(), lite.seq_states().unwrap());
    assert_eq!(pg.revocations().unwrap(), lite.revocations().unwrap());
    assert_eq!(
        pg.unhandled_readings(1000).unwrap(),
        lite.unhandled_readings(1000).unwrap()
    );
    // And back: PostgreSQL's backup restores into SQLite just as well.
    let mut again = Vec::new();
    pg.backup(&mut again).unwrap();
    let back = SqliteStore::open(&dir.join("back.sqlite"), 1 << 20).unwrap();
    back.restore_from(&mut again.as_slice()).unwrap();
    assert_eq!(all(&back), all(&lite));
}

/// The move with the real binaries: a SQLite store's backup file, one `restore --config` into
/// the PostgreSQL a configuration names, and a central on it answers the same trajectory.
#[test]
fn restore_with_a_configuration_moves_a_site_to_postgres() {
    let tmp = checkpoint_e2e::TempDir::new("pg-restore-cli");
    let lite = SqliteStore::open(&tmp.path().join("central.sqlite"), 1 << 20).unwrap();
    let now_min =
        (checkpoint_link::clock::SystemClock.now_ms() - contract::T0) / contract::MIN - 60;
    let evs: Vec<_> = (0..40u64)
        .map(|i| {
            ev(
                "gate-1",
                i + 1,
                Some(["ann", "ben"][i as usize % 2]),
                "lib",
                now_min + i as i64,
            )
        })
        .collect();
    lite.insert(&evs).unwrap();
    let backup = tmp.path().join("site.backup");
    let mut f = std::fs::File::create(&backup).unwrap();
    lite.backup(&mut f).unwrap();
    drop(f);
    drop(lite);

    let cluster = Cluster::start();
    let url = cluster.database();
    let pki = checkpoint_e2e::broker::Pki::new(&tmp.path().join("pki"));
    let _store = checkpoint_e2e::central::use_postgres(&url);
    let port = checkpoint_e2e::broker::free_port();
    // A central on the PostgreSQL database, to write its configuration; stopped for the restore.
    let mut central =
        checkpoint_e2e::central::CentralProc::start_embedded(&tmp.path().join("c"), &pki, port);
    central.command(&["boxes"]);
    let stopped = central.terminate();
    assert!(
        stopped.is_some_and(|s| s.success()),
        "central did not stop cleanly ({stopped:?}):\n{}",
        central.log_text()
    );
    let out = checkpoint_e2e::run(
        "checkpoint-central",
        &[
            "restore",
            backup.to_str().unwrap(),
            "--config",
            central.config.to_str().unwrap(),
        ],
    );
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success() && said.contains("40 events restored"),
        "{said}"
    );
    // A second restore into the now full database is refused.
    let again = checkpoint_e2e::run(
        "checkpoint-central",
        &[
            "restore",
            backup.to_str().unwrap(),
            "--config",
            central.config.to_str().unwrap(),
        ],
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    let central =
        checkpoint_e2e::central::CentralProc::start_embedded(&tmp.path().join("c"), &pki, port);
    central.command(&["boxes"]);
    let traj = central.query(&["trace", "--person", "ann", "--from", "2000-01-01T00:00:00Z"]);
    let seqs: Vec<u64> = traj
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    let want: Vec<u64> = (0..40u64).filter(|i| i % 2 == 0).map(|i| i + 1).collect();
    assert_eq!(seqs, want);
}
