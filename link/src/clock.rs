//! The one clock both binaries read. Code where time decides something (the door, central's
//! ingest, alerts, the WeCom token, retention) takes a [`Clock`] so tests can set the time and move
//! it on instead of sleeping; [`SystemClock`] is the real one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::sync::Recover;

/// Wall time (what records carry) and monotonic time (what timers and rate limits count).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The wall clock, UTC.
    fn now(&self) -> OffsetDateTime;
    /// The monotonic clock.
    fn instant(&self) -> Instant;
    /// The wall clock in Unix milliseconds.
    fn now_ms(&self) -> i64 {
        checkpoint_protocol::unix_ms(self.now())
    }
}

/// A clock shared between the tasks and threads of one process.
pub type SharedClock = Arc<dyn Clock>;

/// The system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
    fn instant(&self) -> Instant {
        Instant::now()
    }
}

/// The system clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that only moves when told to: both its wall and its monotonic time advance together.
#[derive(Debug)]
pub struct ManualClock {
    at: Mutex<(OffsetDateTime, Instant)>,
}

impl ManualClock {
    /// Starts at wall time `at` (the monotonic side starts at the real "now" and only moves with
    /// [`ManualClock::advance`]).
    pub fn starting_at(at: OffsetDateTime) -> Arc<Self> {
        Arc::new(ManualClock {
            at: Mutex::new((at, Instant::now())),
        })
    }

    /// Moves both clocks on by `by`.
    pub fn advance(&self, by: Duration) {
        let mut g = self.at.lock_or_recover();
        g.0 += by;
        g.1 += by;
    }

    /// Sets the wall clock alone (a box whose NTP stepped its clock); the monotonic one stays.
    pub fn set_wall(&self, at: OffsetDateTime) {
        self.at.lock_or_recover().0 = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        self.at.lock_or_recover().0
    }
    fn instant(&self) -> Instant {
        self.at.lock_or_recover().1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::starting_at(datetime!(2026-12-03 08:00 UTC));
        let (w0, i0) = (c.now(), c.instant());
        assert_eq!((c.now(), c.instant()), (w0, i0));
        c.advance(Duration::from_millis(1500));
        assert_eq!(c.now(), datetime!(2026-12-03 08:00:01.5 UTC));
        assert_eq!(c.instant() - i0, Duration::from_millis(1500));
        assert_eq!(c.now_ms(), checkpoint_protocol::unix_ms(c.now()));
        c.set_wall(datetime!(2026-01-01 00:00 UTC));
        assert_eq!(c.instant() - i0, Duration::from_millis(1500));
        assert_eq!(c.now(), datetime!(2026-01-01 00:00 UTC));
    }

    #[test]
    fn the_system_clock_moves_forward() {
        let c = system();
        let (i0, w0) = (c.instant(), c.now());
        std::thread::sleep(Duration::from_millis(2));
        assert!(c.instant() > i0 && c.now() >= w0);
    }
}
