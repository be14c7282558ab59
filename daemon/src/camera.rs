//! The camera stage: a source of frames (luma for the QR decoder, and colour too when face
//! recognition is on). Real backend: V4L2 through `nokhwa` (cargo feature
//! `v4l2`); simulated: a folder of images replayed at a set rate.
//!
//! Cameras block and some are not `Send`, so the pipeline builds and drives one inside its own
//! thread.

use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, Instant};

use image::{GrayImage, RgbImage};
use tokio_util::sync::CancellationToken;

use crate::stats::{self, Stats};

mod config;
pub use config::CameraConfig;
mod sim;
#[cfg(feature = "v4l2")]
mod v4l2;

pub use sim::SimCamera;

#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    #[error("camera folder {path}: {message}")]
    Folder { path: String, message: String },
    #[error("frame {name}: {message}")]
    Frame { name: String, message: String },
    #[error("camera device: {0}")]
    Device(String),
    #[error("this checkpointd was built without V4L2 camera support (cargo feature `v4l2`)")]
    NotBuilt,
}

/// One frame from a camera.
#[derive(Debug, Clone)]
pub struct Picture {
    pub luma: GrayImage,
    /// Only when the camera was built with colour (face recognition needs it).
    pub rgb: Option<RgbImage>,
}

impl Picture {
    /// A frame as the camera delivered it: luma always, colour if `colour`.
    pub fn from_image(img: image::DynamicImage, colour: bool) -> Picture {
        Picture {
            luma: img.to_luma8(),
            rgb: colour.then(|| img.into_rgb8()),
        }
    }
}

pub trait Camera {
    /// Blocks until the next frame. `Ok(None)`: the source has ended (a replay that does not
    /// loop); the pipeline then idles.
    fn frame(&mut self) -> Result<Option<Picture>, CameraError>;

    /// A short description for logs and `doctor`.
    fn describe(&self) -> String;
}

/// Opens the configured camera; `colour` asks for colour frames besides luma.
pub fn build(cfg: &CameraConfig, colour: bool) -> Result<Box<dyn Camera>, CameraError> {
    match cfg {
        CameraConfig::Sim { dir, fps, looping } => Ok(Box::new(
            SimCamera::open(dir, *fps, *looping)?.colour(colour),
        )),
        #[cfg(feature = "v4l2")]
        CameraConfig::V4l2 {
            device,
            width,
            height,
            fps,
        } => Ok(Box::new(v4l2::V4l2Camera::open(
            *device, *width, *height, *fps, colour,
        )?)),
        #[cfg(not(feature = "v4l2"))]
        CameraConfig::V4l2 { .. } => Err(CameraError::NotBuilt),
    }
}

/// A camera frame and when it was taken.
#[derive(Debug)]
pub struct Frame {
    pub image: GrayImage,
    /// Colour, when face recognition is on.
    pub rgb: Option<RgbImage>,
    pub captured: Instant,
}

/// The camera thread: opens the camera (retrying while it is unavailable, reopening after it
/// fails) and sends its frames to the door until the token is cancelled.
pub fn feed(
    cfg: &CameraConfig,
    colour: bool,
    tx: &SyncSender<Frame>,
    stats: &Stats,
    token: &CancellationToken,
) {
    // A replay must not lose frames (each may be an attempt); a live camera drops stale frames
    // rather than queueing them behind a busy decoder.
    let lossless = matches!(cfg, CameraConfig::Sim { .. });
    let mut logged = false;
    while !token.is_cancelled() {
        let mut cam = match build(cfg, colour) {
            Ok(c) => {
                tracing::info!(message = "Camera open.", camera = %c.describe());
                stats.set_camera(stats::ok());
                logged = false;
                c
            }
            Err(error) => {
                if !logged {
                    tracing::error!(message = "Camera unavailable; retrying.", %error);
                    logged = true;
                }
                stats.set_camera(stats::fault(&error));
                sleep_unless_cancelled(Duration::from_secs(5), token);
                continue;
            }
        };
        while !token.is_cancelled() {
            match cam.frame() {
                Ok(Some(picture)) => {
                    let frame = Frame {
                        image: picture.luma,
                        rgb: picture.rgb,
                        captured: Instant::now(),
                    };
                    let sent = if lossless {
                        tx.send(frame).map_err(|_| ())
                    } else {
                        match tx.try_send(frame) {
                            Ok(()) | Err(TrySendError::Full(_)) => Ok(()),
                            Err(TrySendError::Disconnected(_)) => Err(()),
                        }
                    };
                    if sent.is_err() {
                        return;
                    }
                }
                Ok(None) => {
                    tracing::info!(message = "Camera replay finished.");
                    while !token.is_cancelled() {
                        sleep_unless_cancelled(Duration::from_secs(1), token);
                    }
                    return;
                }
                Err(error @ CameraError::Frame { .. }) => {
                    tracing::warn!(message = "Bad camera frame.", %error);
                }
                Err(error) => {
                    tracing::error!(message = "Camera failed; reopening.", %error);
                    stats.set_camera(stats::fault(&error));
                    sleep_unless_cancelled(Duration::from_secs(1), token);
                    break;
                }
            }
        }
    }
}

fn sleep_unless_cancelled(d: Duration, token: &CancellationToken) {
    let end = Instant::now() + d;
    while !token.is_cancelled() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
}
