//! The daemon's TOML configuration: one file, every section validated, every problem reported at
//! once with its field path. `config/daemon.example.toml` documents each field and is parsed by a
//! test, so the example cannot drift from the code.
//!
//! Each section's type lives beside the stage it configures (`uplink/config.rs`, …) and is
//! re-exported here; this module parses the file, rewrites old keys and collects the problems.

use std::fmt;
use std::path::{Path, PathBuf};

use checkpoint_link::durations::{Renamed, Unit};

use checkpoint_protocol::ids::{BoxId, CheckpointId, SiteId};
use checkpoint_protocol::records::Direction;
use serde::de::DeserializeOwned;
use serde::Deserialize;

mod face;
mod files;
mod validate;

pub use crate::camera::CameraConfig;
pub use crate::clock::{ClockCheck, ClockConfig};
pub use crate::decide::{Mode, PolicyConfig};
pub use crate::gate::GateConfig;
pub use crate::outbox::{OutboxConfig, WhenFull};
pub use crate::qr::QrSection;
pub use crate::thermo::ThermometerConfig;
pub use crate::trust::TrustConfigSection;
pub use crate::uplink::UplinkConfig;
pub use checkpoint_link::Transport;
pub use face::FaceSection;

/// The documented example, also printed by `checkpointd print-config`.
pub const EXAMPLE: &str = include_str!("../../config/daemon.example.toml");

/// Where systemd installs the configuration.
pub const DEFAULT_PATH: &str = "/etc/checkpoint/daemon.toml";

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub identity: Identity,
    /// Holds the outbox and the last good trust material. Must survive reboots.
    pub state_dir: PathBuf,
    pub camera: CameraConfig,
    pub thermometer: ThermometerConfig,
    pub gate: GateConfig,
    pub qr: QrSection,
    pub policy: PolicyConfig,
    pub outbox: OutboxConfig,
    pub uplink: UplinkConfig,
    pub trust: TrustConfigSection,
    pub clock: ClockConfig,
    pub face: FaceSection,
    /// Old keys this file still uses, each with what to write instead (logged at start,
    /// printed by `check-config`).
    pub deprecated: Vec<String>,
}

/// Integer durations of earlier releases, now humantime strings.
const OLD_DURATIONS: &[Renamed] = &[
    Renamed::new("qr", "frame_budget_ms", "frame_budget", Unit::Ms),
    Renamed::new("gate", "pulse_ms", "pulse", Unit::Ms),
    Renamed::new("gate", "deny_ms", "deny", Unit::Ms),
    Renamed::new("policy", "clock_skew_s", "clock_skew", Unit::S),
    Renamed::new("policy", "anti_passback_s", "anti_passback_window", Unit::S),
    Renamed::new(
        "policy",
        "duplicate_cooldown_ms",
        "duplicate_cooldown",
        Unit::Ms,
    ),
    Renamed::new("uplink", "keep_alive_s", "keep_alive", Unit::S),
    Renamed::new(
        "uplink",
        "telemetry_interval_s",
        "telemetry_interval",
        Unit::S,
    ),
    Renamed::new("uplink", "resend_after_s", "resend_after", Unit::S),
    Renamed::new("uplink", "backoff_min_ms", "backoff_min", Unit::Ms),
    Renamed::new("uplink", "backoff_max_ms", "backoff_max", Unit::Ms),
    Renamed::new("trust", "max_age_h", "max_age", Unit::H),
    Renamed::new("trust", "max_skew_s", "max_skew", Unit::S),
    Renamed::new("face", "cooldown_ms", "cooldown", Unit::Ms),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub site: SiteId,
    pub box_id: BoxId,
    pub checkpoint: CheckpointId,
    pub direction: Direction,
}

impl DaemonConfig {
    /// The face gallery's file.
    pub fn gallery_path(&self) -> PathBuf {
        self.face
            .gallery
            .clone()
            .unwrap_or_else(|| self.state_dir.join("gallery.bin"))
    }
}

