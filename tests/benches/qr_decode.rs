//! QR decode benchmark: zxing-cpp alone, rqrr's chain alone and our combined decoders, side by
//! side in one run, on two sets:
//!
//! - the real-photo development set (`scripts/qr-devset`: BoofCV's qrcodes_v3, 536 photos in 16
//!   categories), as photographed and fitted into the door's 640x480 frame;
//! - `tests/data/qr`, our 120 generated photo-like images (the regression set).
//!
//! `cargo bench -p checkpoint-e2e --bench qr_decode` prints, per set and decoder: images read,
//! wrong readings, rate, and decode time per image (p50/p95/max); a per-category table of the
//! development set; and the cost of idle frames (640x480 frames without a code).
//!
//! Ground truth. `tests/data/qr` knows its payloads. The development set's payloads are the
//! consensus of zxing-cpp, rqrr's chain and zbar (`checkpoint_e2e::qrset`, which says the rule).
//! "unconfirmed" counts readings that are not confirmed; they are listed at the end.
//!
//! `CHECKPOINT_QR_DEVSET` points at another copy of the set; `QR_BENCH_ONLY=synthetic` skips it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark fails loudly on broken fixtures.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use checkpoint_daemon::qr::{self, Mode, QrConfig};
use checkpoint_daemon::scan::load_luma;
use checkpoint_e2e::qrset::{self, Consensus, Readings};
use checkpoint_e2e::workspace;
use image::GrayImage;

const MODES: [Mode; 4] = [Mode::Zxing, Mode::Rqrr, Mode::Door, Mode::Thorough];

struct Sample {
    name: String,
    category: String,
    /// Known payloads (the generated set); empty for the development set.
    expected: Vec<Vec<u8>>,
    img: GrayImage,
}

fn synthetic() -> Vec<Sample> {
    let dir = workspace().join("tests/data/qr");
    let manifest = std::fs::read_to_string(dir.join("expected.tsv")).unwrap_or_else(|e| {
        eprintln!("cannot read {}: {e}", dir.display());
        std::process::exit(1)
    });
    manifest
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (name, expected) = (f.next()?, f.next()?);
            let img = load_luma(&dir.join(name)).ok()?;
            Some(Sample {
                name: name.to_string(),
                category: format!("{}x{}", img.width(), img.height()),
                expected: vec![expected.as_bytes().to_vec()],
                img,
            })
        })
        .collect()
}

fn devset() -> Option<(Vec<qrset::Photo>, Vec<Sample>)> {
    let dir = qrset::dir()?;
    if !dir.is_dir() {
        return None;
    }
    let photos = qrset::photos(&dir);
    let samples = photos
        .iter()
        .map(|p| Sample {
            name: p
                .path
                .strip_prefix(&dir)
                .unwrap_or(&p.path)
                .display()
                .to_string(),
            category: p.category.clone(),
            expected: vec![],
            img: load_luma(&p.path).unwrap(),
        })
        .collect();
    Some((photos, samples))
}

/// The photo fitted into a 640x480 frame, as the door's camera would frame it.
fn door_frame(img: &GrayImage) -> GrayImage {
    let (w, h) = (img.width(), img.height());
    let scale = (640.0 / f64::from(w)).min(480.0 / f64::from(h)).min(1.0);
    if scale >= 1.0 {
        return img.clone();
    }
    let (nw, nh) = (
        ((f64::from(w) * scale).round() as u32).max(1),
        ((f64::from(h) * scale).round() as u32).max(1),
    );
    image::imageops::resize(img, nw, nh, image::imageops::FilterType::Triangle)
}

/// One decoder's run over one view of a set.
struct Run {
    found: Readings,
    times: Vec<Duration>,
    panics: u32,
}

fn run(images: &[&GrayImage], mode: Mode) -> Run {
    let cfg = QrConfig {
        mode,
        ..QrConfig::default()
    };
    let mut r = Run {
        found: vec![],
        times: vec![],
        panics: 0,
    };
    for img in images {
        let start = Instant::now();
        let d = if mode == Mode::Door {
            // The door's first frame of a code: rqrr, if its turn comes, gets the plain pass and
            // the first two strategies of the rotation within the door's 150 ms budget.
            let door = QrConfig {
                budget: Duration::from_millis(150),
                ..cfg.clone()
            };
            qr::decode_rotating(img, &door, &mut qr::Rotation::new(2))
        } else {
            qr::decode(img, &cfg)
        };
        r.times.push(start.elapsed());
        r.panics += d.panics;
        r.found.push(d.codes.into_iter().map(|c| c.bytes).collect());
    }
    r
}

