//! How the CLI shows the API's answers.

use super::{print, Output};
use checkpoint_api::notifications::NotificationRow;
use checkpoint_api::{BoxRow, ContactRow, TrajectoryRow};

/// The trajectory table (or CSV / JSON).
pub fn trajectory(rows: &[TrajectoryRow], out: Output) -> String {
    print(
        rows,
        &[
            "time",
            "checkpoint",
            "place",
            "direction",
            "decision",
            "reason",
            "temp",
            "box",
        ],
        |r| {
            vec![
                r.ts.clone(),
                r.checkpoint.clone(),
                r.place.clone().unwrap_or_default(),
                r.direction.clone(),
                r.decision.clone(),
                r.reason.clone(),
                r.temperature_c
                    .map(|t| format!("{t:.1}"))
                    .unwrap_or_default(),
                r.box_id.clone(),
            ]
        },
        out,
    )
}

/// The contacts table (or CSV / JSON).
pub fn contacts(rows: &[ContactRow], out: Output) -> String {
    print(
        rows,
        &[
            "person",
            "degree",
            "via",
            "encounters",
            "overlap_s",
            "first met",
        ],
        |r| {
            vec![
                r.subject.clone(),
                r.degree.to_string(),
                r.via.clone().unwrap_or_default(),
                r.encounters.to_string(),
                r.overlap_s.to_string(),
                r.meetings
                    .first()
                    .map(|(cp, t)| format!("{cp} {t}"))
                    .unwrap_or_default(),
            ]
        },
        out,
    )
}

const EVENT_HEADER: [&str; 8] = [
    "time",
    "person",
    "checkpoint",
    "place",
    "direction",
    "decision",
    "reason",
    "temp",
];

fn event_cells(r: &TrajectoryRow) -> Vec<String> {
    vec![
        r.ts.clone(),
        r.subject.clone().unwrap_or_default(),
        r.checkpoint.clone(),
        r.place.clone().unwrap_or_default(),
        r.direction.clone(),
        r.decision.clone(),
        r.reason.clone(),
        r.temperature_c
            .map(|t| format!("{t:.1}"))
            .unwrap_or_default(),
    ]
}

/// The events table (or CSV / JSON).
pub fn events(rows: &[TrajectoryRow], out: Output) -> String {
    print(rows, &EVENT_HEADER, event_cells, out)
}

/// One page of an events export as CSV, with the header when it is the first.
pub fn events_csv(rows: &[TrajectoryRow], first: bool) -> String {
    super::csv_lines(first.then_some(&EVENT_HEADER[..]), rows, event_cells)
}

/// The boxes table (or CSV / JSON).
pub fn boxes(rows: &[BoxRow], out: Output) -> String {
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    print(
        rows,
        &[
            "box",
            "state",
            "seen_s_ago",
            "backlog",
            "oldest_s",
            "full",
            "trust_age_h",
            "fps",
            "clock",
        ],
        |r| {
            vec![
                r.box_id.clone(),
                r.state.clone().unwrap_or_default(),
                r.last_seen_s.to_string(),
                opt(r.outbox_depth),
                opt(r.outbox_oldest_age_s),
                r.outbox_full
                    .map(|f| if f { "FULL" } else { "" }.to_string())
                    .unwrap_or_default(),
                opt(r.trust_age_s.map(|s| s / 3600)),
                r.fps.map(|f| format!("{f:.1}")).unwrap_or_default(),
                r.clock_synced
                    .map(|c| if c { "ok" } else { "unsynced" }.to_string())
                    .unwrap_or_default(),
            ]
        },
        out,
    )
}

/// The notification log table (or CSV / JSON).
pub fn notifications(rows: &[NotificationRow], out: Output) -> String {
    print(
        rows,
        &[
            "time",
            "alert",
            "state",
            "channel",
            "recipients",
            "outcome",
            "attempts",
            "error",
        ],
        |row| {
            let r = &row.record;
            vec![
                row.time.clone(),
                r.alert_key.clone(),
                if r.raised { "raised" } else { "resolved" }.to_string(),
                r.channel.clone(),
                r.recipients.join(" "),
                serde_json::to_value(r.outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                r.attempts.to_string(),
                r.error.clone().unwrap_or_default(),
            ]
        },
        out,
    )
}
