use std::sync::Mutex;

use super::*;
use crate::alerts::webhook::Delivered;
use crate::alerts::Facility;
use crate::store::SqliteStore;

#[test]
fn retries_back_off_to_ten_minutes() {
    let d: Vec<u64> = (1..=10).map(|a| retry_delay(a).as_secs()).collect();
    assert_eq!(d, [5, 10, 20, 40, 80, 160, 320, 600, 600, 600]);
}

/// A channel that fails (transiently) until told otherwise, and records what it delivered.
#[derive(Default)]
struct Flaky {
    up: std::sync::atomic::AtomicBool,
    calls: AtomicU64,
    delivered: Mutex<Vec<String>>,
    /// What was delivered, raised (`true`) or cleared.
    order: Mutex<Vec<(String, bool)>>,
}

impl Channel for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn send(&self, msg: &Outgoing) -> Result<Delivered, ChannelError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if !self.up.load(Ordering::SeqCst) {
            return Err(ChannelError::Transient("down".into()));
        }
        let mut d = self.delivered.lock().unwrap();
        d.push(msg.alert.key.clone());
        self.order
            .lock()
            .unwrap()
            .push((msg.alert.key.clone(), msg.alert.raised));
        Ok(Delivered::default())
    }
}

fn engine(store: Arc<SqliteStore>, channel: Arc<Flaky>) -> Engine {
    let cfg = AlertsConfig {
        // Fevers to the desk too: no roster in these tests.
        routes: [(
            AlertKind::Fever,
            vec![crate::alerts::route::Role::Facilities],
        )]
        .into(),
        facilities: vec![Facility {
            id: "desk".into(),
            wecom_id: None,
            email: None,
        }],
        ..AlertsConfig::default()
    };
    Engine {
        store,
        registry: Arc::new(Registry::default()),
        channels: vec![Route::new(channel, None)],
        cfg,
        silent_after: Duration::from_secs(3600),
        max_stay_ms: 3_600_000,
        site: crate::site::Site::utc(),
        backlog: Vec::new(),
        clock: checkpoint_link::clock::system(),
    }
}

/// An alert as ingest hands it over (no reading behind it).
fn offline(b: &str) -> Reading {
    Reading {
        box_id: BoxId::new("gate-1".to_string()).unwrap(),
        seq: 0,
        alerts: vec![offline_alert(b)],
    }
}

fn offline_alert(b: &str) -> Alert {
    Alert {
        key: format!("box_offline:{b}"),
        kind: AlertKind::BoxOffline,
        raised: true,
        ts_ms: 1,
        subject: None,
        checkpoint: None,
        box_id: Some(b.into()),
        value: None,
    }
}

/// An engine running on `store` with one channel.
struct Running {
    tx: mpsc::Sender<Reading>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start(store: &Arc<SqliteStore>, channel: &Arc<Flaky>) -> Running {
    let (tx, rx) = mpsc::channel(8);
    let stop = CancellationToken::new();
    let mut e = engine(store.clone(), channel.clone());
    e.backlog = store.unhandled_readings(100).unwrap();
    let task = tokio::spawn(e.run(rx, stop.clone()));
    Running { tx, stop, task }
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_delivery_pending_at_shutdown_is_resumed_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("c.sqlite"), 1 << 20).unwrap());
    let down = Arc::new(Flaky::default());
    let run = start(&store, &down);
    run.tx.send(offline("gate-1")).await.unwrap();
    until("the pending delivery in the store", || {
        kept::pending_deliveries(store.as_ref()).unwrap().len() == 1
    })
    .await;
    run.stop().await;

    // The next run (the channel back up) delivers it at once and forgets it.
    let up = Arc::new(Flaky::default());
    up.up.store(true, Ordering::SeqCst);
    let run = start(&store, &up);
    until("the resumed delivery", || {
        kept::pending_deliveries(store.as_ref()).unwrap().is_empty()
    })
    .await;
    run.stop().await;
    assert_eq!(*up.delivered.lock().unwrap(), ["box_offline:gate-1"]);
    let log = kept::notifications(store.as_ref(), 10).unwrap();
    assert_eq!(log.len(), 1, "one record, updated: {log:?}");
    assert_eq!(log[0].outcome, Outcome::Sent);
    assert_eq!(log[0].attempts, 2);
    assert_eq!(log[0].recipients, ["desk"]);
}

