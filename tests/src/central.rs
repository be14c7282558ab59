//! A stand-in for central in the daemon's tests: an MQTT client that records everything boxes
//! publish and, when asked, sends end-to-end acks and trust configuration.
//!
//! Long on purpose: the stand-in does what central does for a box (acks, trust, galleries,
//! recording), and the daemon's tests share it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use checkpoint_protocol::ids::BoxId;
use checkpoint_protocol::records::{self, Ack, Event, SeqRange, Status, Telemetry, TrustConfig};
use checkpoint_protocol::topic::{self, ConfigKind, Topic};
use rumqttc::{Client, Event as MqttEvent, MqttOptions, Packet, QoS, TlsConfiguration, Transport};

use crate::broker::{Mosquitto, Pki};

#[derive(Debug, Default)]
struct Seen {
    events: Vec<Event>,
    status: Vec<Status>,
    telemetry: Vec<Telemetry>,
    bad: Vec<String>,
}

pub struct TestCentral {
    client: Client,
    seen: Arc<Mutex<Seen>>,
    auto_ack: Arc<AtomicBool>,
    connected: Arc<AtomicBool>,
}

impl std::fmt::Debug for TestCentral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCentral").finish_non_exhaustive()
    }
}

impl TestCentral {
    /// Connects (mutual TLS when `pki` is given, as identity "central") and subscribes to all
    /// boxes. With `auto_ack`, every event is acknowledged as soon as it arrives.
    ///
    /// # Panics
    /// When it cannot connect within 10 s.
    pub fn connect(broker: &Mosquitto, pki: Option<&Pki>, auto_ack: bool) -> TestCentral {
        Self::connect_as("central", broker, pki, auto_ack)
    }

    /// Connects as `name`: "central" with central's certificate, anything else (an observer
    /// beside a real central) with the tests' read-only observer certificate
    /// ([`crate::broker::OBSERVER`]), since the broker makes a certificate's name the client id.
    pub fn connect_as(
        name: &str,
        broker: &Mosquitto,
        pki: Option<&Pki>,
        auto_ack: bool,
    ) -> TestCentral {
        let identity = if name == "central" {
            "central"
        } else {
            crate::broker::OBSERVER
        };
        let tls = pki.map(|p| (p.ca(), p.client(identity)));
        Self::connect_identity(name, broker.port, tls, auto_ack)
    }

    /// Connects to any broker on `port` with client id `name` and, when given, the CA and the
    /// certificate of any identity (a box's, to act as an attacker holding one).
    pub fn connect_identity(
        name: &str,
        port: u16,
        tls: Option<(std::path::PathBuf, crate::broker::Identity)>,
        auto_ack: bool,
    ) -> TestCentral {
        let mut opts = MqttOptions::new(name, "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(5));
        // Big enough to send oversized garbage in the robustness tests.
        opts.set_max_packet_size(1 << 20, 1 << 20);
        // A persistent session, as the real central has: the broker queues events for it while
        // it is away, also across a broker restart.
        opts.set_clean_session(false);
        if let Some((ca, id)) = tls {
            // Any client id; the certificate is the broker's ACL user.
            let tls =
                checkpoint_link::tls::client_config(&ca, &id.cert, &id.key).expect("client TLS");
            opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
        }
        let (client, mut connection) = Client::new(opts, 1024);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let auto = Arc::new(AtomicBool::new(auto_ack));
        let connected = Arc::new(AtomicBool::new(false));
        {
            let (client, seen, auto, connected) = (
                client.clone(),
                seen.clone(),
                auto.clone(),
                connected.clone(),
            );
            std::thread::spawn(move || {
                for ev in connection.iter() {
                    match ev {
                        Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                            for f in topic::central_filters() {
                                let _ = client.subscribe(f, QoS::AtLeastOnce);
                            }
                        }
                        Ok(MqttEvent::Incoming(Packet::SubAck(_))) => {
                            connected.store(true, Ordering::SeqCst);
                        }
                        Ok(MqttEvent::Incoming(Packet::Publish(p))) => handle(
                            &client,
                            &seen,
                            auto.load(Ordering::SeqCst),
                            &p.topic,
                            &p.payload,
                        ),
                        Ok(_) => {}
                        Err(_) => std::thread::sleep(Duration::from_millis(200)),
                    }
                }
            });
        }
        let c = TestCentral {
            client,
            seen,
            auto_ack: auto,
            connected,
        };
        wait_until(Duration::from_secs(10), "central subscribed", || {
            c.connected.load(Ordering::SeqCst)
        });
        c
    }

