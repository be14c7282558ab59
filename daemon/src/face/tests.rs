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

struct Env {
    dir: tempfile::TempDir,
    trust: crate::trust::Trust,
    box_id: BoxId,
    key: checkpoint_protocol::passcode::IssuerKey,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let key = checkpoint_protocol::passcode::IssuerKey::from_seed([42; 32]);
    let pubkey = dir.path().join("config-signing.pub");
    std::fs::write(&pubkey, key.public().to_pem().unwrap()).unwrap();
    let trust = crate::trust::Trust::load(
        &crate::trust::TrustSetup {
            state_dir: dir.path(),
            bootstrap: &[],
            config_keys: &[pubkey],
            max_age: std::time::Duration::ZERO,
            max_skew_s: 300,
        },
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    Env {
        dir,
        trust,
        box_id: BoxId::new("dorm-1").unwrap(),
        key,
    }
}

const NOW: i64 = 1_800_000_000;

impl Env {
    fn check(&self) -> UpdateCheck<'_> {
        UpdateCheck {
            box_id: &self.box_id,
            trust: &self.trust,
            now: NOW,
        }
    }
    fn wrap(&self, serial: u64, at: i64, gallery: &[u8]) -> Vec<u8> {
        signed_gallery::wrap(&self.box_id, serial, at, gallery, &self.key)
    }
}

#[test]
fn updates_are_checked_saved_and_put_in_force() {
    let e = env();
    let path = e.dir.path().join("gallery.bin");
    let store = GalleryStore::load(&path).unwrap();
    assert!(store.current().is_empty(), "no file: an empty gallery");

    let one = gallery_bytes(&["p-1", "p-2"], EMBEDDING_LEN);
    let signed_one = e.wrap(5, NOW, &one);
    assert_eq!(
        store.apply(&signed_one, e.check()).unwrap(),
        Applied::Updated
    );
    assert_eq!(
        store.apply(&signed_one, e.check()).unwrap(),
        Applied::Unchanged
    );
    assert_eq!(store.current().identities(), 2);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        one,
        "the gallery saved as sent"
    );
    assert_eq!(store.serial(), Some(5));

    // Garbage, a damaged copy, another model: refused, the gallery in force stays.
    assert!(matches!(
        store.apply(&e.wrap(6, NOW, b"junk"), e.check()),
        Err(FaceStageError::Gallery(GalleryError::Format(
            GalleryFormatError::NotAGallery
        )))
    ));
    let mut damaged = one.clone();
    damaged[30] ^= 1;
    assert!(matches!(
        store.apply(&e.wrap(6, NOW, &damaged), e.check()),
        Err(FaceStageError::Gallery(GalleryError::Format(
            GalleryFormatError::Damaged(_)
        )))
    ));
    let other = gallery_bytes(&["p-3"], 512);
    assert!(matches!(
        store.apply(&e.wrap(6, NOW, &other), e.check()),
        Err(FaceStageError::Model(512))
    ));
    assert_eq!(store.current().identities(), 2);
    assert_eq!(e.trust.refused(), 3);

    // A restart finds the saved copy and its serial; a damaged file on disk is a clear error.
    let again = GalleryStore::load(&path).unwrap();
    assert_eq!(again.current().identities(), 2);
    assert_eq!(again.serial(), Some(5));
    std::fs::write(&path, &damaged).unwrap();
    let err = GalleryStore::load(&path).unwrap_err().to_string();
    assert!(err.contains("damaged"), "{err}");
}

/// The forged gallery of the report (a stranger enrolled as someone, published by a box
/// certificate) and every other forgery leave the gallery in force alone.
#[test]
fn unsigned_forged_replayed_foreign_and_future_galleries_are_refused() {
    let e = env();
    let path = e.dir.path().join("gallery.bin");
    let store = GalleryStore::load(&path).unwrap();
    let good = gallery_bytes(&["p-1"], EMBEDDING_LEN);
    store.apply(&e.wrap(10, NOW, &good), e.check()).unwrap();
    let stranger = gallery_bytes(&["p-1", "p-1001"], EMBEDDING_LEN);
    let rogue = checkpoint_protocol::passcode::IssuerKey::from_seed([66; 32]);
    let other_box = BoxId::new("gate-9").unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("unsigned file", stranger.clone(), "not a signed gallery"),
        (
            "rogue key",
            signed_gallery::wrap(&e.box_id, 11, NOW, &stranger, &rogue),
            "does not trust",
        ),
        ("replayed serial", e.wrap(9, NOW, &stranger), "replay"),
        ("far future", e.wrap(11, NOW + 86_400, &stranger), "future"),
        (
            "another box's",
            signed_gallery::wrap(&other_box, 11, NOW, &stranger, &e.key),
            "gate-9",
        ),
    ];
    for (i, (what, bytes, says)) in cases.iter().enumerate() {
        let err = store.apply(bytes, e.check()).unwrap_err().to_string();
        assert!(err.contains(says), "{what}: {err}");
        assert_eq!(e.trust.refused(), i as u64 + 1, "{what} counted");
        assert_eq!(store.current().identities(), 1, "{what}");
        assert_eq!(std::fs::read(&path).unwrap(), good, "{what}");
    }
    assert_eq!(store.serial(), Some(10));
}
