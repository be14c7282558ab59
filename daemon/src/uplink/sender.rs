//! Which outbox events to publish now. State only, no network and no outbox: a pump asks the
//! sender what it [`Sender::want`]s read, [`Sender::offer`]s it the rows, publishes what comes
//! back and reports each one [`Sender::published`]. [`pump`] is that loop over the outbox; the
//! uplink runs it whenever it is connected and something may be due.
//!
//! Per connection, events stored before it are the *backlog* and later ones are *live*:
//! - live events are published as soon as they are stored, in sequence order;
//! - the backlog is published in sequence order at most `drain_per_s` per second (a token bucket
//!   with one second of burst), so a thousand boxes coming back after an outage do not flatten
//!   the broker, and live events never wait behind it;
//! - an event published in this connection and not acknowledged end to end within
//!   `resend_after` is published again, drawing on the same budget as the backlog.
//!
//! Central deduplicates, so publishing an event twice is harmless; never publishing one is not.
//!
//! An ack deletes events from the outbox, so the sender also remembers every sequence number it
//! has published since the process started ([`Sent`]): [`Sender::acked`] passes on only the
//! parts of an ack's ranges that name events this box has sent. A forged ack for events still
//! waiting in the outbox deletes nothing (at worst, a genuine ack that arrives after a restart
//! is ignored and the event is sent and acked again).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::outbox::{Outbox, OutboxError};

/// Most events read from the outbox per step.
const BATCH: usize = 64;

#[derive(Debug)]
pub struct Sender {
    rate: f64,
    resend_after: Duration,
    tokens: f64,
    refilled: Instant,
    /// First sequence number that is live in this connection.
    live_from: u64,
    live_next: u64,
    backlog_next: u64,
    /// Published in this connection, not yet acknowledged: when last published.
    inflight: BTreeMap<u64, Instant>,
    /// Published since start and not yet acknowledged, in any connection.
    sent: Sent,
    round: Round,
}

/// A set of sequence numbers as disjoint inclusive ranges (`first -> last`); publication order
/// keeps it to a handful of ranges.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sent(BTreeMap<u64, u64>);

impl Sent {
    pub fn insert(&mut self, seq: u64) {
        let below = self.0.range(..=seq).next_back().map(|(f, l)| (*f, *l));
        if let Some((_, last)) = below {
            if last >= seq {
                return;
            }
        }
        let above = seq
            .checked_add(1)
            .and_then(|n| self.0.get(&n).map(|l| (n, *l)));
        let first = match below {
            Some((f, last)) if last.checked_add(1) == Some(seq) => f,
            _ => seq,
        };
        let last = match above {
            Some((n, l)) => {
                self.0.remove(&n);
                l
            }
            None => seq,
        };
        self.0.insert(first, last);
    }

    /// Removes `first..=last` and returns the parts of it that were in the set.
    pub fn take(&mut self, first: u64, last: u64) -> Vec<(u64, u64)> {
        if first > last {
            return Vec::new();
        }
        let start = self
            .0
            .range(..=first)
            .next_back()
            .filter(|(_, l)| **l >= first)
            .map_or(first, |(f, _)| *f);
        let hit: Vec<(u64, u64)> = self.0.range(start..=last).map(|(f, l)| (*f, *l)).collect();
        let mut taken = Vec::new();
        for (f, l) in hit {
            self.0.remove(&f);
            if f < first {
                self.0.insert(f, first - 1);
            }
            if l > last {
                self.0.insert(last + 1, l);
            }
            taken.push((f.max(first), l.min(last)));
        }
        taken
    }

