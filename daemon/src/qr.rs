//! QR decoding of camera frames and image files with `rqrr`.
//!
//! `rqrr`'s own binarisation (a moving average along rows) is fooled by what real frames contain:
//! shading across a phone screen, glare, low contrast, noise, light-on-dark codes, codes only a few
//! pixels per module wide. So a frame goes through a chain of [`Strategy`]s, cheapest and most
//! often successful first, until one yields a code. Two guards make this safe on untrusted input:
//!
//! - every `rqrr` call runs under `catch_unwind` (it panics inside `detect_grids` on some images);
//!   a panic counts as a failed attempt;
//! - the frame is scaled to at most [`QrConfig::max_side`] (rqrr can spend a minute on a 2000 px
//!   frame) and no new attempt starts once [`QrConfig::budget`] is spent.
//!
//! No I/O here: a luma image in, decoded texts out.

pub mod preprocess;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use image::GrayImage;

/// Limits of the decode chain.
#[derive(Debug, Clone)]
pub struct QrConfig {
    /// Frames are scaled down so that their longer side is at most this many pixels.
    pub max_side: u32,
    /// No new attempt starts after this much time on one frame. An attempt already running
    /// finishes, so the worst case is the budget plus one attempt.
    pub budget: Duration,
}

impl Default for QrConfig {
    fn default() -> Self {
        QrConfig {
            max_side: 1280,
            budget: Duration::from_millis(400),
        }
    }
}

/// One way of preparing a frame for `rqrr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The frame as it is; rqrr binarises it itself.
    Plain,
    /// Local-mean threshold: shading and glare.
    Adaptive,
    /// Gaussian blur, then local-mean threshold: noise, moiré, JPEG blocks.
    SmoothAdaptive,
    /// Global Otsu threshold: low contrast under even light.
    Otsu,
    /// Light modules on a dark background (dark-mode screens).
    Inverted,
    InvertedAdaptive,
    /// Twice the size, then local-mean threshold: codes of two or three pixels per module.
    Upscale,
    /// Twice the size, smoothed, then local-mean threshold: small codes that are also blurred or
    /// noisy.
    SmoothUpscale,
    /// Twice the size, inverted: small light-on-dark codes.
    InvertedUpscale,
    /// Half the size: large, noisy frames.
    Downscale,
}

impl Strategy {
    /// The chain, in the order it is tried.
    pub const CHAIN: [Strategy; 10] = [
        Strategy::Plain,
        Strategy::Adaptive,
        Strategy::SmoothUpscale,
        Strategy::SmoothAdaptive,
        Strategy::Otsu,
        Strategy::Inverted,
        Strategy::InvertedAdaptive,
        Strategy::Upscale,
        Strategy::InvertedUpscale,
        Strategy::Downscale,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Plain => "plain",
            Strategy::Adaptive => "adaptive",
            Strategy::SmoothAdaptive => "smooth_adaptive",
            Strategy::Otsu => "otsu",
            Strategy::Inverted => "inverted",
            Strategy::InvertedAdaptive => "inverted_adaptive",
            Strategy::Upscale => "upscale",
            Strategy::SmoothUpscale => "smooth_upscale",
            Strategy::InvertedUpscale => "inverted_upscale",
            Strategy::Downscale => "downscale",
        }
    }

    /// The prepared image, or `None` when the strategy does not apply to this frame.
    pub fn prepare(self, base: &GrayImage) -> Option<GrayImage> {
        use preprocess as p;
        let radius = (base.width().max(base.height()) / 40).max(6);
        Some(match self {
            Strategy::Plain => base.clone(),
            Strategy::Adaptive => p::adaptive(base, radius, 6),
            Strategy::SmoothAdaptive => p::adaptive(&p::smooth(base, 1.5), radius, 4),
            Strategy::Otsu => p::otsu(&p::stretch(base)),
            Strategy::Inverted => p::invert(base),
            Strategy::InvertedAdaptive => p::invert(&p::adaptive(base, radius, -6)),
            Strategy::Upscale => p::adaptive(&p::scale(base, 2.0), radius * 2, 6),
            Strategy::SmoothUpscale => {
                let up = p::scale(base, 2.0);
                p::adaptive(&p::smooth(&up, 2.0), radius * 2, 4)
            }
            Strategy::InvertedUpscale => p::invert(&p::scale(base, 2.0)),
            Strategy::Downscale => {
                if base.width().max(base.height()) < 640 {
                    return None;
                }
                p::scale(&p::smooth(base, 1.0), 0.5)
            }
        })
    }
}

/// The result of decoding one frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// Distinct decoded texts, in the order found. Non-UTF-8 payloads are decoded lossily.
    pub texts: Vec<String>,
    /// The strategy that found them.
    pub strategy: Option<Strategy>,
    pub attempts: u32,
    /// Attempts in which rqrr panicked.
    pub panics: u32,
    /// The budget ran out before the chain was exhausted.
    pub out_of_budget: bool,
    pub elapsed: Duration,
}

/// Spreads the chain over consecutive camera frames: each frame gets `Plain` plus the next
/// `per_frame` strategies of the chain, round robin. A frame without a code (most frames) then
/// costs a few strategies instead of the whole chain, so the loop keeps up with the camera, and
/// a code held in view for a fraction of a second still meets every strategy.
#[derive(Debug, Clone)]
pub struct Rotation {
    per_frame: usize,
    next: usize,
}

impl Rotation {
    /// `per_frame` of 9 or more tries the whole chain on every frame.
    pub fn new(per_frame: usize) -> Self {
        Rotation { per_frame, next: 0 }
    }

