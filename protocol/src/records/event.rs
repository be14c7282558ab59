//! The event: one attempt at the door, admitted or denied.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Record, Schema};
use crate::ids::{BoxId, CheckpointId, SiteId, SubjectId};
use crate::passcode::{PassStatus, RejectReason};

/// Which way the person passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    In,
    Out,
}

/// How the person was identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Qr,
    Face,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Admit,
    Deny,
}

/// Why the decision came out as it did. `Ok` goes with admit; every other reason with deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Ok,
    NotAPassCode,
    UnsupportedVersion,
    BadEncoding,
    BadLength,
    BadField,
    UnknownKey,
    BadSignature,
    NotYetValid,
    Expired,
    Revoked,
    /// The pass colour is not one the policy admits.
    StatusNotAllowed,
    /// Temperature at or above the fever threshold.
    Fever,
    /// Temperature required but no plausible reading.
    NoTemperature,
    /// Face required but not matched to anyone in the gallery.
    FaceUnknown,
    /// Entered again without leaving, within the anti-passback window.
    AntiPassback,
    /// The box's keys and revocation list are older than its policy allows.
    TrustStale,
}

impl From<RejectReason> for Reason {
    fn from(r: RejectReason) -> Self {
        match r {
            RejectReason::NotAPassCode => Reason::NotAPassCode,
            RejectReason::UnsupportedVersion => Reason::UnsupportedVersion,
            RejectReason::BadEncoding => Reason::BadEncoding,
            RejectReason::BadLength => Reason::BadLength,
            RejectReason::BadField => Reason::BadField,
            RejectReason::UnknownKey => Reason::UnknownKey,
            RejectReason::BadSignature => Reason::BadSignature,
            RejectReason::NotYetValid => Reason::NotYetValid,
            RejectReason::Expired => Reason::Expired,
            RejectReason::Revoked => Reason::Revoked,
        }
    }
}

/// A factor that failed in soft mode: the person was admitted and the event is flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    Fever,
    NoTemperature,
    PassInvalid,
    StatusNotAllowed,
    FaceUnknown,
    AntiPassback,
    TrustStale,
}

/// One attempt at a checkpoint. Carries a pseudonymous subject id, never a name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub schema: Schema,
    /// Globally unique; central deduplicates on it and on `(box, seq)`.
    pub id: Uuid,
    /// The box's monotonic sequence number, starting at 1; gaps reveal lost events.
    pub seq: u64,
    pub site: SiteId,
    #[serde(rename = "box")]
    pub box_id: BoxId,
    pub checkpoint: CheckpointId,
    pub direction: Direction,
    pub method: Method,
    /// Who, when known: the pass holder or the matched face. `None` for unreadable codes and
    /// unknown faces.
    pub subject: Option<SubjectId>,
    /// People bound to the holder's pass and admitted with them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependants: Vec<SubjectId>,
    pub pass_status: Option<PassStatus>,
    pub decision: Decision,
    pub reason: Reason,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<Flag>,
    /// Body temperature in °C when a plausible reading was taken.
    pub temperature_c: Option<f32>,
    /// When the attempt happened, by the box's clock.
    #[serde(with = "super::utc")]
    pub ts: OffsetDateTime,
    /// Whether the box's clock was synchronised (a Raspberry Pi has no real-time clock).
    pub clock_synced: bool,
}

impl Event {
    /// When the attempt happened, in Unix milliseconds ([`crate::unix_ms`]).
    pub fn ts_ms(&self) -> i64 {
        crate::unix_ms(self.ts)
    }
}

/// Range of temperatures an event may carry; the box turns anything outside the plausible body
/// range into "no reading" long before this.
pub const TEMPERATURE_RANGE: std::ops::RangeInclusive<f32> = 25.0..=45.0;

/// The highest sequence number a record may carry: 2^53, a thousand events a second for more
/// than 280,000 years. Beyond it a number is forged or broken, and refusing it at decode keeps
/// every sum on sequence numbers far from overflow.
pub const MAX_SEQ: u64 = 1 << 53;

impl Record for Event {
    const MAX_BYTES: usize = 4 * 1024;

    fn validate(&self) -> Result<(), String> {
        if self.seq == 0 {
            return Err("seq starts at 1".to_string());
        }
        if self.seq > MAX_SEQ {
            return Err(format!(
                "seq {} is beyond {MAX_SEQ}: no box makes that many events",
                self.seq
            ));
        }
        match (self.decision, self.reason) {
            (Decision::Admit, Reason::Ok) => {}
            (Decision::Admit, r) => return Err(format!("admit with reason {r:?}")),
            (Decision::Deny, Reason::Ok) => return Err("deny with reason ok".to_string()),
            (Decision::Deny, _) => {}
        }
        if let Some(t) = self.temperature_c {
            if !TEMPERATURE_RANGE.contains(&t) {
                return Err(format!(
                    "temperature {t} °C is outside {TEMPERATURE_RANGE:?}"
                ));
            }
        }
        for (i, f) in self.flags.iter().enumerate() {
            if self.flags[..i].contains(f) {
                return Err(format!("flag {f:?} repeats"));
            }
        }
        if self.dependants.len() > crate::passcode::MAX_DEPENDANTS {
            return Err(format!("{} dependants", self.dependants.len()));
        }
        Ok(())
    }
}
