//! Where the face tests find the models (`scripts/models`) and the real photos
//! (`scripts/face-test-data`); `CHECKPOINT_FACE_MODELS` and `CHECKPOINT_FACE_DATA` override.

use std::path::PathBuf;

/// The models directory.
pub fn models() -> PathBuf {
    std::env::var_os("CHECKPOINT_FACE_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(checkpoint_face::engine::DEFAULT_DIR))
}

/// A test photo's path.
///
/// # Panics
/// When the photo is missing: run scripts/face-test-data.
pub fn photo(name: &str) -> PathBuf {
    let dir = std::env::var_os("CHECKPOINT_FACE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace().join("target/face-data"));
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} (scripts/face-test-data fetches it)",
        p.display()
    );
    p
}
