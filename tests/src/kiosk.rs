//! Running real `checkpointd run` processes with simulated hardware: their configuration, the
//! frames their sim camera replays, and process control (SIGTERM, `kill -9`).

use std::path::{Path, PathBuf};

use checkpoint_protocol::passcode;
use image::Luma;

use crate::broker::{Identity, Mosquitto, Pki};
use crate::Proc;

/// What a test box looks like. `render` turns it into a `daemon.toml`.
#[derive(Debug, Clone)]
pub struct BoxSpec {
    pub box_id: String,
    pub checkpoint: String,
    pub direction: &'static str,
    pub frames: PathBuf,
    pub fps: f32,
    pub looping: bool,
    pub state_dir: PathBuf,
    pub port: u16,
    /// Mutual TLS: the CA and this box's identity; `None` for plain TCP.
    pub tls: Option<(PathBuf, Identity)>,
    /// Scripted thermometer readings; empty for no thermometer.
    pub readings: Vec<f32>,
    pub fail_after: Option<u64>,
    pub bootstrap_key: Option<PathBuf>,
    /// Central's configuration-signing public key: trust and galleries from the network are
    /// applied only when signed by it.
    pub config_key: Option<PathBuf>,
    pub gate_record: PathBuf,
    /// Extra lines for the `[policy]` section.
    pub policy: String,
    /// Extra lines for the `[outbox]` section.
    pub outbox: String,
    /// Extra lines for the `[uplink]` section.
    pub uplink: String,
    /// Whole sections appended at the end (such as `[face]`).
    pub extra: String,
}

impl BoxSpec {
    pub fn new(box_id: &str, dir: &Path, broker: &Mosquitto, pki: Option<&Pki>) -> BoxSpec {
        BoxSpec {
            port: broker.port,
            tls: pki.map(|p| (p.ca(), p.client(box_id))),
            config_key: pki.map(Pki::config_pub),
            ..Self::new_plain(box_id, dir)
        }
    }

    /// A box with mutual TLS to a broker on `port` (central's embedded one).
    pub fn tls_to(box_id: &str, dir: &Path, port: u16, pki: &Pki) -> BoxSpec {
        BoxSpec {
            port,
            tls: Some((pki.ca(), pki.client(box_id))),
            config_key: Some(pki.config_pub()),
            ..Self::new_plain(box_id, dir)
        }
    }

    /// A box on plain TCP to port 1 (set `port` to a real broker's).
    pub fn new_plain(box_id: &str, dir: &Path) -> BoxSpec {
        BoxSpec {
            box_id: box_id.to_string(),
            checkpoint: "library".to_string(),
            direction: "in",
            frames: dir.join("frames"),
            fps: 5.0,
            looping: false,
            state_dir: dir.join("state"),
            port: 1,
            tls: None,
            readings: Vec::new(),
            fail_after: None,
            bootstrap_key: None,
            config_key: None,
            gate_record: dir.join("gate.jsonl"),
            policy: String::new(),
            outbox: String::new(),
            uplink: "telemetry_interval = \"1s\"\nresend_after = \"3s\"\nbackoff_min = \"200ms\"\nbackoff_max = \"1s\"\n".to_string(),
            extra: String::new(),
        }
    }

    pub fn render(&self) -> String {
        let transport = match &self.tls {
            Some((ca, id)) => format!(
                "{{ kind = \"tls\", ca = \"{}\", cert = \"{}\", key = \"{}\" }}",
                ca.display(),
                id.cert.display(),
                id.key.display()
            ),
            None => "{ kind = \"plain\" }".to_string(),
        };
        let thermometer = if self.readings.is_empty() {
            "[thermometer]\nkind = \"disabled\"\n".to_string()
        } else {
            let r: Vec<String> = self.readings.iter().map(|r| format!("{r:.1}")).collect();
            let mut t = format!(
                "[thermometer]\nkind = \"sim\"\nreadings = [{}]\n",
                r.join(", ")
            );
            if let Some(f) = self.fail_after {
                t.push_str(&format!("fail_after = {f}\n"));
            }
            t
        };
        let temperature = if self.readings.is_empty() {
            "off"
        } else {
            "hard"
        };
        let mut trust = String::from("[trust]\n");
        if let Some(k) = &self.bootstrap_key {
            trust.push_str(&format!("bootstrap_keys = [\"{}\"]\n", k.display()));
        }
        if let Some(k) = &self.config_key {
            trust.push_str(&format!("config_keys = [\"{}\"]\n", k.display()));
        }
        format!(
            "state_dir = \"{state}\"\n\
             [identity]\nsite = \"test-site\"\nbox_id = \"{id}\"\ncheckpoint = \"{cp}\"\ndirection = \"{dir}\"\n\
             [camera]\nkind = \"sim\"\ndir = \"{frames}\"\nfps = {fps:.1}\nlooping = {looping}\n\
             {thermometer}\
             [gate]\nkind = \"sim\"\nrecord = \"{gate}\"\n\
             [policy]\ntemperature = \"{temperature}\"\n{policy}\n\
             [outbox]\n{outbox}\n\
             [uplink]\nhost = \"127.0.0.1\"\nport = {port}\ntransport = {transport}\n{uplink}\n\
             {trust}\
             [clock]\ncheck = \"assume_synced\"\n{extra}",
            state = self.state_dir.display(),
            id = self.box_id,
            cp = self.checkpoint,
            dir = self.direction,
            frames = self.frames.display(),
            fps = self.fps,
            looping = self.looping,
            gate = self.gate_record.display(),
            policy = self.policy,
            outbox = self.outbox,
            port = self.port,
            uplink = self.uplink,
            extra = self.extra,
        )
    }

