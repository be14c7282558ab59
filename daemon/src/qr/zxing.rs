//! The zxing-cpp side of the decoder: one pass of the C++ library over the luma frame, restricted
//! to QR codes. zxing-cpp binarises locally, tries inverted and rotated images and downscales large
//! frames itself, so one pass replaces most of rqrr's chain at a fraction of its cost.
//!
//! With `return_errors`, a symbol zxing-cpp located but could not decode (checksum or format
//! error) comes back as an invalid barcode: that is the signal for rqrr's second opinion.

use image::GrayImage;
use zxingcpp::{BarcodeFormat, BarcodeReader, ContentType, ImageFormat, ImageView};

use super::{Code, Engine};

/// What one zxing-cpp pass found.
pub(super) struct Pass {
    pub codes: Vec<Code>,
    /// Symbols located but not decoded.
    pub undecoded: u32,
}

/// One zxing-cpp pass. `Err` when the library refused the image or its wrapper panicked
/// (contained).
pub(super) fn pass(frame: &GrayImage) -> Result<Pass, String> {
    super::contained(|| {
        let view = ImageView::from_slice(
            frame.as_raw(),
            frame.width(),
            frame.height(),
            ImageFormat::Lum,
        )
        .map_err(|e| e.to_string())?;
        let reader = BarcodeReader::new()
            .formats(BarcodeFormat::QRCode)
            .try_harder(true)
            .try_rotate(true)
            .try_invert(true)
            .try_downscale(true)
            .return_errors(true);
        let barcodes = reader.from(view).map_err(|e| e.to_string())?;
        let mut out = Pass {
            codes: Vec::new(),
            undecoded: 0,
        };
        for b in barcodes {
            if !b.is_valid() {
                out.undecoded += 1;
                continue;
            }
            let bytes = b.bytes();
            // zxing-cpp's text honours ECI and guesses Shift-JIS where the code says nothing;
            // its bytes are the payload exactly. Binary content has no text.
            let text = match std::str::from_utf8(&bytes) {
                Ok(s) => Some(s.to_owned()),
                Err(_) if b.content_type() == ContentType::Binary => None,
                Err(_) => Some(b.text()),
            };
            out.codes.push(Code {
                bytes,
                text,
                engine: Engine::Zxing,
            });
        }
        Ok(out)
    })
    .unwrap_or_else(|()| Err("zxing-cpp's wrapper panicked".to_string()))
}
