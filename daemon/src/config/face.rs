//! The `[face]` section: face recognition at the door (cargo feature `face`). Off by default:
//! most checkpoints read pass codes only.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::Problem;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaceSection {
    #[serde(default)]
    pub enabled: bool,
    /// Where `scripts/models` installs YuNet and SFace; each file is checked by sha256 at start.
    #[serde(default = "default_models_dir")]
    pub models_dir: PathBuf,
    /// The box's gallery (`checkpointd enroll`, or central's retained update, which replaces
    /// this file). Default: `STATE_DIR/gallery.bin`.
    pub gallery: Option<PathBuf>,
    /// Cosine similarity the best identity needs.
    #[serde(default = "default_threshold")]
    pub threshold: f32,
    /// How far the best identity must be ahead of the best other one.
    #[serde(default = "default_margin")]
    pub margin: f32,
    /// Consecutive frames that must agree before a face is someone (or, failing that, unknown).
    #[serde(default = "default_frames")]
    pub frames: u32,
    /// Detector confidence below which a face is ignored.
    #[serde(default = "default_detection_score")]
    pub detection_score: f32,
    /// Faces narrower than this (pixels) are too far away: not yet an attempt.
    #[serde(default = "default_min_face_px")]
    pub min_face_px: u32,
    /// A face counts only when its centre is within this fraction of the frame's width and
    /// height from the frame's centre (in front of the thermometer).
    #[serde(default = "default_centre_tolerance")]
    pub centre_tolerance: f32,
    /// The same person (or an unknown face) seen again within this counts once.
    #[serde(default = "default_cooldown", with = "humantime_serde")]
    pub cooldown: Duration,
}

fn default_models_dir() -> PathBuf {
    PathBuf::from("/usr/share/checkpoint/models")
}
fn default_threshold() -> f32 {
    0.45
}
fn default_margin() -> f32 {
    0.08
}
fn default_frames() -> u32 {
    3
}
fn default_detection_score() -> f32 {
    0.8
}
fn default_min_face_px() -> u32 {
    80
}
fn default_centre_tolerance() -> f32 {
    0.3
}
fn default_cooldown() -> Duration {
    Duration::from_millis(5000)
}

impl FaceSection {
    pub(super) fn check(&self, problems: &mut Vec<Problem>) {
        let mut bad = |field: &str, message: String| {
            problems.push(Problem {
                path: format!("face.{field}"),
                message,
            })
        };
        if self.enabled && !cfg!(feature = "face") {
            bad(
                "enabled",
                "this checkpointd was built without face recognition (cargo feature `face`)".into(),
            );
        }
        let unit = |v: f32| v.is_finite() && v > 0.0 && v <= 1.0;
        if !unit(self.threshold) {
            bad("threshold", format!("{} is not in (0, 1]", self.threshold));
        }
        if !(self.margin.is_finite() && (0.0..1.0).contains(&self.margin)) {
            bad("margin", format!("{} is not in [0, 1)", self.margin));
        }
        if !(1..=30).contains(&self.frames) {
            bad("frames", format!("{} is not in 1..=30", self.frames));
        }
        if !unit(self.detection_score) {
            bad(
                "detection_score",
                format!("{} is not in (0, 1]", self.detection_score),
            );
        }
        if !(16..=4096).contains(&self.min_face_px) {
            bad(
                "min_face_px",
                format!("{} is not in 16..=4096", self.min_face_px),
            );
        }
        if !(self.centre_tolerance.is_finite()
            && self.centre_tolerance > 0.0
            && self.centre_tolerance <= 0.5)
        {
            bad(
                "centre_tolerance",
                format!("{} is not in (0, 0.5]", self.centre_tolerance),
            );
        }
    }
}
