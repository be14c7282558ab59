//! Face recognition at the door (cargo feature `face`): the box's gallery, loaded at start and
//! replaced when central publishes a new one, and the per-frame look — detect, take the face in
//! front of the box, embed, search, and let the streak of consecutive frames settle on someone
//! or on nobody. No I/O but the gallery file.
//!
//! Unknown stays unknown: an identity needs the threshold, the margin over every other identity
//! and the same answer over `face.frames` frames ([`checkpoint_face::matcher`]); a gallery id
//! that is not a valid subject id names nobody either.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use checkpoint_face::decode::{Face, Params};
use checkpoint_face::engine::{FaceEngine, FaceError};
use checkpoint_face::gallery::{Gallery, GalleryError};
use checkpoint_face::matcher::{MatchPolicy, Streak, Verdict};
use checkpoint_link::sync::RecoverRw;
use checkpoint_protocol::gallery::signed as signed_gallery;
use checkpoint_protocol::ids::{BoxId, SubjectId};
use checkpoint_protocol::signed::{self, Fresh, Refused};
use image::RgbImage;

use crate::config::FaceSection;

/// Length of an SFace embedding; a gallery of another length was made with another model.
pub const EMBEDDING_LEN: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum FaceStageError {
    #[error(transparent)]
    Engine(#[from] FaceError),
    #[error(transparent)]
    Gallery(#[from] GalleryError),
    #[error("gallery holds embeddings of length {0}; this box's model makes {EMBEDDING_LEN}")]
    Model(usize),
    #[error("gallery {path}: cannot save: {source}")]
    Save {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("gallery refused: {0}")]
    Refused(#[from] Refused),
    #[error("gallery refused: signed for box {0}, not this one")]
    OtherBox(BoxId),
}

impl FaceStageError {
    /// Material refused for its signature, serial, time, box or content (counted as such).
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            FaceStageError::Save { .. } | FaceStageError::Engine(_)
        )
    }
}

/// What a gallery update from the network is checked against.
#[derive(Debug, Clone, Copy)]
pub struct UpdateCheck<'a> {
    pub box_id: &'a BoxId,
    pub trust: &'a crate::trust::Trust,
    /// The box's clock, Unix seconds.
    pub now: i64,
}

/// What a retained gallery update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Updated,
    Unchanged,
}

/// The gallery in force, shared by the door loop (searches) and the uplink (updates).
///
/// The gallery file is the one `enroll` wrote, or the one inside central's last accepted
/// signed envelope; its serial is kept beside it (`GALLERY.serial`, written after the gallery,
/// so a crash in between makes the same update apply again rather than be skipped).
#[derive(Debug)]
pub struct GalleryStore {
    path: PathBuf,
    current: RwLock<Arc<Gallery>>,
    serial: RwLock<Option<u64>>,
}

fn serial_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".serial");
    PathBuf::from(p)
}

impl GalleryStore {
    /// Loads the gallery file. A missing file is an empty gallery (every face unknown until
    /// central publishes one); a damaged one, or one of another version or model, is an error.
    pub fn load(path: &Path) -> Result<GalleryStore, FaceStageError> {
        let gallery = if path.exists() {
            let g = Gallery::load(path)?;
            if g.dim() != EMBEDDING_LEN {
                return Err(FaceStageError::Model(g.dim()));
            }
            g
        } else {
            tracing::warn!(
                message = "No face gallery yet: every face is unknown until one arrives.",
                path = %path.display()
            );
            Gallery::new(EMBEDDING_LEN)
        };
        // A missing or unreadable serial means the local file: any signed update is newer.
        let serial = std::fs::read_to_string(serial_path(path))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok());
        Ok(GalleryStore {
            path: path.to_path_buf(),
            current: RwLock::new(Arc::new(gallery)),
            serial: RwLock::new(serial),
        })
    }

    /// The serial of the gallery in force; `None` for a local file.
    pub fn serial(&self) -> Option<u64> {
        *self.serial.read_or_recover()
    }

    pub fn current(&self) -> Arc<Gallery> {
        self.current.read_or_recover().clone()
    }

    /// Applies a signed gallery envelope received from central: signature, box, serial and
    /// time checked, the gallery inside checked whole, saved durably, then put in force.
    /// Anything refused leaves the gallery in force as it was, and is counted with the trust
    /// refusals.
    pub fn apply(
        &self,
        envelope: &[u8],
        check: UpdateCheck<'_>,
    ) -> Result<Applied, FaceStageError> {
        let result = self.apply_checked(envelope, check);
        if result.as_ref().is_err_and(FaceStageError::is_refusal) {
            check.trust.count_refusal();
        }
        result
    }

    fn apply_checked(
        &self,
        envelope: &[u8],
        check: UpdateCheck<'_>,
    ) -> Result<Applied, FaceStageError> {
        let env = signed_gallery::open(envelope, check.trust.config_keys())?;
        if &env.box_id != check.box_id {
            return Err(FaceStageError::OtherBox(env.box_id));
        }
        let fresh = signed::admit(
            self.serial(),
            env.serial,
            env.published_at,
            check.now,
            check.trust.max_skew_s(),
        )?;
        if fresh == Fresh::Same {
            return Ok(Applied::Unchanged);
        }
        let bytes = env.gallery;
        let g = Gallery::from_bytes(bytes)?;
        if g.dim() != EMBEDDING_LEN {
            return Err(FaceStageError::Model(g.dim()));
        }
        let save = |path: &Path, bytes: &[u8]| {
            checkpoint_link::files::write_atomically(path, bytes).map_err(|source| {
                FaceStageError::Save {
                    path: path.to_path_buf(),
                    source,
                }
            })
        };
        save(&self.path, bytes)?;
        save(&serial_path(&self.path), env.serial.to_string().as_bytes())?;
        *self.serial.write_or_recover() = Some(env.serial);
        *self.current.write_or_recover() = Arc::new(g);
        Ok(Applied::Updated)
    }
}

