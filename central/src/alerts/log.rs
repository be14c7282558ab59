//! The notification log: one record per alert change and channel, updated on every attempt.

use serde::{Deserialize, Serialize};

use super::rules::AlertKind;
use super::webhook::Outgoing;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Not delivered yet; another attempt is scheduled.
    Pending,
    Sent,
    /// Given up: a permanent error, or every attempt failed.
    Failed,
    /// Nobody to send it to (the roster names no recipient), or no channel configured.
    Undeliverable,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationRecord {
    /// Time-ordered: milliseconds × 1000 plus a counter.
    pub id: u64,
    pub alert_key: String,
    pub kind: AlertKind,
    pub raised: bool,
    pub channel: String,
    /// Roster ids (or facilities names) of the recipients.
    pub recipients: Vec<String>,
    pub outcome: Outcome,
    pub error: Option<String>,
    /// Recipients the channel reported as unknown, and roles nobody could be found for.
    pub invalid_recipients: Vec<String>,
    /// Recipients held back by a rate limit; they get it in a later `digest`.
    #[serde(default)]
    pub deferred: Vec<String>,
    pub attempts: u32,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// A delivery waiting for its next attempt, kept in the store so a restart goes on with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingDelivery {
    pub record: NotificationRecord,
    pub out: Outgoing,
}