/// One thing wrong with a configuration, at a dotted field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: {} problem(s):\n{}", problems.len(), list(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl DaemonConfig {
    pub fn load(path: &Path) -> Result<DaemonConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ParseError::Syntax(message) => ConfigError::Syntax {
                path: path.to_path_buf(),
                message,
            },
            ParseError::Invalid(problems) => ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            },
        })
    }

    /// Parses and validates. Each section is deserialised on its own so that one bad section
    /// does not hide the problems of the others.
    pub fn parse(text: &str) -> Result<DaemonConfig, ParseError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| {
            ParseError::Syntax(e.to_string().trim_end().replace('\n', " ").to_string())
        })?;
        let mut problems = Vec::new();
        let migrated = checkpoint_link::durations::migrate(&mut table, OLD_DURATIONS);
        for message in migrated.problems {
            let (path, message) = message.split_once(": ").unwrap_or(("config", &message));
            problems.push(Problem {
                path: path.to_string(),
                message: message.to_string(),
            });
        }
        const SECTIONS: [&str; 12] = [
            "identity",
            "state_dir",
            "camera",
            "thermometer",
            "gate",
            "qr",
            "policy",
            "outbox",
            "uplink",
            "trust",
            "clock",
            "face",
        ];
        for key in table.keys() {
            if !SECTIONS.contains(&key.as_str()) {
                problems.push(Problem {
                    path: key.clone(),
                    message: format!("unknown key, expected one of {}", SECTIONS.join(", ")),
                });
            }
        }
        let mut s = Sections {
            table: &table,
            problems: &mut problems,
        };
        let identity = s.required::<Identity>("identity");
        let state_dir = s.required::<PathBuf>("state_dir");
        let camera = s.required::<CameraConfig>("camera");
        let thermometer = match table.contains_key("thermometer") {
            true => s.required::<ThermometerConfig>("thermometer"),
            false => Some(ThermometerConfig::Disabled),
        };
        let gate = s.required::<GateConfig>("gate");
        let qr = s.optional::<QrSection>("qr");
        let policy = s.optional::<PolicyConfig>("policy");
        let outbox = s.optional::<OutboxConfig>("outbox");
        let uplink = s.required::<UplinkConfig>("uplink");
        let trust = s.optional::<TrustConfigSection>("trust");
        let clock = s.optional::<ClockConfig>("clock");
        let face = s.optional::<FaceSection>("face");
        match (
            identity,
            state_dir,
            camera,
            thermometer,
            gate,
            qr,
            policy,
            outbox,
            uplink,
            trust,
            clock,
            face,
        ) {
            (
                Some(identity),
                Some(state_dir),
                Some(camera),
                Some(thermometer),
                Some(gate),
                Some(qr),
                Some(policy),
                Some(outbox),
                Some(uplink),
                Some(trust),
                Some(clock),
                Some(face),
            ) => {
                let cfg = DaemonConfig {
                    identity,
                    state_dir,
                    camera,
                    thermometer,
                    gate,
                    qr,
                    policy,
                    outbox,
                    uplink,
                    trust,
                    clock,
                    face,
                    deprecated: migrated.deprecated,
                };
                validate::check(&cfg, &mut problems);
                if problems.is_empty() {
                    Ok(cfg)
                } else {
                    Err(ParseError::Invalid(problems))
                }
            }
            _ => Err(ParseError::Invalid(problems)),
        }
    }
}

#[derive(Debug)]
pub enum ParseError {
    Syntax(String),
    Invalid(Vec<Problem>),
}

struct Sections<'a> {
    table: &'a toml::Table,
    problems: &'a mut Vec<Problem>,
}

impl Sections<'_> {
    fn required<T: DeserializeOwned>(&mut self, name: &str) -> Option<T> {
        match self.table.get(name) {
            None => {
                self.problems.push(Problem {
                    path: name.to_string(),
                    message: "missing".to_string(),
                });
                None
            }
            Some(v) => self.convert(name, v.clone()),
        }
    }

    /// A section whose every field has a default.
    fn optional<T: DeserializeOwned>(&mut self, name: &str) -> Option<T> {
        let value = self
            .table
            .get(name)
            .cloned()
            .unwrap_or_else(|| toml::Value::Table(toml::Table::new()));
        self.convert(name, value)
    }

    fn convert<T: DeserializeOwned>(&mut self, name: &str, value: toml::Value) -> Option<T> {
        match value.try_into::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                self.problems.push(Problem {
                    path: name.to_string(),
                    message: e.to_string().trim_end().replace('\n', " "),
                });
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
