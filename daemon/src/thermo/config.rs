//! The `[thermometer]` section of the daemon's configuration: a real or a simulated sensor by
//! `kind`. Parsed and checked with the rest of the file by [`crate::config`].

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ThermometerConfig {
    /// No thermometer on this box; `policy.temperature` must be `off`.
    Disabled,
    /// Scripted readings in °C, one per attempt, cycled.
    Sim {
        readings: Vec<f32>,
        /// After this many readings the sensor "dies": every read fails.
        fail_after: Option<u64>,
    },
    /// A Melexis MLX90614 infrared thermometer on an I2C bus.
    Mlx90614 {
        #[serde(default = "default_bus")]
        bus: u8,
        #[serde(default = "default_mlx_address")]
        address: u8,
    },
}

fn default_bus() -> u8 {
    1
}
fn default_mlx_address() -> u8 {
    0x5a
}