    pub fn set_auto_ack(&self, on: bool) {
        self.auto_ack.store(on, Ordering::SeqCst);
    }

    pub fn events(&self) -> Vec<Event> {
        self.seen.lock().expect("lock").events.clone()
    }

    /// Distinct events by sequence number, in sequence order (the broker may deliver a resend
    /// twice).
    pub fn unique_events(&self) -> Vec<Event> {
        let mut e = self.events();
        e.sort_by_key(|e| e.seq);
        e.dedup_by_key(|e| e.seq);
        e
    }

    pub fn status(&self) -> Vec<Status> {
        self.seen.lock().expect("lock").status.clone()
    }

    pub fn telemetry(&self) -> Vec<Telemetry> {
        self.seen.lock().expect("lock").telemetry.clone()
    }

    /// Payloads that failed strict decoding.
    pub fn bad(&self) -> Vec<String> {
        self.seen.lock().expect("lock").bad.clone()
    }

    /// Waits until `n` distinct events have arrived.
    pub fn wait_events(&self, n: usize, timeout: Duration) -> Vec<Event> {
        wait_until(timeout, &format!("{n} events"), || {
            self.unique_events().len() >= n
        });
        self.unique_events()
    }

    pub fn ack(&self, box_id: &BoxId, first: u64, last: u64) {
        ack(&self.client, box_id, first, last);
    }

    /// Publishes trust configuration, retained, as central does.
    pub fn publish_trust(&self, cfg: &TrustConfig) {
        self.client
            .publish(
                Topic::SharedConfig(ConfigKind::Trust).to_string(),
                QoS::AtLeastOnce,
                true,
                records::encode(cfg),
            )
            .expect("publish trust");
    }

    /// Publishes raw bytes on a topic, retained (configuration such as a box's gallery).
    pub fn publish_retained(&self, topic: &str, payload: &[u8]) {
        self.client
            .publish(topic, QoS::AtLeastOnce, true, payload.to_vec())
            .expect("publish");
    }

    /// Publishes raw bytes on a topic (for garbage-input tests).
    pub fn publish_raw(&self, topic: &str, payload: &[u8]) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.to_vec())
            .expect("publish");
    }
}

fn ack(client: &Client, box_id: &BoxId, first: u64, last: u64) {
    let a = Ack {
        schema: records::Schema,
        box_id: box_id.clone(),
        ranges: vec![SeqRange { first, last }],
    };
    let _ = client.try_publish(
        Topic::Ack(box_id.clone()).to_string(),
        QoS::AtLeastOnce,
        false,
        records::encode(&a),
    );
}

fn handle(client: &Client, seen: &Mutex<Seen>, auto_ack: bool, topic: &str, payload: &[u8]) {
    let Ok(mut s) = seen.lock() else { return };
    match Topic::parse(topic) {
        Ok(Topic::Event(b)) => match records::decode::<Event>(payload) {
            Ok(e) if e.box_id == b => {
                if auto_ack {
                    ack(client, &b, e.seq, e.seq);
                }
                s.events.push(e);
            }
            Ok(e) => s.bad.push(format!("event for {} on {b}'s topic", e.box_id)),
            Err(e) => s.bad.push(format!("event: {e}")),
        },
        Ok(Topic::Status(_)) => match records::decode::<Status>(payload) {
            Ok(st) => s.status.push(st),
            Err(e) => s.bad.push(format!("status: {e}")),
        },
        Ok(Topic::Telemetry(_)) => match records::decode::<Telemetry>(payload) {
            Ok(t) => s.telemetry.push(t),
            Err(e) => s.bad.push(format!("telemetry: {e}")),
        },
        _ => s.bad.push(format!("unexpected topic {topic}")),
    }
}

/// Polls `cond` every 50 ms until it holds.
///
/// # Panics
/// When it does not hold within `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

