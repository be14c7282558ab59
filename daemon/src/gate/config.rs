//! The `[gate]` section of the daemon's configuration: a real or a simulated door by `kind`. Parsed
//! and checked with the rest of the file by [`crate::config`].

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum GateConfig {
    /// Logs every signal; with `record`, also appends it as a JSON line to that file.
    Sim { record: Option<PathBuf> },
    /// A door relay, and optionally green/red LEDs and a buzzer, on GPIO pins (BCM numbering).
    Gpio {
        relay_pin: u8,
        green_pin: Option<u8>,
        red_pin: Option<u8>,
        buzzer_pin: Option<u8>,
        /// How long the relay holds the door open.
        #[serde(default = "default_pulse", with = "humantime_serde")]
        pulse: Duration,
        /// How long the red LED and buzzer signal a denial.
        #[serde(default = "default_deny", with = "humantime_serde")]
        deny: Duration,
        /// The relay board switches on a low level (most cheap boards do).
        #[serde(default)]
        active_low: bool,
    },
}

fn default_pulse() -> Duration {
    Duration::from_millis(1500)
}
fn default_deny() -> Duration {
    Duration::from_millis(800)
}