    pub fn next_chain(&mut self) -> Vec<Strategy> {
        let extra = &Strategy::CHAIN[1..];
        if self.per_frame >= extra.len() {
            return Strategy::CHAIN.to_vec();
        }
        let mut chain = vec![Strategy::Plain];
        for i in 0..self.per_frame {
            chain.push(extra[(self.next + i) % extra.len()]);
        }
        self.next = (self.next + self.per_frame) % extra.len();
        chain
    }
}

/// Decodes every QR code in `frame`, trying the strategy chain until one finds something.
pub fn decode(frame: &GrayImage, cfg: &QrConfig) -> Decoded {
    decode_with(frame, cfg, &Strategy::CHAIN)
}

/// Like [`decode`] with a chosen chain (benchmarks compare chains with it).
pub fn decode_with(frame: &GrayImage, cfg: &QrConfig, chain: &[Strategy]) -> Decoded {
    let start = Instant::now();
    let mut out = Decoded::default();
    if frame.width() == 0 || frame.height() == 0 {
        return out;
    }
    let base = preprocess::fit(frame, cfg.max_side);
    for &strategy in chain {
        if out.attempts > 0 && start.elapsed() >= cfg.budget {
            out.out_of_budget = true;
            break;
        }
        let Some(img) = strategy.prepare(&base) else {
            continue;
        };
        out.attempts += 1;
        match detect(img) {
            Ok(texts) if !texts.is_empty() => {
                out.texts = texts;
                out.strategy = Some(strategy);
                break;
            }
            Ok(_) => {}
            Err(()) => out.panics += 1,
        }
    }
    out.elapsed = start.elapsed();
    out
}

/// One rqrr pass, isolated from its panics.
fn detect(img: GrayImage) -> Result<Vec<String>, ()> {
    catch_unwind(AssertUnwindSafe(move || {
        let mut prepared = rqrr::PreparedImage::prepare(img);
        let mut texts: Vec<String> = vec![];
        for grid in prepared.detect_grids() {
            let mut raw = Vec::new();
            if grid.decode_to(&mut raw).is_ok() {
                let text = String::from_utf8_lossy(&raw).into_owned();
                if !texts.contains(&text) {
                    texts.push(text);
                }
            }
        }
        texts
    }))
    .map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    #[test]
    fn rotation_covers_the_chain_over_a_few_frames() {
        let mut r = Rotation::new(2);
        let mut seen = Vec::new();
        for _ in 0..5 {
            let chain = r.next_chain();
            assert_eq!(chain.len(), 3);
            assert_eq!(chain[0], Strategy::Plain);
            seen.extend_from_slice(&chain[1..]);
        }
        for s in &Strategy::CHAIN[1..] {
            assert!(seen.contains(s), "{s:?} never tried");
        }
        assert_eq!(Rotation::new(9).next_chain(), Strategy::CHAIN.to_vec());
        assert_eq!(Rotation::new(0).next_chain(), vec![Strategy::Plain]);
    }
    use qrcode::QrCode;

    fn rendered(text: &str, module_px: u32) -> GrayImage {
        QrCode::new(text.as_bytes())
            .unwrap()
            .render::<Luma<u8>>()
            .module_dimensions(module_px, module_px)
            .build()
    }

    #[track_caller]
    fn check(frame: &GrayImage, expect: &[&str], strategy: Option<Strategy>) {
        let d = decode(frame, &QrConfig::default());
        assert_eq!(d.texts, expect);
        assert_eq!(d.strategy, strategy);
        assert_eq!(d.panics, 0);
    }

    #[test]
    fn clean_code_decodes_plainly() {
        check(
            &rendered("CP1:HELLO", 6),
            &["CP1:HELLO"],
            Some(Strategy::Plain),
        );
    }

    #[test]
    fn inverted_code_needs_the_inverted_strategy() {
        check(
            &preprocess::invert(&rendered("dark mode", 6)),
            &["dark mode"],
            Some(Strategy::Inverted),
        );
    }

    #[test]
    fn two_codes_in_one_frame() {
        let (a, b) = (rendered("first", 5), rendered("second", 5));
        let mut frame = GrayImage::from_pixel(
            a.width() + b.width(),
            a.height().max(b.height()),
            Luma([255]),
        );
        image::imageops::replace(&mut frame, &a, 0, 0);
        image::imageops::replace(&mut frame, &b, i64::from(a.width()), 0);
        let d = decode(&frame, &QrConfig::default());
        let mut texts = d.texts.clone();
        texts.sort();
        assert_eq!(texts, ["first", "second"]);
    }

    #[test]
    fn empty_and_codeless_frames() {
        check(&GrayImage::new(0, 0), &[], None);
        let noise = GrayImage::from_fn(320, 240, |x, y| {
            Luma([((x * 7919 + y * 104_729) % 251) as u8])
        });
        let d = decode(&noise, &QrConfig::default());
        assert!(d.texts.is_empty());
        assert!(d.attempts >= 1);
    }

    #[test]
    fn budget_stops_the_chain_after_one_attempt() {
        let cfg = QrConfig {
            max_side: 1280,
            budget: Duration::ZERO,
        };
        let d = decode(&GrayImage::from_pixel(100, 100, Luma([128])), &cfg);
        assert_eq!(d.attempts, 1);
        assert!(d.out_of_budget);
    }

    #[test]
    fn large_frames_are_scaled_to_the_cap() {
        let code = rendered("big", 40);
        let cfg = QrConfig {
            max_side: 400,
            budget: Duration::from_secs(5),
        };
        assert!(code.width() > 400);
        assert_eq!(decode(&code, &cfg).texts, ["big"]);
    }
}
