//! Which outbox events to publish now. State only, no network: the uplink calls
//! [`Sender::pump`] with a `publish` callback whenever it is connected and something may be due.
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
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pumped {
    pub live: usize,
    pub backlog: usize,
    pub resent: usize,
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
        }
    }

    /// A new connection: everything stored so far is backlog.
    pub fn connected(&mut self, last_seq: u64, now: Instant) {
        self.live_from = last_seq + 1;
        self.live_next = self.live_from;
        self.backlog_next = 0;
        self.inflight.clear();
        self.tokens = 1.0;
        self.refilled = now;
    }

    pub fn acked(&mut self, ranges: &[(u64, u64)]) {
        for &(first, last) in ranges {
            let seqs: Vec<u64> = self.inflight.range(first..=last).map(|(s, _)| *s).collect();
            for s in seqs {
                self.inflight.remove(&s);
            }
        }
    }

    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    /// Backlog events not yet published in this connection remain.
    pub fn backlog_pending(&self) -> bool {
        self.backlog_next < self.live_from
    }

    /// Publishes what is due. `publish` returns `false` when the client cannot take more now;
    /// the event is then tried again on the next pump.
    pub fn pump(
        &mut self,
        outbox: &Outbox,
        now: Instant,
        publish: &mut dyn FnMut(u64, Vec<u8>) -> bool,
    ) -> Result<Pumped, OutboxError> {
        let mut done = Pumped::default();
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        self.refilled = now;

        // Live first, unthrottled.
        'live: loop {
            let batch = outbox.pending(self.live_next, BATCH)?;
            if batch.is_empty() {
                break;
            }
            for (seq, record) in batch {
                if !publish(seq, record) {
                    return Ok(done);
                }
                self.inflight.insert(seq, now);
                self.live_next = seq + 1;
                done.live += 1;
                if done.live >= 4 * BATCH {
                    break 'live;
                }
            }
        }

        // Resends of unacknowledged events, oldest first.
        let due: Vec<u64> = self
            .inflight
            .iter()
            .filter(|(_, sent)| now.saturating_duration_since(**sent) >= self.resend_after)
            .map(|(s, _)| *s)
            .collect();
        for seq in due {
            if self.tokens < 1.0 {
                return Ok(done);
            }
            match outbox.get(seq)? {
                None => {
                    // Acknowledged through another path, or dropped by the full policy.
                    self.inflight.remove(&seq);
                }
                Some(record) => {
                    if !publish(seq, record) {
                        return Ok(done);
                    }
                    self.tokens -= 1.0;
                    self.inflight.insert(seq, now);
                    done.resent += 1;
                }
            }
        }

        // The backlog, within the budget.
        while self.tokens >= 1.0 && self.backlog_pending() {
            let want = (self.tokens as usize).clamp(1, BATCH);
            let batch = outbox.pending(self.backlog_next, want)?;
            let batch: Vec<_> = batch
                .into_iter()
                .filter(|(s, _)| *s < self.live_from)
                .collect();
            if batch.is_empty() {
                self.backlog_next = self.live_from;
                break;
            }
            for (seq, record) in batch {
                if !publish(seq, record) {
                    return Ok(done);
                }
                self.tokens -= 1.0;
                self.inflight.insert(seq, now);
                self.backlog_next = seq + 1;
                done.backlog += 1;
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WhenFull;

    fn outbox(dir: &std::path::Path, n: u64) -> Outbox {
        let ob = Outbox::open(dir, 1 << 20, WhenFull::RefuseNew, 1 << 20).unwrap();
        for _ in 0..n {
            ob.append(0, |s| format!("e{s}").into_bytes()).unwrap();
        }
        ob
    }

    fn pump(s: &mut Sender, ob: &Outbox, now: Instant) -> Vec<u64> {
        let mut sent = Vec::new();
        s.pump(ob, now, &mut |seq, rec| {
            assert_eq!(rec, format!("e{seq}").into_bytes());
            sent.push(seq);
            true
        })
        .unwrap();
        sent
    }

    #[test]
    fn live_goes_first_and_backlog_drains_at_the_rate() {
        let dir = tempfile::tempdir().unwrap();
        let ob = outbox(dir.path(), 30);
        let t0 = Instant::now();
        let mut s = Sender::new(10, Duration::from_secs(60), t0);
        s.connected(30, t0);
        assert_eq!(pump(&mut s, &ob, t0), vec![1], "one token to start");
        ob.append(0, |s| format!("e{s}").into_bytes()).unwrap();
        ob.append(0, |s| format!("e{s}").into_bytes()).unwrap();
        let sent = pump(&mut s, &ob, t0 + Duration::from_millis(500));
        assert_eq!(
            sent,
            vec![31, 32, 2, 3, 4, 5, 6],
            "live first, then 5 tokens of backlog"
        );
        // A long pause refills only one second's worth.
        let sent = pump(&mut s, &ob, t0 + Duration::from_secs(30));
        assert_eq!(sent, (7..=16).collect::<Vec<_>>());
        assert!(s.backlog_pending());
        assert_eq!(s.inflight(), 18);
    }

    #[test]
    fn unacked_events_are_resent_and_acked_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let ob = outbox(dir.path(), 0);
        let t0 = Instant::now();
        let mut s = Sender::new(100, Duration::from_secs(10), t0);
        s.connected(0, t0);
        for _ in 0..3 {
            ob.append(0, |s| format!("e{s}").into_bytes()).unwrap();
        }
        assert_eq!(pump(&mut s, &ob, t0), vec![1, 2, 3]);
        assert!(pump(&mut s, &ob, t0 + Duration::from_secs(5)).is_empty());
        ob.ack(&[(2, 2)]).unwrap();
        s.acked(&[(2, 2)]);
        assert_eq!(pump(&mut s, &ob, t0 + Duration::from_secs(10)), vec![1, 3]);
        // Acked in the outbox but the ack message raced: the resend finds nothing and forgets.
        ob.ack(&[(1, 1)]).unwrap();
        assert_eq!(pump(&mut s, &ob, t0 + Duration::from_secs(20)), vec![3]);
        assert_eq!(s.inflight(), 1);
    }

    #[test]
    fn a_full_client_keeps_the_event_for_later() {
        let dir = tempfile::tempdir().unwrap();
        let ob = outbox(dir.path(), 0);
        let t0 = Instant::now();
        let mut s = Sender::new(100, Duration::from_secs(10), t0);
        s.connected(0, t0);
        ob.append(0, |s| format!("e{s}").into_bytes()).unwrap();
        let mut refused = 0;
        s.pump(&ob, t0, &mut |_, _| {
            refused += 1;
            false
        })
        .unwrap();
        assert_eq!(refused, 1);
        assert_eq!(pump(&mut s, &ob, t0), vec![1]);
    }

    #[test]
    fn reconnect_turns_everything_unacked_into_backlog() {
        let dir = tempfile::tempdir().unwrap();
        let ob = outbox(dir.path(), 3);
        let t0 = Instant::now();
        let mut s = Sender::new(100, Duration::from_secs(10), t0);
        s.connected(3, t0);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(pump(&mut s, &ob, t1), vec![1, 2, 3]);
        s.connected(3, t1);
        assert_eq!(
            pump(&mut s, &ob, t1 + Duration::from_secs(1)),
            vec![1, 2, 3]
        );
    }
}
