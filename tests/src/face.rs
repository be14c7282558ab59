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

/// A 640x480 door-camera frame of `photo`: the largest face scaled to `face_px` wide and
/// centred, the way a person stands in front of a kiosk, on a grey background.
///
/// # Panics
/// When the photo cannot be read or shows no face.
pub fn door_frame(
    engine: &mut checkpoint_face::engine::FaceEngine,
    photo: &std::path::Path,
    face_px: f32,
    out: &std::path::Path,
) {
    let img = image::open(photo)
        .unwrap_or_else(|e| panic!("{}: {e}", photo.display()))
        .to_rgb8();
    let face = engine
        .detect(&img)
        .unwrap_or_else(|e| panic!("{}: {e}", photo.display()))
        .into_iter()
        .max_by(|a, b| a.w.total_cmp(&b.w))
        .unwrap_or_else(|| panic!("{}: no face", photo.display()));
    let s = face_px / face.w;
    let (w, h) = (
        (img.width() as f32 * s).round() as u32,
        (img.height() as f32 * s).round() as u32,
    );
    let scaled = image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle);
    let (cx, cy) = ((face.x + face.w / 2.0) * s, (face.y + face.h / 2.0) * s);
    let mut frame = image::RgbImage::from_pixel(640, 480, image::Rgb([128, 128, 128]));
    image::imageops::overlay(
        &mut frame,
        &scaled,
        (320.0 - cx).round() as i64,
        (240.0 - cy).round() as i64,
    );
    frame.save(out).expect("save frame");
}
