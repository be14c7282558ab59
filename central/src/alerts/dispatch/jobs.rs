//! Turning alerts into delivery jobs: routing to recipients per channel, and resuming the
//! deliveries a previous run left waiting.

use std::sync::Arc;

use super::{next_id, Engine, Job};
use crate::alerts::log::{kept, NotificationRecord, Outcome};
use crate::alerts::route::{Directory, Language, Recipient, Role};
use crate::alerts::rules::Alert;
use crate::alerts::webhook::{Channel, Outgoing};
use crate::store::blocking;

/// A channel and the roles it serves (`None`: every role).
#[derive(Clone)]
pub struct Route {
    pub channel: Arc<dyn Channel>,
    pub roles: Option<Vec<Role>>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("channel", &self.channel.name())
            .field("roles", &self.roles)
            .finish()
    }
}

impl Route {
    pub fn new(channel: Arc<dyn Channel>, roles: Option<Vec<Role>>) -> Route {
        Route { channel, roles }
    }

    fn serves(&self, role: Role) -> bool {
        self.roles.as_ref().is_none_or(|r| r.contains(&role))
    }
}

impl Engine {
    /// Routes one alert change into delivery jobs (logging the undeliverable ones).
    pub(super) async fn jobs(&self, alert: Alert, dir: &Directory) -> Vec<Job> {
        let roles = self.roles(alert.kind);
        let (recipients, missing) = dir.recipients(&alert, &roles);
        if !missing.is_empty() {
            tracing::warn!(message = "Alert recipients missing.", alert = alert.key, missing = ?missing);
        }
        let lang: Language = self.cfg.language;
        let mut messages: Vec<(Role, String)> = Vec::new();
        for r in &recipients {
            if !messages.iter().any(|(role, _)| *role == r.role) {
                messages.push((r.role, dir.render(&alert, r.role, lang)));
            }
        }
        let now = self.clock.now_ms();
        let base = NotificationRecord {
            id: 0,
            alert_key: alert.key.clone(),
            kind: alert.kind,
            raised: alert.raised,
            channel: String::new(),
            recipients: recipients.iter().map(|r| r.id.clone()).collect(),
            outcome: Outcome::Pending,
            error: None,
            invalid_recipients: missing,
            deferred: Vec::new(),
            attempts: 0,
            first_ms: now,
            last_ms: now,
        };
        if self.channels.is_empty() {
            // Nothing to deliver through: not worth a log record per reading.
            tracing::debug!(
                message = "Alert not delivered: no channel configured.",
                alert = base.alert_key
            );
            return Vec::new();
        }
        if recipients.is_empty() {
            // Worth recording: the roster misses someone who should have been told.
            self.log(&NotificationRecord {
                id: next_id(self.clock.now_ms()),
                channel: "none".into(),
                outcome: Outcome::Undeliverable,
                error: Some("no recipient".into()),
                ..base
            })
            .await;
            return Vec::new();
        }
        let mut jobs = Vec::new();
        for route in &self.channels {
            let recipients: Vec<Recipient> = recipients
                .iter()
                .filter(|r| route.serves(r.role))
                .cloned()
                .collect();
            if recipients.is_empty() {
                continue;
            }
            jobs.push(Job {
                record: NotificationRecord {
                    id: next_id(self.clock.now_ms()),
                    channel: route.channel.name().to_string(),
                    recipients: recipients.iter().map(|r| r.id.clone()).collect(),
                    ..base.clone()
                },
                out: Outgoing {
                    alert: alert.clone(),
                    messages: messages
                        .iter()
                        .filter(|(role, _)| route.serves(*role))
                        .cloned()
                        .collect(),
                    recipients,
                },
                channel: route.channel.clone(),
                kept: false,
            });
        }
        jobs
    }

    /// The deliveries a previous run left waiting, due now; those whose channel is no longer
    /// configured are given up.
    pub(super) async fn resume(&self) -> Vec<Job> {
        let pending = match blocking(&self.store, |s| kept::pending_deliveries(s)).await {
            Ok(p) => p,
            Err(error) => {
                tracing::error!(message = "Cannot read the pending deliveries.", %error);
                return Vec::new();
            }
        };
        let mut jobs = Vec::new();
        for p in pending {
            match self
                .channels
                .iter()
                .find(|c| c.channel.name() == p.record.channel)
            {
                Some(route) => jobs.push(Job {
                    record: p.record,
                    out: p.out,
                    channel: route.channel.clone(),
                    kept: true,
                }),
                None => {
                    let r = NotificationRecord {
                        outcome: Outcome::Failed,
                        error: Some("the channel is no longer configured".into()),
                        last_ms: self.clock.now_ms(),
                        ..p.record
                    };
                    self.log(&r).await;
                    let id = r.id;
                    if let Err(error) =
                        blocking(&self.store, move |s| kept::remove_pending(s, id)).await
                    {
                        tracing::error!(message = "Cannot drop a pending delivery.", %error);
                    }
                }
            }
        }
        if !jobs.is_empty() {
            tracing::info!(message = "Resuming pending deliveries.", count = jobs.len());
        }
        jobs
    }
}
