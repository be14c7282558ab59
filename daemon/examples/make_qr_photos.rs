//! Generates the QR photo set in `tests/data/qr/`: codes as a kiosk camera sees them on phone
//! screens and paper — perspective, rotation, blur, sensor noise, glare, uneven light, low
//! contrast, inverted (dark-mode) screens, moiré and JPEG artefacts — with their expected texts in
//! `tests/data/qr/expected.tsv`.
//!
//! `cargo run --release -p checkpoint-daemon --example make_qr_photos`. Deterministic: a fixed seed
//! drives every choice, so regenerating gives the same set.

use std::fmt::Write as _;
use std::path::Path;

use checkpoint_protocol::ids::SubjectId;
use checkpoint_protocol::passcode::{self, IssuerKey, PassRequest, PassStatus};
use image::codecs::jpeg::JpegEncoder;
use image::{GrayImage, Luma};
use qrcode::{EcLevel, QrCode};

/// SplitMix64: small, deterministic, good enough for test scenes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.f()
    }
    fn gauss(&mut self) -> f32 {
        let (u, v) = (self.f().max(1e-7), self.f());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
    fn chance(&mut self, p: f32) -> bool {
        self.f() < p
    }
}

/// Solves the 8-parameter homography mapping `src` quad corners to `dst`.
fn homography(src: [(f32, f32); 4], dst: [(f32, f32); 4]) -> [f64; 9] {
    let mut a = [[0f64; 9]; 8];
    for i in 0..4 {
        let (x, y) = (f64::from(src[i].0), f64::from(src[i].1));
        let (u, v) = (f64::from(dst[i].0), f64::from(dst[i].1));
        a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
        a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
    }
    for col in 0..8 {
        let pivot = (col..8)
            .max_by(|&p, &q| a[p][col].abs().total_cmp(&a[q][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        let pivot_row = a[col];
        if pivot_row[col] == 0.0 {
            continue;
        }
        for (r, row) in a.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot_row[col];
                for (x, p) in row.iter_mut().zip(pivot_row.iter()).skip(col) {
                    *x -= f * p;
                }
            }
        }
    }
    let mut h = [0f64; 9];
    for i in 0..8 {
        h[i] = a[i][8] / a[i][i];
    }
    h[8] = 1.0;
    h
}

fn apply(h: &[f64; 9], x: f32, y: f32) -> (f32, f32) {
    let (x, y) = (f64::from(x), f64::from(y));
    let w = h[6] * x + h[7] * y + h[8];
    (
        ((h[0] * x + h[1] * y + h[2]) / w) as f32,
        ((h[3] * x + h[4] * y + h[5]) / w) as f32,
    )
}

/// Reflectance of the code image at a fractional position (1 = white), bilinear.
fn sample(code: &GrayImage, x: f32, y: f32) -> Option<f32> {
    let (w, h) = (code.width() as f32, code.height() as f32);
    if x < 0.0 || y < 0.0 || x >= w - 1.0 || y >= h - 1.0 {
        return None;
    }
    let (x0, y0) = (x.floor() as u32, y.floor() as u32);
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let p = |dx, dy| f32::from(code.get_pixel(x0 + dx, y0 + dy)[0]) / 255.0;
    let top = p(0, 0) * (1.0 - fx) + p(1, 0) * fx;
    let bottom = p(0, 1) * (1.0 - fx) + p(1, 1) * fx;
    Some(top * (1.0 - fy) + bottom * fy)
}

struct Scene {
    width: u32,
    height: u32,
    /// Fraction of the frame height the code's side spans.
    scale: f32,
    rotation: f32,
    /// Corner jitter as a fraction of the code side (perspective strength).
    tilt: f32,
    dark: f32,
    light: f32,
    /// Illumination falls from 1 to `shade` across the frame.
    shade: f32,
    glare: f32,
    noise: f32,
    blur: f32,
    inverted: bool,
    moire: f32,
    /// JPEG quality; every image is a JPEG, as camera stills are.
    jpeg: Option<u8>,
}

fn random_scene(rng: &mut Rng, hard: f32) -> Scene {
    let wide = rng.chance(0.25);
    Scene {
        width: if wide { 1280 } else { 640 },
        height: if wide { 720 } else { 480 },
        scale: rng.range(0.32, 0.8),
        rotation: rng.range(-0.6, 0.6) * if rng.chance(0.2) { 5.0 } else { 1.0 },
        tilt: rng.range(0.0, 0.14 * hard),
        dark: rng.range(0.03, 0.2 + 0.25 * hard),
        light: rng.range(0.75 - 0.2 * hard, 1.0),
        shade: if rng.chance(0.4 * hard) {
            rng.range(0.25, 0.7)
        } else {
            1.0
        },
        glare: if rng.chance(0.3 * hard) {
            rng.range(0.3, 0.8)
        } else {
            0.0
        },
        noise: rng.range(0.0, 0.08 * hard),
        blur: if rng.chance(0.5) {
            rng.range(0.3, 1.0 + 1.0 * hard)
        } else {
            0.0
        },
        inverted: rng.chance(0.1),
        moire: if rng.chance(0.2 * hard) {
            rng.range(0.03, 0.1)
        } else {
            0.0
        },
        jpeg: Some(rng.range(55.0, 92.0) as u8),
    }
}

fn render(text: &str, scene: &Scene, rng: &mut Rng) -> Result<GrayImage, String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| e.to_string())?;
    let img = code.render::<Luma<u8>>().module_dimensions(8, 8).build();
    let (cw, ch) = (img.width() as f32, img.height() as f32);

    let side = scene.scale * scene.height as f32;
    let (cx, cy) = (
        scene.width as f32 * rng.range(0.35, 0.65),
        scene.height as f32 * rng.range(0.4, 0.6),
    );
    let (s, c) = scene.rotation.sin_cos();
    let mut quad = [(0f32, 0f32); 4];
    for (i, (dx, dy)) in [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)]
        .iter()
        .enumerate()
    {
        let (jx, jy) = (
            rng.range(-1.0, 1.0) * scene.tilt,
            rng.range(-1.0, 1.0) * scene.tilt,
        );
        let (x, y) = ((dx + jx) * side, (dy + jy) * side);
        quad[i] = (cx + x * c - y * s, cy + x * s + y * c);
    }
    let to_code = homography(quad, [(0.0, 0.0), (cw, 0.0), (cw, ch), (0.0, ch)]);

    // Background: a phone bezel / desk of low-frequency texture.
    let (f1, f2, ph) = (
        rng.range(0.005, 0.03),
        rng.range(0.005, 0.03),
        rng.range(0.0, 6.0),
    );
    let base = rng.range(0.15, 0.6);
    let (gx, gy) = (rng.range(-1.0, 1.0), rng.range(-1.0, 1.0));
    let (glx, gly) = (
        rng.range(0.2, 0.8) * scene.width as f32,
        rng.range(0.2, 0.8) * scene.height as f32,
    );
    let glr = rng.range(0.08, 0.25) * scene.width as f32;
    let mut out = GrayImage::new(scene.width, scene.height);
    let diag = ((scene.width * scene.width + scene.height * scene.height) as f32).sqrt();
    for (x, y, px) in out.enumerate_pixels_mut() {
        let (fx, fy) = (x as f32, y as f32);
        let reflect = match sample(&img, apply(&to_code, fx, fy).0, apply(&to_code, fx, fy).1) {
            Some(r) => {
                let r = if scene.inverted { 1.0 - r } else { r };
                scene.dark + (scene.light - scene.dark) * r
            }
            None => base + 0.15 * ((fx * f1 + ph).sin() * (fy * f2).cos()),
        };
        let along = ((fx - scene.width as f32 / 2.0) * gx + (fy - scene.height as f32 / 2.0) * gy)
            / diag
            + 0.5;
        let light = 1.0 - (1.0 - scene.shade) * along.clamp(0.0, 1.0);
        let d2 = (fx - glx).powi(2) + (fy - gly).powi(2);
        let glare = scene.glare * (-d2 / (2.0 * glr * glr)).exp();
        let moire = scene.moire * ((fx * 0.9 + fy * 0.35).sin());
        let v = reflect * light + glare + moire + scene.noise * rng.gauss();
        px[0] = (v.clamp(0.0, 1.0) * 255.0) as u8;
    }
    if scene.blur > 0.0 {
        out = image::imageops::blur(&out, scene.blur);
    }
    Ok(out)
}

