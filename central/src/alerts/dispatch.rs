//! The alert engine of `serve`: it receives alerts from ingest (readings, fevers), checks box
//! health and crowding on a timer, routes every alert change to its recipients and delivers it
//! through each channel, retrying with backoff; every attempt is logged in the store.
//!
//! Long on purpose: the engine's one task loop and the delivery it drives (attempt, retry, backoff,
//! resume) read as one; routing into jobs is in `dispatch/jobs.rs`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use checkpoint_link::clock::SharedClock;
use checkpoint_protocol::ids::BoxId;
use checkpoint_protocol::records::Event;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::log::{kept, NotificationRecord, Outcome, PendingDelivery};
use super::route::{default_roles, Directory, Recipient, Role};
use super::rules::{Alert, AlertKind, BoxHealth, Reading, Rules};
use super::webhook::{Channel, ChannelError, Outgoing};
use super::AlertsConfig;
use crate::registry::Registry;
use crate::store::{blocking, Store};

mod jobs;
pub use jobs::Route;

/// Readings marked handled in one store write, at most.
const HANDLED_BATCH: usize = 512;

/// Delay before attempt `n + 1` (n ≥ 1): 5 s doubling, at most 10 minutes.
pub fn retry_delay(attempts: u32) -> Duration {
    checkpoint_link::doubling(
        Duration::from_secs(5),
        Duration::from_secs(600),
        attempts.saturating_sub(1),
    )
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A notification id: the time in Unix ms, then a counter (ids grow in the order they are made).
fn next_id(now_ms: i64) -> u64 {
    let ms = u64::try_from(now_ms).unwrap_or(0);
    ms * 1000 + COUNTER.fetch_add(1, Ordering::Relaxed) % 1000
}

struct Job {
    record: NotificationRecord,
    out: Outgoing,
    channel: Arc<dyn Channel>,
    /// In the store's pending deliveries.
    kept: bool,
}

/// Channels that failed a moment ago, and until when they are left alone.
type Down = HashMap<&'static str, Instant>;

pub struct Engine {
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub channels: Vec<Route>,
    pub cfg: AlertsConfig,
    /// A box not heard from for this long counts as offline.
    pub silent_after: Duration,
    pub max_stay_ms: i64,
    /// The site's zone, for the times in messages.
    pub site: crate::site::Site,
    /// Readings whose alerts the last run did not handle (`Store::unhandled_readings`, read
    /// before ingest starts).
    pub backlog: Vec<Event>,
    /// The time for alert windows, retries and box silence.
    pub clock: SharedClock,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    fn roles(&self, kind: AlertKind) -> Vec<Role> {
        self.cfg
            .routes
            .get(&kind)
            .cloned()
            .unwrap_or_else(|| default_roles(kind))
    }

    async fn directory(&self) -> Directory {
        let roster = blocking(&self.store, |s| Ok((s.people()?, s.places()?))).await;
        let (people, places) = roster.unwrap_or_else(|error| {
            tracing::error!(message = "Cannot read the roster.", %error);
            Default::default()
        });
        let facilities: Vec<Recipient> =
            self.cfg.facilities.iter().map(|f| f.recipient()).collect();
        Directory::new(people, places, facilities).in_site(self.site.clone())
    }

    async fn log(&self, r: &NotificationRecord) {
        let record = r.clone();
        let saved = blocking(&self.store, move |s| kept::put_notification(s, &record)).await;
        if let Err(error) = saved {
            tracing::error!(message = "Cannot log a notification.", %error, alert = r.alert_key);
        }
    }

    /// Keeps `job` in the store while it waits, so a restart goes on with it.
    async fn keep(&self, job: &mut Job) {
        let pending = PendingDelivery {
            record: job.record.clone(),
            out: job.out.clone(),
        };
        let kept = blocking(&self.store, move |s| kept::put_pending(s, &pending)).await;
        match kept {
            Ok(()) => job.kept = true,
            Err(error) => {
                tracing::error!(message = "Cannot keep a pending delivery.", %error, alert = job.record.alert_key)
            }
        }
    }

    /// One delivery attempt; `Some((job, when))` when it should be tried again. A channel that
    /// just failed is left alone until its backoff is over: its other jobs wait without spending
    /// an attempt (or a timeout each on a server that does not answer).
    async fn attempt(&self, mut job: Job, down: &mut Down) -> Option<(Job, Instant)> {
        let name = job.channel.name();
        if let Some(&until) = down.get(name) {
            if self.clock.instant() < until {
                if !job.kept {
                    job.record.error = Some("waiting: the channel failed a moment ago".into());
                    self.log(&job.record).await;
                    self.keep(&mut job).await;
                }
                return Some((job, until));
            }
        }
        let (channel, out) = (job.channel.clone(), job.out.clone());
        let result = tokio::task::spawn_blocking(move || channel.send(&out))
            .await
            .unwrap_or_else(|e| Err(ChannelError::Transient(format!("task: {e}"))));
        let transient = matches!(result, Err(ChannelError::Transient(_)));
        let r = &mut job.record;
        r.attempts += 1;
        r.last_ms = self.clock.now_ms();
        let again = match result {
            Ok(d) => {
                r.outcome = Outcome::Sent;
                r.error = None;
                r.invalid_recipients.extend(d.invalid_recipients);
                r.deferred = d.deferred;
                false
            }
            Err(ChannelError::Transient(e)) if r.attempts < self.cfg.max_attempts => {
                r.outcome = Outcome::Pending;
                r.error = Some(e);
                true
            }
            Err(e) => {
                r.outcome = Outcome::Failed;
                r.error = Some(e.to_string());
                false
            }
        };
        self.log(r).await;
        // One instant for the channel's backoff and this job's retry: the jobs waiting for the
        // channel then come due together with it and go out in the order they were raised.
        let when = self.clock.instant() + retry_delay(r.attempts);
        if transient {
            down.insert(name, when);
        } else {
            down.remove(name);
        }
        if again {
            self.keep(&mut job).await;
        } else if job.kept {
            let id = job.record.id;
            if let Err(error) = blocking(&self.store, move |s| kept::remove_pending(s, id)).await {
                tracing::error!(message = "Cannot drop a pending delivery.", %error);
            }
        }
        let r = &job.record;
        match r.outcome {
            Outcome::Sent => tracing::info!(
                message = "Notification sent.",
                alert = r.alert_key,
                channel = r.channel,
                recipients = r.recipients.len()
            ),
            Outcome::Pending => tracing::warn!(
                message = "Notification not delivered; retrying.",
                alert = r.alert_key,
                channel = r.channel,
                attempts = r.attempts,
                error = r.error.as_deref().unwrap_or_default()
            ),
            _ => tracing::error!(
                message = "Notification failed.",
                alert = r.alert_key,
                channel = r.channel,
                attempts = r.attempts,
                error = r.error.as_deref().unwrap_or_default()
            ),
        }
        again.then_some((job, when))
    }

    /// Sends what channels held back for rate limits (merged per member) and logs it.
    async fn flush(&self) {
        for c in self.channels.iter().map(|r| &r.channel) {
            let channel = c.clone();
            let merged = tokio::task::spawn_blocking(move || channel.flush())
                .await
                .unwrap_or_default();
            for m in merged {
                let now = self.clock.now_ms();
                let (outcome, error, invalid) = match m.result {
                    Ok(d) => (Outcome::Sent, None, d.invalid_recipients),
                    Err(e) => (Outcome::Pending, Some(e.to_string()), Vec::new()),
                };
                let r = NotificationRecord {
                    id: next_id(self.clock.now_ms()),
                    alert_key: format!("digest:{}:{}", m.member, m.alerts),
                    kind: AlertKind::Digest,
                    raised: true,
                    channel: c.name().to_string(),
                    recipients: vec![m.member.clone()],
                    outcome,
                    error,
                    invalid_recipients: invalid,
                    deferred: Vec::new(),
                    attempts: 1,
                    first_ms: now,
                    last_ms: now,
                };
                tracing::info!(message = "Merged notification.", member = m.member, alerts = m.alerts, outcome = ?r.outcome);
                self.log(&r).await;
            }
        }
    }

    /// Box health as the rules see it.
    fn health(&self) -> Vec<BoxHealth> {
        self.registry
            .snapshot()
            .into_iter()
            .map(|(b, e)| BoxHealth {
                box_id: b.to_string(),
                online: e.state == Some(checkpoint_protocol::records::BoxState::Online)
                    && self.clock.instant().duration_since(e.last_seen) < self.silent_after,
                backlog: e.telemetry.as_ref().map(|t| t.outbox_depth),
                trust_age_s: e.telemetry.as_ref().and_then(|t| t.trust_age_s),
                lost: e.lost,
            })
            .collect()
    }

    /// Runs until `stop`: alerts from `rx`, checks every `check_every`, retries when due.
    pub async fn run(self, mut rx: mpsc::Receiver<Reading>, stop: CancellationToken) {
        let limits = super::rules::Limits {
            fever_threshold_c: self.cfg.fever_threshold_c,
            temperature_to_person: self.cfg.temperature_to_person,
            backlog_events: self.cfg.backlog_events,
            trust_stale: self.cfg.trust_stale,
        };
        let mut rules = Rules::new(
            limits.clone(),
            blocking(&self.store, |s| kept::active_alerts(s))
                .await
                .unwrap_or_default(),
        );
        let mut check = tokio::time::interval(self.cfg.check_every);
        let mut flush = tokio::time::interval(Duration::from_secs(1));
        let mut dir_generation = self.store.roster_generation();
        let mut dir = self.directory().await;
        // Retries by due time, then in the order they were raised (ids grow), with a counter to
        // keep equal keys apart: after an outage "offline" still goes out before "back online".
        let mut due: BTreeMap<(Instant, u64, u64), Job> = BTreeMap::new();
        let mut n = 0u64;
        let mut down = Down::new();
        let resumed = self.clock.instant();
        for job in self.resume().await {
            n += 1;
            due.insert((resumed, job.record.id, n), job);
        }
        // Readings stored before a crash whose alerts were not handled then: at least once.
        if !self.backlog.is_empty() {
            tracing::info!(
                message = "Handling the alerts of readings left from the last run.",
                count = self.backlog.len()
            );
        }
        for chunk in self.backlog.chunks(HANDLED_BATCH) {
            let mut done = Vec::with_capacity(chunk.len());
            for e in chunk {
                let alerts = super::rules::event_alerts(&limits, e);
                self.deliver(alerts, &dir, &mut down, &mut due, &mut n)
                    .await;
                done.push((e.box_id.clone(), e.seq));
            }
            self.handled(done).await;
        }
        loop {
            let next_due = due.keys().next().map(|(t, _, _)| *t);
            let sleep = async {
                match next_due {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            let mut fresh: Vec<Alert> = Vec::new();
            let mut readings = Vec::new();
            tokio::select! {
                _ = stop.cancelled() => break,
                r = rx.recv() => match r {
                    Some(r) => {
                        // Whatever else is already waiting is handled with it: one store
                        // write marks them all.
                        let mut next = Some(r);
                        while let Some(r) = next.take() {
                            fresh.extend(r.alerts);
                            readings.push((r.box_id, r.seq));
                            if readings.len() < HANDLED_BATCH {
                                next = rx.try_recv().ok();
                            }
                        }
                    }
                    None => break,
                },
                _ = check.tick() => {
                    fresh.extend(rules.on_boxes(&self.health(), self.clock.now_ms()));
                    fresh.extend(self.crowding(&mut rules, &dir).await);
                    let active: Vec<Alert> = rules.active().cloned().collect();
                    let saved = blocking(&self.store, move |s| kept::put_active_alerts(s, &active)).await;
                    if let Err(error) = saved {
                        tracing::error!(message = "Cannot save the active alerts.", %error);
                    }
                }
                _ = flush.tick() => self.flush().await,
                _ = sleep => {
                    if let Some((_, job)) = due.pop_first() {
                        if let Some((job, when)) = self.attempt(job, &mut down).await {
                            n += 1;
                            due.insert((when, job.record.id, n), job);
                        }
                    }
                }
            }
            if !fresh.is_empty() {
                // The roster is reloaded when an import replaced it.
                let generation = self.store.roster_generation();
                if generation != dir_generation {
                    dir = self.directory().await;
                    dir_generation = generation;
                }
                self.deliver(fresh, &dir, &mut down, &mut due, &mut n).await;
            }
            self.handled(readings).await;
        }
    }

    /// Routes and attempts each alert; what must be retried goes into `due`.
    async fn deliver(
        &self,
        alerts: Vec<Alert>,
        dir: &Directory,
        down: &mut Down,
        due: &mut BTreeMap<(Instant, u64, u64), Job>,
        n: &mut u64,
    ) {
        for alert in alerts {
            if alert.kind == AlertKind::Temperature {
                // Every measured person's own reading: routine, one per entry; not journal news.
                tracing::debug!(message = "Alert.", key = alert.key, raised = alert.raised);
            } else {
                tracing::info!(message = "Alert.", key = alert.key, raised = alert.raised);
            }
            for job in self.jobs(alert, dir).await {
                if let Some((job, when)) = self.attempt(job, down).await {
                    *n += 1;
                    due.insert((when, job.record.id, *n), job);
                }
            }
        }
    }

    /// Marks readings handled once their alerts are routed (a crash before this routes them
    /// again: at least once).
    async fn handled(&self, readings: Vec<(BoxId, u64)>) {
        if readings.is_empty() {
            return;
        }
        let count = readings.len();
        if let Err(error) = blocking(&self.store, move |s| s.readings_handled(&readings)).await {
            tracing::error!(message = "Cannot mark readings handled.", %error, count);
        }
    }

    /// Crowding at every place of the roster with a capacity.
    async fn crowding(&self, rules: &mut Rules, dir: &Directory) -> Vec<Alert> {
        let now = self.clock.now_ms();
        let mut out = Vec::new();
        let caps: HashMap<&String, u32> = dir
            .places
            .iter()
            .filter_map(|(cp, p)| p.capacity.map(|c| (cp, c)))
            .collect();
        for (cp, cap) in caps {
            let Ok(id) = checkpoint_protocol::ids::CheckpointId::new(cp.clone()) else {
                continue;
            };
            let max_stay_ms = self.max_stay_ms;
            let occ = blocking(&self.store, move |s| {
                crate::query::occupancy(s, &id, now, max_stay_ms, &[])
            })
            .await;
            match occ {
                Ok((o, _)) => out.extend(rules.on_occupancy(cp, o.inside, Some(cap), now)),
                Err(error) => {
                    tracing::warn!(message = "Occupancy check failed.", %error, place = cp)
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
