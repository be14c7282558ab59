//! The camera stage: a source of frames (luma for the QR decoder, and colour too when face
//! recognition is on). Real backend: V4L2 through `nokhwa` (cargo feature
//! `v4l2`); simulated: a folder of images replayed at a set rate.
//!
//! Cameras block and some are not `Send`, so the pipeline builds and drives one inside its own
//! thread.

use image::{GrayImage, RgbImage};

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
