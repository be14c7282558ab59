//! Face recognition on real photos (`scripts/face-test-data`) with the real models
//! (`scripts/models`).
//!
//! Enrolled: obama (from obama.jpg) and the astronaut (from astronaut.png). Genuine probes:
//! four other photos of obama (two of them partial faces) and variants of the astronaut's photo
//! that were not enrolled (mirrored, darker, smaller, cropped). Impostors: biden and the
//! cameraman, and mirrored or darker variants of them: all must come out unknown. Photos
//! without a face give no face at all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use checkpoint_face::decode::Params;
use checkpoint_face::engine::{FaceEngine, FaceError};
use checkpoint_face::gallery::Gallery;
use checkpoint_face::matcher::{MatchPolicy, Streak, Verdict};
use image::{imageops, RgbImage};

fn data(name: &str) -> RgbImage {
    let p = checkpoint_e2e::face::photo(name);
    image::open(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .to_rgb8()
}

fn engine() -> FaceEngine {
    FaceEngine::load(&checkpoint_e2e::face::models(), Params::default())
        .unwrap_or_else(|e| panic!("{e} (scripts/models installs them)"))
}

/// The one face of a photo and its embedding.
fn embedding(e: &mut FaceEngine, img: &RgbImage, what: &str) -> Vec<f32> {
    let faces = e.detect(img).unwrap();
    assert_eq!(faces.len(), 1, "{what}: {faces:?}");
    e.embed(img, &faces[0]).unwrap()
}

fn variants(img: &RgbImage) -> Vec<(&'static str, RgbImage)> {
    let (w, h) = img.dimensions();
    let mut darker = img.clone();
    for p in darker.pixels_mut() {
        for c in p.0.iter_mut() {
            *c = (f32::from(*c) * 0.6) as u8;
        }
    }
    vec![
        ("mirrored", imageops::flip_horizontal(img)),
        ("darker", darker),
        (
            "smaller",
            imageops::resize(img, w * 2 / 3, h * 2 / 3, imageops::FilterType::Triangle),
        ),
        (
            "cropped",
            imageops::crop_imm(img, w / 10, h / 20, w * 8 / 10, h * 9 / 10).to_image(),
        ),
    ]
}

#[test]
fn enrolled_people_are_identified_and_strangers_stay_unknown() {
    let mut e = engine();
    let mut g = Gallery::new(128);
    let obama = data("obama.jpg");
    let astronaut = data("astronaut.png");
    g.add("obama", &embedding(&mut e, &obama, "obama.jpg"))
        .unwrap();
    g.add("astronaut", &embedding(&mut e, &astronaut, "astronaut.png"))
        .unwrap();
    let policy = MatchPolicy::default();

    let mut genuine: Vec<(String, String, RgbImage)> = Vec::new();
    for f in [
        "obama2.jpg",
        "obama3.jpg",
        "obama_partial_face.jpg",
        "obama_partial_face2.jpg",
    ] {
        genuine.push((f.into(), "obama".into(), data(f)));
    }
    for (v, img) in variants(&astronaut) {
        genuine.push((format!("astronaut.png {v}"), "astronaut".into(), img));
    }
    let mut impostors: Vec<(String, RgbImage)> = Vec::new();
    for f in ["biden.jpg", "camera.png"] {
        let img = data(f);
        for (v, img) in variants(&img).into_iter().take(2) {
            impostors.push((format!("{f} {v}"), img));
        }
        impostors.push((f.into(), img));
    }

    let (mut accepted, mut wrong) = (0, 0);
    for (what, who, img) in &genuine {
        let s = g.search(&embedding(&mut e, img, what)).unwrap();
        let said = policy.frame(&s);
        println!(
            "genuine  {what:32} best {:?} margin {:.3} -> {said:?}",
            s.best,
            s.margin()
        );
        match said {
            Some(id) if id == *who => accepted += 1,
            Some(_) => wrong += 1,
            None => {}
        }
    }
    let mut impostor_accepts = 0;
    for (what, img) in &impostors {
        let s = g.search(&embedding(&mut e, img, what)).unwrap();
        let said = policy.frame(&s);
        println!(
            "impostor {what:32} best {:?} margin {:.3} -> {said:?}",
            s.best,
            s.margin()
        );
        impostor_accepts += usize::from(said.is_some());
    }
    println!(
        "genuine accepts {accepted}/{}, misidentified {wrong}, impostor accepts {impostor_accepts}/{}",
        genuine.len(),
        impostors.len()
    );
    assert_eq!(wrong, 0);
    assert_eq!(impostor_accepts, 0);
    assert_eq!(accepted, genuine.len());

    // Three agreeing frames make a known person; a stranger's frames make an unknown.
    let mut k = Streak::new(policy);
    let probe = g
        .search(&embedding(&mut e, &genuine[0].2, "obama2"))
        .unwrap();
    assert_eq!(k.push(&probe), Verdict::Undecided);
    assert_eq!(k.push(&probe), Verdict::Undecided);
    assert_eq!(k.push(&probe), Verdict::Known("obama".into()));
    let stranger = g
        .search(&embedding(&mut e, &impostors[2].1, "biden"))
        .unwrap();
    for _ in 0..2 {
        assert_eq!(k.push(&stranger), Verdict::Undecided);
    }
    assert_eq!(k.push(&stranger), Verdict::Unknown);
}

#[test]
fn photos_without_a_face_give_no_face() {
    let mut e = engine();
    for f in ["coffee.png", "brick.png", "chelsea.png"] {
        let faces = e.detect(&data(f)).unwrap();
        assert!(faces.is_empty(), "{f}: {faces:?}");
    }
    // A blank frame and a tiny one: no face, and a clear error for the one too small to run.
    assert!(e.detect(&RgbImage::new(640, 480)).unwrap().is_empty());
    assert!(matches!(
        e.detect(&RgbImage::new(8, 8)),
        Err(FaceError::ImageSize { w: 8, h: 8 })
    ));
}

#[test]
fn a_missing_or_wrong_model_file_is_a_clear_error() {
    let dir = checkpoint_e2e::TempDir::new("face-models");
    let err = FaceEngine::load(dir.path(), Params::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("face_detection_yunet_2023mar.onnx"),
        "{err}"
    );
    // The right names with other contents.
    for f in [
        "face_detection_yunet_2023mar.onnx",
        "face_recognition_sface_2021dec.onnx",
    ] {
        std::fs::write(dir.path().join(f), b"not a model").unwrap();
    }
    let err = FaceEngine::load(dir.path(), Params::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("sha256") && err.contains("expected"), "{err}");
}
