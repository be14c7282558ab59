//! What ingest decides, with no I/O: each input (a message, a write's result, a recorded gap,
//! the passing of time) with the time it happened, and the effects to carry out in order. The
//! shell in `ingest.rs` reads the session, runs the store calls off the runtime and publishes;
//! every rule is here:
//!
//! - a message is accepted strictly or counted as rejected ([`super::accept`]);
//! - events are batched: a batch goes to the store when it is full or `batch_wait` after its
//!   first event, one write at a time; a full batch while a write is in flight makes the shell
//!   wait for that write (ingest slows rather than queue without bound);
//! - what a write stored is acked per box in ranges, then its readings go to the alert engine;
//!   a refused batch is not acked (boxes resend) and ingest pauses;
//! - sequence gaps are watched; one older than the grace period is recorded as lost.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use checkpoint_link::sync::Recover;
use checkpoint_protocol::ids::BoxId;
use checkpoint_protocol::records::{self, Ack, Event, Status, Telemetry};

use super::accept::{accept, Accepted, Admits, LogThrottle};
use super::gaps::GapWatch;
use super::{ack_ranges, Counters};
use crate::alerts::rules::{Limits, Reading};
use crate::store::{Inserted, SeqState};

/// How long ingest waits after the store refused a batch.
pub(super) const STORE_PAUSE: Duration = Duration::from_secs(2);
/// How often gaps are checked against the grace period.
pub(super) const GAP_CHECK: Duration = Duration::from_secs(5);

/// The core's settings.
#[derive(Debug, Clone)]
pub(super) struct Setup {
    pub batch_max: usize,
    pub batch_wait: Duration,
    pub gap_grace: Duration,
    /// Readings go to the alert engine when set.
    pub alerts: Option<Limits>,
}

/// What happened, for the core.
#[derive(Debug)]
pub(super) enum Input<'a> {
    /// A message on one of central's subscriptions.
    Message { topic: &'a str, payload: &'a [u8] },
    /// The store took (per event) or refused the batch of the last [`Effect::Write`].
    Written(Result<Vec<Inserted>, String>),
    /// The store recorded a gap as lost (the box's new state), or could not.
    Lost {
        box_id: BoxId,
        first: u64,
        last: u64,
        state: Result<SeqState, String>,
    },
    /// Time passes (the shell ticks at least every `batch_wait`).
    Tick,
    /// Ingest is stopping: what is batched goes to the store, after the write in flight.
    Closing,
}

/// What the shell does, in order.
#[derive(Debug)]
pub(super) enum Effect {
    /// Store these events (nothing else is written until the `Written` for it).
    Write(Arc<Vec<Event>>),
    /// Wait for the write in flight and hand over its `Written` before anything else.
    AwaitWrite,
    /// Publish this ack to its box.
    Ack(Ack),
    /// Hand a reading to the alert engine (waits when the engine is behind).
    Alert(Reading),
    /// Record a gap as lost in the store, then hand over `Lost`.
    MarkLost {
        box_id: BoxId,
        first: u64,
        last: u64,
    },
    /// Wait before going on (the store just refused a batch).
    Pause(Duration),
    /// Registry updates.
    Status(Status),
    Telemetry(Box<Telemetry>),
    Sequence(BoxId, SeqState),
}

/// Ingest's state between inputs.
#[derive(Debug)]
pub(super) struct Core {
    setup: Setup,
    batch: Vec<Event>,
    batch_started: Option<Instant>,
    /// The batch of the write in flight.
    writing: Option<Arc<Vec<Event>>>,
    gaps: GapWatch,
    gaps_checked: Option<Instant>,
    log: LogThrottle,
    counters: Arc<Mutex<Counters>>,
}

impl Core {
    /// The core over the sequence states the store holds; `start` reports them.
    pub(super) fn new(
        setup: Setup,
        states: Vec<(BoxId, SeqState)>,
        counters: Arc<Mutex<Counters>>,
    ) -> Core {
        Core {
            gaps: GapWatch::new(states, setup.gap_grace),
            setup,
            batch: Vec::new(),
            batch_started: None,
            writing: None,
            gaps_checked: None,
            log: LogThrottle::new(Duration::from_secs(60)),
            counters,
        }
    }

    /// Every box the store knows is in the registry from the start, not from its next event.
    pub(super) fn start(&mut self) -> Vec<Effect> {
        self.reports()
    }

