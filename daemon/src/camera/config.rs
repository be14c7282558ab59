//! The `[camera]` section of the daemon's configuration: a real or a simulated camera by `kind`.
//! Parsed and checked with the rest of the file by [`crate::config`].

use std::path::PathBuf;

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
