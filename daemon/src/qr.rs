//! QR decoding of camera frames and image files: zxing-cpp first, rqrr as the second opinion.
//!
//! A frame first gets one zxing-cpp pass (`zxing.rs`, cargo feature `zxing`, on by default): it
//! reads most codes in about a millisecond and says whether it located a symbol it could not
//! decode. Then, depending on the [`Mode`], rqrr's chain of preprocessing strategies (`chain.rs`)
//! gets its turn: at the door only when zxing-cpp located a symbol it could not read (an idle
//! frame costs one zxing-cpp pass), in `scan` on every image zxing-cpp did not read. A build
//! without the `zxing` feature (no C++ compiler) decodes with rqrr's chain alone.
//!
//! Payloads are bytes. [`Code::text`] is their text only when it is certain: UTF-8, the character
//! set zxing-cpp derived from the code's ECI, or Shift-JIS (the QR default for Kanji). Anything
//! else is binary and shown as hex; nothing is converted lossily.
//!
//! Two guards make this safe on untrusted input:
//! - every decoder call runs under [`contained`]: rqrr panics inside `detect_grids` on some
//!   images; a panic counts as a failed attempt, and the process's panic hook
//!   ([`panic_is_contained`]) logs it at debug level instead of printing it;
//! - rqrr gets the frame scaled to at most [`QrConfig::max_side`] (it can spend a minute on a
//!   2000 px frame) and no new rqrr attempt starts once [`QrConfig::budget`] is spent.
//!
//! No I/O here: a luma image in, decoded codes out.

mod config;
pub use config::QrSection;
mod chain;
pub mod preprocess;
pub mod second;
#[cfg(feature = "zxing")]
mod zxing;

use std::borrow::Cow;
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use image::GrayImage;

pub use chain::{Rotation, Strategy};

/// Which decoders a frame goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// zxing-cpp only.
    Zxing,
    /// rqrr's chain only (the decoder of a build without the `zxing` feature).
    Rqrr,
    /// zxing-cpp, then rqrr's chain only when zxing-cpp located a symbol it could not decode:
    /// the kiosk loop, where most frames hold no code.
    Door,
    /// zxing-cpp, then rqrr's chain whenever zxing-cpp read nothing or located a symbol it could
    /// not decode: `scan`, where time matters less than the answer.
    Thorough,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Zxing => "zxing-cpp",
            Mode::Rqrr => "rqrr chain",
            Mode::Door => "combined (door)",
            Mode::Thorough => "combined (scan)",
        }
    }

    /// What this build does with the mode: without zxing-cpp every mode is rqrr's chain.
    fn effective(self) -> Mode {
        if cfg!(feature = "zxing") {
            self
        } else {
            Mode::Rqrr
        }
    }
}

/// Whether this build has zxing-cpp.
pub const HAS_ZXING: bool = cfg!(feature = "zxing");

/// Limits and decoders of the decode chain.
#[derive(Debug, Clone)]
pub struct QrConfig {
    /// Frames are scaled down for rqrr so that their longer side is at most this many pixels.
    /// zxing-cpp gets the frame as it is (it downscales itself).
    pub max_side: u32,
    /// No new rqrr attempt starts after this much time on one frame. An attempt already running
    /// finishes, so the worst case is the budget plus one attempt.
    pub budget: Duration,
    pub mode: Mode,
}

impl Default for QrConfig {
    fn default() -> Self {
        QrConfig {
            max_side: 1280,
            budget: Duration::from_millis(400),
            mode: Mode::Door,
        }
    }
}

/// The decoder that read a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Zxing,
    Rqrr,
}

/// One decoded code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    /// The payload exactly as encoded.
    pub bytes: Vec<u8>,
    /// The payload as text when its character set is known or unambiguous; `None` for binary.
    pub text: Option<String>,
    pub engine: Engine,
}

impl Code {
    /// A code from raw payload bytes: UTF-8 text, else Shift-JIS text (what Kanji mode and
    /// Japanese byte-mode codes carry), else binary.
    pub fn from_bytes(bytes: Vec<u8>, engine: Engine) -> Code {
        let text = match std::str::from_utf8(&bytes) {
            Ok(s) => Some(s.to_owned()),
            Err(_) => encoding_rs::SHIFT_JIS
                .decode_without_bom_handling_and_without_replacement(&bytes)
                .map(Cow::into_owned),
        };
        Code {
            bytes,
            text,
            engine,
        }
    }

