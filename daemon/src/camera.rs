//! The camera stage: a source of luma frames. Real backend: V4L2 through `nokhwa` (cargo feature
//! `v4l2`); simulated: a folder of images replayed at a set rate.
//!
//! Cameras block and some are not `Send`, so the pipeline builds and drives one inside its own
//! thread.

use image::GrayImage;

use crate::config::CameraConfig;

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

pub trait Camera {
    /// Blocks until the next frame. `Ok(None)`: the source has ended (a replay that does not
    /// loop); the pipeline then idles.
    fn frame(&mut self) -> Result<Option<GrayImage>, CameraError>;

    /// A short description for logs and `doctor`.
    fn describe(&self) -> String;
}

pub fn build(cfg: &CameraConfig) -> Result<Box<dyn Camera>, CameraError> {
    match cfg {
        CameraConfig::Sim { dir, fps, looping } => {
            Ok(Box::new(SimCamera::open(dir, *fps, *looping)?))
        }
        #[cfg(feature = "v4l2")]
        CameraConfig::V4l2 {
            device,
            width,
            height,
            fps,
        } => Ok(Box::new(v4l2::V4l2Camera::open(
            *device, *width, *height, *fps,
        )?)),
        #[cfg(not(feature = "v4l2"))]
        CameraConfig::V4l2 { .. } => Err(CameraError::NotBuilt),
    }
}
