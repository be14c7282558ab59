#![allow(clippy::unwrap_used, clippy::expect_used)]
use checkpoint_face::decode::Params;
use checkpoint_face::engine::FaceEngine;

fn main() {
    let models = std::env::args().nth(1).unwrap();
    let mut e = FaceEngine::load(std::path::Path::new(&models), Params::default()).unwrap();
    let mut embs = Vec::new();
    for p in std::env::args().skip(2) {
        let img = image::open(&p).unwrap().to_rgb8();
        let t = std::time::Instant::now();
        let faces = e.detect(&img).unwrap();
        let dt = t.elapsed();
        println!(
            "{p}: {}x{} {} faces in {dt:?}",
            img.width(),
            img.height(),
            faces.len()
        );
        for f in &faces {
            println!(
                "  {:.0},{:.0} {:.0}x{:.0} score {:.3}",
                f.x, f.y, f.w, f.h, f.score
            );
        }
        if let Some(f) = faces.first() {
            embs.push((p.clone(), e.embed(&img, f).unwrap()));
        }
    }
    for (a, ea) in &embs {
        for (b, eb) in &embs {
            if a < b {
                let n = |v: &Vec<f32>| v.iter().map(|x| x * x).sum::<f32>().sqrt();
                let c: f32 = ea.iter().zip(eb).map(|(x, y)| x * y).sum::<f32>() / (n(ea) * n(eb));
                println!("{:.3} {a} {b}", c);
            }
        }
    }
}