#[tokio::test]
async fn a_channel_that_just_failed_is_left_alone_and_what_waits_for_it_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("c.sqlite"), 1 << 20).unwrap());
    let down = Arc::new(Flaky::default());
    let run = start(&store, &down);
    for b in ["g-1", "g-2", "g-3", "g-4", "g-5"] {
        run.tx.send(offline(b)).await.unwrap();
    }
    until("five deliveries kept", || {
        kept::pending_deliveries(store.as_ref()).unwrap().len() == 5
    })
    .await;
    run.stop().await;
    // One attempt found the channel down; the other four wait for its backoff untried.
    assert_eq!(down.calls.load(Ordering::SeqCst), 1);
    let log = kept::notifications(store.as_ref(), 10).unwrap();
    assert_eq!(log.len(), 5);
    assert!(log.iter().all(|r| r.outcome == Outcome::Pending));
    assert_eq!(log.iter().filter(|r| r.attempts == 0).count(), 4);
}

#[tokio::test]
async fn a_reading_whose_alerts_a_crash_cut_off_is_handled_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("c.sqlite"), 1 << 20).unwrap());
    // Stored and acked, then central died before the engine saw it.
    let mut e = crate::store::tests::ev("gate-1", 7, Some("s-1"), "lib", 0);
    e.temperature_c = Some(38.4);
    store.insert(std::slice::from_ref(&e)).unwrap();
    let up = Arc::new(Flaky::default());
    up.up.store(true, Ordering::SeqCst);
    let run = start(&store, &up);
    until("the fever delivered", || {
        !up.delivered.lock().unwrap().is_empty()
    })
    .await;
    until("the reading handled", || {
        store.unhandled_readings(10).unwrap().is_empty()
    })
    .await;
    run.stop().await;
    assert_eq!(*up.delivered.lock().unwrap(), [format!("fever:{}", e.id)]);
}

/// A receiver down while a box goes offline and comes back: once it is up again, "offline" is
/// delivered before "back online", as they happened.
#[tokio::test]
async fn after_a_receiver_outage_alerts_go_out_in_the_order_they_were_raised() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("c.sqlite"), 1 << 20).unwrap());
    let flaky = Arc::new(Flaky::default());
    let run = start(&store, &flaky);
    run.tx.send(offline("gate-9")).await.unwrap();
    until("the first attempt failed", || {
        flaky.calls.load(Ordering::SeqCst) == 1
    })
    .await;
    let mut back = offline("gate-9");
    back.alerts[0].raised = false;
    back.alerts[0].ts_ms = 2;
    run.tx.send(back).await.unwrap();
    until("both kept", || {
        kept::pending_deliveries(store.as_ref()).unwrap().len() == 2
    })
    .await;
    flaky.up.store(true, Ordering::SeqCst);
    // The channel's backoff is 5 s after one failure.
    for _ in 0..100 {
        if flaky.order.lock().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    run.stop().await;
    assert_eq!(
        *flaky.order.lock().unwrap(),
        [
            ("box_offline:gate-9".to_string(), true),
            ("box_offline:gate-9".to_string(), false)
        ]
    );
}

#[test]
fn a_box_is_offline_once_silent_for_longer_than_allowed_by_the_engine_clock() {
    let clock = checkpoint_link::clock::ManualClock::starting_at(
        time::macros::datetime!(2026-12-03 08:00 UTC),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("c.sqlite"), 1 << 20).unwrap());
    let mut e = engine(store, Arc::new(Flaky::default()));
    e.clock = clock.clone();
    e.registry = Arc::new(Registry::new(clock.clone()));
    e.registry.status(checkpoint_protocol::records::Status {
        schema: checkpoint_protocol::records::Schema,
        box_id: BoxId::new("gate-1").unwrap(),
        state: checkpoint_protocol::records::BoxState::Online,
        version: Some("1.0.0".into()),
    });
    let online = |e: &Engine| e.health().iter().map(|h| h.online).collect::<Vec<_>>();
    assert_eq!(online(&e), [true]);
    clock.advance(e.silent_after - Duration::from_secs(1));
    assert_eq!(online(&e), [true], "still within the silence allowed");
    clock.advance(Duration::from_secs(2));
    assert_eq!(online(&e), [false], "silent for longer than allowed");
}
