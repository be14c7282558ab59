//! Per-member sending limits. WeCom silently drops application messages past 30 a minute or
//! 1,000 an hour to one member, so we count what we send in sliding windows and never go past.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub per_minute: usize,
    pub per_hour: usize,
    /// The window lengths (a minute and an hour; shorter only in tests).
    pub minute: Duration,
    pub hour: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_minute: 30,
            per_hour: 1000,
            minute: Duration::from_secs(60),
            hour: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Default)]
pub struct MemberLimiter {
    limits: Limits,
    sent: HashMap<String, VecDeque<Instant>>,
}

impl MemberLimiter {
    pub fn new(limits: Limits) -> Self {
        MemberLimiter {
            limits,
            sent: HashMap::new(),
        }
    }

    fn window(&mut self, member: &str, now: Instant) -> &mut VecDeque<Instant> {
        let hour = self.limits.hour;
        let w = self.sent.entry(member.to_string()).or_default();
        while w.front().is_some_and(|t| now.duration_since(*t) >= hour) {
            w.pop_front();
        }
        w
    }

    /// Whether one more message to `member` now stays within both limits.
    pub fn allows(&mut self, member: &str, now: Instant) -> bool {
        let Limits {
            per_minute,
            per_hour,
            minute,
            ..
        } = self.limits;
        let w = self.window(member, now);
        let last_minute = w
            .iter()
            .rev()
            .take_while(|t| now.duration_since(**t) < minute)
            .count();
        last_minute < per_minute && w.len() < per_hour
    }

    /// Counts one message sent to `member` at `now`.
    pub fn record(&mut self, member: &str, now: Instant) {
        self.window(member, now).push_back(now);
    }

    /// Forgets members with nothing in their windows (bounded memory).
    pub fn prune(&mut self, now: Instant) {
        let hour = self.limits.hour;
        self.sent
            .retain(|_, w| w.back().is_some_and(|t| now.duration_since(*t) < hour));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_a_minute_and_a_thousand_an_hour() {
        let mut l = MemberLimiter::new(Limits::default());
        let t0 = Instant::now();
        for i in 0..30 {
            assert!(l.allows("a", t0 + Duration::from_millis(i)));
            l.record("a", t0 + Duration::from_millis(i));
        }
        assert!(!l.allows("a", t0 + Duration::from_secs(59)));
        assert!(l.allows("b", t0), "per member");
        assert!(l.allows("a", t0 + Duration::from_secs(60)));
        // 1,000 in an hour: 30 a minute for 33 minutes, then 10 more, then nothing.
        let mut l = MemberLimiter::new(Limits::default());
        let mut sent = 0;
        for m in 0..60u64 {
            for s in 0..30u64 {
                let t = t0 + Duration::from_secs(m * 60 + s);
                if l.allows("a", t) {
                    l.record("a", t);
                    sent += 1;
                }
            }
        }
        assert_eq!(sent, 1000);
        assert!(l.allows("a", t0 + Duration::from_secs(3600)));
        l.prune(t0 + Duration::from_secs(7300));
        assert!(l.sent.is_empty());
    }
}
