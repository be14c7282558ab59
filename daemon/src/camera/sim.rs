//! The simulated camera: replays the PNG/JPEG images of a folder in name order at a set rate,
//! the way a real camera delivers frames. A frame that cannot be read is an error for that frame
//! only.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Camera, CameraError, Picture};
use crate::scan;

#[derive(Debug)]
pub struct SimCamera {
    files: Vec<PathBuf>,
    next: usize,
    interval: Duration,
    due: Instant,
    looping: bool,
    colour: bool,
}

impl SimCamera {
    /// Also deliver colour frames (for face recognition).
    pub fn colour(mut self, colour: bool) -> SimCamera {
        self.colour = colour;
        self
    }

    pub fn open(dir: &Path, fps: f32, looping: bool) -> Result<SimCamera, CameraError> {
        let folder_err = |message: String| CameraError::Folder {
            path: dir.display().to_string(),
            message,
        };
        let entries = std::fs::read_dir(dir).map_err(|e| folder_err(e.to_string()))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg")
                })
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(folder_err("holds no PNG or JPEG images".into()));
        }
        if !(fps.is_finite() && fps > 0.0) {
            return Err(folder_err(format!("fps {fps} is not positive")));
        }
        Ok(SimCamera {
            files,
            next: 0,
            interval: Duration::from_secs_f32(1.0 / fps),
            due: Instant::now(),
            looping,
            colour: false,
        })
    }
}

impl Camera for SimCamera {
    fn frame(&mut self) -> Result<Option<Picture>, CameraError> {
        if self.next >= self.files.len() {
            if !self.looping {
                return Ok(None);
            }
            self.next = 0;
        }
        let now = Instant::now();
        if self.due > now {
            std::thread::sleep(self.due - now);
        }
        // Keep the rate without bursting after a slow consumer.
        self.due = Instant::now().max(self.due) + self.interval;
        let path = &self.files[self.next];
        self.next += 1;
        scan::load_image(path)
            .map(|img| Some(Picture::from_image(img, self.colour)))
            .map_err(|e| CameraError::Frame {
                name: path.display().to_string(),
                message: e.to_string(),
            })
    }

    fn describe(&self) -> String {
        format!(
            "sim camera: {} images at {:.1} fps{}",
            self.files.len(),
            1.0 / self.interval.as_secs_f32(),
            if self.looping { ", looping" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_in_name_order_then_ends() {
        let dir = tempfile::tempdir().unwrap();
        for (name, v) in [("b.png", 200u8), ("a.png", 100), ("notes.txt", 0)] {
            let path = dir.path().join(name);
            if name.ends_with(".png") {
                image::GrayImage::from_pixel(4, 4, image::Luma([v]))
                    .save(&path)
                    .unwrap();
            } else {
                std::fs::write(&path, "x").unwrap();
            }
        }
        let mut cam = SimCamera::open(dir.path(), 100.0, false).unwrap();
        let first = cam.frame().unwrap().unwrap();
        assert_eq!(first.luma.get_pixel(0, 0).0, [100]);
        assert!(first.rgb.is_none(), "colour only when asked");
        assert_eq!(cam.frame().unwrap().unwrap().luma.get_pixel(0, 0).0, [200]);
        assert!(cam.frame().unwrap().is_none());
        let mut cam = SimCamera::open(dir.path(), 100.0, false)
            .unwrap()
            .colour(true);
        let rgb = cam.frame().unwrap().unwrap().rgb.unwrap();
        assert_eq!(rgb.get_pixel(0, 0).0, [100, 100, 100]);
    }

    #[test]
    fn empty_folder_and_broken_frames_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let err = SimCamera::open(dir.path(), 5.0, true).unwrap_err();
        assert!(err.to_string().contains("no PNG or JPEG"), "{err}");
        std::fs::write(dir.path().join("broken.jpg"), b"not a jpeg").unwrap();
        let mut cam = SimCamera::open(dir.path(), 1000.0, true).unwrap();
        assert!(matches!(cam.frame(), Err(CameraError::Frame { .. })));
        assert!(
            matches!(cam.frame(), Err(CameraError::Frame { .. })),
            "loops"
        );
    }
}
