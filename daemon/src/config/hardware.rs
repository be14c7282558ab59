//! Configuration of the hardware stages. Each picks a real or a simulated backend by `kind`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CameraConfig {
    /// Replays the PNG/JPEG images of a folder, in name order, at `fps`.
    Sim {
        dir: PathBuf,
        #[serde(default = "default_sim_fps")]
        fps: f32,
        /// Start again from the first image after the last; otherwise the camera goes idle.
        #[serde(default = "default_true")]
        looping: bool,
    },
    /// A V4L2 camera (USB or the Pi camera through its V4L2 driver).
    V4l2 {
        #[serde(default)]
        device: u32,
        #[serde(default = "default_width")]
        width: u32,
        #[serde(default = "default_height")]
        height: u32,
        #[serde(default = "default_v4l2_fps")]
        fps: u32,
    },
}

fn default_sim_fps() -> f32 {
    5.0
}
fn default_true() -> bool {
    true
}
fn default_width() -> u32 {
    1280
}
fn default_height() -> u32 {
    720
}
fn default_v4l2_fps() -> u32 {
    15
}

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
