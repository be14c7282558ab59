//! Whether the system clock is synchronised. A Raspberry Pi has no real-time clock: after a power
//! cut it starts at its last saved time until NTP catches up, so every event says whether its
//! timestamp can be trusted.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use time::macros::datetime;
use time::OffsetDateTime;

mod config;
pub use config::{ClockCheck, ClockConfig};

/// systemd-timesyncd creates this file once it has synchronised.
const TIMESYNCD_FLAG: &str = "/run/systemd/timesync/synchronized";

/// Any time before this is certainly wrong (the project did not exist yet).
const EARLIEST_PLAUSIBLE: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

#[derive(Debug)]
pub struct ClockWatch {
    check: ClockCheck,
    synced: AtomicBool,
}

impl ClockWatch {
    /// Probes once; call [`ClockWatch::refresh`] periodically (it may run `timedatectl`).
    pub fn new(check: ClockCheck) -> Self {
        let w = ClockWatch {
            check,
            synced: AtomicBool::new(false),
        };
        w.refresh();
        w
    }

    pub fn refresh(&self) {
        let synced = match self.check {
            ClockCheck::AssumeSynced => true,
            ClockCheck::AssumeUnsynced => false,
            ClockCheck::Auto => OffsetDateTime::now_utc() >= EARLIEST_PLAUSIBLE && probe_system(),
        };
        let was = self.synced.swap(synced, Ordering::Relaxed);
        if was != synced {
            tracing::info!(message = "Clock synchronisation changed.", synced);
        }
    }

    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Relaxed)
    }
}

/// timesyncd's flag file, else `timedatectl` (which also covers chrony and ntpd through the
/// kernel's synchronisation status). No way to tell means not synchronised.
pub fn probe_system() -> bool {
    if Path::new(TIMESYNCD_FLAG).exists() {
        return true;
    }
    Command::new("timedatectl")
        // systemd tools report their exit status to NOTIFY_SOCKET; that socket is ours.
        .env_remove("NOTIFY_SOCKET")
        .args(["show", "--property=NTPSynchronized", "--value"])
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "yes")
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assumed_states_are_kept() {
        assert!(ClockWatch::new(ClockCheck::AssumeSynced).synced());
        assert!(!ClockWatch::new(ClockCheck::AssumeUnsynced).synced());
    }
}
