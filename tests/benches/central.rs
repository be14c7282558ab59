//! Central benchmark. `cargo bench -p checkpoint-e2e --bench central [-- ingest|queries] [N]`:
//! 1. ingest: simulated boxes publish events through a real Mosquitto on loopback to a real
//!    `checkpoint-central serve`, which stores and acks them; beside it the raw rate of the same
//!    broker for the same messages to a subscriber that stores nothing;
//! 2. queries: bytes per event, fill rate, trajectory / contacts depth 1 and 2 / occupancy /
//!    events page latency on SQLite and on PostgreSQL (a throwaway cluster) filled with the same
//!    campus-like population (30,000 people, 2,000 checkpoints, 14 days), at 1 M events (or N);
//!    `shallow` skips depth-2 contacts, `no-sqlite` / `no-postgres` one backend. The stores
//!    live under the target directory and are removed at the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use checkpoint_central::query::{self, ContactParams};
use checkpoint_central::store::{EventFilter, PostgresOptions, PostgresStore, SqliteStore, Store};
use checkpoint_e2e::broker::Mosquitto;
use checkpoint_e2e::central::CentralProc;
use checkpoint_e2e::postgres::Cluster;
use checkpoint_e2e::TempDir;
use checkpoint_protocol::ids::{CheckpointId, SubjectId};
use checkpoint_protocol::passcode::PassStatus;
use checkpoint_protocol::records::{self, Ack, Decision, Direction, Event, Method, Reason, Schema};
use checkpoint_protocol::topic::Topic;
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};

const T0: i64 = 1_800_000_000;

