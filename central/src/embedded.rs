//! The embedded broker for a site that runs one machine: `serve` starts and supervises a
//! Mosquitto process with the shipped configuration and ACL (`config/mosquitto/`), so a small
//! site gets exactly the rules of a large one: mutual TLS only, each box pinned to its own
//! topics, the monitor identity to status and telemetry, only central's identity writing trust,
//! acks, commands and galleries, the certificate's name as the client id (nobody else can take
//! central's), and the revocation list checked at every handshake.
//!
//! Central then connects to it over loopback TLS as the `central` client, exactly as to an
//! external broker. Mosquitto's persistence lives in `data_dir/broker`, so what it holds for an
//! absent client survives a restart; it is stopped with SIGTERM (it saves then) and restarted
//! after a crash and whenever `crl.pem` changes (Mosquitto reads it only at start).
//!
//! Decision: `docs/decisions/0003-embedded-mosquitto.md`.
//!
//! Long on purpose: preparing, starting, supervising and stopping the broker child are one
//! lifecycle.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use checkpoint_link::Transport;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::ingest::BrokerConfig;
use checkpoint_pki::crl::CRL_FILE;

/// The shipped broker configuration and ACL, the one source of the broker's rules.
pub const SHIPPED_CONF: &str = include_str!("../../config/mosquitto/checkpoint.conf");
pub const SHIPPED_ACL: &str = include_str!("../../config/mosquitto/checkpoint.acl");

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("embedded broker cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("embedded broker: {path}: {message}")]
    File { path: String, message: String },
    #[error(
        "embedded broker: no Mosquitto at {0}; install the `mosquitto` package (scripts/setup \
         does) or set embedded_broker.mosquitto"
    )]
    NoMosquitto(String),
    #[error("embedded broker: {0}")]
    Start(String),
}

/// Files of the PKI directory the broker and central's own client need.
#[derive(Debug, Clone)]
pub struct Files {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub central_cert: PathBuf,
    pub central_key: PathBuf,
    pub crl: PathBuf,
}

impl Files {
    pub fn of(pki_dir: &Path) -> Files {
        Files {
            ca: pki_dir.join("ca.pem"),
            server_cert: pki_dir.join("server.pem"),
            server_key: pki_dir.join("server.key"),
            central_cert: pki_dir.join("clients/central.pem"),
            central_key: pki_dir.join("clients/central.key"),
            crl: pki_dir.join(CRL_FILE),
        }
    }
}

/// A prepared broker: its files written, not yet started.
#[derive(Debug)]
pub struct Prepared {
    binary: PathBuf,
    conf: PathBuf,
    listen: SocketAddr,
    crl: PathBuf,
}

/// What central connects to: loopback for a wildcard listener, else the listener's address.
fn connect_ip(listen: &SocketAddr) -> IpAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    }
}

/// The host name central must present for the broker's certificate to verify: the address it
/// connects to, or `localhost` for loopback, whichever the certificate names.
fn server_host(server_cert: &Path, ip: IpAddr) -> Result<String, EmbeddedError> {
    let bad = |message: String| EmbeddedError::File {
        path: server_cert.display().to_string(),
        message,
    };
    let pem = std::fs::read_to_string(server_cert).map_err(|e| bad(e.to_string()))?;
    let params =
        rcgen::CertificateParams::from_ca_cert_pem(&pem).map_err(|e| bad(e.to_string()))?;
    let mut names = Vec::new();
    for san in &params.subject_alt_names {
        match san {
            rcgen::SanType::IpAddress(a) if *a == ip => return Ok(ip.to_string()),
            rcgen::SanType::DnsName(n) if ip.is_loopback() && n.as_str() == "localhost" => {
                return Ok("localhost".to_string())
            }
            rcgen::SanType::IpAddress(a) => names.push(a.to_string()),
            rcgen::SanType::DnsName(n) => names.push(n.as_str().to_string()),
            _ => {}
        }
    }
    Err(bad(format!(
        "central connects to its broker at {ip}, but the broker certificate names only {names:?}; \
         reissue it with that address too (`checkpoint-admin pki issue-server NAME {ip}`)"
    )))
}

/// The broker configuration: the shipped file with this site's paths, listener and log.
pub fn mosquitto_conf(
    files: &Files,
    dir: &Path,
    listen: &SocketAddr,
    with_crl: bool,
    as_root: bool,
) -> Result<String, EmbeddedError> {
    let pki_dir = files
        .ca
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut out =
        String::from("# Written by checkpoint-central serve at every start; edits are lost.\n");
    let mut listener = false;
    // The directives only: the shipped comments speak of the shipped paths.
    for line in SHIPPED_CONF.lines().filter(|l| !l.starts_with('#')) {
        let line = line
            .replace("/etc/checkpoint/pki/", &format!("{pki_dir}/"))
            .replace(
                "/etc/checkpoint/mosquitto.acl",
                &dir.join("checkpoint.acl").display().to_string(),
            )
            .replace("/var/lib/mosquitto/", &format!("{}/", dir.display()));
        if line == "listener 8883" {
            out.push_str(&format!("listener {} {}\n", listen.port(), listen.ip()));
            listener = true;
        } else if line.starts_with("crlfile") && !with_crl {
            continue;
        } else if line == "log_dest syslog" {
            out.push_str("log_dest stderr\n");
        } else {
            out.push_str(&line);
            out.push('\n');
        }
    }
    if !listener {
        return Err(EmbeddedError::Start(
            "the shipped configuration has no `listener 8883` line".into(),
        ));
    }
    out.push_str(&format!(
        "pid_file {}\n",
        dir.join("mosquitto.pid").display()
    ));
    // Started as root, Mosquitto would switch to the `mosquitto` user, which cannot read the
    // keys; otherwise it runs as central's own user.
    if as_root {
        out.push_str("user root\n");
    }
    Ok(out)
}