/// What one frame says: the door core's [`Look`].
pub use crate::door::Look;

pub struct FaceStage {
    engine: FaceEngine,
    gallery: Arc<GalleryStore>,
    streak: Streak,
    min_face_px: f32,
    centre_tolerance: f32,
}

impl std::fmt::Debug for FaceStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceStage")
            .field("gallery", &self.gallery.path)
            .finish_non_exhaustive()
    }
}

impl FaceStage {
    /// Loads the models (checked by sha256) for the `[face]` section.
    pub fn load(cfg: &FaceSection, gallery: Arc<GalleryStore>) -> Result<FaceStage, FaceError> {
        let params = Params {
            score_threshold: cfg.detection_score,
            min_face_px: cfg.min_face_px as f32,
            ..Params::default()
        };
        let engine = FaceEngine::load(&cfg.models_dir, params)?;
        Ok(FaceStage {
            engine,
            gallery,
            streak: Streak::new(MatchPolicy {
                threshold: cfg.threshold,
                margin: cfg.margin,
                frames: cfg.frames,
            }),
            min_face_px: cfg.min_face_px as f32,
            centre_tolerance: cfg.centre_tolerance,
        })
    }

    /// Forgets the frames gathered so far (the person left, or showed a code instead).
    pub fn reset(&mut self) {
        self.streak.reset();
    }

    /// One colour frame.
    pub fn look(&mut self, frame: &RgbImage) -> Result<Look, FaceStageError> {
        let faces = match self.engine.detect(frame) {
            Ok(f) => f,
            Err(e) => {
                self.streak.reset();
                return Err(e.into());
            }
        };
        let Some(face) = in_front(&faces, frame.dimensions(), self) else {
            self.streak.reset();
            return Ok(Look::Nobody);
        };
        let embedding = self.engine.embed(frame, face)?;
        let search = self.gallery.current().search(&embedding)?;
        Ok(match self.streak.push(&search) {
            Verdict::Undecided => Look::Gathering,
            Verdict::Unknown => Look::Settled(None),
            Verdict::Known(id) => match SubjectId::new(&id) {
                Ok(s) => Look::Settled(Some(s)),
                Err(_) => {
                    tracing::warn!(message = "Gallery identity is not a subject id; unknown.");
                    Look::Settled(None)
                }
            },
        })
    }
}

/// The largest face, if it is close enough and centred; smaller faces behind it are passers-by.
fn in_front<'a>(faces: &'a [Face], (w, h): (u32, u32), s: &FaceStage) -> Option<&'a Face> {
    let face = faces.iter().max_by(|a, b| a.w.total_cmp(&b.w))?;
    positioned(face, (w, h), s.min_face_px, s.centre_tolerance).then_some(face)
}

/// Whether `face` is at least `min_px` wide and its centre within `tolerance` of the frame's
/// width and height from the frame's centre.
pub fn positioned(face: &Face, (w, h): (u32, u32), min_px: f32, tolerance: f32) -> bool {
    let (cx, cy) = (face.x + face.w / 2.0, face.y + face.h / 2.0);
    let (w, h) = (w as f32, h as f32);
    face.w >= min_px
        && (cx - w / 2.0).abs() <= tolerance * w
        && (cy - h / 2.0).abs() <= tolerance * h
}

#[cfg(test)]
mod tests;
