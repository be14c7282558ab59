//! `checkpointd enroll` and `identify` with the real binary, real models (`scripts/models`) and
//! real photos (`scripts/face-test-data`): refused photos are named with their reason, enrolled
//! people are identified from other photos, strangers come out unknown, and a damaged gallery
//! or one of another version is a clear error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use checkpoint_e2e::{run, TempDir};

fn models() -> String {
    checkpoint_e2e::face::models().display().to_string()
}

fn data(name: &str) -> PathBuf {
    checkpoint_e2e::face::photo(name)
}

fn lines(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn enrol_a_photo_library_then_identify_people_and_strangers() {
    let dir = TempDir::new("face-cli");
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(photos.join("p-obama")).unwrap();
    std::fs::copy(data("obama.jpg"), photos.join("p-obama/1.jpg")).unwrap();
    std::fs::copy(data("obama2.jpg"), photos.join("p-obama/2.jpg")).unwrap();
    std::fs::copy(data("astronaut.png"), photos.join("p-eileen.png")).unwrap();
    std::fs::copy(data("coffee.png"), photos.join("p-carol.png")).unwrap();
    std::fs::copy(data("camera.png"), photos.join("not an id.png")).unwrap();
    std::fs::write(photos.join("p-erin.jpg"), b"not a photo").unwrap();
    let gallery = dir.path().join("gallery.bin");
    let m = models();

    let out = run(
        "checkpointd",
        &["enroll", s(&photos), "--out", s(&gallery), "--models", &m],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "some photos refused: {err}");
    assert!(err.contains("p-carol.png: no face found"), "{err}");
    assert!(err.contains("not a person id"), "{err}");
    assert!(err.contains("p-erin.jpg: unreadable image"), "{err}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("2 people from 3 photos (3 refused)"),
        "{said}"
    );

    let out = run(
        "checkpointd",
        &[
            "identify",
            "--gallery",
            s(&gallery),
            "--models",
            &m,
            s(&data("obama3.jpg")),
            s(&data("obama_partial_face.jpg")),
            s(&data("biden.jpg")),
            s(&data("camera.png")),
            s(&data("brick.png")),
        ],
    );
    assert!(out.status.success());
    let found = lines(&out.stdout);
    let who: Vec<&str> = found
        .iter()
        .map(|f| f["identity"].as_str().unwrap())
        .collect();
    // One face per photo with a face; the brick wall has none.
    assert_eq!(
        who,
        ["p-obama", "p-obama", "unknown", "unknown"],
        "{found:?}"
    );
    for f in &found {
        assert_eq!(f["box"].as_array().unwrap().len(), 4);
        assert!(f["similarity"].is_number() && f["margin"].is_number());
    }
    assert!(found[2]["similarity"].as_f64().unwrap() < 0.45);

    // A damaged gallery and a gallery of another version: clear errors, exit 2.
    let mut bytes = std::fs::read(&gallery).unwrap();
    let damaged = dir.path().join("damaged.bin");
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&damaged, &bytes).unwrap();
    let other = dir.path().join("other.bin");
    bytes[8] = 9;
    std::fs::write(&other, &bytes).unwrap();
    for (g, want) in [(&damaged, "damaged"), (&other, "version 9")] {
        let out = run(
            "checkpointd",
            &[
                "identify",
                "--gallery",
                s(g),
                "--models",
                &m,
                s(&data("obama3.jpg")),
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(want), "{err}");
    }

    // Models missing: the error names the file and how to get it.
    let out = run(
        "checkpointd",
        &[
            "identify",
            "--gallery",
            s(&gallery),
            "--models",
            s(dir.path()),
            s(&data("obama3.jpg")),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("face_detection_yunet_2023mar.onnx") && err.contains("scripts/models"),
        "{err}"
    );
}