thread_local! {
    /// The `[store]` section centrals started on this thread get (SQLite by default).
    static STORE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Centrals started on this thread until the guard drops keep their store in PostgreSQL
/// database `url` (`postgres::Cluster::database`).
pub fn use_postgres(url: &str) -> StoreGuard {
    STORE.with(|s| *s.borrow_mut() = Some(crate::postgres::Cluster::store_section(url)));
    StoreGuard(())
}

/// Back to SQLite when dropped.
#[derive(Debug)]
pub struct StoreGuard(());

impl Drop for StoreGuard {
    fn drop(&mut self) {
        STORE.with(|s| *s.borrow_mut() = None);
    }
}

/// A running `checkpoint-central serve`, its log next to its config. Killed when dropped.
#[derive(Debug)]
pub struct CentralProc {
    /// The PostgreSQL database it stores into, when not SQLite.
    pub postgres: Option<String>,
    proc_: crate::Proc,
    pub config: std::path::PathBuf,
    pub data_dir: std::path::PathBuf,
    /// `http://127.0.0.1:PORT` of its API.
    pub api: String,
    pub token_file: std::path::PathBuf,
}

impl CentralProc {
    /// Writes a config for `broker` (mutual TLS as identity "central" when `pki` is given) and
    /// starts central.
    pub fn start(dir: &std::path::Path, broker: &Mosquitto, pki: Option<&Pki>) -> CentralProc {
        Self::start_with(dir, broker, pki, 600, "")
    }

    /// Like [`CentralProc::start`], with extra TOML appended to the configuration.
    pub fn start_with(
        dir: &std::path::Path,
        broker: &Mosquitto,
        pki: Option<&Pki>,
        gap_grace_s: u64,
        extra: &str,
    ) -> CentralProc {
        let transport = match pki {
            Some(p) => {
                let id = p.client("central");
                format!(
                    "{{ kind = \"tls\", ca = \"{}\", cert = \"{}\", key = \"{}\" }}",
                    p.ca().display(),
                    id.cert.display(),
                    id.key.display()
                )
            }
            None => "{ kind = \"plain\" }".to_string(),
        };
        let broker = format!(
            "[broker]\nhost = \"127.0.0.1\"\nport = {}\ntransport = {transport}\n\
             client_id = \"central-under-test\"\nbackoff_min = \"200ms\"\nbackoff_max = \"1s\"\n",
            broker.port
        );
        // With a site PKI, central accepts only the boxes it issued certificates to.
        let ingest = pki
            .map(|p| format!("pki_dir = \"{}\"\n", p.dir.display()))
            .unwrap_or_default();
        Self::start_config(dir, &broker, gap_grace_s, &ingest, extra, &[])
    }

    /// Central with its embedded broker (the Mosquitto it supervises) on `port`, with the
    /// site PKI of `pki`.
    pub fn start_embedded(dir: &std::path::Path, pki: &Pki, port: u16) -> CentralProc {
        Self::start_embedded_full(dir, pki, port, "", &[])
    }

    /// [`CentralProc::start_embedded`] with extra TOML appended to the config.
    pub fn start_embedded_tls(
        dir: &std::path::Path,
        pki: &Pki,
        port: u16,
        extra: &str,
    ) -> CentralProc {
        Self::start_embedded_full(dir, pki, port, extra, &[])
    }

    /// [`CentralProc::start_embedded`] with extra TOML and extra environment variables.
    pub fn start_embedded_full(
        dir: &std::path::Path,
        pki: &Pki,
        port: u16,
        extra: &str,
        env: &[(&str, &str)],
    ) -> CentralProc {
        let broker = format!(
            "[embedded_broker]\nlisten = \"127.0.0.1:{port}\"\npki_dir = \"{}\"\n",
            pki.dir.display()
        );
        Self::start_config(dir, &broker, 600, "", extra, env)
    }

    fn start_config(
        dir: &std::path::Path,
        broker: &str,
        gap_grace_s: u64,
        ingest: &str,
        extra: &str,
        env: &[(&str, &str)],
    ) -> CentralProc {
        std::fs::create_dir_all(dir).expect("central dir");
        let data_dir = dir.join("data");
        let config = dir.join("central.toml");
        let token_file = dir.join("api.token");
        std::fs::write(&token_file, "test-token-0123456789abcdef\n").expect("token");
        // Central reads secrets only when private.
        std::fs::set_permissions(
            &token_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("token mode");
        let api_port = crate::broker::free_port();
        let store = STORE
            .with(|s| s.borrow().clone())
            .unwrap_or_else(|| "[store]\ncache_bytes = 16777216\n".to_string());
        let postgres = store
            .contains("postgres")
            .then(|| {
                store
                    .lines()
                    .find_map(|l| l.strip_prefix("url = "))
                    .map(|u| u.trim_matches('"').to_string())
            })
            .flatten();
        std::fs::write(
            &config,
            format!(
                "data_dir = \"{}\"\n{broker}\
                 [ingest]\nbatch_wait = \"20ms\"\ngap_grace = \"{gap_grace_s}s\"\n{ingest}{store}\
                 [api]\nlisten = \"127.0.0.1:{api_port}\"\ntoken_file = \"{}\"\n{extra}\n",
                data_dir.display(),
                token_file.display(),
            ),
        )
        .expect("write central config");
        let args: [&std::ffi::OsStr; 3] =
            ["serve".as_ref(), "--config".as_ref(), config.as_os_str()];
        let log = dir.join("central.log");
        CentralProc {
            postgres,
            proc_: crate::Proc::start(
                "checkpoint-central",
                &args,
                &[env, &[("RUST_LOG", "info")]].concat(),
                log,
            ),
            config,
            data_dir,
            api: format!("http://127.0.0.1:{api_port}"),
            token_file,
        }
    }

    /// Opens this central's store (when it is stopped, for SQLite: retried while locked).
    pub fn open_store(&self) -> Box<dyn checkpoint_central::store::Store> {
        if let Some(url) = &self.postgres {
            let opts = checkpoint_central::store::PostgresOptions {
                url: url.clone(),
                password: None,
                ca_pem: None,
                pool_size: 2,
            };
            return Box::new(
                checkpoint_central::store::PostgresStore::open(&opts).expect("open postgres"),
            );
        }
        let path = self.data_dir.join(checkpoint_central::store::sqlite::FILE);
        let mut last = None;
        for _ in 0..300 {
            match checkpoint_central::store::SqliteStore::open(&path, 1 << 24) {
                Ok(s) => return Box::new(s),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("store at {} does not open: {last:?}", path.display())
    }

    /// Runs a command of the real CLI against this central's API, retrying for a few seconds
    /// while the API comes up; returns its stderr.
    pub fn command(&self, args: &[&str]) -> String {
        let mut all: Vec<&str> = args.to_vec();
        let token = self.token_file.to_str().unwrap_or_default();
        all.extend(["--api", &self.api, "--token-file", token]);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = crate::run("checkpoint-admin", &all);
            let err = String::from_utf8_lossy(&out.stderr).to_string();
            if out.status.success() {
                return err;
            }
            assert!(Instant::now() < deadline, "{all:?}: {err}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every stored event, through the real CLI (`events --json` from 2000 on).
    pub fn stored_events(&self) -> Vec<serde_json::Value> {
        self.query(&["events", "--from", "2000-01-01T00:00:00Z"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The `boxes` row of `box_id` through the real CLI, when central knows the box.
    pub fn box_row(&self, box_id: &str) -> Option<serde_json::Value> {
        self.query(&["boxes"])
            .as_array()?
            .iter()
            .find(|b| b["box_id"] == box_id)
            .cloned()
    }

    /// Runs a query command of the real CLI against this central (`--json`) and parses it.
    pub fn query(&self, args: &[&str]) -> serde_json::Value {
        let mut all: Vec<&str> = args.to_vec();
        let token = self.token_file.to_str().unwrap_or_default();
        all.extend(["--api", &self.api, "--token-file", token, "--json"]);
        let out = crate::run("checkpoint-admin", &all);
        assert!(
            out.status.success(),
            "{all:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON answer")
    }
}

impl std::ops::Deref for CentralProc {
    type Target = crate::Proc;
    fn deref(&self) -> &crate::Proc {
        &self.proc_
    }
}

impl std::ops::DerefMut for CentralProc {
    fn deref_mut(&mut self) -> &mut crate::Proc {
        &mut self.proc_
    }
}
