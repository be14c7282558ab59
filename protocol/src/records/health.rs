//! Box status (retained, with the Last Will) and periodic telemetry.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Record, Schema};
use crate::ids::BoxId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoxState {
    Online,
    Offline,
}

/// Retained on the status topic. The broker publishes the `offline` form as the box's Last Will,
/// so it has no timestamp: the will is fixed when the box connects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {
    pub schema: Schema,
    #[serde(rename = "box")]
    pub box_id: BoxId,
    pub state: BoxState,
    /// Daemon version, on `online`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl Record for Status {
    const MAX_BYTES: usize = 1024;

    fn validate(&self) -> Result<(), String> {
        match &self.version {
            Some(v) if v.len() > 64 => Err("version is longer than 64 characters".to_string()),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Working.
    Ok,
    /// Working with problems (retries, implausible readings).
    Degraded,
    /// Not working.
    Fault,
    /// Not configured on this box.
    Disabled,
}

/// The health of one hardware component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub state: HealthState,
    /// Short operator-facing text, e.g. the last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Periodic health of a box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    pub schema: Schema,
    #[serde(rename = "box")]
    pub box_id: BoxId,
    #[serde(with = "super::utc")]
    pub ts: OffsetDateTime,
    pub version: String,
    pub uptime_s: u64,
    /// Highest sequence number the box has assigned.
    pub last_seq: u64,
    /// Events stored and not yet acknowledged by central.
    pub outbox_depth: u64,
    pub outbox_bytes: u64,
    /// Age of the oldest unacknowledged event.
    pub outbox_oldest_age_s: Option<u64>,
    /// The outbox hit its byte bound; events are being refused or dropped per policy.
    pub outbox_full: bool,
    /// Events lost to a full outbox since start; they show as sequence gaps centrally.
    pub dropped_events: u64,
    pub fps: f32,
    pub decode_ms_p50: Option<f32>,
    pub camera: Health,
    pub thermometer: Health,
    pub gate: Health,
    pub clock_synced: bool,
    /// Age of the trust material (keys, revocations) the box verifies with.
    pub trust_age_s: Option<u64>,
    /// Serial of the trust material in force (`None`: bootstrap keys only).
    #[serde(default)]
    pub trust_serial: Option<u64>,
    /// Configuration refused since start: trust or galleries forged, unsigned, replayed or
    /// dated in the future.
    #[serde(default)]
    pub config_refused: u64,
    pub disk_free_bytes: Option<u64>,
}

impl Record for Telemetry {
    const MAX_BYTES: usize = 8 * 1024;

    fn validate(&self) -> Result<(), String> {
        if !self.fps.is_finite() || self.fps < 0.0 {
            return Err(format!("fps {} is not a non-negative number", self.fps));
        }
        if self.version.len() > 64 {
            return Err("version is longer than 64 characters".to_string());
        }
        for (name, h) in [
            ("camera", &self.camera),
            ("thermometer", &self.thermometer),
            ("gate", &self.gate),
        ] {
            if h.detail.as_ref().is_some_and(|d| d.len() > 256) {
                return Err(format!("{name} detail is longer than 256 characters"));
            }
        }
        Ok(())
    }
}
