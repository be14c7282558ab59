//! The rqrr side of the decoder: a chain of [`Strategy`]s, each preparing the frame differently
//! for `rqrr`, cheapest and most often successful first, and the [`Rotation`] that spreads the
//! chain over consecutive camera frames.
//!
//! `rqrr`'s own binarisation (a moving average along rows) is fooled by what real frames contain:
//! shading across a phone screen, glare, low contrast, noise, light-on-dark codes, codes only a
//! few pixels per module wide; each strategy answers one of these. Every `rqrr` call runs under
//! [`super::contained`] (it panics inside `detect_grids` on some images).

use image::GrayImage;

use super::preprocess;
use super::{Code, Engine};

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

/// What one rqrr pass over a prepared image found.
pub(super) struct Pass {
    pub codes: Vec<Code>,
    /// Grids rqrr located but could not decode.
    pub undecoded: u32,
}

/// One rqrr pass. `Err` when rqrr panicked (contained).
pub(super) fn pass(img: GrayImage) -> Result<Pass, ()> {
    super::contained(move || {
        let mut prepared = rqrr::PreparedImage::prepare(img);
        let mut out = Pass {
            codes: Vec::new(),
            undecoded: 0,
        };
        for grid in prepared.detect_grids() {
            let mut raw = Vec::new();
            match grid.decode_to(&mut raw) {
                Ok(_) => out.codes.push(Code::from_bytes(raw, Engine::Rqrr)),
                Err(_) => out.undecoded += 1,
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
