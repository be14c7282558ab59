//! A real Mosquitto for the tests, with a throw-away PKI for mutual TLS.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use checkpoint_pki::{self as pki, Ca, Validity};
use time::{Duration as Span, OffsetDateTime};

/// The site PKI as `checkpoint-admin pki` makes it: a CA, a broker certificate for
/// 127.0.0.1/localhost, and client certificates whose common name is the identity (Mosquitto's
/// `use_identity_as_username`).
#[derive(Debug)]
pub struct Pki {
    pub dir: PathBuf,
    ca: Ca,
}

/// Paths of a certificate and its key.
#[derive(Debug, Clone)]
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    /// # Panics
    /// When the certificates cannot be generated or written.
    pub fn new(dir: &Path) -> Pki {
        pki::init(dir, "Checkpoint test CA", Validity::days(30).expect("days")).expect("CA");
        checkpoint_pki::signing::keygen(dir).expect("configuration-signing key");
        let ca = Ca::load(dir).expect("load CA");
        ca.issue_server(
            &["localhost".to_string(), "127.0.0.1".to_string()],
            Validity::days(30).expect("days"),
        )
        .expect("server certificate");
        // Central's own client (the embedded broker needs it).
        ca.issue_client("central", Validity::days(30).expect("days"))
            .expect("central's certificate");
        Pki {
            dir: dir.to_path_buf(),
            ca,
        }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Central's configuration-signing key (private, for central's config) and its public half
    /// (for boxes).
    pub fn config_key(&self) -> PathBuf {
        self.dir.join(checkpoint_pki::signing::PRIVATE_FILE)
    }

    pub fn config_pub(&self) -> PathBuf {
        self.dir.join(checkpoint_pki::signing::PUBLIC_FILE)
    }

    /// A client certificate whose common name is `name`: one of central's clients
    /// (`central`, `monitor`) or else a box.
    /// A box's certificate is issued once and then reused.
    pub fn client(&self, name: &str) -> Identity {
        let stem = self.dir.join("boxes").join(name);
        let (cert, key) = (stem.with_extension("pem"), stem.with_extension("key"));
        if !pki::CLIENT_NAMES.contains(&name) && cert.exists() && key.exists() {
            return Identity { cert, key };
        }
        self.client_valid(name, Validity::days(30).expect("days"))
    }

    /// rumqttc options for a client with the identity `name` (a fresh certificate) on
    /// 127.0.0.1:`port` over mutual TLS; the broker makes `name` the client id.
    pub fn mqtt_options(&self, name: &str, port: u16) -> rumqttc::MqttOptions {
        let id = self.client(name);
        let mut o = rumqttc::MqttOptions::new(name, "127.0.0.1", port);
        let tls =
            checkpoint_link::tls::client_config(&self.ca(), &id.cert, &id.key).expect("client TLS");
        o.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls),
        ));
        o
    }

    /// A box certificate that expired yesterday.
    pub fn expired_box(&self, name: &str) -> Identity {
        let now = OffsetDateTime::now_utc();
        self.client_valid(
            name,
            Validity {
                not_before: now - Span::days(30),
                not_after: now - Span::days(1),
            },
        )
    }

    fn client_valid(&self, name: &str, v: Validity) -> Identity {
        let issued = if pki::CLIENT_NAMES.contains(&name) {
            self.ca.issue_client(name, v)
        } else {
            // Tests reissue freely (an expired certificate after a valid one), without the
            // revocation `--replace` makes: a changed crl.pem restarts an embedded broker.
            let _ = std::fs::remove_file(self.dir.join("boxes").join(format!("{name}.pem")));
            self.ca.issue_box(&name.parse().expect("box id"), v, false)
        }
        .unwrap_or_else(|e| panic!("certificate for {name}: {e}"));
        Identity {
            cert: issued.cert,
            key: issued.key,
        }
    }
}

/// The tests' observer identity on the tests' Mosquitto (not on central's embedded broker, which
/// has the shipped ACL only): reads every box's topics, and may write configuration, standing in
/// for a client with rights on those topics but without central's signing key.
pub const OBSERVER: &str = "observer";

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn mosquitto_binary() -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join("mosquitto");
        if p.exists() {
            return p;
        }
    }
    PathBuf::from("mosquitto")
}

