//! The `[clock]` section of the daemon's configuration: how synchronisation is learnt. Parsed and
//! checked with the rest of the file by [`crate::config`].

use serde::Deserialize;

/// How the daemon learns whether the system clock is synchronised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockCheck {
    /// systemd-timesyncd's flag file, else `timedatectl`'s NTPSynchronized.
    Auto,
    /// For test rigs and boxes with a real-time clock.
    AssumeSynced,
    AssumeUnsynced,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockConfig {
    #[serde(default = "default_clock_check")]
    pub check: ClockCheck,
}

fn default_clock_check() -> ClockCheck {
    ClockCheck::Auto
}

impl Default for ClockConfig {
    fn default() -> Self {
        ClockConfig {
            check: default_clock_check(),
        }
    }
}