    /// Writes the config next to the state directory and returns its path.
    pub fn write(&self) -> PathBuf {
        let path = self
            .state_dir
            .parent()
            .unwrap_or(Path::new("."))
            .join(format!("{}.toml", self.box_id));
        std::fs::write(&path, self.render()).expect("write box config");
        path
    }

    /// Gate signals recorded by the sim gate (`admit`/`deny`), without the `safe` markers.
    pub fn gate_signals(&self) -> Vec<String> {
        std::fs::read_to_string(&self.gate_record)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["signal"].as_str().map(str::to_string))
            .filter(|s| s != "safe")
            .collect()
    }
}

/// A running `checkpointd run` (a [`Proc`]), its log next to its config.
#[derive(Debug)]
pub struct Kiosk(Proc);

impl Kiosk {
    pub fn start(spec: &BoxSpec) -> Kiosk {
        Self::start_with_env(spec, &[])
    }

    /// Starts with extra environment variables (such as systemd's `NOTIFY_SOCKET`).
    pub fn start_with_env(spec: &BoxSpec, env: &[(&str, &str)]) -> Kiosk {
        let config = spec.write();
        let log = config.with_extension("log");
        let mut vars = vec![("RUST_LOG", "info,checkpoint_daemon=debug")];
        vars.extend_from_slice(env);
        let args: [&std::ffi::OsStr; 3] = ["run".as_ref(), "--config".as_ref(), config.as_os_str()];
        Kiosk(Proc::start("checkpointd", &args, &vars, log))
    }
}

impl std::ops::Deref for Kiosk {
    type Target = Proc;
    fn deref(&self) -> &Proc {
        &self.0
    }
}

impl std::ops::DerefMut for Kiosk {
    fn deref_mut(&mut self) -> &mut Proc {
        &mut self.0
    }
}

/// Renders `text` as a QR code PNG the way a phone shows it: dark on light, with a quiet zone,
/// in a 640x480 frame.
pub fn qr_frame(text: &str, path: &Path) {
    let code = qrcode::QrCode::new(text.as_bytes()).expect("QR fits");
    let qr = code.render::<Luma<u8>>().min_dimensions(300, 300).build();
    let mut frame = image::GrayImage::from_pixel(640, 480, Luma([235]));
    let x = (640 - qr.width().min(640)) / 2;
    let y = (480 - qr.height().min(480)) / 2;
    image::imageops::overlay(&mut frame, &qr, i64::from(x), i64::from(y));
    frame.save(path).expect("save frame");
}

/// A frame with no code in it.
pub fn blank_frame(path: &Path) {
    image::GrayImage::from_pixel(640, 480, Luma([200]))
        .save(path)
        .expect("save frame");
}

/// Issues a pass code with the real `checkpoint-central` binary and returns its text.
pub fn issue(keys: &Path, person: &str, status: &str, valid: &str, at: Option<&str>) -> String {
    let mut args = vec![
        "passcode",
        "issue",
        "--key",
        keys.to_str().unwrap_or(""),
        "--person",
        person,
        "--status",
        status,
        "--valid",
        valid,
    ];
    if let Some(at) = at {
        args.extend(["--at", at]);
    }
    let out = crate::run("checkpoint-admin", &args);
    assert!(
        out.status.success(),
        "issue failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A key directory made with the real `checkpoint-admin passcode keygen`.
pub fn keygen(dir: &Path) -> PathBuf {
    let out = crate::run(
        "checkpoint-admin",
        &["passcode", "keygen", "--out", dir.to_str().unwrap_or("")],
    );
    assert!(
        out.status.success(),
        "keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.to_path_buf()
}

/// A configuration-signing key pair in `dir` (`config-signing.key`, `.pub`), as `pki
/// config-key` makes it, for tests without a PKI.
pub fn config_keygen(dir: &Path) -> PathBuf {
    let out = crate::run(
        "checkpoint-admin",
        &["pki", "config-key", "--dir", dir.to_str().unwrap_or("")],
    );
    assert!(
        out.status.success(),
        "config-key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.to_path_buf()
}

/// The same code with one signature byte flipped: decodes fine, fails the signature.
pub fn forge(text: &str) -> String {
    let mut body = passcode::decode_text(text).expect("valid code");
    if let Some(last) = body.last_mut() {
        *last ^= 0x01;
    }
    passcode::encode_text(&body)
}