/// The issuer of the pass codes in the set; its public key is written beside the images.
fn issuer() -> IssuerKey {
    IssuerKey::from_seed([0x42; 32])
}

fn payloads() -> Vec<String> {
    let key = issuer();
    let mut texts = vec![];
    for i in 0..100u32 {
        let dependants = (0..(i % 5 / 4 * 2)).map(|d| SubjectId::new(format!("p-{i}-d{d}")));
        let req = PassRequest {
            status: [PassStatus::Green, PassStatus::Yellow, PassStatus::Red][i as usize % 3],
            subject: SubjectId::new(format!("p-{:05}", 10_000 + i * 37))
                .unwrap_or_else(|e| panic!("{e}")),
            dependants: dependants
                .collect::<Result<_, _>>()
                .unwrap_or_else(|e| panic!("{e}")),
            issued_at: 1_795_420_800 + i * 60,
            expires_at: 1_795_420_800 + i * 60 + 300,
        };
        texts.push(passcode::issue(&key, &req).unwrap_or_else(|e| panic!("{e}")));
    }
    for i in 0..20 {
        texts.push(format!(
            "https://campus.example.org/checkin?site=north&point={i:04}"
        ));
    }
    texts
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/qr");
    std::fs::create_dir_all(&dir)?;
    let mut rng = Rng(0x00C0_FFEE);
    let mut manifest = String::from("# file\texpected text\tscene\n");
    for (i, text) in payloads().iter().enumerate() {
        let hard = (i % 4) as f32 / 3.0 + 0.25;
        let scene = random_scene(&mut rng, hard);
        let img = render(text, &scene, &mut rng)?;
        let name = match scene.jpeg {
            Some(q) => {
                let name = format!("qr-{i:03}.jpg");
                let mut file = std::fs::File::create(dir.join(&name))?;
                JpegEncoder::new_with_quality(&mut file, q).encode_image(&img)?;
                name
            }
            None => {
                let name = format!("qr-{i:03}.png");
                img.save(dir.join(&name))?;
                name
            }
        };
        let _ = writeln!(
            manifest,
            "{name}\t{text}\t{}x{} scale={:.2} rot={:.2} tilt={:.2} dark={:.2} light={:.2} shade={:.2} glare={:.2} noise={:.3} blur={:.1} inverted={} moire={:.2} jpeg={:?}",
            scene.width, scene.height, scene.scale, scene.rotation, scene.tilt, scene.dark, scene.light,
            scene.shade, scene.glare, scene.noise, scene.blur, scene.inverted, scene.moire, scene.jpeg
        );
    }
    std::fs::write(dir.join("expected.tsv"), manifest)?;
    std::fs::write(dir.join("issuer.pub"), issuer().public().to_pem()?)?;
    println!("wrote {} images to {}", payloads().len(), dir.display());
    Ok(())
}