fn check_file(path: &Path) -> Result<(), EmbeddedError> {
    std::fs::File::open(path)
        .map(|_| ())
        .map_err(|e| EmbeddedError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })
}

fn find_mosquitto(cfg: &EmbeddedBrokerConfig) -> Result<PathBuf, EmbeddedError> {
    if let Some(p) = &cfg.mosquitto {
        return if p.exists() {
            Ok(p.clone())
        } else {
            Err(EmbeddedError::NoMosquitto(p.display().to_string()))
        };
    }
    [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .ok_or_else(|| EmbeddedError::NoMosquitto("/usr/sbin/mosquitto".into()))
}

/// Stops a broker a killed central left behind (its pid file names it and its command line
/// our configuration), so the port is free again.
fn stop_orphan(dir: &Path, conf: &Path) {
    let Ok(text) = std::fs::read_to_string(dir.join("mosquitto.pid")) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let ours = String::from_utf8_lossy(&cmdline).contains(&conf.display().to_string());
    if !ours {
        return;
    }
    tracing::warn!(
        message = "Stopping the embedded broker a previous run left behind.",
        pid
    );
    let pid = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    for _ in 0..100 {
        if nix::sys::signal::kill(pid, None).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
}

/// Checks the files, writes the broker's configuration and ACL into `data_dir/broker`, and
/// returns it with the connection central uses.
pub fn prepare(
    cfg: &EmbeddedBrokerConfig,
    data_dir: &Path,
) -> Result<(Prepared, BrokerConfig), EmbeddedError> {
    let files = Files::of(&cfg.pki_dir);
    for f in [&files.ca, &files.server_cert, &files.server_key] {
        check_file(f)?;
    }
    if check_file(&files.central_cert).is_err() || check_file(&files.central_key).is_err() {
        return Err(EmbeddedError::File {
            path: files.central_cert.display().to_string(),
            message: format!(
                "central connects to its broker as the client `central`; issue its certificate \
                 with `checkpoint-admin pki issue-client central --dir {}`",
                cfg.pki_dir.display()
            ),
        });
    }
    // A readable but wrong file fails at the first handshake; say so now.
    checkpoint_link::tls::client_config(&files.ca, &files.central_cert, &files.central_key)
        .map_err(|e| EmbeddedError::Start(format!("central's TLS material: {e}")))?;
    let with_crl = files.crl.exists();
    if !with_crl {
        tracing::warn!(
            message = "No revocation list: revoked box certificates would still connect. `checkpoint-admin pki revoke-box` writes one.",
            crl = %files.crl.display()
        );
    }
    let binary = find_mosquitto(cfg)?;
    let dir = data_dir.join("broker");
    std::fs::create_dir_all(&dir).map_err(|e| EmbeddedError::File {
        path: dir.display().to_string(),
        message: e.to_string(),
    })?;
    let conf = dir.join("mosquitto.conf");
    stop_orphan(&dir, &conf);
    TcpListener::bind(cfg.listen).map_err(|source| EmbeddedError::Listen {
        addr: cfg.listen,
        source,
    })?;
    let ip = connect_ip(&cfg.listen);
    let host = server_host(&files.server_cert, ip)?;
    let as_root = nix::unistd::geteuid().is_root();
    let text = mosquitto_conf(&files, &dir, &cfg.listen, with_crl, as_root)?;
    let write = |path: &Path, text: &str| {
        checkpoint_link::files::write_atomically(path, text.as_bytes()).map_err(|e| {
            EmbeddedError::File {
                path: path.display().to_string(),
                message: e.to_string(),
            }
        })
    };
    write(&conf, &text)?;
    write(&dir.join("checkpoint.acl"), SHIPPED_ACL)?;
    let broker = BrokerConfig {
        host,
        port: cfg.listen.port(),
        transport: Transport::Tls {
            ca: files.ca.clone(),
            cert: files.central_cert.clone(),
            key: files.central_key.clone(),
        },
        // The broker makes the certificate's name the client id anyway.
        client_id: "central".to_string(),
        keep_alive: Duration::from_secs(30),
        backoff_min: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
    };
    Ok((
        Prepared {
            binary,
            conf,
            listen: cfg.listen,
            crl: files.crl,
        },
        broker,
    ))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Prepared {
    fn spawn(
        &self,
    ) -> Result<(tokio::process::Child, tokio::sync::oneshot::Receiver<()>), EmbeddedError> {
        let mut child = tokio::process::Command::new(&self.binary)
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| EmbeddedError::Start(format!("{}: {e}", self.binary.display())))?;
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward_log(err, ready_tx));
        }
        Ok((child, ready))
    }

    /// Starts the broker and waits until it says it runs (at most 10 s). Its own log line is
    /// the signal: probing the port would make it log a failed TLS handshake at every start.
    pub async fn start(&self) -> Result<tokio::process::Child, EmbeddedError> {
        let (mut child, ready) = self.spawn()?;
        tokio::select! {
            r = tokio::time::timeout(Duration::from_secs(10), ready) => match r {
                Ok(Ok(())) => {
                    tracing::info!(message = "Embedded broker started.", listen = %self.listen, pid = child.id());
                    Ok(child)
                }
                Ok(Err(_)) => {
                    // Its log ended: it exited.
                    let status = child.wait().await.ok();
                    Err(EmbeddedError::Start(format!(
                        "Mosquitto exited at start ({status:?}); its log lines above say why \
                         (configuration in {})",
                        self.conf.display()
                    )))
                }
                Err(_) => {
                    let _ = child.start_kill();
                    Err(EmbeddedError::Start(format!(
                        "Mosquitto did not start on {} within 10 s",
                        self.listen
                    )))
                }
            },
        }
    }

    /// Keeps the broker running until `stop`: restarts it when it exits and when the
    /// revocation list changes, and stops it with SIGTERM at the end.
    pub async fn supervise(self, child: tokio::process::Child, stop: CancellationToken) {
        let mut child = Some(child);
        let mut crl_seen = modified(&self.crl);
        let mut check = tokio::time::interval(Duration::from_secs(2));
        let mut failures = 0u32;
        loop {
            let Some(running) = child.as_mut() else {
                let pause = Duration::from_millis(500 * u64::from(failures.clamp(1, 20)));
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
                match self.start().await {
                    Ok(c) => {
                        child = Some(c);
                        failures = 0;
                    }
                    Err(error) => {
                        failures += 1;
                        tracing::error!(message = "Embedded broker did not start; trying again.", %error, failures);
                    }
                }
                continue;
            };
            tokio::select! {
                _ = stop.cancelled() => {
                    terminate(running).await;
                    return;
                }
                status = running.wait() => {
                    failures += 1;
                    tracing::error!(message = "Embedded broker exited; restarting it.", status = ?status.ok(), failures);
                    child = None;
                }
                _ = check.tick() => {
                    let now = modified(&self.crl);
                    if now == crl_seen {
                        continue;
                    }
                    crl_seen = now;
                    tracing::warn!(message = "Revocation list changed; restarting the embedded broker to read it.", crl = %self.crl.display());
                    terminate(running).await;
                    child = None;
                    if now.is_some() && !self.with_crl_line() {
                        // A list appeared where there was none: the configuration names it now.
                        if let Err(error) = self.rewrite_with_crl() {
                            tracing::error!(message = "Cannot add the revocation list to the broker configuration.", %error);
                        }
                    }
                }
            }
        }
    }

    fn with_crl_line(&self) -> bool {
        std::fs::read_to_string(&self.conf)
            .map(|t| t.lines().any(|l| l.starts_with("crlfile")))
            .unwrap_or(false)
    }

    fn rewrite_with_crl(&self) -> Result<(), std::io::Error> {
        let text = std::fs::read_to_string(&self.conf)?;
        let mut out = String::new();
        for line in text.lines() {
            out.push_str(line);
            out.push('\n');
            if line.starts_with("keyfile") {
                out.push_str(&format!("crlfile {}\n", self.crl.display()));
            }
        }
        checkpoint_link::files::write_atomically(&self.conf, out.as_bytes())
    }
}

/// SIGTERM (Mosquitto saves its persistence file), then SIGKILL after 10 s.
async fn terminate(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
        Ok(_) => tracing::info!(message = "Embedded broker stopped."),
        Err(_) => {
            tracing::warn!(message = "Embedded broker did not stop in 10 s; killing it.");
            let _ = child.kill().await;
        }
    }
}

/// Mosquitto's log lines (`TIMESTAMP: text`) as our own structured events; `ready` fires at
/// its "running" line.
async fn forward_log(err: tokio::process::ChildStderr, ready: tokio::sync::oneshot::Sender<()>) {
    let mut ready = Some(ready);
    let mut lines = BufReader::new(err).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let text = line.split_once(": ").map(|(_, t)| t).unwrap_or(&line);
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("error") {
            tracing::error!(message = "Broker.", broker = text);
        } else if lower.starts_with("warning") {
            tracing::warn!(message = "Broker.", broker = text);
        } else {
            tracing::info!(message = "Broker.", broker = text);
        }
        if lower.starts_with("mosquitto version") && lower.ends_with("running") {
            if let Some(r) = ready.take() {
                let _ = r.send(());
            }
        }
    }
}

mod config;
pub use config::EmbeddedBrokerConfig;

#[cfg(test)]
mod tests;
