//! The `[qr]` section of the daemon's configuration: how the door reads codes. Parsed and checked
//! with the rest of the file by [`crate::config`].

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QrSection {
    /// Frames are scaled down for rqrr so that their longer side is at most this (zxing-cpp
    /// reads the frame as it is).
    #[serde(default = "default_max_side")]
    pub max_side: u32,
    /// rqrr starts no new attempt after this long on one frame (`"80ms"`).
    #[serde(default = "default_frame_budget", with = "humantime_serde")]
    pub frame_budget: Duration,
    /// Preprocessing strategies tried per frame besides the plain one, in rotation; 9 = all.
    #[serde(default = "default_strategies_per_frame")]
    pub strategies_per_frame: usize,
}

fn default_strategies_per_frame() -> usize {
    2
}

fn default_max_side() -> u32 {
    1280
}
fn default_frame_budget() -> Duration {
    Duration::from_millis(150)
}

impl Default for QrSection {
    fn default() -> Self {
        QrSection {
            max_side: default_max_side(),
            frame_budget: default_frame_budget(),
            strategies_per_frame: default_strategies_per_frame(),
        }
    }
}
