//! Faces at the door: real `checkpointd run` boxes with face recognition on (real models from
//! `scripts/models`, a gallery made by the real `checkpointd enroll` from real photos), a sim
//! camera replaying door frames of people who were enrolled from *other* photos, a sim
//! thermometer, and a real Mosquitto.
//!
//! - An enrolled person at 36.6 °C is admitted, another at 38.2 °C is denied for fever, a
//!   stranger is an unknown face (no subject), a frame with no face is no event.
//! - A gallery published with `checkpoint-admin gallery publish` (retained, mutual TLS)
//!   replaces the box's without a restart; central refuses a file that is not a gallery, and
//!   garbage that reaches the box on that topic is refused there, the gallery in force kept.
//! - Missing models and a damaged gallery stop `run` with a clear error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use checkpoint_e2e::broker::{Mosquitto, Pki};
use checkpoint_e2e::central::{wait_until, CentralProc, TestCentral};
use checkpoint_e2e::face::{door_frame, models, photo};
use checkpoint_e2e::kiosk::{blank_frame, BoxSpec, Kiosk};
use checkpoint_e2e::{run, TempDir};
use checkpoint_face::decode::Params;
use checkpoint_face::engine::FaceEngine;
use checkpoint_protocol::records::{Decision, Event, Method, Reason};

fn engine() -> FaceEngine {
    FaceEngine::load(&models(), Params::default()).expect("models (scripts/models)")
}

