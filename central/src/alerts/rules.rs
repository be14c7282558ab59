//! Alert rules: pure functions of events, occupancy and box health, with the set of active
//! alerts as state. Every alert has a key, so a condition is raised once and resolved once, not
//! repeated with every message.
//!
//! | kind | raised when | resolved when | key |
//! |---|---|---|---|
//! | temperature | an event carries a reading (if enabled) | never (a notice) | `temperature:{event}` |
//! | fever | a reading at or above the threshold | never (an incident) | `fever:{event}` |
//! | crowding | inside reaches the place's capacity | inside below 90 % of it | `crowding:{checkpoint}` |
//! | box_offline | the box is offline or silent | it is back | `box_offline:{box}` |
//! | backlog | the outbox holds more than the limit | below half of it | `backlog:{box}` |
//! | trust_stale | trust material older than the limit | fresh again | `trust_stale:{box}` |
//! | sequence_gap | events given up on as lost | never (an incident) | `sequence_gap:{box}:{lost}` |

use std::collections::BTreeMap;

use checkpoint_protocol::ids::BoxId;
use checkpoint_protocol::records::Event;
use serde::{Deserialize, Serialize};

// The notification log names alerts by kind, so the kinds are part of the API.
pub use checkpoint_api::notifications::AlertKind;

/// A change of an alert: raised or resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub key: String,
    pub kind: AlertKind,
    /// true: raised; false: resolved.
    pub raised: bool,
    /// Unix milliseconds: the event's time, or when the condition was seen.
    pub ts_ms: i64,
    pub subject: Option<String>,
    pub checkpoint: Option<String>,
    pub box_id: Option<String>,
    /// The reading (°C), the count inside, the backlog, the trust age (h) or the events lost.
    pub value: Option<f64>,
}

/// Thresholds of the rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub fever_threshold_c: f32,
    pub temperature_to_person: bool,
    pub backlog_events: u64,
    pub trust_stale: std::time::Duration,
}

/// A box's health as the registry sees it now.
#[derive(Debug, Clone, PartialEq)]
pub struct BoxHealth {
    pub box_id: String,
    pub online: bool,
    pub backlog: Option<u64>,
    pub trust_age_s: Option<u64>,
    pub lost: u64,
}

/// Alerts from one newly stored event: its reading to the person, a fever as an incident.
/// A stored event with a temperature, handed from ingest to the engine with its alerts; the
/// engine marks it handled in the store once its alerts are routed.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub box_id: BoxId,
    pub seq: u64,
    pub alerts: Vec<Alert>,
}

impl Reading {
    /// `None` for an event without a temperature.
    pub fn of(limits: &Limits, e: &Event) -> Option<Reading> {
        e.temperature_c.is_some().then(|| Reading {
            box_id: e.box_id.clone(),
            seq: e.seq,
            alerts: event_alerts(limits, e),
        })
    }
}

pub fn event_alerts(limits: &Limits, e: &Event) -> Vec<Alert> {
    let Some(t) = e.temperature_c else {
        return Vec::new();
    };
    let alert = |kind: AlertKind| Alert {
        key: format!("{}:{}", kind.as_str(), e.id),
        kind,
        raised: true,
        ts_ms: e.ts_ms(),
        subject: e.subject.as_ref().map(|s| s.to_string()),
        checkpoint: Some(e.checkpoint.to_string()),
        box_id: Some(e.box_id.to_string()),
        value: Some(f64::from(t)),
    };
    let mut out = Vec::new();
    if limits.temperature_to_person && e.subject.is_some() {
        out.push(alert(AlertKind::Temperature));
    }
    if t >= limits.fever_threshold_c {
        out.push(alert(AlertKind::Fever));
    }
    out
}

/// The rules with the alerts now active (conditions raised and not yet resolved).
#[derive(Debug, Clone)]
pub struct Rules {
    pub limits: Limits,
    active: BTreeMap<String, Alert>,
}

impl Rules {
    /// `active`: what was active when central last stopped (kept in the store).
    pub fn new(limits: Limits, active: Vec<Alert>) -> Rules {
        Rules {
            limits,
            active: active.into_iter().map(|a| (a.key.clone(), a)).collect(),
        }
    }

    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.active.values()
    }

    /// Alerts from one newly stored event (never from a duplicate: call it for new ones only).
    pub fn on_event(&self, e: &Event) -> Vec<Alert> {
        event_alerts(&self.limits, e)
    }

    /// Raises or resolves one condition; returns the change, if any.
    fn set(&mut self, on: bool, off: bool, template: Alert) -> Option<Alert> {
        let is_active = self.active.contains_key(&template.key);
        if on && !is_active {
            self.active.insert(template.key.clone(), template.clone());
            Some(template)
        } else if off && is_active {
            self.active.remove(&template.key);
            Some(Alert {
                raised: false,
                ..template
            })
        } else {
            None
        }
    }

    /// Crowding at a place: raised at its capacity, resolved below 90 % of it.
    pub fn on_occupancy(
        &mut self,
        checkpoint: &str,
        inside: u64,
        capacity: Option<u32>,
        now_ms: i64,
    ) -> Option<Alert> {
        let cap = u64::from(capacity.filter(|c| *c > 0)?);
        self.set(
            inside >= cap,
            inside * 10 < cap * 9,
            Alert {
                key: format!("crowding:{checkpoint}"),
                kind: AlertKind::Crowding,
                raised: true,
                ts_ms: now_ms,
                subject: None,
                checkpoint: Some(checkpoint.to_string()),
                box_id: None,
                value: Some(inside as f64),
            },
        )
    }

    /// Box health: offline, backlog, stale trust, lost events.
    pub fn on_boxes(&mut self, boxes: &[BoxHealth], now_ms: i64) -> Vec<Alert> {
        let mut out = Vec::new();
        for b in boxes {
            let base = |kind: AlertKind, value: Option<f64>| Alert {
                key: format!("{}:{}", kind.as_str(), b.box_id),
                kind,
                raised: true,
                ts_ms: now_ms,
                subject: None,
                checkpoint: None,
                box_id: Some(b.box_id.clone()),
                value,
            };
            out.extend(self.set(!b.online, b.online, base(AlertKind::BoxOffline, None)));
            if let Some(n) = b.backlog {
                let limit = self.limits.backlog_events;
                out.extend(self.set(
                    n > limit,
                    n <= limit / 2,
                    base(AlertKind::Backlog, Some(n as f64)),
                ));
            }
            if let Some(age) = b.trust_age_s {
                let limit = self.limits.trust_stale.as_secs();
                out.extend(self.set(
                    age > limit,
                    age <= limit,
                    base(AlertKind::TrustStale, Some((age / 3600) as f64)),
                ));
            }
            if b.lost > 0 {
                // One incident per new total of lost events; the previous one stays in the log.
                let key = format!("sequence_gap:{}:{}", b.box_id, b.lost);
                if !self.active.contains_key(&key) {
                    self.active
                        .retain(|k, _| !k.starts_with(&format!("sequence_gap:{}:", b.box_id)));
                    let a = Alert {
                        key,
                        ..base(AlertKind::SequenceGap, Some(b.lost as f64))
                    };
                    // Kept active (never resolved) only to remember it was raised.
                    self.active.insert(a.key.clone(), a.clone());
                    out.push(a);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