fn event(b: &str, seq: u64, person: u64, place: u64, ts: i64) -> Event {
    Event {
        schema: Schema,
        // Boxes make time-ordered (v7) ids from their clock.
        id: uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            ts as u64,
            (seq % 1000) as u32 * 1_000_000,
        )),
        seq,
        site: "campus".parse().unwrap(),
        box_id: b.parse().unwrap(),
        checkpoint: format!("cp-{place}").parse().unwrap(),
        direction: if seq.is_multiple_of(2) {
            Direction::Out
        } else {
            Direction::In
        },
        method: Method::Qr,
        subject: Some(SubjectId::new(format!("p-{person}")).unwrap()),
        dependants: vec![],
        pass_status: Some(PassStatus::Green),
        decision: Decision::Admit,
        reason: Reason::Ok,
        flags: vec![],
        temperature_c: Some(36.5),
        ts: time::OffsetDateTime::from_unix_timestamp(ts).unwrap(),
        clock_synced: true,
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Publishes `per_box` events from each of `boxes` simulated boxes; with `want_acks`, waits for
/// central's acks of every one, else for the broker's PUBACKs. Returns the seconds taken.
async fn publish_all(port: u16, boxes: usize, per_box: u64, want_acks: bool) -> f64 {
    let payloads: Vec<Vec<Vec<u8>>> = (0..boxes)
        .map(|b| {
            (1..=per_box)
                .map(|s| {
                    records::encode(&event(
                        &format!("sim-{b}"),
                        s,
                        s % 30_000,
                        s % 2000,
                        T0 + s as i64,
                    ))
                })
                .collect()
        })
        .collect();
    let acked = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (b, payloads) in payloads.into_iter().enumerate() {
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("sim-{b}");
            let mut o = MqttOptions::new(id.clone(), "127.0.0.1", port);
            o.set_keep_alive(Duration::from_secs(30));
            o.set_inflight(200);
            let (client, mut ev) = AsyncClient::new(o, 1000);
            let ack_topic = Topic::Ack(id.parse().unwrap()).to_string();
            client
                .subscribe(&ack_topic, QoS::AtLeastOnce)
                .await
                .unwrap();
            let topic = Topic::Event(id.parse().unwrap()).to_string();
            let pubber = {
                let client = client.clone();
                tokio::spawn(async move {
                    for p in payloads {
                        client
                            .publish(&topic, QoS::AtLeastOnce, false, p)
                            .await
                            .unwrap();
                    }
                })
            };
            // `mine`: central's end-to-end acks, or in raw mode the broker's PUBACKs: either
            // way every event has left this box.
            let mut mine = 0u64;
            loop {
                if pubber.is_finished() && mine >= per_box {
                    break;
                }
                match tokio::time::timeout(Duration::from_secs(60), ev.poll()).await {
                    Ok(Ok(MqttEvent::Incoming(Packet::Publish(p)))) => {
                        if let Ok(a) = records::decode::<Ack>(&p.payload) {
                            let n: u64 = a.ranges.iter().map(|r| r.last - r.first + 1).sum();
                            mine += n;
                            acked.fetch_add(n, Ordering::Relaxed);
                        }
                    }
                    Ok(Ok(MqttEvent::Incoming(Packet::PubAck(_)))) if !want_acks => mine += 1,
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => panic!("{id}: {e}"),
                    Err(_) => panic!("{id}: no progress for 60 s"),
                }
            }
            // Let the last PUBACKs through before disconnecting.
            let _ = tokio::time::timeout(Duration::from_millis(300), async {
                loop {
                    let _ = ev.poll().await;
                }
            })
            .await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed().as_secs_f64()
}

fn ingest(backends: &[&str]) {
    println!("## Ingest through Mosquitto on loopback (QoS 1)\n");
    println!("| boxes | events | path | seconds | events/s |");
    println!("|---:|---:|---|---:|---:|");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (boxes, per_box) = (20usize, 5_000u64);
    let total = boxes as u64 * per_box;
    // Raw: the broker alone, to `mosquitto_sub` (C, prints nothing), which exits after the last.
    {
        let dir = TempDir::new("bench-raw");
        let broker = Mosquitto::start(&dir.path().join("broker"), None);
        let mut sub = std::process::Command::new("mosquitto_sub")
            .args([
                "-p",
                &broker.port.to_string(),
                "-q",
                "1",
                "-t",
                "checkpoint/v1/box/+/event",
            ])
            .args(["-C", &total.to_string(), "-i", "raw-counter", "-c"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("mosquitto_sub (scripts/setup installs mosquitto-clients)");
        std::thread::sleep(Duration::from_millis(500));
        let start = Instant::now();
        rt.block_on(publish_all(broker.port, boxes, per_box, false));
        let deadline = Instant::now() + Duration::from_secs(60);
        while matches!(sub.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        let secs = start.elapsed().as_secs_f64();
        let done = matches!(sub.try_wait(), Ok(Some(_)));
        let _ = sub.kill();
        let note = if done {
            ""
        } else {
            " (subscriber did not get them all in 60 s)"
        };
        println!(
            "| {boxes} | {total} | broker only, one subscriber{note} | {secs:.1} | {:.0} |",
            total as f64 / secs
        );
    }
    // Central: stored durably, then acked to each box; on SQLite, then on PostgreSQL.
    for backend in backends {
        let dir = TempDir::new_in_target("bench-ingest");
        let cluster = (*backend == "postgres").then(Cluster::start_in_target);
        let _store = cluster
            .as_ref()
            .map(|c| checkpoint_e2e::central::use_postgres(&c.database()));
        let broker = Mosquitto::start(&dir.path().join("broker"), None);
        let mut central = CentralProc::start(&dir.path().join("central"), &broker, None);
        std::thread::sleep(Duration::from_secs(1));
        let secs = rt.block_on(publish_all(broker.port, boxes, per_box, true));
        println!(
            "| {boxes} | {total} | central on {backend}: stored + acked | {secs:.1} | {:.0} |",
            total as f64 / secs
        );
        central.terminate();
    }
    println!();
}

/// The generated campus: each event a person at one of their few usual places, over 14 days,
/// arriving in time order (with a little disorder from boxes' backlogs) as a real store fills.
fn fill(store: &dyn Store, n: u64) -> f64 {
    let people = 30_000u64;
    let span = 14 * 86_400i64;
    let t = Instant::now();
    let mut rng = fastrand::Rng::with_seed(7);
    let batch = 500u64;
    let mut seqs: HashMap<u64, u64> = HashMap::new();
    for start in (0..n).step_by(batch as usize) {
        let evs: Vec<Event> = (start..(start + batch).min(n))
            .map(|i| {
                let person = rng.u64(0..people);
                let place = (person * 7 + rng.u64(0..4)) % 2000;
                let b = place;
                let seq = seqs.entry(b).or_insert(0);
                *seq += 1;
                event(
                    &format!("box-{b}"),
                    *seq,
                    person,
                    place,
                    T0 + (i as i64 * span) / n as i64 + rng.i64(0..120),
                )
            })
            .collect();
        store.insert(&evs).unwrap();
        // As the alert engine does once it has seen their temperatures.
        let handled: Vec<_> = evs.iter().map(|e| (e.box_id.clone(), e.seq)).collect();
        store.readings_handled(&handled).unwrap();
        if start % 1_000_000 == 0 && start > 0 {
            eprintln!("  {start} events, {:.0} s", t.elapsed().as_secs_f64());
        }
    }
    t.elapsed().as_secs_f64()
}

fn timed(runs: usize, mut f: impl FnMut(&mut fastrand::Rng) -> usize) -> (f64, f64, f64) {
    let mut rng = fastrand::Rng::with_seed(11);
    let mut lat = Vec::with_capacity(runs);
    let mut rows = 0usize;
    for _ in 0..runs {
        let s = Instant::now();
        rows += f(&mut rng);
        lat.push(s.elapsed().as_secs_f64() * 1000.0);
    }
    (
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        rows as f64 / runs as f64,
    )
}

/// `pg_url`: a PostgreSQL store, vacuumed and analysed after the fill as autovacuum would have
/// done on a live server by the time anyone queries a day's events.
fn queries_on(label: &str, store: &dyn Store, n: u64, shallow: bool, pg_url: Option<&str>) {
    let utc = checkpoint_central::site::Site::utc();
    let people = 30_000u64;
    let span = 14 * 86_400i64;
    let fill_s = fill(store, n);
    if let Some(url) = pg_url {
        let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
        c.batch_execute("VACUUM ANALYZE").unwrap();
    }
    let bytes = store.size_on_disk().unwrap();
    println!(
        "### {label}, {n} events\n\nFilled in {fill_s:.0} s ({:.0} events/s through \
         `Store::insert`, batches of 500); {:.2} GB on disk, {:.0} bytes per event.\n",
        n as f64 / fill_s,
        bytes as f64 / 1e9,
        bytes as f64 / n as f64
    );
    if let Some(url) = pg_url {
        // Where the bytes are: each table's heap and its indexes, over all day partitions.
        let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
        let rows = c
            .query(
                "SELECT coalesce(i.inhparent::regclass::text, c.relname) AS t, \
                 sum(pg_table_size(c.oid))::bigint, sum(pg_indexes_size(c.oid))::bigint \
                 FROM pg_class c LEFT JOIN pg_inherits i ON i.inhrelid = c.oid \
                 WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace \
                 GROUP BY 1 ORDER BY sum(pg_total_relation_size(c.oid)) DESC LIMIT 6",
                &[],
            )
            .unwrap();
        println!("| table | heap bytes per event | index bytes per event |");
        println!("|---|---:|---:|");
        for r in rows {
            let (t, heap, idx): (String, i64, i64) = (r.get(0), r.get(1), r.get(2));
            println!(
                "| {t} | {:.0} | {:.0} |",
                heap as f64 / n as f64,
                idx as f64 / n as f64
            );
        }
        println!();
    }
    println!("| query | runs | p50 ms | p99 ms | mean rows |");
    println!("|---|---:|---:|---:|---:|");
    let person =
        |rng: &mut fastrand::Rng| SubjectId::new(format!("p-{}", rng.u64(0..people))).unwrap();
    let (p50, p99, rows) = timed(200, |rng| {
        query::trajectory(store, &person(rng), T0 * 1000, (T0 + span) * 1000)
            .unwrap()
            .len()
    });
    println!("| trajectory, 14 days | 200 | {p50:.2} | {p99:.2} | {rows:.0} |");
    let depths: &[u8] = if shallow { &[1] } else { &[1, 2] };
    for &depth in depths {
        let runs = if depth == 1 { 200 } else { 40 };
        let (p50, p99, rows) = timed(runs, |rng| {
            let params = ContactParams {
                from_ms: T0 * 1000,
                to_ms: (T0 + span) * 1000,
                window_ms: 300_000,
                max_stay_ms: 12 * 3_600_000,
                now_ms: (T0 + span) * 1000,
                depth,
            };
            query::contacts(store, &person(rng), &params).unwrap().len()
        });
        println!(
            "| contacts depth {depth}, 14 days, ±5 min | {runs} | {p50:.2} | {p99:.2} | {rows:.0} |"
        );
    }
    let (p50, p99, rows) = timed(200, |rng| {
        let place = CheckpointId::new(format!("cp-{}", rng.u64(0..2000))).unwrap();
        let now = (T0 + rng.i64(86_400..span)) * 1000;
        let (o, flow) =
            query::occupancy(store, &place, now, 12 * 3_600_000, &utc.last_hours(now, 24)).unwrap();
        o.ins as usize + flow.len()
    });
    println!("| occupancy + 24 h flow of one place | 200 | {p50:.2} | {p99:.2} | {rows:.0} |");
    let day = |rng: &mut fastrand::Rng| {
        let from = (T0 + rng.i64(0..span - 86_400)) * 1000;
        EventFilter {
            from_ms: from,
            to_ms: from + 86_400_000,
            ..EventFilter::default()
        }
    };
    let (p50, p99, rows) = timed(200, |rng| {
        store
            .events_page(&day(rng), None, 100)
            .unwrap()
            .events
            .len()
    });
    println!("| events page (100 rows of a day) | 200 | {p50:.2} | {p99:.2} | {rows:.0} |");
    let (p50, p99, rows) = timed(200, |rng| {
        // Ten pages in: the cursor starts the read where the last page ended.
        let f = day(rng);
        let mut after = None;
        for _ in 0..9 {
            after = store.events_page(&f, after, 100).unwrap().next;
        }
        store.events_page(&f, after, 100).unwrap().events.len()
    });
    println!(
        "| ten events pages in a row (the 10th's rows) | 200 | {p50:.2} | {p99:.2} | {rows:.0} |"
    );
    let (p50, p99, rows) = timed(200, |rng| {
        let f = EventFilter {
            place: Some(CheckpointId::new(format!("cp-{}", rng.u64(0..2000))).unwrap()),
            direction: Some(Direction::In),
            ..day(rng)
        };
        let shown = store.events_page(&f, None, 100).unwrap().events.len();
        assert!(store.events_count(&f).unwrap() >= shown as u64);
        shown
    });
    println!("| events page of one place and direction + exact count | 200 | {p50:.2} | {p99:.2} | {rows:.0} |");
    let (p50, p99, rows) = timed(200, |rng| store.events_count(&day(rng)).unwrap() as usize);
    println!("| exact count of a day's events | 200 | {p50:.2} | {p99:.2} | {rows:.0} |");
    println!();
}

fn queries(n: u64, shallow: bool, backends: &[&str]) {
    println!("## Queries on a generated campus (30,000 people, 2,000 checkpoints, 14 days)\n");
    if backends.contains(&"sqlite") {
        let dir = TempDir::new_in_target("bench-sqlite");
        let store = SqliteStore::open(&dir.path().join("central.sqlite"), 256 << 20).unwrap();
        queries_on("SQLite", &store, n, shallow, None);
    }
    if backends.contains(&"postgres") {
        let cluster = Cluster::start_in_target();
        let opts = PostgresOptions {
            url: cluster.database(),
            password: None,
            ca_pem: None,
            pool_size: 4,
        };
        let store = PostgresStore::open(&opts).unwrap();
        queries_on("PostgreSQL 15", &store, n, shallow, Some(&opts.url));
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let n: u64 = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let names: Vec<&String> = args
        .iter()
        .filter(|a| a.parse::<u64>().is_err() && *a != "shallow" && !a.starts_with("no-"))
        .collect();
    let want = |name: &str| names.is_empty() || names.iter().any(|a| *a == name);
    let backends: Vec<&str> = ["sqlite", "postgres"]
        .into_iter()
        .filter(|b| !args.iter().any(|a| a == &format!("no-{b}")))
        .collect();
    if want("ingest") {
        ingest(&backends);
    }
    if want("queries") {
        queries(n, args.iter().any(|a| a == "shallow"), &backends);
    }
}