/// `checkpointd enroll` over `people` (id, photo) into `out`.
fn enroll(dir: &Path, people: &[(&str, &str)], out: &Path) {
    let photos = dir.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for (id, file) in people {
        let ext = Path::new(file).extension().unwrap().to_str().unwrap();
        std::fs::copy(photo(file), photos.join(format!("{id}.{ext}"))).unwrap();
    }
    let m = models();
    let o = run(
        "checkpointd",
        &[
            "enroll",
            photos.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--models",
            m.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Writes the sim camera's frames: each image copied `count` times, in this order.
fn replay(frames: &Path, sequence: &[(&Path, usize)]) {
    let mut n = 0;
    for (image, count) in sequence {
        for _ in 0..*count {
            std::fs::copy(image, frames.join(format!("{n:03}.png"))).unwrap();
            n += 1;
        }
    }
}

fn face_section(models: &Path, gallery: &Path, cooldown_ms: u64) -> String {
    format!(
        "[face]\nenabled = true\nmodels_dir = \"{}\"\ngallery = \"{}\"\ncooldown = \"{cooldown_ms}ms\"\n",
        models.display(),
        gallery.display()
    )
}

/// A mirrored copy of a photo (the astronaut was enrolled from the original).
fn mirrored(name: &str, dir: &Path) -> PathBuf {
    let img = image::open(photo(name)).unwrap();
    let out = dir.join(format!("mirrored-{name}"));
    img.fliph().save(&out).unwrap();
    out
}

fn summary(e: &Event) -> (Method, Option<String>, Decision, Reason, Option<f32>) {
    (
        e.method,
        e.subject.as_ref().map(|s| s.to_string()),
        e.decision,
        e.reason,
        e.temperature_c,
    )
}

#[test]
fn enrolled_faces_are_admitted_or_denied_for_fever_and_strangers_stay_unknown() {
    let dir = TempDir::new("face-door");
    let broker = Mosquitto::start(&dir.path().join("broker"), None);
    let central = TestCentral::connect(&broker, None, true);
    let gallery = dir.path().join("gallery.bin");
    enroll(
        dir.path(),
        &[("p-obama", "obama.jpg"), ("p-eileen", "astronaut.png")],
        &gallery,
    );

    let mut spec = BoxSpec {
        fps: 4.0,
        readings: vec![36.6, 38.2],
        ..BoxSpec::new("face-gate", dir.path(), &broker, None)
    };
    spec.extra = face_section(&models(), &gallery, 5000);
    let frames = &spec.frames;
    std::fs::create_dir_all(frames).unwrap();
    let mut e = engine();
    let astronaut = mirrored("astronaut.png", dir.path());
    let obama2 = dir.path().join("obama2-door.png");
    let eileen = dir.path().join("eileen-door.png");
    let biden = dir.path().join("biden-door.png");
    let blank = dir.path().join("blank.png");
    door_frame(&mut e, &photo("obama2.jpg"), 180.0, &obama2);
    door_frame(&mut e, &astronaut, 180.0, &eileen);
    door_frame(&mut e, &photo("biden.jpg"), 180.0, &biden);
    blank_frame(&blank);
    replay(
        frames,
        &[
            (&blank, 1),
            (&obama2, 4), // settles after 3 frames: one attempt at 36.6
            (&blank, 2),
            (&photo("coffee.png"), 3), // no face: no event
            (&eileen, 4),              // one attempt at 38.2: fever
            (&blank, 2),
            (&biden, 4), // not enrolled: an unknown face, at 36.6
            (&blank, 1),
        ],
    );

    let mut k = Kiosk::start(&spec);
    central.wait_events(3, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    assert!(k.terminate().unwrap().success(), "{}", k.log_text());
    let events = central.unique_events();
    let got: Vec<_> = events.iter().map(summary).collect();
    println!("face events at the door: {got:?}");
    assert_eq!(
        got,
        [
            (
                Method::Face,
                Some("p-obama".to_string()),
                Decision::Admit,
                Reason::Ok,
                Some(36.6)
            ),
            (
                Method::Face,
                Some("p-eileen".to_string()),
                Decision::Deny,
                Reason::Fever,
                Some(38.2)
            ),
            (
                Method::Face,
                None,
                Decision::Deny,
                Reason::FaceUnknown,
                Some(36.6)
            ),
        ]
    );
    assert_eq!(spec.gate_signals(), ["admit", "deny", "deny"]);
    let log = k.log_text();
    assert!(log.contains("Face recognition on."), "{log}");
    assert!(!log.contains("p-obama"), "no subject ids in the box's log");
}

#[test]
fn central_replaces_the_gallery_without_a_restart_and_garbage_changes_nothing() {
    let dir = TempDir::new("face-gallery");
    let pki = Pki::new(&dir.path().join("pki"));
    let broker = Mosquitto::start(&dir.path().join("broker"), Some(&pki));
    let signing = format!(
        "[trust]\nsigning_key = \"{}\"\n",
        pki.config_key().display()
    );
    let central = CentralProc::start_with(
        &dir.path().join("central"),
        &broker,
        Some(&pki),
        600,
        &signing,
    );
    central.command(&["boxes"]); // waits until its API answers
    let observer = TestCentral::connect_as("observer", &broker, Some(&pki), false);
    let before = dir.path().join("before.bin");
    enroll(&dir.path().join("a"), &[("p-obama", "obama.jpg")], &before);
    let after = dir.path().join("after.bin");
    enroll(
        &dir.path().join("b"),
        &[("p-obama", "obama.jpg"), ("p-joe", "biden.jpg")],
        &after,
    );
    let in_force = dir.path().join("state-gallery.bin");
    std::fs::copy(&before, &in_force).unwrap();

    // The same person in front of the camera over and over: one attempt per pass of the loop.
    let mut spec = BoxSpec {
        fps: 8.0,
        looping: true,
        ..BoxSpec::new("face-loop", dir.path(), &broker, Some(&pki))
    };
    spec.extra = face_section(&models(), &in_force, 0);
    std::fs::create_dir_all(&spec.frames).unwrap();
    let mut e = engine();
    let biden = dir.path().join("biden-door.png");
    door_frame(&mut e, &mirrored("biden.jpg", dir.path()), 180.0, &biden);
    blank_frame(&spec.frames.join("0.png"));
    for i in 1..=3 {
        std::fs::copy(&biden, spec.frames.join(format!("{i}.png"))).unwrap();
    }
    blank_frame(&spec.frames.join("4.png"));
    let mut k = Kiosk::start(&spec);
    let unknown = |e: &Event| e.subject.is_none() && e.reason == Reason::FaceUnknown;
    let joe = |e: &Event| e.subject.as_ref().is_some_and(|s| s.as_str() == "p-joe");
    wait_until(Duration::from_secs(60), "an unknown face", || {
        observer.unique_events().iter().any(unknown)
    });
    assert!(!observer.unique_events().iter().any(joe));

    // Central refuses a file that is not a gallery; garbage that reaches the box anyway (from
    // another client with rights on the topic) is refused there and changes nothing.
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, b"not a gallery").unwrap();
    let token = central.token_file.to_str().unwrap();
    let o = run(
        "checkpoint-admin",
        &[
            "gallery",
            "publish",
            "--box",
            "face-loop",
            junk.to_str().unwrap(),
            "--api",
            &central.api,
            "--token-file",
            token,
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("not a Checkpoint gallery"),
        "{err}"
    );
    observer.publish_retained(
        "checkpoint/v1/box/face-loop/config/gallery",
        b"not a gallery",
    );
    wait_until(Duration::from_secs(30), "garbage refused", || {
        k.log_text().contains("Face gallery refused")
    });
    // The real gallery with p-joe, published unsigned by a client with rights on the topic
    // (the forged-gallery attack): refused, p-joe stays unknown.
    observer.publish_retained(
        "checkpoint/v1/box/face-loop/config/gallery",
        &std::fs::read(&after).unwrap(),
    );
    wait_until(Duration::from_secs(30), "unsigned gallery refused", || {
        k.log_text().contains("not a signed gallery")
    });
    let unknowns = observer
        .unique_events()
        .iter()
        .filter(|e| unknown(e))
        .count();
    wait_until(
        Duration::from_secs(30),
        "still unknown after the forgery",
        || {
            observer
                .unique_events()
                .iter()
                .filter(|e| unknown(e))
                .count()
                > unknowns
        },
    );
    assert!(!observer.unique_events().iter().any(joe));
    assert_eq!(
        std::fs::read(&in_force).unwrap(),
        std::fs::read(&before).unwrap()
    );

    central.command(&[
        "gallery",
        "publish",
        "--box",
        "face-loop",
        after.to_str().unwrap(),
    ]);
    wait_until(Duration::from_secs(60), "p-joe recognised", || {
        observer.unique_events().iter().any(joe)
    });
    assert!(k.log_text().contains("Face gallery updated."));
    let new = std::fs::read(&after).unwrap();
    assert_eq!(
        std::fs::read(&in_force).unwrap(),
        new,
        "saved for the next start"
    );
    assert!(k.terminate().unwrap().success(), "{}", k.log_text());
    // Once recognised, the same face is never unknown again.
    let events = observer.unique_events();
    let first_joe = events.iter().position(joe).unwrap();
    assert!(events[first_joe..].iter().all(joe), "{events:?}");
    // Central stored the box's face events like any others.
    let stored = central.query(&["events", "--person", "p-joe"]);
    assert!(!stored.as_array().unwrap().is_empty(), "{stored}");
}

#[test]
fn face_mode_without_models_or_with_a_damaged_gallery_does_not_start() {
    let dir = TempDir::new("face-refuse");
    let gallery = dir.path().join("gallery.bin");
    enroll(dir.path(), &[("p-obama", "obama.jpg")], &gallery);
    let mut spec = BoxSpec::new_plain("face-bad", dir.path());
    std::fs::create_dir_all(&spec.frames).unwrap();
    blank_frame(&spec.frames.join("0.png"));

    // `run` with this face section fails, without a panic; its error output.
    let refused = |spec: &mut BoxSpec, models: &Path| {
        spec.extra = face_section(models, &gallery, 5000);
        let config = spec.write();
        let o = run(
            "checkpointd",
            &["run", "--config", config.to_str().unwrap()],
        );
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!o.status.success(), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        err
    };
    let empty = dir.path().join("no-models");
    std::fs::create_dir_all(&empty).unwrap();
    let err = refused(&mut spec, &empty);
    assert!(
        err.contains("face_detection_yunet_2023mar.onnx") && err.contains("scripts/models"),
        "{err}"
    );

    let mut bytes = std::fs::read(&gallery).unwrap();
    let last = bytes.len() - 40;
    bytes[last] ^= 0xff;
    std::fs::write(&gallery, &bytes).unwrap();
    let err = refused(&mut spec, &models());
    assert!(err.contains("gallery damaged"), "{err}");
}

/// A person showing a code is one attempt by code, not also one by face: the QR rotation does
/// not read the code on every frame, so the face is left alone while the code's cooldown lasts
/// (`policy.duplicate_cooldown_ms`), and looked at again after it.
#[test]
fn a_code_in_view_is_one_attempt_not_also_a_face() {
    let dir = TempDir::new("face-and-code");
    let broker = Mosquitto::start(&dir.path().join("broker"), None);
    let central = TestCentral::connect(&broker, None, true);
    let gallery = dir.path().join("gallery.bin");
    enroll(dir.path(), &[("p-obama", "obama.jpg")], &gallery);
    let keys = checkpoint_e2e::kiosk::keygen(&dir.path().join("keys"));
    let code = checkpoint_e2e::kiosk::issue(&keys, "p-obama", "green", "1h", None);

    let mut spec = BoxSpec {
        fps: 4.0,
        bootstrap_key: Some(keys.join("passcode.pub")),
        policy: "duplicate_cooldown = \"3s\"\n".to_string(),
        ..BoxSpec::new("face-code", dir.path(), &broker, None)
    };
    spec.extra = face_section(&models(), &gallery, 1000);
    std::fs::create_dir_all(&spec.frames).unwrap();
    let mut e = engine();
    let face = dir.path().join("face.png");
    door_frame(&mut e, &photo("obama2.jpg"), 180.0, &face);
    // The same face with the code held up beside it, in the top-left corner.
    let mut both = image::open(&face).unwrap().to_rgb8();
    let qr = qrcode::QrCode::new(code.as_bytes())
        .unwrap()
        .render::<image::Luma<u8>>()
        .min_dimensions(170, 170)
        .build();
    image::imageops::overlay(
        &mut both,
        &image::DynamicImage::ImageLuma8(qr).to_rgb8(),
        0,
        0,
    );
    let blank = dir.path().join("blank.png");
    blank_frame(&blank);
    let both_path = dir.path().join("both.png");
    both.save(&both_path).unwrap();
    replay(
        &spec.frames,
        &[
            (&both_path, 1), // the code is read once...
            (&face, 3),      // ...and the face alone right after: within the code's cooldown
            (&blank, 14),    // 3.5 s of nobody: the cooldown is over
            (&face, 3),      // the same person by face alone: an attempt by face
            (&blank, 1),
        ],
    );

    let mut k = Kiosk::start(&spec);
    wait_until(Duration::from_secs(60), "the whole replay", || {
        k.log_text().contains("Camera replay finished.")
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(k.terminate().unwrap().success(), "{}", k.log_text());
    let got: Vec<_> = central.unique_events().iter().map(summary).collect();
    assert_eq!(
        got,
        [
            (
                Method::Qr,
                Some("p-obama".to_string()),
                Decision::Admit,
                Reason::Ok,
                None
            ),
            (
                Method::Face,
                Some("p-obama".to_string()),
                Decision::Admit,
                Reason::Ok,
                None
            ),
        ]
    );
}
