//! The real camera: V4L2 through `nokhwa`, decoded to luma. Opening fails with a clear error on
//! a machine without the device.

use image::DynamicImage;
use nokhwa::pixel_format::{LumaFormat, RgbFormat};
use nokhwa::utils::{CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType};

use super::{Camera, CameraError, Picture};

pub struct V4l2Camera {
    camera: nokhwa::Camera,
    device: u32,
    colour: bool,
}

impl std::fmt::Debug for V4l2Camera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V4l2Camera")
            .field("device", &self.device)
            .finish()
    }
}

impl V4l2Camera {
    pub fn open(
        device: u32,
        width: u32,
        height: u32,
        fps: u32,
        colour: bool,
    ) -> Result<V4l2Camera, CameraError> {
        let wanted = CameraFormat::new_from(width, height, FrameFormat::MJPEG, fps);
        let format = if colour {
            RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(wanted))
        } else {
            RequestedFormat::new::<LumaFormat>(RequestedFormatType::Closest(wanted))
        };
        let mut camera = nokhwa::Camera::new(CameraIndex::Index(device), format)
            .map_err(|e| CameraError::Device(format!("cannot open /dev/video{device}: {e}")))?;
        camera
            .open_stream()
            .map_err(|e| CameraError::Device(format!("/dev/video{device}: cannot stream: {e}")))?;
        Ok(V4l2Camera {
            camera,
            device,
            colour,
        })
    }
}

impl Camera for V4l2Camera {
    fn frame(&mut self) -> Result<Option<Picture>, CameraError> {
        let buffer = self
            .camera
            .frame()
            .map_err(|e| CameraError::Device(format!("/dev/video{}: {e}", self.device)))?;
        let bad = |e: nokhwa::NokhwaError| CameraError::Frame {
            name: format!("/dev/video{}", self.device),
            message: e.to_string(),
        };
        if self.colour {
            let rgb = buffer.decode_image::<RgbFormat>().map_err(bad)?;
            Ok(Some(Picture::from_image(
                DynamicImage::ImageRgb8(rgb),
                true,
            )))
        } else {
            let luma = buffer.decode_image::<LumaFormat>().map_err(bad)?;
            Ok(Some(Picture { luma, rgb: None }))
        }
    }

    fn describe(&self) -> String {
        let f = self.camera.camera_format();
        format!("V4L2 camera /dev/video{}: {f}", self.device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_device_is_a_clear_error() {
        if std::path::Path::new("/dev/video7").exists() {
            return;
        }
        let err = V4l2Camera::open(7, 640, 480, 15, false).unwrap_err();
        assert!(err.to_string().contains("/dev/video7"), "{err}");
    }
}
