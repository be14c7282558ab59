//! QR decode benchmark over the photo set in `tests/data/qr/`.
//!
//! `cargo bench -p checkpoint-daemon --bench qr_decode` prints:
//! 1. the decode rate of each strategy alone and of plain rqrr (the baseline);
//! 2. the full chain's decode rate and time per frame (p50, p90, p99, max) by frame size.
//!
//! A "decode" counts only when the expected text is among the decoded texts.

use std::path::Path;
use std::time::{Duration, Instant};

use checkpoint_daemon::qr::{self, QrConfig, Strategy};
use checkpoint_daemon::scan::load_luma;

struct Sample {
    name: String,
    expected: String,
    img: image::GrayImage,
}

fn load() -> Vec<Sample> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/qr");
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
                expected: expected.to_string(),
                img,
            })
        })
        .collect()
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    let samples = load();
    let cfg = QrConfig::default();
    println!("QR photo set: {} images", samples.len());
    println!();
    println!("| strategy alone | decoded | rate |");
    println!("|---|---:|---:|");
    for s in Strategy::CHAIN {
        let ok = samples
            .iter()
            .filter(|x| {
                qr::decode_with(&x.img, &cfg, &[s])
                    .texts
                    .contains(&x.expected)
            })
            .count();
        let label = if s == Strategy::Plain {
            "plain (rqrr alone, baseline)"
        } else {
            s.name()
        };
        println!(
            "| {label} | {ok}/{} | {:.1} % |",
            samples.len(),
            100.0 * ok as f64 / samples.len() as f64
        );
    }

    println!();
    println!(
        "| frames | images | decoded | rate | p50 ms | p90 ms | p99 ms | max ms | mean attempts |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut missed = vec![];
    for (label, w) in [("640x480", 640), ("1280x720", 1280)] {
        let set: Vec<&Sample> = samples.iter().filter(|s| s.img.width() == w).collect();
        let mut times = vec![];
        let (mut ok, mut attempts) = (0, 0);
        for s in &set {
            let start = Instant::now();
            let d = qr::decode(&s.img, &cfg);
            times.push(start.elapsed());
            attempts += d.attempts;
            if d.texts.contains(&s.expected) {
                ok += 1;
            } else {
                missed.push(s.name.clone());
            }
        }
        times.sort();
        let n = set.len().max(1);
        println!(
            "| {label} | {} | {ok} | {:.1} % | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} |",
            set.len(),
            100.0 * ok as f64 / n as f64,
            percentile(&times, 0.5),
            percentile(&times, 0.9),
            percentile(&times, 0.99),
            percentile(&times, 1.0),
            attempts as f64 / n as f64
        );
    }
    println!();
    println!(
        "not decoded: {}",
        if missed.is_empty() {
            "none".to_string()
        } else {
            missed.join(" ")
        }
    );
}
