//! Image preparation for QR detection: the operations the decode chain tries when `rqrr`'s own
//! binarisation fails on a real camera frame (uneven light, glare, low contrast, noise, inverted
//! screens, small codes). Pure functions over luma images.

use image::imageops::{self, FilterType};
use image::GrayImage;

/// Scales `img` down so that its longer side is at most `max_side`; returns it unchanged when it
/// already fits.
pub fn fit(img: &GrayImage, max_side: u32) -> GrayImage {
    let longer = img.width().max(img.height());
    if longer <= max_side || max_side == 0 {
        return img.clone();
    }
    let scale = f64::from(max_side) / f64::from(longer);
    let w = ((f64::from(img.width()) * scale).round() as u32).max(1);
    let h = ((f64::from(img.height()) * scale).round() as u32).max(1);
    imageops::resize(img, w, h, FilterType::Triangle)
}

/// Scales by `factor` (2 doubles the side) with bilinear interpolation.
pub fn scale(img: &GrayImage, factor: f32) -> GrayImage {
    let w = ((img.width() as f32 * factor).round() as u32).max(1);
    let h = ((img.height() as f32 * factor).round() as u32).max(1);
    imageops::resize(img, w, h, FilterType::Triangle)
}

pub fn invert(img: &GrayImage) -> GrayImage {
    let mut out = img.clone();
    imageops::invert(&mut out);
    out
}

/// Global threshold chosen by Otsu's method (maximum between-class variance).
pub fn otsu(img: &GrayImage) -> GrayImage {
    let mut hist = [0u64; 256];
    for p in img.pixels() {
        hist[usize::from(p[0])] += 1;
    }
    let total: u64 = hist.iter().sum();
    let sum_all: f64 = hist
        .iter()
        .enumerate()
        .map(|(i, &n)| i as f64 * n as f64)
        .sum();
    let (mut weight_bg, mut sum_bg) = (0u64, 0f64);
    let (mut best, mut threshold) = (0f64, 128u8);
    for (t, &n) in hist.iter().enumerate() {
        weight_bg += n;
        if weight_bg == 0 {
            continue;
        }
        let weight_fg = total - weight_bg;
        if weight_fg == 0 {
            break;
        }
        sum_bg += t as f64 * n as f64;
        let mean_bg = sum_bg / weight_bg as f64;
        let mean_fg = (sum_all - sum_bg) / weight_fg as f64;
        let between = weight_bg as f64 * weight_fg as f64 * (mean_bg - mean_fg).powi(2);
        if between > best {
            best = between;
            threshold = t as u8;
        }
    }
    binarize(img, |_, _, v| v > threshold)
}

/// Local-mean threshold: a pixel is light when it is brighter than the mean of the
/// `(2 * radius + 1)²` window around it minus `offset`. Survives shading and glare that defeat a
/// global threshold. O(pixels) through an integral image.
pub fn adaptive(img: &GrayImage, radius: u32, offset: i32) -> GrayImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut integral = vec![0u64; (w + 1) * (h + 1)];
    for y in 0..h {
        let mut row = 0u64;
        for x in 0..w {
            row += u64::from(img.as_raw()[y * w + x]);
            integral[(y + 1) * (w + 1) + x + 1] = integral[y * (w + 1) + x + 1] + row;
        }
    }
    let r = radius as usize;
    binarize(img, |x, y, v| {
        let (x, y) = (x as usize, y as usize);
        let (x0, y0) = (x.saturating_sub(r), y.saturating_sub(r));
        let (x1, y1) = ((x + r + 1).min(w), (y + r + 1).min(h));
        let area = ((x1 - x0) * (y1 - y0)) as i64;
        let sum = integral[y1 * (w + 1) + x1] + integral[y0 * (w + 1) + x0]
            - integral[y0 * (w + 1) + x1]
            - integral[y1 * (w + 1) + x0];
        i64::from(v) * area > (sum as i64) - i64::from(offset) * area
    })
}

/// Stretches the 1st..99th percentile range to the full 0..255 range.
pub fn stretch(img: &GrayImage) -> GrayImage {
    let mut hist = [0u64; 256];
    for p in img.pixels() {
        hist[usize::from(p[0])] += 1;
    }
    let total: u64 = hist.iter().sum();
    let percentile = |q: f64| {
        let target = (total as f64 * q) as u64;
        let mut acc = 0;
        for (v, &n) in hist.iter().enumerate() {
            acc += n;
            if acc > target {
                return v as f32;
            }
        }
        255.0
    };
    let (lo, hi) = (percentile(0.01), percentile(0.99));
    if hi - lo < 1.0 {
        return img.clone();
    }
    let mut out = img.clone();
    for p in out.pixels_mut() {
        p[0] = ((f32::from(p[0]) - lo) * 255.0 / (hi - lo)).clamp(0.0, 255.0) as u8;
    }
    out
}

/// Gaussian blur; suppresses sensor noise and moiré before thresholding.
pub fn smooth(img: &GrayImage, sigma: f32) -> GrayImage {
    imageops::blur(img, sigma)
}

fn binarize(img: &GrayImage, light: impl Fn(u32, u32, u8) -> bool) -> GrayImage {
    let mut out = GrayImage::new(img.width(), img.height());
    for (x, y, p) in img.enumerate_pixels() {
        out.put_pixel(x, y, image::Luma([if light(x, y, p[0]) { 255 } else { 0 }]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    fn gradient() -> GrayImage {
        // A dark square on a background that brightens left to right.
        GrayImage::from_fn(64, 32, |x, y| {
            let bg = 60 + x * 3;
            let dark = (20..30).contains(&x) && (8..24).contains(&y);
            Luma([if dark { (bg / 3) as u8 } else { bg as u8 }])
        })
    }

    #[test]
    fn adaptive_separates_object_from_shaded_background() {
        let out = adaptive(&gradient(), 8, 5);
        assert_eq!(out.get_pixel(25, 16)[0], 0, "object is dark");
        assert_eq!(out.get_pixel(5, 2)[0], 255, "dim background is light");
        assert_eq!(out.get_pixel(60, 30)[0], 255, "bright background is light");
    }

    #[test]
    fn otsu_splits_two_levels() {
        let img = GrayImage::from_fn(10, 10, |x, _| Luma([if x < 5 { 40 } else { 200 }]));
        let out = otsu(&img);
        assert_eq!(out.get_pixel(0, 0)[0], 0);
        assert_eq!(out.get_pixel(9, 0)[0], 255);
    }

    #[test]
    fn fit_and_stretch() {
        let img = GrayImage::from_fn(400, 100, |x, _| Luma([100 + (x % 50) as u8]));
        let small = fit(&img, 200);
        assert_eq!((small.width(), small.height()), (200, 50));
        assert_eq!(fit(&img, 1000).dimensions(), img.dimensions());
        let s = stretch(&img);
        assert_eq!(s.pixels().map(|p| p[0]).max(), Some(255));
        assert_eq!(s.pixels().map(|p| p[0]).min(), Some(0));
        let flat = GrayImage::from_pixel(3, 3, Luma([7]));
        assert_eq!(stretch(&flat), flat);
        assert_eq!(invert(&flat).get_pixel(0, 0)[0], 248);
    }
}
