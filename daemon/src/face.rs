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
use checkpoint_protocol::ids::SubjectId;
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
}

/// What a retained gallery update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Updated,
    Unchanged,
}

/// The gallery in force, shared by the door loop (searches) and the uplink (updates).
#[derive(Debug)]
pub struct GalleryStore {
    path: PathBuf,
    current: RwLock<Arc<Gallery>>,
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
        Ok(GalleryStore {
            path: path.to_path_buf(),
            current: RwLock::new(Arc::new(gallery)),
        })
    }

    pub fn current(&self) -> Arc<Gallery> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Applies a gallery file received from central: checked whole, saved durably, then put in
    /// force. Anything refused leaves the gallery in force as it was.
    pub fn apply(&self, bytes: &[u8]) -> Result<Applied, FaceStageError> {
        let g = Gallery::from_bytes(bytes)?;
        if g.dim() != EMBEDDING_LEN {
            return Err(FaceStageError::Model(g.dim()));
        }
        if *self.current() == g {
            return Ok(Applied::Unchanged);
        }
        crate::trust::save_atomically(&self.path, bytes).map_err(|source| {
            FaceStageError::Save {
                path: self.path.clone(),
                source,
            }
        })?;
        let g = Arc::new(g);
        match self.current.write() {
            Ok(mut c) => *c = g,
            Err(poisoned) => *poisoned.into_inner() = g,
        }
        Ok(Applied::Updated)
    }
}

/// What one frame says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Look {
    /// No face, or none close enough and centred: not an attempt.
    Nobody,
    /// A face in position; more frames are needed before it is someone or nobody.
    Gathering,
    /// The frames agreed: someone (`Some`), or a face the gallery does not know (`None`).
    Settled(Option<SubjectId>),
}

pub struct FaceStage {
    engine: FaceEngine,
    gallery: Arc<GalleryStore>,
    streak: Streak,
    min_face_px: f32,
    centre_tolerance: f32,
    /// The same person (or an unknown face) settled on again within this counts once.
    pub cooldown_ms: u64,
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
            cooldown_ms: cfg.cooldown_ms,
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
mod tests {
    use checkpoint_face::gallery::GalleryFormatError;

    use super::*;

    fn face(x: f32, y: f32, w: f32) -> Face {
        Face {
            x,
            y,
            w,
            h: w * 1.2,
            landmarks: [[0.0; 2]; 5],
            score: 0.9,
        }
    }

    #[test]
    fn only_a_near_centred_face_is_an_attempt() {
        let frame = (640, 480);
        let check = |f: Face, expect: bool, what: &str| {
            assert_eq!(positioned(&f, frame, 80.0, 0.3), expect, "{what}");
        };
        check(face(220.0, 120.0, 200.0), true, "centred and near");
        check(face(290.0, 200.0, 60.0), false, "too far away");
        check(face(0.0, 100.0, 150.0), false, "at the left edge");
        check(face(220.0, 330.0, 120.0), false, "too low");
    }

    fn gallery_bytes(ids: &[&str], dim: usize) -> Vec<u8> {
        let mut g = Gallery::new(dim);
        for (i, id) in ids.iter().enumerate() {
            let mut e = vec![0.0; dim];
            e[i % dim] = 1.0;
            g.add(id, &e).unwrap();
        }
        g.to_bytes()
    }

    #[test]
    fn updates_are_checked_saved_and_put_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gallery.bin");
        let store = GalleryStore::load(&path).unwrap();
        assert!(store.current().is_empty(), "no file: an empty gallery");

        let one = gallery_bytes(&["p-1", "p-2"], EMBEDDING_LEN);
        assert_eq!(store.apply(&one).unwrap(), Applied::Updated);
        assert_eq!(store.apply(&one).unwrap(), Applied::Unchanged);
        assert_eq!(store.current().identities(), 2);
        assert_eq!(std::fs::read(&path).unwrap(), one, "saved as received");

        // Garbage, a damaged copy, another model: refused, the gallery in force stays.
        assert!(matches!(
            store.apply(b"junk"),
            Err(FaceStageError::Gallery(GalleryError::Format(
                GalleryFormatError::NotAGallery
            )))
        ));
        let mut damaged = one.clone();
        damaged[30] ^= 1;
        assert!(matches!(
            store.apply(&damaged),
            Err(FaceStageError::Gallery(GalleryError::Format(
                GalleryFormatError::Damaged(_)
            )))
        ));
        let other = gallery_bytes(&["p-3"], 512);
        assert!(matches!(
            store.apply(&other),
            Err(FaceStageError::Model(512))
        ));
        assert_eq!(store.current().identities(), 2);

        // A restart finds the saved copy; a damaged file on disk is a clear error.
        assert_eq!(GalleryStore::load(&path).unwrap().current().identities(), 2);
        std::fs::write(&path, &damaged).unwrap();
        let err = GalleryStore::load(&path).unwrap_err().to_string();
        assert!(err.contains("damaged"), "{err}");
    }
}
