//! `checkpointd enroll` and `checkpointd identify`: building a box's gallery from the photo
//! library a site already has, and checking a gallery and thresholds without the camera.
//!
//! Photos are named by person id: `PHOTOS/ID.jpg` for one photo, or `PHOTOS/ID/` holding any
//! number of them. Each photo must show exactly one face; the others are refused with the reason
//! and the rest are enrolled.

use std::path::{Path, PathBuf};

use checkpoint_face::decode::{Face, Params};
use checkpoint_face::engine::{FaceEngine, FaceError};
use checkpoint_face::gallery::Gallery;
use checkpoint_face::matcher::MatchPolicy;
use checkpoint_protocol::ids::SubjectId;
use serde::Serialize;

/// SFace embeddings have 128 values.
pub const EMBEDDING_LEN: usize = 128;

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
}

/// Every photo under `dir` with the person id it names, sorted; or why a name is not an id.
pub fn photos(dir: &Path) -> std::io::Result<Vec<(PathBuf, Result<String, String>)>> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let id_of = |s: Option<&std::ffi::OsStr>| -> Result<String, String> {
        let s = s.and_then(|s| s.to_str()).unwrap_or_default();
        SubjectId::new(s.to_string())
            .map(|id| id.as_str().to_string())
            .map_err(|e| format!("{s:?} is not a person id: {e}"))
    };
    for p in entries {
        if p.is_dir() {
            let id = id_of(p.file_name());
            let mut inner: Vec<PathBuf> = std::fs::read_dir(&p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_image(p))
                .collect();
            inner.sort();
            out.extend(inner.into_iter().map(|f| (f, id.clone())));
        } else if is_image(&p) {
            let id = id_of(p.file_stem());
            out.push((p, id));
        }
    }
    Ok(out)
}

/// The one face of an enrolment photo, or why the photo is refused.
pub fn single_face(engine: &mut FaceEngine, img: &image::RgbImage) -> Result<Face, String> {
    let faces = engine.detect(img).map_err(|e| e.to_string())?;
    match faces.len() {
        0 => Err(format!(
            "no face found (faces narrower than {} px are ignored)",
            engine.params.min_face_px
        )),
        1 => Ok(faces[0]),
        n => Err(format!("{n} faces: enrolment needs a photo of one person")),
    }
}

/// What `enroll` did with one photo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    pub photo: PathBuf,
    pub result: Result<String, String>,
}

/// Enrols every photo under `dir`; `progress(done, total, entry)` after each.
pub fn enroll(
    engine: &mut FaceEngine,
    dir: &Path,
    mut progress: impl FnMut(usize, usize, &Enrolled),
) -> std::io::Result<(Gallery, Vec<Enrolled>)> {
    let list = photos(dir)?;
    let mut g = Gallery::new(EMBEDDING_LEN);
    let mut report = Vec::with_capacity(list.len());
    let total = list.len();
    for (i, (photo, id)) in list.into_iter().enumerate() {
        let result = id.and_then(|id| {
            let img = image::open(&photo)
                .map_err(|e| format!("unreadable image: {e}"))?
                .to_rgb8();
            let face = single_face(engine, &img)?;
            let e = engine.embed(&img, &face).map_err(|e| e.to_string())?;
            g.add(&id, &e).map_err(|e| e.to_string())?;
            Ok(id)
        });
        let entry = Enrolled { photo, result };
        progress(i + 1, total, &entry);
        report.push(entry);
    }
    Ok((g, report))
}

/// One face found by `identify`.
#[derive(Debug, Clone, Serialize)]
pub struct Identified {
    pub image: String,
    /// x, y, width, height in pixels.
    #[serde(rename = "box")]
    pub face_box: [f32; 4],
    pub score: f32,
    /// The identity, or `unknown` when the policy does not accept the best one.
    pub identity: String,
    /// The best identity and its similarity, accepted or not.
    pub best: Option<String>,
    pub similarity: f32,
    pub margin: f32,
}