    pub fn contains(&self, seq: u64) -> bool {
        self.0
            .range(..=seq)
            .next_back()
            .is_some_and(|(_, l)| *l >= seq)
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pumped {
    pub live: usize,
    pub backlog: usize,
    pub resent: usize,
}

/// What the sender asks to be read from the outbox next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// Up to `max` stored events from `from` on: live ones.
    Live { from: u64, max: usize },
    /// These events again, oldest first (a missing one was acknowledged or dropped meanwhile).
    Resend(Vec<u64>),
    /// Up to `max` stored events from `from` on; those from the live mark on are not backlog.
    Backlog { from: u64, max: usize },
}

/// One pump's progress: what it asked last and what it has published.
#[derive(Debug, Default)]
struct Round {
    asked: Option<Want>,
    live_done: bool,
    done: Pumped,
}

impl Sender {
    pub fn new(drain_per_s: u32, resend_after: Duration, now: Instant) -> Self {
        Sender {
            rate: f64::from(drain_per_s.max(1)),
            resend_after,
            tokens: 0.0,
            refilled: now,
            live_from: 1,
            live_next: 1,
            backlog_next: 0,
            inflight: BTreeMap::new(),
            sent: Sent::default(),
            round: Round::default(),
        }
    }

    /// A new connection: everything stored so far is backlog.
    pub fn connected(&mut self, last_seq: u64, now: Instant) {
        self.live_from = last_seq.saturating_add(1);
        self.live_next = self.live_from;
        self.backlog_next = 0;
        self.inflight.clear();
        self.tokens = 1.0;
        self.refilled = now;
    }

    /// Central acknowledged `ranges`: returns the parts that name events this box has sent,
    /// which are the only ones the outbox may delete.
    pub fn acked(&mut self, ranges: &[(u64, u64)]) -> Vec<(u64, u64)> {
        let mut valid = Vec::new();
        for &(first, last) in ranges {
            for (f, l) in self.sent.take(first, last) {
                let seqs: Vec<u64> = self.inflight.range(f..=l).map(|(s, _)| *s).collect();
                for s in seqs {
                    self.inflight.remove(&s);
                }
                valid.push((f, l));
            }
        }
        valid
    }

    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    /// Backlog events not yet published in this connection remain.
    pub fn backlog_pending(&self) -> bool {
        self.backlog_next < self.live_from
    }

    /// Starts a pump at `now`: the budget refills (one second of burst at most).
    pub fn begin(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        self.refilled = now;
        self.round = Round::default();
    }

    /// What to read next in this pump: live events first (unthrottled, at most `4 × BATCH` per
    /// pump), then resends that are due, then the backlog within the budget. `None`: nothing
    /// more is due now.
    pub fn want(&mut self, now: Instant) -> Option<Want> {
        let want = if !self.round.live_done {
            Want::Live {
                from: self.live_next,
                max: BATCH.min(4 * BATCH - self.round.done.live),
            }
        } else if let Some(due) = self.due(now) {
            Want::Resend(due)
        } else if self.tokens >= 1.0 && self.backlog_pending() {
            Want::Backlog {
                from: self.backlog_next,
                max: (self.tokens as usize).clamp(1, BATCH),
            }
        } else {
            return None;
        };
        self.round.asked = Some(want.clone());
        Some(want)
    }

    /// Resends due now, as many as the budget allows.
    fn due(&self, now: Instant) -> Option<Vec<u64>> {
        if self.tokens < 1.0 {
            return None;
        }
        let due: Vec<u64> = self
            .inflight
            .iter()
            .filter(|(_, sent)| now.saturating_duration_since(**sent) >= self.resend_after)
            .map(|(s, _)| *s)
            .take(self.tokens as usize)
            .collect();
        (!due.is_empty()).then_some(due)
    }

