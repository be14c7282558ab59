//! Face recognition costs on this machine: detection and embedding per 640x480 frame, 1:N
//! search at 1,000, 10,000 and 100,000 enrolled identities, and the process's RSS with the
//! models loaded. Needs `scripts/models` and `scripts/face-test-data`.
//!
//!     cargo bench -p checkpoint-face --bench face
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Instant;

use checkpoint_face::decode::Params;
use checkpoint_face::engine::{FaceEngine, DEFAULT_DIR};
use checkpoint_face::gallery::Gallery;
use image::{imageops, RgbImage};

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let models = std::env::var_os("CHECKPOINT_FACE_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/face-data");
    let before = rss_mib();
    let mut e = FaceEngine::load(&models, Params::default()).expect("models (scripts/models)");
    let loaded = rss_mib();

    // A 640x480 frame with one face of door distance (the astronaut photo scaled into it).
    let face = image::open(data.join("astronaut.png"))
        .expect("scripts/face-test-data")
        .to_rgb8();
    let mut frame = RgbImage::new(640, 480);
    let scaled = imageops::resize(&face, 400, 400, imageops::FilterType::Triangle);
    imageops::overlay(&mut frame, &scaled, 120, 40);

    let rounds = 30;
    let (mut det, mut emb) = (Vec::new(), Vec::new());
    let mut probe = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let faces = e.detect(&frame).unwrap();
        det.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        probe = e.embed(&frame, &faces[0]).unwrap();
        emb.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let after = rss_mib();
    println!("| step (640x480, {rounds} rounds) | p50 ms | p95 ms |");
    println!("|---|---|---|");
    println!(
        "| YuNet detection + decode | {:.1} | {:.1} |",
        percentile(&mut det.clone(), 0.5),
        percentile(&mut det, 0.95)
    );
    println!(
        "| SFace align + embedding | {:.1} | {:.1} |",
        percentile(&mut emb.clone(), 0.5),
        percentile(&mut emb, 0.95)
    );
    println!();
    println!("| enrolled identities | 1:N search p50 ms | p95 ms |");
    println!("|---|---|---|");
    let mut rng = fastrand::Rng::with_seed(7);
    for n in [1_000usize, 10_000, 100_000] {
        let mut g = Gallery::new(probe.len());
        for i in 0..n {
            let v: Vec<f32> = (0..probe.len()).map(|_| rng.f32() - 0.5).collect();
            g.add(&format!("p-{i}"), &v).unwrap();
        }
        let mut t_ms = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let s = g.search(&probe).unwrap();
            t_ms.push(t.elapsed().as_secs_f64() * 1e3);
            assert!(s.best.is_some());
        }
        println!(
            "| {n} | {:.2} | {:.2} |",
            percentile(&mut t_ms.clone(), 0.5),
            percentile(&mut t_ms, 0.95)
        );
    }
    println!();
    println!(
        "RSS: {before:.0} MiB at start, {loaded:.0} MiB with the models loaded, {after:.0} MiB after {rounds} frames"
    );
}