/// Every face in `img` against `gallery`, as the box would judge one frame.
pub fn identify(
    engine: &mut FaceEngine,
    gallery: &Gallery,
    policy: &MatchPolicy,
    image: &str,
    img: &image::RgbImage,
) -> anyhow::Result<Vec<Identified>> {
    let mut out = Vec::new();
    for f in engine.detect(img)? {
        let e = engine.embed(img, &f)?;
        let s = gallery.search(&e)?;
        out.push(Identified {
            image: image.to_string(),
            face_box: [f.x, f.y, f.w, f.h],
            score: f.score,
            identity: policy.frame(&s).unwrap_or_else(|| "unknown".into()),
            best: s.best.as_ref().map(|(id, _)| id.clone()),
            similarity: s.best.as_ref().map_or(0.0, |(_, sim)| *sim),
            margin: s.margin(),
        });
    }
    Ok(out)
}

/// Models where `scripts/models` installs them unless given.
pub fn models_dir(given: Option<&Path>) -> PathBuf {
    given.map_or_else(
        || PathBuf::from(checkpoint_face::engine::DEFAULT_DIR),
        Path::to_path_buf,
    )
}

pub fn load_engine(models: &Path) -> Result<FaceEngine, FaceError> {
    FaceEngine::load(models, Params::default())
}

/// `checkpointd enroll`: a progress bar on a terminal (a line per photo otherwise), every
/// refused photo with its reason, the gallery written when anyone was enrolled. Exit 0 when
/// every photo was enrolled, 1 when some were refused.
pub fn run_enroll(
    photos_dir: &Path,
    out: &Path,
    models: Option<&Path>,
) -> anyhow::Result<std::process::ExitCode> {
    use std::io::{IsTerminal, Write};
    let mut engine = load_engine(&models_dir(models))?;
    let tty = std::io::stderr().is_terminal();
    let (gallery, report) = enroll(&mut engine, photos_dir, |done, total, e| {
        let mut err = std::io::stderr().lock();
        if let Err(why) = &e.result {
            let _ = writeln!(
                err,
                "{}{}: {why}",
                if tty { "\r\x1b[K" } else { "" },
                e.photo.display()
            );
        }
        if tty {
            let width = 30;
            let filled = done * width / total.max(1);
            let _ = write!(
                err,
                "\r[{}{}] {done}/{total}",
                "#".repeat(filled),
                " ".repeat(width - filled)
            );
            if done == total {
                let _ = writeln!(err);
            }
        } else if e.result.is_ok() {
            let _ = writeln!(err, "[{done}/{total}] {}: enrolled", e.photo.display());
        }
    })
    .map_err(|e| anyhow::anyhow!("{}: {e}", photos_dir.display()))?;
    let refused = report.iter().filter(|e| e.result.is_err()).count();
    if gallery.is_empty() {
        anyhow::bail!(
            "{}: nobody enrolled ({} photos, {refused} refused)",
            photos_dir.display(),
            report.len()
        );
    }
    gallery.save(out)?;
    checkpoint_link::outln!(
        "{}: {} people from {} photos ({refused} refused)",
        out.display(),
        gallery.identities(),
        report.len() - refused
    );
    Ok(if refused > 0 {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    })
}

/// `checkpointd identify`: one JSON line per face, an error line per unreadable image.
pub fn run_identify(
    gallery: &Path,
    models: Option<&Path>,
    policy: &MatchPolicy,
    images: &[PathBuf],
) -> anyhow::Result<std::process::ExitCode> {
    use anyhow::Context;
    use std::io::Write;
    let gallery =
        Gallery::load(gallery).with_context(|| format!("gallery {}", gallery.display()))?;
    let mut engine = load_engine(&models_dir(models))?;
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    for p in images {
        let shown = p.display().to_string();
        let result = image::open(p)
            .map_err(anyhow::Error::from)
            .and_then(|img| identify(&mut engine, &gallery, policy, &shown, &img.to_rgb8()));
        match result {
            Ok(faces) => {
                for f in faces {
                    writeln!(out, "{}", serde_json::to_string(&f)?)?;
                }
            }
            Err(e) => {
                failed = true;
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"image": shown, "error": e.to_string()})
                )?;
            }
        }
    }
    Ok(if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    })
}
