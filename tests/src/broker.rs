//! A real Mosquitto for the tests, with a throw-away PKI for mutual TLS.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};

/// A test CA that issues a broker certificate for 127.0.0.1/localhost and client certificates
/// whose common name is the client's identity (Mosquitto's `use_identity_as_username`).
pub struct Pki {
    pub dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").field("dir", &self.dir).finish()
    }
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
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let ca_key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Checkpoint test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = params.self_signed(&ca_key).expect("CA certificate");
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write CA");
        let pki = Pki {
            dir: dir.to_path_buf(),
            ca,
            ca_key,
        };
        let mut server = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        server
            .subject_alt_names
            .push(SanType::IpAddress(Ipv4Addr::LOCALHOST.into()));
        server.distinguished_name.push(DnType::CommonName, "broker");
        pki.write("server", server);
        pki
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A client certificate whose common name is `name`.
    pub fn client(&self, name: &str) -> Identity {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        self.write(name, params)
    }

    fn write(&self, name: &str, params: CertificateParams) -> Identity {
        let key = KeyPair::generate().expect("key");
        let cert = params
            .signed_by(&key, &self.ca, &self.ca_key)
            .expect("sign");
        let id = Identity {
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}.key")),
        };
        std::fs::write(&id.cert, cert.pem()).expect("write cert");
        std::fs::write(&id.key, key.serialize_pem()).expect("write key");
        id
    }
}

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
    /// Starts a broker: mutual TLS with `pki`, else plain TCP allowing anonymous clients.
    ///
    /// # Panics
    /// When Mosquitto is not installed (run `scripts/setup`) or does not come up.
    pub fn start(dir: &Path, pki: Option<&Pki>) -> Mosquitto {
        std::fs::create_dir_all(dir).expect("broker dir");
        let port = free_port();
        let mut conf = format!(
            "per_listener_settings false\npersistence true\npersistence_location {}/\n\
             log_dest file {}/mosquitto.log\nlog_type all\nmax_queued_messages 100000\n\
             listener {port} 127.0.0.1\n",
            dir.display(),
            dir.display()
        );
        if is_root() {
            conf.push_str("user root\n");
        }
        match pki {
            Some(p) => conf.push_str(&format!(
                "allow_anonymous false\ncafile {}\ncertfile {}\nkeyfile {}\n\
                 require_certificate true\nuse_identity_as_username true\n",
                p.ca().display(),
                p.dir.join("server.pem").display(),
                p.dir.join("server.key").display(),
            )),
            None => conf.push_str("allow_anonymous true\n"),
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
