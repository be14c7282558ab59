//! `checkpoint-api`: the bodies of central's HTTP API (`/api/v1/...`) as the server sends them
//! and its clients read them: the operators' CLI (`checkpoint-admin`) today, other clients later.
//! Serde types only, with no behaviour of the server; changing a field here changes the API.
//!
//! - The crate root: answers to the operators' questions (trajectory, contacts, occupancy,
//!   events, boxes) and the replies to their commands (revocation, gallery).
//! - [`roster`]: what a roster import changes.
//! - [`notifications`]: the alert notification log.

use serde::{Deserialize, Serialize};

pub mod notifications;
pub mod roster;

/// Most rows one page of `GET /api/v1/events` holds.
pub const EVENTS_LIMIT: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrajectoryRow {
    pub ts: String,
    pub box_id: String,
    /// The box's sequence number of the event.
    pub seq: u64,
    pub checkpoint: String,
    /// The place's name and building from the roster, when it is there.
    pub place: Option<String>,
    pub building: Option<String>,
    /// The person (events queries list several people).
    pub subject: Option<String>,
    pub direction: String,
    pub decision: String,
    pub reason: String,
    pub temperature_c: Option<f32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactRow {
    pub subject: String,
    pub degree: u8,
    pub via: Option<String>,
    pub encounters: u32,
    pub overlap_s: i64,
    /// Where and when they met, first few.
    pub meetings: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OccupancyDto {
    pub place: String,
    pub inside: u64,
    pub ins: u64,
    pub outs: u64,
    pub auto_checked_out: u64,
    /// `(interval start, admitted in, admitted out)`, over the last 12 of the site's hours
    /// (the current one included), each starting where the site's clocks read the full hour.
    pub flow: Vec<(String, u64, u64)>,
}

/// One page of the events table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsPage {
    pub rows: Vec<TrajectoryRow>,
    /// How many events the filters select in all (exact); with the first page only.
    pub total: Option<u64>,
    /// Pass as `after` for the next page; none when this page is the last.
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoxRow {
    pub box_id: String,
    pub state: Option<String>,
    pub version: Option<String>,
    pub last_seen_s: u64,
    pub outbox_depth: Option<u64>,
    pub outbox_oldest_age_s: Option<u64>,
    pub outbox_full: Option<bool>,
    pub trust_age_s: Option<u64>,
    /// Configuration the box refused since its start (forged, replayed, from the future).
    #[serde(default)]
    pub config_refused: Option<u64>,
    pub fps: Option<f32>,
    pub clock_synced: Option<bool>,
    /// Highest sequence number stored with nothing missing below it.
    pub stored_upto: u64,
    pub gaps: Vec<(u64, u64)>,
    pub lost_events: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationDto {
    pub subject: String,
    /// Codes of the subject issued before this instant (RFC 3339) are revoked; default now.
    pub issued_before: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GalleryPublished {
    pub box_id: String,
    pub bytes: usize,
}
