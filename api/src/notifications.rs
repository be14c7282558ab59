//! The notification log (`GET /api/v1/notifications`): one record per alert change and
//! channel, updated on every delivery attempt.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Temperature,
    Fever,
    Crowding,
    BoxOffline,
    Backlog,
    TrustStale,
    SequenceGap,
    /// Not raised by a rule: messages held back by a channel's rate limit, merged for one
    /// member (in the notification log only).
    Digest,
}

impl AlertKind {
    pub const ALL: [AlertKind; 7] = [
        AlertKind::Temperature,
        AlertKind::Fever,
        AlertKind::Crowding,
        AlertKind::BoxOffline,
        AlertKind::Backlog,
        AlertKind::TrustStale,
        AlertKind::SequenceGap,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Temperature => "temperature",
            AlertKind::Fever => "fever",
            AlertKind::Crowding => "crowding",
            AlertKind::BoxOffline => "box_offline",
            AlertKind::Backlog => "backlog",
            AlertKind::TrustStale => "trust_stale",
            AlertKind::SequenceGap => "sequence_gap",
            AlertKind::Digest => "digest",
        }
    }

    /// Raised once and never resolved: a notice or an incident, not a condition.
    pub fn one_shot(self) -> bool {
        matches!(
            self,
            AlertKind::Temperature | AlertKind::Fever | AlertKind::SequenceGap | AlertKind::Digest
        )
    }
}

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

/// A notification record with its time in the site's zone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotificationRow {
    pub time: String,
    #[serde(flatten)]
    pub record: NotificationRecord,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_is_named_alike_in_json_and_in_messages() {
        for kind in AlertKind::ALL.into_iter().chain([AlertKind::Digest]) {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json.as_str(), Some(kind.as_str()), "{kind:?}");
        }
    }

    #[test]
    fn a_row_is_the_record_with_its_time_beside_it() {
        let row = NotificationRow {
            time: "2026-12-01 08:00:00 +08:00".into(),
            record: NotificationRecord {
                id: 1,
                alert_key: "fever:p-1".into(),
                kind: AlertKind::Fever,
                raised: true,
                channel: "webhook".into(),
                recipients: vec!["p-1".into()],
                outcome: Outcome::Sent,
                error: None,
                invalid_recipients: vec![],
                deferred: vec![],
                attempts: 1,
                first_ms: 5,
                last_ms: 6,
            },
        };
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["kind"], "fever");
        assert_eq!(json["outcome"], "sent");
        assert_eq!(json["time"], "2026-12-01 08:00:00 +08:00");
        let back: NotificationRow = serde_json::from_value(json).unwrap();
        assert_eq!(back.record, row.record);
    }
}