    /// The payload to show and to verify: its text, or `hex:` and the bytes in hex for binary.
    /// A pass code is ASCII, so its text is exactly its bytes.
    pub fn payload(&self) -> Cow<'_, str> {
        match &self.text {
            Some(t) => Cow::Borrowed(t),
            None => Cow::Owned(self.hex()),
        }
    }

    pub fn hex(&self) -> String {
        use std::fmt::Write;
        let mut s = String::from("hex:");
        for b in &self.bytes {
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

/// The result of decoding one frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// Distinct codes (by payload bytes), in the order found.
    pub codes: Vec<Code>,
    /// The rqrr strategy that found codes, when rqrr did.
    pub strategy: Option<Strategy>,
    /// Decoder passes run (zxing-cpp's one and rqrr's strategies).
    pub attempts: u32,
    /// Passes in which a decoder panicked (contained).
    pub panics: u32,
    /// Symbols located by a decoder but not decoded: the most any one pass located.
    pub undecoded: u32,
    /// rqrr's time budget ran out before its chain was exhausted.
    pub out_of_budget: bool,
    pub elapsed: Duration,
}

impl Decoded {
    /// The payloads, as [`Code::payload`] gives them.
    pub fn payloads(&self) -> Vec<String> {
        self.codes
            .iter()
            .map(|c| c.payload().into_owned())
            .collect()
    }

    fn add(&mut self, codes: Vec<Code>) {
        for c in codes {
            if !self.codes.iter().any(|k| k.bytes == c.bytes) {
                self.codes.push(c);
            }
        }
    }
}

/// Decodes every QR code in `frame` with `cfg.mode`, rqrr trying its whole chain.
pub fn decode(frame: &GrayImage, cfg: &QrConfig) -> Decoded {
    decode_with(frame, cfg, &Strategy::CHAIN)
}

/// Like [`decode`] with a chosen rqrr chain (the door's [`Rotation`]; benchmarks compare chains
/// with it).
pub fn decode_with(frame: &GrayImage, cfg: &QrConfig, chain: &[Strategy]) -> Decoded {
    run(frame, cfg, || chain.to_vec())
}

/// The door's decode: rqrr, when its turn comes, tries the strategies `rotation` hands out next,
/// so the rotation moves on only on frames that needed rqrr.
pub fn decode_rotating(frame: &GrayImage, cfg: &QrConfig, rotation: &mut Rotation) -> Decoded {
    run(frame, cfg, || rotation.next_chain())
}

fn run(frame: &GrayImage, cfg: &QrConfig, chain: impl FnOnce() -> Vec<Strategy>) -> Decoded {
    let start = Instant::now();
    let mut out = Decoded::default();
    if frame.width() == 0 || frame.height() == 0 {
        return out;
    }
    let mode = cfg.mode.effective();
    if mode != Mode::Rqrr {
        first_opinion(frame, &mut out);
        let second = match mode {
            Mode::Zxing | Mode::Rqrr => false,
            Mode::Door => out.undecoded > 0,
            Mode::Thorough => out.codes.is_empty() || out.undecoded > 0,
        };
        if !second {
            out.elapsed = start.elapsed();
            return out;
        }
    }
    let base = preprocess::fit(frame, cfg.max_side);
    let mut tried = 0;
    for strategy in chain() {
        if tried > 0 && start.elapsed() >= cfg.budget {
            out.out_of_budget = true;
            break;
        }
        let Some(img) = strategy.prepare(&base) else {
            continue;
        };
        tried += 1;
        out.attempts += 1;
        match chain::pass(img) {
            Ok(pass) if !pass.codes.is_empty() => {
                out.add(pass.codes);
                out.strategy = Some(strategy);
                break;
            }
            Ok(pass) => out.undecoded = out.undecoded.max(pass.undecoded),
            Err(()) => out.panics += 1,
        }
    }
    out.elapsed = start.elapsed();
    out
}

#[cfg(feature = "zxing")]
fn first_opinion(frame: &GrayImage, out: &mut Decoded) {
    out.attempts += 1;
    match zxing::pass(frame) {
        Ok(pass) => {
            out.undecoded = pass.undecoded;
            out.add(pass.codes);
        }
        Err(error) => {
            out.panics += 1;
            tracing::debug!(message = "zxing-cpp failed on a frame.", %error);
        }
    }
}

#[cfg(not(feature = "zxing"))]
fn first_opinion(_frame: &GrayImage, _out: &mut Decoded) {}

thread_local! {
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

/// Runs a decoder, turning its panic into `Err`. While it runs, [`panic_is_contained`] is true
/// on this thread, so the process's panic hook can stay quiet about a panic that is handled.
pub(crate) fn contained<T>(f: impl FnOnce() -> T) -> Result<T, ()> {
    let before = CONTAINED.with(|c| c.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f)).map_err(|_| ());
    CONTAINED.with(|c| c.set(before));
    result
}

/// True inside a decoder call on this thread: a panic there is caught and counted in
/// [`Decoded::panics`]. For the process's panic hook.
pub fn panic_is_contained() -> bool {
    CONTAINED.with(Cell::get)
}

#[cfg(test)]
mod tests;