fn ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn row(label: &str, decoder: &str, run: Option<&Run>, read: usize, unconfirmed: usize, n: usize) {
    let (p50, p95, max, panics) = match run {
        Some(r) => {
            let mut t = r.times.clone();
            t.sort();
            (
                format!("{:.2}", ms(&t, 0.5)),
                format!("{:.2}", ms(&t, 0.95)),
                format!("{:.1}", ms(&t, 1.0)),
                r.panics.to_string(),
            )
        }
        None => ("–".into(), "–".into(), "–".into(), "–".into()),
    };
    println!(
        "| {label} | {decoder} | {read}/{n} | {unconfirmed} | {:.1} % | {p50} | {p95} | {max} | {panics} |",
        100.0 * read as f64 / n.max(1) as f64,
    );
}

fn header() {
    println!(
        "| set | decoder | read | unconfirmed / wrong | rate | p50 ms | p95 ms | max ms | panics |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
}

fn main() {
    if !qr::HAS_ZXING {
        eprintln!("this benchmark compares zxing-cpp with rqrr: build with the `zxing` feature");
        std::process::exit(1);
    }
    let only_synthetic = std::env::var("QR_BENCH_ONLY").is_ok_and(|v| v == "synthetic");
    header();
    let mut listed = vec![];
    let mut per_category: BTreeMap<String, (usize, [usize; 5])> = BTreeMap::new();

    if let Some((photos, dev)) = (!only_synthetic).then(devset).flatten() {
        let names: Vec<&str> = dev.iter().map(|s| s.name.as_str()).collect();
        let imgs: Vec<&GrayImage> = dev.iter().map(|s| &s.img).collect();
        let framed: Vec<GrayImage> = dev.iter().map(|s| door_frame(&s.img)).collect();
        let framed: Vec<&GrayImage> = framed.iter().collect();
        let views = [
            ("dev set, as photographed", imgs),
            ("dev set, 640x480 frame", framed),
        ];
        let runs: Vec<Vec<Run>> = views
            .iter()
            .map(|(_, imgs)| MODES.iter().map(|&m| run(imgs, m)).collect())
            .collect();
        let paths: Vec<_> = photos.iter().map(|p| p.path.clone()).collect();
        let zbar = qrset::zbar(&paths);
        let zx = qrset::merge(&runs[0][0].found, &runs[1][0].found);
        let rq = qrset::merge(&runs[0][1].found, &runs[1][1].found);
        let consensus = Consensus::new(&[&zx, &rq, &zbar]);
        for ((label, _), rs) in views.iter().zip(&runs) {
            for (m, r) in MODES.iter().zip(rs) {
                let un = consensus.unconfirmed(&r.found);
                for (i, p) in &un {
                    listed.push(format!(
                        "{label}, {}: {}: {}",
                        m.name(),
                        names[*i],
                        String::from_utf8_lossy(p)
                    ));
                }
                row(
                    label,
                    m.name(),
                    Some(r),
                    consensus.read(&r.found),
                    un.len(),
                    dev.len(),
                );
            }
        }
        row(
            "dev set, as photographed",
            "zbar (referee, one process)",
            None,
            consensus.read(&zbar),
            consensus.unconfirmed(&zbar).len(),
            dev.len(),
        );
        let readable = consensus.truth.iter().filter(|t| !t.is_empty()).count();
        eprintln!(
            "dev set: {} photos, {} confirmed payloads, {readable} photos hold one",
            dev.len(),
            consensus.confirmed.len()
        );
        for (i, s) in dev.iter().enumerate() {
            let e = per_category.entry(s.category.clone()).or_default();
            e.0 += 1;
            for (k, found) in runs[0]
                .iter()
                .map(|r| &r.found[i])
                .chain([&zbar[i]])
                .enumerate()
            {
                e.1[k] += usize::from(found.iter().any(|p| consensus.truth[i].contains(p)));
            }
        }
    } else if !only_synthetic {
        eprintln!("no development set: run scripts/qr-devset (or set CHECKPOINT_QR_DEVSET)");
    }

    let syn = synthetic();
    for size in ["640x480", "1280x720"] {
        let idx: Vec<usize> = (0..syn.len())
            .filter(|&i| syn[i].category == size)
            .collect();
        let imgs: Vec<&GrayImage> = idx.iter().map(|&i| &syn[i].img).collect();
        let truth: Vec<HashSet<Vec<u8>>> = idx
            .iter()
            .map(|&i| syn[i].expected.iter().cloned().collect())
            .collect();
        for m in MODES {
            let r = run(&imgs, m);
            let (mut read, mut wrong) = (0, 0);
            for (k, found) in r.found.iter().enumerate() {
                read += usize::from(found.iter().any(|p| truth[k].contains(p)));
                for p in found.iter().filter(|p| !truth[k].contains(*p)) {
                    wrong += 1;
                    listed.push(format!(
                        "tests/data/qr, {}: {}: {}",
                        m.name(),
                        syn[idx[k]].name,
                        String::from_utf8_lossy(p)
                    ));
                }
            }
            row(
                &format!("tests/data/qr {size}"),
                m.name(),
                Some(&r),
                read,
                wrong,
                imgs.len(),
            );
        }
    }

    if !per_category.is_empty() {
        println!();
        println!("Development set by category (as photographed): photos read");
        println!();
        println!("| category | photos | zxing-cpp | rqrr chain | combined (door) | combined (scan) | zbar |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for (cat, (n, h)) in &per_category {
            println!(
                "| {cat} | {n} | {} | {} | {} | {} | {} |",
                h[0], h[1], h[2], h[3], h[4]
            );
        }
    }

    idle();

    println!();
    if listed.is_empty() {
        println!("unconfirmed or wrong readings: none");
    } else {
        println!("unconfirmed or wrong readings ({}):", listed.len());
        for w in &listed {
            println!("  {w}");
        }
    }
}

/// Frames without a code, 640x480: real photos (the face test photos, `scripts/face-test-data`)
/// and synthetic textures. Each is decoded 20 times by each decoder.
fn idle() {
    let mut frames: Vec<GrayImage> = vec![];
    let faces = workspace().join("target/face-data");
    if let Ok(rd) = std::fs::read_dir(&faces) {
        let mut paths: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if let Ok(img) = load_luma(&p) {
                frames.push(image::imageops::resize(
                    &img,
                    640,
                    480,
                    image::imageops::FilterType::Triangle,
                ));
            }
        }
    }
    frames.push(GrayImage::from_pixel(640, 480, image::Luma([128])));
    frames.push(GrayImage::from_fn(640, 480, |x, _| {
        image::Luma([(x * 255 / 639) as u8])
    }));
    frames.push(GrayImage::from_fn(640, 480, |x, y| {
        image::Luma([((x * 7919 + y * 104_729) % 251) as u8])
    }));
    frames.push(GrayImage::from_fn(640, 480, |x, y| {
        image::Luma([if (x / 8 + y / 8) % 2 == 0 { 20 } else { 235 }])
    }));
    println!();
    println!(
        "Idle frames (640x480, no code): {} frames x 20",
        frames.len()
    );
    println!();
    println!("| decoder | p50 ms | p95 ms | max ms | mean attempts |");
    println!("|---|---:|---:|---:|---:|");
    let mut counts: HashMap<&str, u32> = HashMap::new();
    for m in MODES {
        let cfg = QrConfig {
            mode: m,
            ..QrConfig::default()
        };
        let mut rotation = qr::Rotation::new(2);
        let mut times = vec![];
        let mut attempts = 0;
        for _ in 0..20 {
            for f in &frames {
                let start = Instant::now();
                // The door decodes with its rotation; the others try their whole chain.
                let d = if m == Mode::Door {
                    qr::decode_rotating(f, &cfg, &mut rotation)
                } else {
                    qr::decode(f, &cfg)
                };
                times.push(start.elapsed());
                attempts += d.attempts;
                *counts.entry(m.name()).or_default() += d.codes.len() as u32;
            }
        }
        times.sort();
        println!(
            "| {} | {:.2} | {:.2} | {:.1} | {:.2} |",
            m.name(),
            ms(&times, 0.5),
            ms(&times, 0.95),
            ms(&times, 1.0),
            f64::from(attempts) / times.len().max(1) as f64
        );
    }
    for (m, c) in counts {
        if c > 0 {
            println!("note: {m} read {c} codes in frames without one");
        }
    }
}