    pub(super) fn handle(
        &mut self,
        input: Input<'_>,
        now: Instant,
        known: &mut dyn Admits,
    ) -> Vec<Effect> {
        match input {
            Input::Message { topic, payload } => {
                match accept(topic, payload, known, &self.counters, &mut self.log, now) {
                    Some(Accepted::Event(e)) => self.batched(e, now),
                    Some(Accepted::Status(s)) => vec![Effect::Status(s)],
                    Some(Accepted::Telemetry(t)) => vec![Effect::Telemetry(Box::new(t))],
                    None => Vec::new(),
                }
            }
            Input::Written(result) => self.written(result),
            Input::Lost {
                box_id,
                first,
                last,
                state,
            } => match state {
                Ok(st) => {
                    tracing::warn!(message = "Sequence gap: events lost.", box_id = %box_id, first, last);
                    self.counters.lock_or_recover().gaps_lost += (last - first).saturating_add(1);
                    self.gaps.replace(&box_id, st.clone());
                    vec![Effect::Sequence(box_id, st)]
                }
                Err(error) => {
                    tracing::error!(message = "Cannot record a gap.", %error);
                    Vec::new()
                }
            },
            Input::Tick => {
                let mut out = Vec::new();
                let waited = self
                    .batch_started
                    .is_some_and(|t| now.duration_since(t) >= self.setup.batch_wait);
                if waited {
                    out.extend(self.write());
                }
                if self
                    .gaps_checked
                    .is_none_or(|t| now.duration_since(t) >= GAP_CHECK)
                {
                    self.gaps_checked = Some(now);
                    for (box_id, first, last) in self.gaps.expired(now) {
                        out.push(Effect::MarkLost {
                            box_id,
                            first,
                            last,
                        });
                    }
                }
                out
            }
            Input::Closing => {
                if self.writing.is_some() {
                    vec![Effect::AwaitWrite]
                } else {
                    self.write().into_iter().collect()
                }
            }
        }
    }

    fn batched(&mut self, e: Event, now: Instant) -> Vec<Effect> {
        if self.batch.is_empty() {
            self.batch_started = Some(now);
        }
        self.batch.push(e);
        if self.batch.len() < self.setup.batch_max {
            Vec::new()
        } else if self.writing.is_some() {
            vec![Effect::AwaitWrite]
        } else {
            self.write().into_iter().collect()
        }
    }

    /// The batch to the store, unless it is empty or a write is in flight.
    fn write(&mut self) -> Option<Effect> {
        if self.writing.is_some() || self.batch.is_empty() {
            return None;
        }
        let events = Arc::new(std::mem::take(&mut self.batch));
        self.batch_started = None;
        self.writing = Some(events.clone());
        Some(Effect::Write(events))
    }

    fn written(&mut self, result: Result<Vec<Inserted>, String>) -> Vec<Effect> {
        let Some(events) = self.writing.take() else {
            tracing::error!(message = "A write's result with no write in flight; ignored.");
            return Vec::new();
        };
        let mut out = Vec::new();
        match result {
            Err(error) => {
                // Not stored, not acked: the boxes keep the events and resend them. Pausing lets
                // a full disk or a stalled device recover instead of failing every message.
                self.counters.lock_or_recover().store_failures += events.len() as u64;
                tracing::error!(
                    message = "The store refused a batch; not acked, boxes will resend. Pausing ingest.",
                    events = events.len(),
                    %error,
                    pause_s = STORE_PAUSE.as_secs()
                );
                out.push(Effect::Pause(STORE_PAUSE));
            }
            Ok(outcomes) => {
                out.extend(self.stored(&events, &outcomes));
                out.extend(self.reports());
            }
        }
        if self.batch.len() >= self.setup.batch_max {
            out.extend(self.write());
        }
        out
    }

    /// Counts, acks and readings of one stored batch.
    fn stored(&mut self, events: &[Event], outcomes: &[Inserted]) -> Vec<Effect> {
        let mut out = Vec::new();
        let mut per_box: BTreeMap<&BoxId, Vec<u64>> = BTreeMap::new();
        {
            let mut c = self.counters.lock_or_recover();
            for (e, o) in events.iter().zip(outcomes) {
                match o {
                    Inserted::New => {
                        c.stored += 1;
                        self.gaps.add(&e.box_id, e.seq);
                    }
                    Inserted::Duplicate => c.duplicates += 1,
                    Inserted::Conflict => {
                        c.conflicts += 1;
                        tracing::warn!(message = "Sequence number reused with another event id; kept apart.", box_id = %e.box_id, seq = e.seq);
                    }
                }
                // Duplicates and conflicts are acked too: the box holds them until it hears.
                per_box.entry(&e.box_id).or_default().push(e.seq);
            }
        }
        for (b, seqs) in per_box {
            for ranges in ack_ranges(seqs) {
                out.push(Effect::Ack(Ack {
                    schema: records::Schema,
                    box_id: b.clone(),
                    ranges,
                }));
            }
        }
        // After the acks: boxes are not kept waiting for the alert engine. A crash before the
        // engine handled a reading leaves it in the store for the next start.
        if let Some(limits) = &self.setup.alerts {
            for (e, o) in events.iter().zip(outcomes) {
                if *o == Inserted::New {
                    out.extend(Reading::of(limits, e).map(Effect::Alert));
                }
            }
        }
        out
    }

    /// The sequence states that changed since the last report.
    fn reports(&mut self) -> Vec<Effect> {
        self.gaps
            .changed()
            .into_iter()
            .map(|(b, st)| Effect::Sequence(b, st))
            .collect()
    }
}

#[cfg(test)]
mod tests;