    /// The rows read for the last [`Sender::want`] (`None` for an event no longer stored):
    /// returns what to publish, in order. Each one the client takes is reported with
    /// [`Sender::published`]; the first it refuses ends the pump and is offered again next time.
    pub fn offer(&mut self, rows: Vec<(u64, Option<Vec<u8>>)>) -> Vec<(u64, Vec<u8>)> {
        let Some(asked) = self.round.asked.take() else {
            return Vec::new();
        };
        match asked {
            Want::Live { max, .. } => {
                let rows: Vec<_> = rows
                    .into_iter()
                    .filter_map(|(s, r)| Some((s, r?)))
                    .filter(|(s, _)| *s >= self.live_next)
                    .take(max)
                    .collect();
                if rows.is_empty() || self.round.done.live + rows.len() >= 4 * BATCH {
                    self.round.live_done = true;
                }
                self.round.asked = Some(Want::Live { from: 0, max });
                rows
            }
            Want::Resend(seqs) => {
                let mut out = Vec::new();
                for (seq, row) in rows {
                    if !seqs.contains(&seq) {
                        continue;
                    }
                    match row {
                        // Acknowledged through another path, or dropped by the full policy.
                        None => {
                            self.inflight.remove(&seq);
                        }
                        Some(r) => out.push((seq, r)),
                    }
                }
                self.round.asked = Some(Want::Resend(Vec::new()));
                out
            }
            Want::Backlog { max, .. } => {
                let rows: Vec<_> = rows
                    .into_iter()
                    .filter_map(|(s, r)| Some((s, r?)))
                    .filter(|(s, _)| *s >= self.backlog_next && *s < self.live_from)
                    .take(max)
                    .collect();
                if rows.is_empty() {
                    self.backlog_next = self.live_from;
                }
                self.round.asked = Some(Want::Backlog { from: 0, max });
                rows
            }
        }
    }

    /// The client took the event `seq` offered last.
    pub fn published(&mut self, seq: u64, now: Instant) {
        match &self.round.asked {
            Some(Want::Live { .. }) => {
                self.live_next = seq.saturating_add(1);
                self.round.done.live += 1;
            }
            Some(Want::Resend(_)) => {
                self.tokens -= 1.0;
                self.round.done.resent += 1;
            }
            Some(Want::Backlog { .. }) => {
                self.tokens -= 1.0;
                self.backlog_next = seq.saturating_add(1);
                self.round.done.backlog += 1;
            }
            None => return,
        }
        self.inflight.insert(seq, now);
        self.sent.insert(seq);
    }

    /// What this pump has published.
    pub fn pumped(&self) -> Pumped {
        self.round.done
    }
}

/// Where the rows come from: the outbox, for the uplink.
pub trait Rows {
    type Error;
    /// Up to `max` stored events from `from` on, in sequence order.
    fn pending(&self, from: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>, Self::Error>;
    fn get(&self, seq: u64) -> Result<Option<Vec<u8>>, Self::Error>;
}

impl Rows for Outbox {
    type Error = OutboxError;
    fn pending(&self, from: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>, OutboxError> {
        Outbox::pending(self, from, max)
    }
    fn get(&self, seq: u64) -> Result<Option<Vec<u8>>, OutboxError> {
        Outbox::get(self, seq)
    }
}

/// One pump: reads what the sender asks for and publishes what it returns. `publish` returns
/// `false` when the client cannot take more now; the event is then offered again next pump.
pub fn pump<R: Rows>(
    sender: &mut Sender,
    rows: &R,
    now: Instant,
    publish: &mut dyn FnMut(u64, Vec<u8>) -> bool,
) -> Result<Pumped, R::Error> {
    sender.begin(now);
    while let Some(want) = sender.want(now) {
        let read = match want {
            Want::Live { from, max } | Want::Backlog { from, max } => rows
                .pending(from, max)?
                .into_iter()
                .map(|(s, r)| (s, Some(r)))
                .collect(),
            Want::Resend(seqs) => {
                let mut read = Vec::with_capacity(seqs.len());
                for seq in seqs {
                    read.push((seq, rows.get(seq)?));
                }
                read
            }
        };
        for (seq, record) in sender.offer(read) {
            if !publish(seq, record) {
                return Ok(sender.pumped());
            }
            sender.published(seq, now);
        }
    }
    Ok(sender.pumped())
}

#[cfg(test)]
mod tests;