/// A Mosquitto process on a private port, with persistence in its own directory so a restart
/// keeps retained messages and persistent sessions. Killed when dropped.
#[derive(Debug)]
pub struct Mosquitto {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

impl Mosquitto {
    /// Starts a broker: with `pki`, the shipped `config/mosquitto/checkpoint.conf` (mutual TLS,
    /// identities as usernames, the shipped ACL); else plain TCP allowing anonymous clients.
    ///
    /// # Panics
    /// When Mosquitto is not installed (run `scripts/setup`) or does not come up.
    pub fn start(dir: &Path, pki: Option<&Pki>) -> Mosquitto {
        std::fs::create_dir_all(dir).expect("broker dir");
        let port = free_port();
        let mut conf = match pki {
            Some(p) => shipped_config(dir, p, port),
            None => format!(
                "per_listener_settings false\npersistence true\npersistence_location {}/\n\
                 max_queued_messages 100000\nmax_inflight_messages 100\n\
                 listener {port} 127.0.0.1\nallow_anonymous true\n",
                dir.display()
            ),
        };
        conf.push_str(&format!(
            "log_dest file {}/mosquitto.log\nlog_type all\n",
            dir.display()
        ));
        if is_root() {
            conf.push_str("user root\n");
        }
        std::fs::write(dir.join("mosquitto.conf"), conf).expect("write mosquitto.conf");
        let mut m = Mosquitto {
            port,
            dir: dir.to_path_buf(),
            child: None,
        };
        m.restart();
        m
    }

    /// Starts (again) on the same port with the same persistence.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let child = Command::new(mosquitto_binary())
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start mosquitto (run scripts/setup): {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops gracefully (SIGTERM), so it saves its persistence file.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The shipped Mosquitto configuration with this test's port, paths and log.
fn shipped_config(dir: &Path, pki: &Pki, port: u16) -> String {
    let shipped = crate::workspace().join("config/mosquitto");
    let text = std::fs::read_to_string(shipped.join("checkpoint.conf")).expect("shipped conf");
    // The shipped ACL plus one identity for the tests only: an observer that reads what central
    // reads, beside a running central (central's own certificate would take over its session:
    // the broker makes the certificate's name the client id); see [`OBSERVER`].
    let acl = std::fs::read_to_string(shipped.join("checkpoint.acl")).expect("shipped ACL");
    std::fs::write(
        dir.join("checkpoint.acl"),
        format!(
            "{acl}\n# Tests only.\nuser {OBSERVER}\ntopic read checkpoint/v1/box/#\n\
             topic read checkpoint/v1/shared/#\ntopic write checkpoint/v1/box/+/config/+\n\
             topic write checkpoint/v1/shared/config/+\n"
        ),
    )
    .expect("test ACL");
    let mut out = String::new();
    for line in text.lines() {
        let line = line
            .replace("/etc/checkpoint/pki/", &format!("{}/", pki.dir.display()))
            .replace(
                "/etc/checkpoint/mosquitto.acl",
                &dir.join("checkpoint.acl").display().to_string(),
            )
            .replace("/var/lib/mosquitto/", &format!("{}/", dir.display()));
        if line == "listener 8883" {
            out.push_str(&format!("listener {port} 127.0.0.1\n"));
        } else if !line.starts_with("log_dest") && !line.starts_with("log_type") {
            out.push_str(&line);
            out.push('\n');
        }
    }
    assert!(
        out.contains(&format!("listener {port}")),
        "the shipped conf has no `listener 8883` line"
    );
    out
}

/// A plain MQTT client for the tests: connects with `opts`, subscribes to `filters`, and
/// collects what it receives; or says why it could not connect.
pub struct Listener {
    pub client: rumqttc::Client,
    rx: std::sync::mpsc::Receiver<(String, Vec<u8>)>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Listener")
    }
}

impl Listener {
    /// Waits up to 10 s for the broker's CONNACK.
    pub fn connect(mut opts: rumqttc::MqttOptions, filters: &[&str]) -> Result<Listener, String> {
        use rumqttc::{Event, Packet, QoS};
        opts.set_keep_alive(Duration::from_secs(5));
        let (client, mut conn) = rumqttc::Client::new(opts, 256);
        let (tx, rx) = std::sync::mpsc::channel();
        let (ok_tx, ok_rx) = std::sync::mpsc::channel();
        let sub = client.clone();
        let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
        std::thread::spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for f in &filters {
                            let _ = sub.subscribe(f, QoS::AtLeastOnce);
                        }
                        let _ = ok_tx.send(Ok(()));
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = ok_tx.send(Err(e.to_string()));
                        return;
                    }
                }
            }
        });
        match ok_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(Listener { client, rx }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("no answer in 10 s".into()),
        }
    }

    /// What arrived within `wait` (topic, payload).
    pub fn received(&self, wait: Duration) -> Vec<(String, Vec<u8>)> {
        let end = Instant::now() + wait;
        let mut out = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(m) => out.push(m),
                Err(_) => break,
            }
        }
        out
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.client.disconnect();
    }
}
